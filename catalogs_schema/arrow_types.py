"""Column types of Arrow schemas, for :mod:`validate`."""

from __future__ import annotations

import pyarrow as pa

from legacylake.catalogs_schema.validate import ColumnType

_ARROW = {pa.int16(): "int16", pa.int32(): "int32", pa.int64(): "int64", pa.uint8(): "uint8",
          pa.float32(): "float32", pa.float64(): "float64", pa.bool_(): "bool"}


def types_from_arrow(schema: pa.Schema) -> dict[str, ColumnType]:
    """Column types of an Arrow schema; strings report width 0 (any width)."""
    out = {}
    for f in schema:
        t = f.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            out[f.name.lower()] = ColumnType("char", (), 0)
        elif pa.types.is_fixed_size_list(t):
            out[f.name.lower()] = ColumnType(_ARROW.get(t.value_type, str(t.value_type)), (t.list_size,))
        else:
            out[f.name.lower()] = ColumnType(_ARROW.get(t, str(t)), ())
    return out
