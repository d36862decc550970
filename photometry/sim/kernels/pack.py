"""Scalar catalog columns packed into the big-endian FITS record buffer in one numba call:
the kernel, its numpy twin, and the per-release plan of which column goes where.

Float columns arrive as rows of one float64 matrix ``F`` (n_slots, n_rows), stored as
float32 (code 4) or float64 (code 8); integer and logical columns as rows of one int64
matrix ``I``, stored as logical 'T'/'F' (code 0: non-zero is 'T'), uint8 (1), int16 (2),
int32 (4) or int64 (8). A column of shape (k,) takes k slots. Strings are not packed here.
Conversions wrap/round exactly as numpy's ``astype`` does.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from legacylake.photometry.sim.kernels.common import put_f4, put_f8, put_i2, put_i4, put_i8


@njit(cache=True, inline="always")
def _put_int(buf, i, off, v, code):
    if code == 0:
        buf[i, off] = np.uint8(84) if v != 0 else np.uint8(70)
    elif code == 1:
        buf[i, off] = np.uint8(v & 255)
    elif code == 2:
        put_i2(buf, i, off, v)
    elif code == 4:
        put_i4(buf, i, off, v)
    else:
        put_i8(buf, i, off, v)


@njit(cache=True)
def pack_rows(buf, r0, i0, i1, F, foffs, fcodes, I, ioffs, icodes):
    """Columns i0..i1 of ``F`` / ``I`` into rows r0.. of ``buf``, slot by slot."""
    for s in range(foffs.shape[0]):
        off = foffs[s]
        if fcodes[s] == 4:
            for i in range(i0, i1):
                put_f4(buf, r0 + i - i0, off, F[s, i])
        else:
            for i in range(i0, i1):
                put_f8(buf, r0 + i - i0, off, F[s, i])
    for s in range(ioffs.shape[0]):
        off, code = ioffs[s], icodes[s]
        for i in range(i0, i1):
            _put_int(buf, r0 + i - i0, off, I[s, i], code)


@njit(cache=True)
def pack_kernel(buf, F, foffs, fcodes, I, ioffs, icodes):
    """Write every row of ``F`` / ``I`` (slot s at byte offset offs[s], code codes[s]) into
    the record buffer ``buf`` (uint8[n_rows, itemsize]). Blocks of 64 records stay in cache
    while every slot is written."""
    n = buf.shape[0]
    for i0 in range(0, n, 64):
        i1 = min(i0 + 64, n)
        pack_rows(buf, i0, i0, i1, F, foffs, fcodes, I, ioffs, icodes)


@njit(cache=True)
def bytes_rows(buf, r0, i0, i1, S, soffs, sstart):
    """Byte (string) columns: S[i, sstart[c]:sstart[c + 1]] (uint8 matrix, one row per record)
    into row r0 + i - i0 of ``buf`` at byte offset soffs[c], for rows i0..i1."""
    for i in range(i0, i1):
        r = r0 + i - i0
        for c in range(soffs.shape[0]):
            o = soffs[c] - sstart[c]
            for q in range(sstart[c], sstart[c + 1]):
                buf[r, o + q] = S[i, q]


def string_matrix(dtype: np.dtype, names, cols: dict, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S, soffs, sstart) of :func:`bytes_rows` for the string fields ``names`` of the record
    ``dtype``, from ``cols`` (lower-case names -> bytes arrays, cast to the field width as a
    structured assignment would: NUL-padded or cut)."""
    widths = [dtype[nm].itemsize for nm in names]
    sstart = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    S = np.empty((n, int(sstart[-1])), np.uint8)
    for c, nm in enumerate(names):
        v = np.ascontiguousarray(np.asarray(cols[nm.lower()]).astype(f"S{widths[c]}", copy=False))
        S[:, sstart[c]:sstart[c + 1]] = v.view(np.uint8).reshape(n, widths[c])
    return S, np.array([dtype.fields[nm][1] for nm in names], np.int64), sstart


def pack_np(rec: np.ndarray, plan: "PackPlan", F: np.ndarray, I: np.ndarray) -> None:
    """numpy twin of :func:`pack_kernel`: the same bytes through structured-array assignment."""
    for s, (name, j) in enumerate(plan.fslots):
        col = rec[name] if j < 0 else rec[name][:, j]
        col[...] = F[s]
    for s, (name, j) in enumerate(plan.islots):
        v = I[s]
        if plan.icodes[s] == 0:
            v = np.where(v != 0, np.uint8(84), np.uint8(70))
        col = rec[name] if j < 0 else rec[name][:, j]
        col[...] = v.astype(rec.dtype[name].base.newbyteorder("="))


class PackPlan:
    """Slots of the scalar columns of a FITS record dtype.

    ``columns``: (name, kind) with kind "f" (float), "i" (integer), "b" (logical); names are the
    record's (upper-case) field names. ``fslots``/``islots``: (field, element or -1) per slot.
    """

    def __init__(self, dtype: np.dtype, columns):
        self.fslots, self.islots = [], []
        foffs, fcodes, ioffs, icodes = [], [], [], []
        self.frow, self.irow = {}, {}  # field -> first slot
        for name, kind in columns:
            base, off = dtype.fields[name][0], dtype.fields[name][1]
            shape = base.shape
            el = base.base
            k = int(np.prod(shape)) if shape else 1
            for j in range(k):
                o = off + j * el.itemsize
                if kind == "f":
                    self.frow.setdefault(name, len(self.fslots))
                    self.fslots.append((name, j if shape else -1))
                    foffs.append(o)
                    fcodes.append(el.itemsize)
                else:
                    self.irow.setdefault(name, len(self.islots))
                    self.islots.append((name, j if shape else -1))
                    ioffs.append(o)
                    icodes.append(0 if kind == "b" else el.itemsize)
        self.foffs, self.fcodes = np.array(foffs, np.int64), np.array(fcodes, np.int64)
        self.ioffs, self.icodes = np.array(ioffs, np.int64), np.array(icodes, np.int64)

    def matrices(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Empty (F, I) to fill."""
        return np.empty((len(self.fslots), n)), np.empty((len(self.islots), n), np.int64)

    def fill(self, F: np.ndarray, I: np.ndarray, cols: dict) -> None:
        """Copy ``cols`` (lower-case names -> (n,) or (n, k) arrays) into the slots."""
        for name, s in self.frow.items():
            v = cols[name.lower()]
            if v.ndim == 2:
                F[s:s + v.shape[1]] = v.T
            else:
                F[s] = v
        for name, s in self.irow.items():
            v = cols[name.lower()]
            if v.ndim == 2:
                I[s:s + v.shape[1]] = v.T
            else:
                I[s] = v
