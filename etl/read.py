"""Reading Tractor/sweep FITS tables into Arrow in the lake's schema.

Lake schema: ``_healpix_29`` (int64) first, then the data model's columns in model order,
lowercase names, strings stripped of padding, FITS arrays as fixed-size lists, integer
widths kept, booleans as bool; each field carries its unit and description (from
:mod:`legacylake.catalogs_schema`). Optional model columns absent from a file are null.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from legacylake._version import __version__
from legacylake.catalogs_schema import model

from legacylake.etl.fitstable import columns_from_raw, iter_raw, layout
from legacylake.etl.healpix import good_positions, healpix29

HEALPIX_COLUMN = "_healpix_29"
#: Rows read from a FITS file at a time (bounds memory for large sweep files).
CHUNK_ROWS = 200_000


@functools.cache
def lake_schema(model_name: str) -> pa.Schema:
    """Arrow schema of the lake for a data model, with field and file-level metadata."""
    dm = model(model_name)
    hp_field = pa.field(HEALPIX_COLUMN, pa.int64(), nullable=False, metadata={
        "description": "HEALPix index of (ra, dec), nested scheme, order 29"})
    schema = pa.schema([hp_field, *dm.arrow_schema()])
    meta = {
        "legacylake.data_model": dm.name,
        "legacylake.release": dm.release,
        "legacylake.version": __version__,
        "table_meta_yaml": astropy_yaml(dm.name),
    }
    meta.update({f"table::len::{c.name}": str(c.width) for c in dm.columns if c.is_string})
    return schema.with_metadata({k.encode(): v.encode() for k, v in meta.items()})


def astropy_yaml(model_name: str) -> str:
    """The ``table_meta_yaml`` header astropy's Parquet reader uses for units/descriptions."""
    from astropy.table import Table, meta

    dm = model(model_name)
    t = Table()
    t[HEALPIX_COLUMN] = np.zeros(0, dtype=np.int64)
    t[HEALPIX_COLUMN].description = "HEALPix index of (ra, dec), nested scheme, order 29"
    for c in dm.columns:
        dt = np.dtype(f"U{c.width}") if c.is_string else c.numpy_dtype
        t[c.name] = np.zeros((0, *c.shape), dtype=dt)
        if c.unit:
            t[c.name].unit = c.unit
        t[c.name].description = c.description
    t.meta["data_model"] = dm.name
    t.meta["release"] = dm.release
    t.meta["legacylake_version"] = __version__
    return "\n".join(meta.get_yaml_from_table(t))


def to_arrow(data: dict, hp: np.ndarray, schema: pa.Schema) -> pa.Table:
    """Arrow table in ``schema`` from columns by lowercase name (see :mod:`fitstable`) and
    their _healpix_29. Strings are stripped of blank/NUL padding; values are cast to the
    model's type (e.g. a signed-byte FITS column to the model's uint8)."""
    n = len(hp)
    arrays = [pa.array(hp, type=pa.int64())]
    for field in schema:
        if field.name == HEALPIX_COLUMN:
            continue
        col = data.get(field.name)
        if col is None:
            arrays.append(pa.nulls(n, type=field.type))
            continue
        t = field.type
        if pa.types.is_string(t):
            b = pa.array(col, type=pa.binary(col.dtype.itemsize) if col.dtype.itemsize else pa.binary())
            arrays.append(pc.utf8_trim(b.cast(pa.string()), " \x00"))
        elif pa.types.is_fixed_size_list(t):
            flat = np.ascontiguousarray(col).reshape(-1).astype(t.value_type.to_pandas_dtype(), copy=False)
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat), t.list_size))
        else:
            arrays.append(pa.array(col.astype(t.to_pandas_dtype(), copy=False), type=t))
    return pa.Table.from_arrays(arrays, schema=schema)


def iter_fits_chunks(path: str, chunk_rows: int = CHUNK_ROWS, lay=None):
    """Yield (columns by lowercase name, first row index) chunks of a FITS table."""
    lay = lay or layout(path)
    for i, raw in enumerate(iter_raw(lay, chunk_rows)):
        yield columns_from_raw(lay, raw), i * chunk_rows


def positions(data: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ra, dec, good mask) of a chunk."""
    ra = np.asarray(data["ra"], dtype=np.float64)
    dec = np.asarray(data["dec"], dtype=np.float64)
    return ra, dec, good_positions(ra, dec)


def read_fits_table(path: str, model_name: str) -> pa.Table:
    """Whole file as one sorted Arrow table in the lake schema (rows with bad positions dropped).

    For tests and small files; the build streams instead."""
    schema = lake_schema(model_name)
    parts = []
    for data, _ in iter_fits_chunks(path):
        ra, dec, good = positions(data)
        data = {k: v[good] for k, v in data.items()}
        parts.append(to_arrow(data, healpix29(ra[good], dec[good]), schema))
    if not parts:
        return schema.empty_table()
    t = pa.concat_tables(parts)
    return t.take(pc.sort_indices(t[HEALPIX_COLUMN]))


def schema_metadata_json(schema: pa.Schema) -> str:
    return json.dumps({k.decode(): v.decode() for k, v in (schema.metadata or {}).items()
                       if k != b"table_meta_yaml"})
