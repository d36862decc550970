"""Results as VOTable (BINARY2 or TABLEDATA, via ``astropy.io.votable``), CSV, FITS and Parquet;
VOTable error documents; uploaded VOTables read into Arrow.

Column types follow one mapping (:func:`votable_type`) used for results and for TAP_SCHEMA,
so what ``/tables`` declares is what a query returns.
"""

from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from legacylake.errors import UserError

#: RESPONSEFORMAT values -> (format key, MIME type).
FORMATS = {
    "votable": ("binary2", "application/x-votable+xml"),
    "application/x-votable+xml": ("binary2", "application/x-votable+xml"),
    "text/xml": ("binary2", "text/xml"),
    "votable/b2": ("binary2", "application/x-votable+xml;serialization=BINARY2"),
    "application/x-votable+xml;serialization=binary2": ("binary2", "application/x-votable+xml;serialization=BINARY2"),
    "votable/td": ("tabledata", "application/x-votable+xml;serialization=TABLEDATA"),
    "application/x-votable+xml;serialization=tabledata": ("tabledata", "application/x-votable+xml;serialization=TABLEDATA"),
    "csv": ("csv", "text/csv"), "text/csv": ("csv", "text/csv"),
    "fits": ("fits", "application/fits"), "application/fits": ("fits", "application/fits"),
    "parquet": ("parquet", "application/vnd.apache.parquet"),
    "application/vnd.apache.parquet": ("parquet", "application/vnd.apache.parquet"),
}
SUFFIX = {"binary2": "xml", "tabledata": "xml", "csv": "csv", "fits": "fits", "parquet": "parquet"}


def response_format(value: str | None) -> tuple[str, str]:
    """(format key, MIME type) of a RESPONSEFORMAT/FORMAT value; UserError names the valid ones."""
    if not value:
        return FORMATS["votable"]
    key = value.strip().lower().replace(" ", "")
    if key not in FORMATS:
        raise UserError(f"RESPONSEFORMAT {value!r} is not supported; use one of: votable, votable/td, csv, fits, "
                        "parquet (or their MIME types)")
    return FORMATS[key]


@dataclass(frozen=True)
class FieldMeta:
    """What a result column says about itself besides its type."""

    unit: str = ""
    ucd: str = ""
    description: str = ""
    size: int | None = None     # fixed array length of a list column (the lake's FITS array size)


def _plain(t: pa.DataType) -> pa.DataType:
    """The Arrow type a result column is written as (decimals -> float64, unsigned widened)."""
    if pa.types.is_decimal(t):
        return pa.int64() if t.scale == 0 and t.precision <= 18 else pa.float64()
    if pa.types.is_large_string(t) or str(t) == "string_view":
        return pa.string()
    if t in (pa.uint16(),):
        return pa.int32()
    if t in (pa.uint32(),):
        return pa.int64()
    if t == pa.uint64():
        return pa.int64()
    if t == pa.int8():
        return pa.int16()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return pa.string()
    if pa.types.is_fixed_size_list(t):
        return pa.list_(_plain(t.value_type), t.list_size)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_plain(t.value_type))
    return t


_SCALAR = {pa.int16(): "short", pa.int32(): "int", pa.int64(): "long", pa.uint8(): "unsignedByte",
           pa.float32(): "float", pa.float64(): "double", pa.bool_(): "boolean", pa.string(): "char"}


def votable_type(t: pa.DataType) -> tuple[str, str | None, str | None]:
    """(VOTable datatype, arraysize, xtype) of an Arrow type (timestamps: ISO 8601 char, xtype timestamp)."""
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "char", "*", "timestamp"
    t = _plain(t)
    if pa.types.is_fixed_size_list(t):
        return _SCALAR.get(_plain(t.value_type), "char"), str(t.list_size), None
    if pa.types.is_list(t):
        return _SCALAR.get(_plain(t.value_type), "char"), "*", None
    if t == pa.string():
        return "char", "*", None
    if t in _SCALAR:
        return _SCALAR[t], None, None
    return "char", "*", None


def normalise(table: pa.Table, meta: dict[str, FieldMeta] | None = None) -> pa.Table:
    """``table`` with every column in a type :func:`votable_type` maps exactly; list columns that
    are fixed-size arrays in the lake (``meta[name].size``) become fixed-size lists again."""
    cols, fields = [], []
    for f, col in zip(table.schema, table.columns):
        t = _plain(f.type)
        size = (meta or {}).get(f.name, FieldMeta()).size
        if size and pa.types.is_list(t):
            fixed = pa.list_(t.value_type, size)
            try:
                col, t = col.cast(fixed), fixed
                cols.append(col)
                fields.append(pa.field(f.name, t, metadata=f.metadata))
                continue
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type):
            col = pc.strftime(col, format="%Y-%m-%dT%H:%M:%S" if not pa.types.is_date(f.type) else "%Y-%m-%d")
        elif t != f.type:
            if pa.types.is_string(t) and not pa.types.is_string(f.type) and not pa.types.is_large_string(f.type):
                col = pa.chunked_array([pa.array([None if v is None else str(v) for v in col.to_pylist()],
                                                 pa.string())])
            else:
                col = col.cast(t)
        cols.append(col)
        fields.append(pa.field(f.name, t, metadata=f.metadata))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def _column_values(col: pa.ChunkedArray, t: pa.DataType):
    """numpy (masked) values of an Arrow column for astropy."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(col)
    if pa.types.is_fixed_size_list(t):
        flat = col.values.slice(col.offset * t.list_size, n * t.list_size)   # null arrays keep their slots
        vals = flat.to_numpy(zero_copy_only=False).reshape(n, t.list_size) if n else \
            np.zeros((0, t.list_size), dtype=flat.type.to_pandas_dtype())
        mask = np.zeros(vals.shape, bool)
        if flat.null_count:
            mask = flat.is_null().to_numpy(zero_copy_only=False).reshape(n, t.list_size)
        return np.ma.array(vals, mask=mask)
    if pa.types.is_list(t) or pa.types.is_string(t):
        vals = np.empty(n, dtype=object)
        if pa.types.is_string(t):
            vals[:] = ["" if v is None else v for v in col.to_pylist()]
        else:
            dt = t.value_type.to_pandas_dtype()
            vals[:] = [np.ma.array(np.array([0 if x is None else x for x in (v or [])], dtype=dt),
                                   mask=[x is None for x in (v or [])]) for v in col.to_pylist()]
        return np.ma.array(vals, mask=col.is_null().to_numpy(zero_copy_only=False))
    mask = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else np.zeros(n, bool)
    if pa.types.is_boolean(t):
        vals = pc.fill_null(col, False).to_numpy(zero_copy_only=False)
    else:
        vals = pc.fill_null(col, 0).to_numpy(zero_copy_only=False) if col.null_count else col.to_numpy(zero_copy_only=False)
    return np.ma.array(vals, mask=mask)


def to_votable(table: pa.Table, meta: dict[str, FieldMeta], serialization: str = "binary2",
               overflow: bool = False, infos: dict[str, str] | None = None) -> bytes:
    """A TAP result VOTable: RESOURCE type=results, QUERY_STATUS OK (and OVERFLOW after the table).
    Units are given in VOUnit form (:func:`legacylake.query.tap.schema.vounit`); astropy's notes
    on non-standard unit names are silenced."""
    if serialization == "binary2" and not infos:
        from legacylake.query.tap import binary2

        xtypes = {f.name: votable_type(f.type)[2] for f in table.schema}
        table = normalise(table, meta)
        seen: set = set()
        fields = []
        for f in table.schema:
            dt, size, _ = votable_type(f.type)
            m = meta.get(f.name) or FieldMeta()
            fields.append(dict(name=f.name, id=_unique_id(f.name, seen), datatype=dt, arraysize=size,
                               xtype=xtypes.get(f.name), unit=m.unit, ucd=m.ucd, description=m.description))
        return binary2.document(table, fields, overflow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _to_votable(table, meta, serialization, overflow, infos)


def _to_votable(table, meta, serialization, overflow, infos) -> bytes:
    from astropy.io.votable.tree import Field, Info, Resource, TableElement, VOTableFile

    vot = VOTableFile(version="1.4")
    res = Resource(type="results")
    vot.resources.append(res)
    res.infos.append(Info(name="QUERY_STATUS", value="OK"))
    for k, v in (infos or {}).items():
        res.infos.append(Info(name=k, value=v))
    tab = TableElement(vot, name="result")
    res.tables.append(tab)
    seen = set()
    xtypes = {f.name: votable_type(f.type)[2] for f in table.schema}
    table = normalise(table, meta)
    for f in table.schema:
        dt, size, _ = votable_type(f.type)
        xtype = xtypes.get(f.name)
        m = meta.get(f.name) or FieldMeta()
        fid = _unique_id(f.name, seen)
        fld = Field(vot, name=f.name, ID=fid, datatype=dt, arraysize=size, xtype=xtype,
                    unit=_unit(m.unit) if m.unit else None, ucd=m.ucd or None)
        if m.description:
            fld.description = m.description
        tab.fields.append(fld)
    tab.create_arrays(table.num_rows)
    for i, (f, col) in enumerate(zip(table.schema, table.columns)):
        vals = _column_values(col, f.type)
        name = tab.array.dtype.names[i]
        tab.array[name] = vals
        tab.array.mask[name] = np.ma.getmaskarray(vals)
    buf = io.BytesIO()
    vot.to_xml(buf, tabledata_format=serialization)  # units were given in VOUnit form (schema.vounit)
    out = buf.getvalue()
    if overflow:
        out = out.replace(b"</TABLE>", b'</TABLE>\n  <INFO name="QUERY_STATUS" value="OVERFLOW"/>', 1)
    return out


@functools.lru_cache(maxsize=1024)
def _unit(text: str):
    """The astropy unit a VOTable FIELD makes of ``text``, parsed once: parsing an unknown unit
    name (``nanomaggy``) costs ~2 ms in astropy's suggestion search, per field, per result."""
    from astropy.io.votable.tree import Field, VOTableFile

    return Field(VOTableFile(version="1.4"), name="x", datatype="double", unit=text).unit


def _unique_id(name: str, seen: set) -> str:
    base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name) or "col"
    if base[0].isdigit():
        base = "c" + base
    fid, k = base, 1
    while fid in seen:
        k += 1
        fid = f"{base}_{k}"
    seen.add(fid)
    return fid


def error_votable(message: str) -> bytes:
    """A DALI error document: RESOURCE type=results with INFO QUERY_STATUS=ERROR and the message."""
    from xml.sax.saxutils import escape, quoteattr

    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">\n'
            ' <RESOURCE type="results">\n'
            f'  <INFO name="QUERY_STATUS" value="ERROR">{escape(message)}</INFO>\n'
            f'  <INFO name="MESSAGE" value={quoteattr(message)}/>\n'
            ' </RESOURCE>\n</VOTABLE>\n').encode()


def encode(table: pa.Table, fmt: str, meta: dict[str, FieldMeta], overflow: bool = False) -> bytes:
    """Bytes of a result in format ``fmt`` (binary2, tabledata, csv, fits, parquet)."""
    if fmt in ("binary2", "tabledata"):
        return to_votable(table, meta, fmt, overflow)
    table = normalise(table, meta)
    buf = io.BytesIO()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        fields = [f.with_metadata({"unit": meta[f.name].unit, "description": meta[f.name].description})
                  if f.name in meta else f for f in table.schema]
        pq.write_table(table.cast(pa.schema(fields)), buf)
        return buf.getvalue()
    if fmt == "csv":
        import pyarrow.csv as pcsv

        cols = [pc.cast(c, pa.string()) if not (pa.types.is_list(c.type) or pa.types.is_fixed_size_list(c.type))
                else pa.array([None if v is None else " ".join(map(str, v)) for v in c.to_pylist()], pa.string())
                for c in table.columns]
        pcsv.write_csv(pa.table(cols, names=table.column_names), buf)
        return buf.getvalue()
    if fmt == "fits":
        from astropy.table import Table

        t = Table()
        for f, col in zip(table.schema, table.columns):
            vals = _column_values(col, f.type)
            if pa.types.is_string(f.type):
                vals = np.ma.array(vals.filled("").astype(str), mask=np.ma.getmaskarray(vals))
            t[f.name] = vals
            if f.name in meta and meta[f.name].unit:
                t[f.name].unit = meta[f.name].unit
        with warnings.catch_warnings():   # astropy's notes on non-FITS unit names (nanomaggy)
            warnings.simplefilter("ignore")
            t.write(buf, format="fits")
        return buf.getvalue()
    raise UserError(f"unknown format {fmt!r}")


def read_upload(data: bytes, name: str, max_rows: int) -> pa.Table:
    """An uploaded VOTable as an Arrow table (its first table); UserError names what is wrong."""
    from astropy.io.votable import parse_single_table

    try:
        vt = parse_single_table(io.BytesIO(data), verify="ignore")
        t = vt.to_table()
        xtypes = {f.name: f.xtype for f in vt.fields}
    except Exception as exc:
        raise UserError(f"UPLOAD {name}: not a readable VOTable ({type(exc).__name__}: {exc})") from None
    if len(t) > max_rows:
        raise UserError(f"UPLOAD {name}: {len(t)} rows is over the limit of {max_rows}")
    cols = {}
    for c in t.colnames:
        col = t[c]
        mask = np.ma.getmaskarray(col) if hasattr(col, "mask") else None
        vals = np.asarray(col.filled() if hasattr(col, "filled") else col)
        if xtypes.get(c) == "timestamp" and (vals.dtype.kind in "US" or vals.dtype == object):
            text = [None if (mask is not None and mask[i]) or not str(v).strip() else str(v).strip().rstrip("Z")
                    for i, v in enumerate(vals)]
            arr = pa.array(np.array([np.datetime64(v, "ms") if v else np.datetime64("NaT") for v in text]))
        elif vals.dtype.kind in "US" or vals.dtype == object:
            arr = pa.array([None if (mask is not None and mask[i]) else (v.decode() if isinstance(v, bytes) else str(v))
                            for i, v in enumerate(vals)], pa.string())
        elif vals.ndim > 1:
            arr = pa.FixedSizeListArray.from_arrays(pa.array(vals.reshape(-1)), vals.shape[1])
        else:
            m = mask if (mask is not None and mask.ndim == 1 and mask.any()) else None
            arr = pa.array(vals, mask=m)
        cols[c] = arr
    return pa.table(cols)
