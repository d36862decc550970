"""A fast reader of FITS binary tables of fixed-width columns (Tractor catalogs, sweeps).

Headers are parsed directly (80-character cards in 2880-byte blocks); a chunk of rows is
read with one ``read`` and each column is gathered from the row-major bytes and byte-swapped
to native order with numpy (several times faster than a per-field structured ``astype``).
Variable-length (P/Q), bit (X) and complex columns are refused. A gzip-compressed file
(``.fits.gz``, recognised by its magic bytes) is read as a stream by the same code, and to
its end, so that a truncated or corrupt stream is an error (its CRC and length are checked),
never a partial table. Tile-compressed tables (``fpack -table``: ``ZTABLE = T``) are refused
with that reason; tile-compressed images in a ``.fits.fz`` file are passed over as images.
Every read problem is a :class:`FitsLayoutError` with a one-line message naming the file.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from dataclasses import dataclass

import numpy as np

BLOCK = 2880
_WIDTH = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "E": 4, "D": 8, "A": 1}
_KIND = {"B": "u1", "I": "i2", "J": "i4", "K": "i8", "E": "f4", "D": "f8"}
_GZIP_MAGIC = b"\x1f\x8b"


class FitsLayoutError(ValueError):
    """The file is not a FITS binary table this reader supports (message names the file)."""


@dataclass
class Column:
    name: str          # as in the file (TTYPE)
    letter: str        # TFORM letter
    repeat: int        # TFORM repeat count (string width for A)
    offset: int        # byte offset in a row
    shape: tuple       # element shape, () for scalars and strings
    tzero: float = 0.0


@dataclass
class Layout:
    path: str
    header: dict       # the table HDU's cards (uppercase keys, parsed values)
    data_start: int
    nrows: int
    rowlen: int
    columns: list
    gzip: bool = False  # data_start and rows are positions in the decompressed stream

    @property
    def data_bytes(self) -> int:
        return self.nrows * self.rowlen


def _value(s: str):
    s = s.split(" /")[0].strip() if not s.lstrip().startswith("'") else s.strip()
    if s.startswith("'"):
        end = s.find("'", 1)
        while end != -1 and end + 1 < len(s) and s[end + 1] == "'":
            end = s.find("'", end + 2)
        return s[1:end].replace("''", "'").rstrip() if end != -1 else s[1:].rstrip()
    if s in ("T", "F"):
        return s == "T"
    try:
        return int(s)
    except ValueError:
        try:
            return float(s.replace("D", "E"))
        except ValueError:
            return s


def _read_header(fh, path: str) -> tuple[dict, int] | None:
    """Cards of the header at the file position; returns (cards, bytes consumed), or None if
    the file ends where the header would start."""
    cards: dict = {}
    used = 0
    while True:
        block = fh.read(BLOCK)
        if not block and not used:
            return None
        if len(block) < BLOCK:
            raise FitsLayoutError(f"{path}: truncated or corrupt FITS file (a header without its END card)")
        used += BLOCK
        text = block.decode("ascii", "replace")
        for i in range(0, BLOCK, 80):
            card = text[i:i + 80]
            key = card[:8].strip()
            if key == "END":
                return cards, used
            if card[8:10] == "= " and key:
                cards[key] = _value(card[10:])


def _data_size(h: dict) -> int:
    naxis = int(h.get("NAXIS", 0))
    if naxis == 0:
        return 0
    n = 1
    for i in range(1, naxis + 1):
        n *= int(h.get(f"NAXIS{i}", 0))
    n = abs(int(h.get("BITPIX", 8))) // 8 * int(h.get("GCOUNT", 1)) * (n + int(h.get("PCOUNT", 0)))
    return (n + BLOCK - 1) // BLOCK * BLOCK


@contextlib.contextmanager
def _reading(path: str, where: str):
    """Errors of reading a (possibly gzip-compressed) FITS file as one-line
    :class:`FitsLayoutError` messages naming the file; ``where``: where a truncated stream
    ends ("inside the table")."""
    try:
        yield
    except FitsLayoutError:
        raise
    except EOFError:
        raise FitsLayoutError(f"{path}: truncated gzip stream (file ends {where})") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise FitsLayoutError(f"{path}: corrupt gzip stream ({_first_line(exc)})") from None
    except OSError as exc:
        raise FitsLayoutError(f"{path}: cannot read ({exc.strerror or _first_line(exc)})") from None


def _open(path: str, gz: bool):
    return gzip.open(path, "rb") if gz else open(path, "rb")


def layout(path: str) -> Layout:
    """Header and column layout of the first binary table of a FITS file (plain or gzip)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FitsLayoutError(f"{path}: no such file")
    with _reading(path, "inside the header"):
        with open(path, "rb") as fh:
            gz = fh.read(2) == _GZIP_MAGIC
        with _open(path, gz) as fh:
            try:
                lay = _find_table(fh, path)
            except FitsLayoutError:
                raise
            except (ValueError, TypeError) as exc:   # e.g. a card that should be a number is not
                raise FitsLayoutError(f"{path}: malformed FITS header ({_first_line(exc)})") from None
    lay.gzip = gz
    return lay


def _find_table(fh, path: str) -> Layout:
    if fh.read(9) != b"SIMPLE  =":
        raise FitsLayoutError(f"{path}: not a FITS file (no SIMPLE card at the start)")
    pos, first = 0, True
    while True:
        fh.seek(pos)
        got = _read_header(fh, path)
        if got is None:
            raise FitsLayoutError(f"{path}: FITS file without a binary table extension")
        h, used = got
        if not first and h.get("XTENSION") == "BINTABLE" and not h.get("ZIMAGE"):
            if h.get("ZTABLE"):
                raise FitsLayoutError(f"{path}: tile-compressed (fpack) binary tables are not "
                                      f"supported; decompress it with funpack first")
            return _columns(path, h, pos + used)
        first = False
        pos += used + _data_size(h)


def _first_line(exc: Exception) -> str:
    s = str(exc).strip()
    return s.splitlines()[0] if s else type(exc).__name__


def _columns(path: str, h: dict, data_start: int) -> Layout:
    cols, off = [], 0
    try:
        for i in range(1, int(h.get("TFIELDS", 0)) + 1):
            tform = str(h[f"TFORM{i}"]).strip()
            rep = "".join(ch for ch in tform[:len(tform) - len(tform.lstrip("0123456789"))])
            letter = tform[len(rep):len(rep) + 1]
            n = int(rep) if rep else 1
            if letter not in _WIDTH:
                raise FitsLayoutError(f"{path}: column {h.get(f'TTYPE{i}')} has unsupported TFORM {tform}")
            shape = (n,) if letter != "A" and (n > 1 or f"TDIM{i}" in h) else ()
            cols.append(Column(str(h.get(f"TTYPE{i}", f"COL{i}")).strip(), letter, n, off, shape,
                               float(h.get(f"TZERO{i}", 0) or 0)))
            off += _WIDTH[letter] * n
        rowlen, nrows = int(h["NAXIS1"]), int(h["NAXIS2"])
    except KeyError as exc:
        raise FitsLayoutError(f"{path}: table header lacks {exc.args[0]}") from None
    if nrows < 0 or rowlen < 0:
        raise FitsLayoutError(f"{path}: malformed FITS header (NAXIS1 = {rowlen}, NAXIS2 = {nrows})")
    if off != rowlen:
        raise FitsLayoutError(f"{path}: column widths ({off} bytes) differ from NAXIS1 ({rowlen})")
    return Layout(path, h, data_start, nrows, rowlen, cols)


def check_complete(lay: Layout) -> None:
    """Raise if the file is shorter than its table (truncated). The length of a gzip stream is
    known only once it is read (:func:`iter_raw` checks it)."""
    if lay.gzip:
        return
    need = lay.data_start + lay.data_bytes + int(lay.header.get("PCOUNT", 0) or 0)
    size = os.path.getsize(lay.path)
    if size < need:
        raise FitsLayoutError(f"{lay.path}: truncated FITS file ({size} bytes, its table needs {need})")


def raw_rows(lay: Layout, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) as the table's raw bytes, uint8[n, rowlen] (big-endian fields)."""
    with _reading(lay.path, "inside the table"), _open(lay.path, lay.gzip) as fh:
        fh.seek(lay.data_start + start * lay.rowlen)
        return _rows(fh, lay, max(0, stop - start))


def _rows(fh, lay: Layout, n: int) -> np.ndarray:
    buf = fh.read(n * lay.rowlen)
    if len(buf) != n * lay.rowlen:
        raise FitsLayoutError(f"{lay.path}: truncated FITS file (table rows end early)")
    return np.frombuffer(buf, dtype=np.uint8).reshape(n, lay.rowlen)


def iter_raw(lay: Layout, chunk_rows: int, hasher=None):
    """Yield all rows as raw bytes uint8[n, rowlen], ``chunk_rows`` at a time, read in order
    from one open file. ``hasher`` (anything with ``update(bytes)``) is fed the bytes before the table, then the rows.
    A gzip stream is read to its end before its last chunk is yielded, so a truncated or
    corrupt stream raises (CRC and length checked) even where the rows decompress."""
    with _reading(lay.path, "inside the table"), _open(lay.path, lay.gzip) as fh:
        if hasher is not None:
            head = fh.read(lay.data_start)
            if len(head) != lay.data_start:
                raise FitsLayoutError(f"{lay.path}: truncated FITS file (header ends early)")
            hasher.update(head)
        else:
            fh.seek(lay.data_start)
        for start in range(0, max(lay.nrows, 1), chunk_rows):
            raw = _rows(fh, lay, min(chunk_rows, lay.nrows - start))
            if hasher is not None:
                hasher.update(raw)
            if lay.gzip and start + chunk_rows >= lay.nrows:
                with _reading(lay.path, "after the table, before the end of the gzip stream"):
                    while fh.read(1 << 22):
                        pass
            if len(raw):
                yield raw


def read_rows(lay: Layout, start: int, stop: int, columns=None) -> dict[str, np.ndarray]:
    """Rows [start, stop) as native numpy arrays by (lowercase) column name.

    Logical columns become bool, strings bytes (``S<n>``, padding kept); a byte column with
    TZERO = -128 becomes int8."""
    return columns_from_raw(lay, raw_rows(lay, start, stop), columns)


def columns_from_raw(lay: Layout, raw: np.ndarray, columns=None) -> dict[str, np.ndarray]:
    """Native column arrays (by lowercase name) from raw rows uint8[n, rowlen]."""
    n = raw.shape[0]
    res = {}
    for c in lay.columns:
        name = c.name.lower()
        if columns is not None and name not in columns:
            continue
        w = _WIDTH[c.letter] * c.repeat
        if c.letter not in "ALB":
            # strided big-endian view: one pass swaps the bytes and packs the column
            k = _KIND[c.letter]
            v = raw[:, c.offset:c.offset + w].view(">" + k).astype(k).reshape((n, *c.shape))
            if c.tzero and c.letter in "IJK":
                v = v.astype(np.int64) + int(c.tzero)
            res[name] = v
            continue
        blk = np.ascontiguousarray(raw[:, c.offset:c.offset + w])
        if c.letter == "A":
            res[name] = blk.view(f"S{c.repeat}").reshape(n)
        elif c.letter == "L":
            res[name] = (blk == ord("T")).reshape((n, *c.shape))
        elif c.letter == "B":
            v = blk.reshape((n, *c.shape))
            res[name] = (v ^ 0x80).view(np.int8) if c.tzero == -128 else v
    return res

