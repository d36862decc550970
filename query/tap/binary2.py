"""A vectorised VOTable BINARY2 writer for Arrow tables (the default TAP result format).

astropy's writer builds per-field objects and encodes row by row (~3.5 ms for a 35-row,
8-column cone, most of it before the first row); this one writes the FIELD header as text and
the BINARY2 stream with numpy scatters (null flags, big-endian values, length-prefixed
strings and variable arrays), then base64. Types come from :func:`.votable.votable_type`,
so what TAP_SCHEMA declares is what is written. The document is the same as astropy's
(RESOURCE type=results, INFO QUERY_STATUS, FIELDs with unit/ucd/description/arraysize).
"""

from __future__ import annotations

import base64
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_BE = {"short": ">i2", "int": ">i4", "long": ">i8", "float": ">f4", "double": ">f8", "unsignedByte": "u1",
       "boolean": "S1"}


def _fixed_bytes(col: pa.ChunkedArray, datatype: str, size: int | None) -> np.ndarray:
    """(rows, width) uint8 matrix of a fixed-width column's big-endian values (nulls as 0 / NaN)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if size:
        flat = arr.values.slice(arr.offset * size, n * size)   # includes the slots of null arrays
        vals = _values(flat, datatype).reshape(n, size)
    else:
        vals = _values(arr, datatype).reshape(n, 1)
    width = vals.dtype.itemsize * (size or 1)
    return np.ascontiguousarray(vals).view(np.uint8).reshape(n, width)


def _values(arr: pa.Array, datatype: str) -> np.ndarray:
    if datatype == "boolean":
        b = pc.fill_null(arr, False).to_numpy(zero_copy_only=False)
        out = np.where(b, b"T", b"F").astype("S1")
        if arr.null_count:
            out[arr.is_null().to_numpy(zero_copy_only=False)] = b"?"
        return out
    dt = np.dtype(_BE[datatype])
    if arr.null_count:
        fill = np.nan if dt.kind == "f" else 0
        arr = pc.fill_null(arr, pa.scalar(fill, arr.type))
    return arr.to_numpy(zero_copy_only=False).astype(dt, copy=False)


def _var_bytes(col: pa.ChunkedArray, datatype: str) -> tuple[np.ndarray, np.ndarray]:
    """(per-row byte lengths incl. the 4-byte count, concatenated bytes) of a variable-length column."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
        data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else \
            np.zeros(0, np.uint8)
        counts = np.diff(offsets).astype(np.int64)   # a null's bytes (normally none) are flagged null anyway
        body = data[offsets[0]:offsets[-1]] if len(arr) else np.zeros(0, np.uint8)
        elem = 1
    else:
        lens = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = pc.list_flatten(arr)
        body = _values(flat, datatype).view(np.uint8).reshape(-1)
        counts, elem = lens, np.dtype(_BE[datatype]).itemsize
    prefix = counts.astype(">i4").view(np.uint8).reshape(-1, 4)
    nbytes = counts * elem
    # interleave: [count][bytes] per row
    total = 4 + nbytes
    starts = _starts(total)
    out = np.empty(int(total.sum()), np.uint8)
    out[(starts[:, None] + np.arange(4)).reshape(-1)] = prefix.reshape(-1)
    body_pos = np.repeat(starts + 4 - _starts(nbytes), nbytes) + np.arange(nbytes.sum())
    out[body_pos] = body
    return total, out


def _starts(lengths: np.ndarray) -> np.ndarray:
    """Exclusive prefix sums: where each of consecutive pieces of ``lengths`` starts."""
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.cumsum(lengths) - lengths


def stream(table: pa.Table, types: list[tuple[str, str | None]]) -> bytes:
    """The BINARY2 byte stream of ``table`` (``types``: (datatype, arraysize) per column)."""
    n, ncol = table.num_rows, table.num_columns
    nflag = (ncol + 7) // 8
    flags = np.zeros((n, nflag), np.uint8)
    pieces = []   # (kind, payload)
    for j, (col, (dt, size)) in enumerate(zip(table.columns, types)):
        if col.null_count:
            isnull = col.is_null().to_numpy(zero_copy_only=False)
            flags[isnull, j // 8] |= np.uint8(0x80 >> (j % 8))
        if size == "*":
            pieces.append(("var", _var_bytes(col, dt)))
        else:
            pieces.append(("fixed", _fixed_bytes(col, dt, int(size) if size else None)))
    widths = np.full(n, nflag, np.int64)
    for kind, p in pieces:
        widths += p.shape[1] if kind == "fixed" else p[0]
    row_start = _starts(widths)
    out = np.empty(int(widths.sum()), np.uint8)
    out[(row_start[:, None] + np.arange(nflag)).reshape(-1)] = flags.reshape(-1)
    pos = row_start + nflag
    for kind, p in pieces:
        if kind == "fixed":
            w = p.shape[1]
            out[(pos[:, None] + np.arange(w)).reshape(-1)] = p.reshape(-1)
            pos = pos + w
        else:
            lens, data = p
            within = np.arange(lens.sum()) - np.repeat(_starts(lens), lens)
            out[np.repeat(pos, lens) + within] = data
            pos = pos + lens
    return out.tobytes()


def document(table: pa.Table, fields: list[dict], overflow: bool) -> bytes:
    """A TAP result VOTable 1.4 with a BINARY2 stream. ``fields``: per column, dicts with name,
    datatype, arraysize, xtype, unit, ucd, description."""
    head = ['<?xml version="1.0" encoding="utf-8"?>\n<VOTABLE version="1.4" '
            'xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n <RESOURCE type="results">\n'
            '  <INFO name="QUERY_STATUS" value="OK"/>\n  <TABLE name="result">\n']
    for f in fields:
        attrs = [f"name={quoteattr(f['name'])}", f"ID={quoteattr(f['id'])}", f'datatype="{f["datatype"]}"']
        for key in ("arraysize", "xtype", "unit", "ucd"):
            if f.get(key):
                attrs.append(f"{key}={quoteattr(str(f[key]))}")
        desc = f"<DESCRIPTION>{escape(f['description'])}</DESCRIPTION>" if f.get("description") else ""
        head.append(f"   <FIELD {' '.join(attrs)}>{desc}</FIELD>\n" if desc else f"   <FIELD {' '.join(attrs)}/>\n")
    data = stream(table, [(f["datatype"], f.get("arraysize")) for f in fields])
    body = base64.encodebytes(data) if data else b""
    tail = "  </TABLE>\n" + ('  <INFO name="QUERY_STATUS" value="OVERFLOW"/>\n' if overflow else "") + \
        " </RESOURCE>\n</VOTABLE>\n"
    return ("".join(head) + '   <DATA><BINARY2><STREAM encoding="base64">\n').encode() + body + \
        b"</STREAM></BINARY2></DATA>\n" + tail.encode()
