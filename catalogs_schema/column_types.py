"""Column types as found in a file (element kind, array shape, string width), from a FITS
header, a numpy dtype or an Arrow schema: what :mod:`legacylake.catalogs_schema.validate`
compares with a data model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: not imported at run time
    import pyarrow as pa


@dataclass(frozen=True)
class ColumnType:
    """Type of one column as found in a file: element kind, array shape, string width."""

    kind: str  # int16, int32, int64, uint8, float32, float64, bool, char
    shape: tuple[int, ...] = ()
    width: int = 0

    @property
    def label(self) -> str:
        if self.kind == "char":
            return f"char[{self.width}]"
        return f"{self.kind}[{self.shape[0]}]" if self.shape else self.kind


_TFORM = {"I": "int16", "J": "int32", "K": "int64", "B": "uint8", "E": "float32",
          "D": "float64", "L": "bool", "A": "char"}
_NP_KIND = {"i2": "int16", "i4": "int32", "i8": "int64", "u1": "uint8", "f4": "float32",
            "f8": "float64", "b1": "bool"}


def types_from_header(header) -> dict[str, ColumnType]:
    """Column types from a FITS binary-table header (TTYPEn/TFORMn), lowercase names."""
    out = {}
    for i in range(1, int(header.get("TFIELDS", 0)) + 1):
        name = str(header[f"TTYPE{i}"]).strip().lower()
        tform = str(header[f"TFORM{i}"]).strip()
        rep = "".join(ch for ch in tform if ch.isdigit())
        letter = tform[len(rep):len(rep) + 1]
        n = int(rep) if rep else 1
        kind = _TFORM.get(letter, f"tform:{tform}")
        if kind == "int16" and float(header.get(f"TZERO{i}", 0)) == 32768:
            kind = "uint16"
        if kind == "char":
            out[name] = ColumnType("char", (), n)
        else:
            tdim = header.get(f"TDIM{i}")
            shape = (n,) if (n > 1 or tdim) else ()
            out[name] = ColumnType(kind, shape)
    return out


def types_from_dtype(dtype: np.dtype) -> dict[str, ColumnType]:
    """Column types from a numpy structured dtype (e.g. a fitsio or astropy table)."""
    out = {}
    for name in dtype.names:
        dt = dtype[name]
        shape = dt.shape
        base = dt.base
        if base.kind in "SU":
            width = base.itemsize if base.kind == "S" else base.itemsize // 4
            out[name.lower()] = ColumnType("char", (), width)
            continue
        key = f"{base.kind}{base.itemsize}" if base.kind != "b" else "b1"
        out[name.lower()] = ColumnType(_NP_KIND.get(key, str(base)), tuple(int(s) for s in shape))
    return out


def types_from_arrow(schema: "pa.Schema") -> dict[str, ColumnType]:
    """Column types of an Arrow schema; strings report width 0 (any width)."""
    import pyarrow as pa

    arrow_kind = {pa.int16(): "int16", pa.int32(): "int32", pa.int64(): "int64", pa.uint8(): "uint8",
                  pa.float32(): "float32", pa.float64(): "float64", pa.bool_(): "bool"}
    out = {}
    for f in schema:
        t = f.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            out[f.name.lower()] = ColumnType("char", (), 0)
        elif pa.types.is_fixed_size_list(t):
            out[f.name.lower()] = ColumnType(arrow_kind.get(t.value_type, str(t.value_type)), (t.list_size,))
        else:
            out[f.name.lower()] = ColumnType(arrow_kind.get(t, str(t)), ())
    return out

