"""A small deterministic FITS binary-table writer (no dates, no checksums), atomic.

Writes an empty primary HDU and one BINTABLE with upper-case TTYPEs, TFORMs from the data
model, TUNITs, and the given header cards. Same array in, same bytes out.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from legacylake.catalogs_schema.columns import DataModel

BLOCK = 2880


@functools.lru_cache(maxsize=4096, typed=True)  # typed: True and 1 format differently
def _card(key: str, value, comment: str = "") -> str:
    if isinstance(value, bool):
        v = f"{'T' if value else 'F':>20}"
    elif isinstance(value, (int, np.integer)):
        v = f"{int(value):>20d}"
    elif isinstance(value, (float, np.floating)):
        v = f"{float(value):>20.12G}"
    else:
        s = str(value).replace("'", "''")
        v = f"'{s:<8}'"
    card = f"{key.upper():<8}= {v}"
    if comment:
        card += f" / {comment}"
    return f"{card[:80]:<80}"


def _header(cards: list[str]) -> bytes:
    text = "".join(cards) + f"{'END':<80}"
    pad = (-len(text)) % BLOCK
    return (text + " " * pad).encode("ascii")


def fits_dtype(dm: DataModel, names, widths: dict | None = None) -> np.dtype:
    """Big-endian on-disk dtype for the columns ``names`` (lowercase) of ``dm``; booleans as uint8.
    ``widths``: string columns written wider than the model (e.g. a custom brick's name)."""
    fields = []
    for n in names:
        c = dm[n]
        if c.is_string:
            base = np.dtype(f"S{(widths or {}).get(n, c.width)}")
        elif c.numpy_dtype.kind == "b":
            base = np.dtype("u1")
        else:
            base = c.numpy_dtype.newbyteorder(">")
        fields.append((n.upper(), base, c.shape) if c.shape else (n.upper(), base))
    return np.dtype(fields)


def to_fits_records(arr: np.ndarray, dm: DataModel, widths: dict | None = None) -> np.ndarray:
    """The structured array converted to the on-disk layout (big-endian, 'T'/'F' logicals)."""
    dt = fits_dtype(dm, arr.dtype.names, widths)
    out = np.empty(len(arr), dtype=dt)
    for n in arr.dtype.names:
        c = dm[n]
        if c.is_string:
            out[n.upper()] = arr[n]  # numpy casts str to ASCII bytes
        elif c.numpy_dtype.kind == "b":
            out[n.upper()] = np.where(arr[n], ord("T"), ord("F"))
        else:
            out[n.upper()] = arr[n]
    return out


_COLUMN_CARDS: dict = {}


def _column_cards(dm: DataModel, names: tuple[str, ...], widths: tuple = ()) -> list[str]:
    """TTYPE/TFORM/TUNIT cards of the columns (cached per data model, column list and widths)."""
    key = (dm.name, names, widths)
    if key not in _COLUMN_CARDS:
        by_name = {c.name: c for c in dm.columns}
        wide = dict(widths)
        cards = []
        for i, n in enumerate(names, 1):
            c = by_name[n.lower()]
            cards.append(_card(f"TTYPE{i}", n.upper()))
            cards.append(_card(f"TFORM{i}", f"{wide[n.lower()]}A" if n.lower() in wide else c.tform))
            if c.unit:
                cards.append(_card(f"TUNIT{i}", c.unit))
        _COLUMN_CARDS[key] = cards
    return _COLUMN_CARDS[key]


def _headers(dtype: np.dtype, nrows: int, dm: DataModel, cards, widths: tuple = ()) -> bytes:
    """Primary header and BINTABLE header of ``nrows`` records of ``dtype`` (upper-case names)."""
    head = [_card("SIMPLE", True, "conforms to FITS standard"), _card("BITPIX", 8), _card("NAXIS", 0),
            _card("EXTEND", True)]
    tcards = [_card("XTENSION", "BINTABLE", "binary table extension"), _card("BITPIX", 8),
              _card("NAXIS", 2), _card("NAXIS1", dtype.itemsize, "width of table in bytes"),
              _card("NAXIS2", nrows, "number of rows in table"), _card("PCOUNT", 0),
              _card("GCOUNT", 1), _card("TFIELDS", len(dtype.names))]
    tcards += _column_cards(dm, tuple(dtype.names), widths)
    for card in cards:
        tcards.append(_card(*card))
    return _header(head) + _header(tcards)


def write_blocks(path: str | os.PathLike, dtype: np.dtype, nrows: int, blocks, dm: DataModel,
                 cards: list[tuple] = (), widths: dict | None = None) -> int:
    """Write a FITS binary table whose ``nrows`` on-disk records (``dtype``, :func:`fits_dtype`)
    come as successive bytes-like ``blocks``, atomically; returns bytes written."""
    head = _headers(dtype, nrows, dm, cards, tuple(sorted((widths or {}).items())))
    nbytes = nrows * dtype.itemsize
    pad = b"\0" * ((-nbytes) % BLOCK)
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    done = 0
    try:
        with open(tmp, "wb") as fh:
            fh.write(head)
            for blk in blocks:
                done += fh.write(blk)
            fh.write(pad)
        if done != nbytes:
            raise ValueError(f"{path}: wrote {done} bytes of records, expected {nbytes}")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return len(head) + nbytes + len(pad)


def write_table(path: str | os.PathLike, arr: np.ndarray, dm: DataModel, cards: list[tuple] = (),
                records: bool = False, widths: dict | None = None) -> int:
    """Write ``arr`` (lowercase names of ``dm``) as a FITS binary table, atomically; returns bytes.

    With ``records`` the array is already in the on-disk layout of :func:`fits_dtype`;
    ``widths``: string columns wider than the model ({name: characters})."""
    rec = np.ascontiguousarray(arr if records else to_fits_records(arr, dm, widths))
    return write_blocks(path, rec.dtype, len(rec), [memoryview(rec.view(np.uint8))], dm, cards, widths)
