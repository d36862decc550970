"""Stream a Parquet ``_metadata`` file from the leaf files' footers, one footer at a time.

pyarrow's ``FileMetaData.append_row_groups`` keeps every row group of the catalog in memory
(~1 KiB per column chunk: ~250 MiB for 1,000 row groups of 241 leaf columns), so memory
would grow with the catalog. Here each leaf footer is read, given its ``file_path`` and
serialised by pyarrow on its own; its row groups (Thrift compact-protocol bytes) are
appended to a spool file, and the final file is the first footer's fields with ``num_rows``
and the ``row_groups`` list replaced. Memory holds one leaf footer (a leaf has at most
``threshold / row_group_rows`` row groups), never the catalog's.

Parquet footer layout: ``PAR1 <FileMetaData (Thrift compact)> <u32 length> PAR1``;
``FileMetaData`` fields 3 = num_rows (i64), 4 = row_groups (list<RowGroup>).
"""

from __future__ import annotations

import os
import shutil
import struct

import pyarrow as pa
import pyarrow.parquet as pq

_MAGIC = b"PAR1"
# compact-protocol type ids
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, i
        shift += 7


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _zigzag64(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _skip(buf: bytes, i: int, t: int) -> int:
    """Index just past a value of compact type ``t`` starting at ``i``."""
    if t in (_TRUE, _FALSE):          # a struct field's bool lives in its header
        return i
    if t == _BYTE:
        return i + 1
    if t in (_I16, _I32, _I64):
        return _varint(buf, i)[1]
    if t == _DOUBLE:
        return i + 8
    if t == _BINARY:
        n, i = _varint(buf, i)
        return i + n
    if t in (_LIST, _SET):
        n, et, i = _list_header(buf, i)
        if et in (_TRUE, _FALSE):     # bools in a collection are one byte each
            return i + n
        for _ in range(n):
            i = _skip(buf, i, et)
        return i
    if t == _MAP:
        n, i = _varint(buf, i)
        if n == 0:
            return i
        kt, vt = buf[i] >> 4, buf[i] & 0x0F
        i += 1
        for _ in range(n):
            i = i + 1 if kt in (_TRUE, _FALSE) else _skip(buf, i, kt)
            i = i + 1 if vt in (_TRUE, _FALSE) else _skip(buf, i, vt)
        return i
    if t == _STRUCT:
        fid = 0
        while True:
            got = _field_header(buf, i, fid)
            if got is None:
                return i + 1
            fid, ft, i = got
            i = _skip(buf, i, ft)
    raise ValueError(f"unknown Thrift compact type {t}")


def _list_header(buf: bytes, i: int) -> tuple[int, int, int]:
    b = buf[i]
    i += 1
    n, et = b >> 4, b & 0x0F
    if n == 15:
        n, i = _varint(buf, i)
    return n, et, i


def _field_header(buf: bytes, i: int, last: int) -> tuple[int, int, int] | None:
    """(field id, type, value start) of the field header at ``i``, or None at STOP."""
    b = buf[i]
    i += 1
    if b == _STOP:
        return None
    t, d = b & 0x0F, b >> 4
    if d:
        return last + d, t, i
    z, i = _varint(buf, i)
    return (z >> 1) ^ -(z & 1), t, i


def _top_fields(buf: bytes, stop_at: int | None = None) -> list[tuple[int, int, int, int, int]]:
    """(field id, type, header start, value start, value end) of a struct at 0; with
    ``stop_at``, stops at that field (its value end is left as -1, nothing of it parsed)."""
    out, i, fid = [], 0, 0
    while True:
        h = i
        got = _field_header(buf, i, fid)
        if got is None:
            return out
        fid, t, vs = got
        if fid == stop_at:
            out.append((fid, t, h, vs, -1))
            return out
        i = _skip(buf, vs, t)
        out.append((fid, t, h, vs, i))


def _serialize(md: pq.FileMetaData) -> bytes:
    """The Thrift bytes of a FileMetaData (pyarrow writes PAR1 <thrift> <len> PAR1)."""
    sink = pa.BufferOutputStream()
    md.write_metadata_file(sink)
    raw = sink.getvalue().to_pybytes()
    n = struct.unpack("<I", raw[-8:-4])[0]
    return raw[-8 - n:-8]


def _enc_binary(b: bytes) -> bytes:
    return _enc_varint(len(b)) + b


def _list_head(n: int, elem_type: int) -> bytes:
    return bytes([(n << 4) | elem_type]) if n < 15 else bytes([0xF0 | elem_type]) + _enc_varint(n)


def expected_tail(md: pq.FileMetaData) -> bytes:
    """The Thrift bytes pyarrow writes after ``row_groups`` for ``md``, built from its values:
    key/value metadata (field 5), created_by (6), one TypeDefinedOrder per column (7), STOP.
    Only a guess to test with ``endswith``: a footer that does not end with it is parsed."""
    kv = md.metadata or {}
    # pyarrow writes the Arrow schema's metadata in its order, then ARROW:schema; the dict that
    # FileMetaData.metadata returns is in another order
    schema_keys = [k for k in (md.schema.to_arrow_schema().metadata or {}) if k in kv]
    keys = schema_keys + [k for k in kv if k not in schema_keys]
    out = [b"\x19", _list_head(len(kv), _STRUCT)]
    for k, v in ((k, kv[k]) for k in keys):
        out.append(b"\x18" + _enc_binary(k) + (b"\x18" + _enc_binary(v) if v is not None else b"") + b"\x00")
    out.append(b"\x18" + _enc_binary(md.created_by.encode()))
    out += [b"\x19", _list_head(md.num_columns, _STRUCT), b"\x1c\x00\x00" * md.num_columns, b"\x00"]
    return b"".join(out)


class _Footers:
    """Splits serialised FileMetaData into (num_rows, row group count, row group bytes).

    Parsing every column chunk in Python would be slow, so only the fields before
    ``row_groups`` are parsed; the fields after it (key/value metadata, created_by, column
    orders: the same in every leaf a build writes) are learnt from a full parse of one footer
    and recognised as the common tail of the others (a full parse if they differ)."""

    def __init__(self) -> None:
        self.tail: bytes | None = None

    def split(self, thrift: bytes) -> tuple[int, int, bytes]:
        head = _top_fields(thrift, stop_at=4)
        nrows = 0
        for fid, t, h, vs, ve in head:
            if fid == 3:
                z, _ = _varint(thrift, vs)
                nrows = (z >> 1) ^ -(z & 1)
        fid, t, h, vs, _ = head[-1]
        if fid != 4:
            raise ValueError("Parquet footer without row_groups")
        n, et, i = _list_header(thrift, vs)
        if self.tail is not None and thrift.endswith(self.tail):
            return nrows, n, thrift[i:len(thrift) - len(self.tail)]
        full = _top_fields(thrift)
        end = next(ve for f, _, _, _, ve in full if f == 4)
        self.tail = thrift[end:]
        return nrows, n, thrift[i:end]


def write_metadata_streaming(files: list[tuple[str, str]], dest: str, schema: pa.Schema) -> int:
    """Write ``dest`` (a Parquet ``_metadata`` file) from ``files`` = [(leaf path, relative
    path to record)], reading one footer at a time. Returns the number of row groups."""
    if not files:
        pq.write_metadata(schema, dest)
        return 0
    spool = dest + ".rowgroups"
    footers = _Footers()
    # the common tail, built from the first footer's values; checked on every footer, and
    # learnt from a full parse of the smallest one only if the first does not end with it
    first = pq.read_metadata(files[0][0])
    tail = expected_tail(first)
    if _serialize(first).endswith(tail):
        footers.tail = tail
    else:
        small = min(files, key=lambda f: os.path.getsize(f[0]))[0]
        footers.split(_serialize(pq.read_metadata(small)))
    head = None
    total_rg = total_rows = 0
    with open(spool, "wb") as sp:
        for path, rel in files:
            md = pq.read_metadata(path)
            md.set_file_path(rel)
            thrift = _serialize(md)
            del md
            rows, n, body = footers.split(thrift)
            if head is None:
                head = (thrift, footers.tail)
            sp.write(body)
            total_rg += n
            total_rows += rows
    thrift, tail = head
    with open(dest, "wb") as out:
        pieces = []
        for fid, t, h, vs, ve in _top_fields(thrift, stop_at=4):
            if fid == 3:
                pieces.append(thrift[h:vs] + _enc_varint(_zigzag64(total_rows)))
            elif fid == 4:
                pieces.append(thrift[h:vs] + bytes([(min(total_rg, 15) << 4) | _STRUCT])
                              + (_enc_varint(total_rg) if total_rg >= 15 else b""))
            else:
                pieces.append(thrift[h:ve])
        out.write(_MAGIC)
        out.write(b"".join(pieces))
        with open(spool, "rb") as sp:
            shutil.copyfileobj(sp, out, 1 << 20)
        out.write(tail)                       # fields after row_groups and the STOP byte
        size = out.tell() - len(_MAGIC)
        out.write(struct.pack("<I", size))
        out.write(_MAGIC)
    os.remove(spool)
    return total_rg
