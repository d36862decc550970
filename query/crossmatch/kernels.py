"""Crossmatch kernels: candidate pairs between external rows and lake rows.

Positions are unit vectors (x, y, z). Each external row ``i`` comes with ``ncell`` ranges
``[lo[i, c], hi[i, c])`` of lake rows (the lake rows of the HEALPix cells around it, found
with a sorted search on ``_healpix_29``); a pair is kept when the squared chord distance is
``<= chord2`` (chord = 2 sin(radius / 2)), the criterion astropy's ``search_around_sky``
uses. Ranges of different cells never overlap, so every pair is seen once.

Each numba kernel (``@njit(cache=True)``) has a plain-numpy twin (suffix ``_np``) that the
tests compare it with.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def count_pairs(ex, ey, ez, lx, ly, lz, lo, hi, chord2):
    """Number of (external, lake) pairs within ``chord2`` per external row (int64 array)."""
    n = ex.shape[0]
    out = np.zeros(n, np.int64)
    for i in range(n):
        xi = ex[i]
        yi = ey[i]
        zi = ez[i]
        c = 0
        for k in range(lo.shape[1]):
            for j in range(lo[i, k], hi[i, k]):
                dx = lx[j] - xi
                dy = ly[j] - yi
                dz = lz[j] - zi
                if dx * dx + dy * dy + dz * dz <= chord2:
                    c += 1
        out[i] = c
    return out


@njit(cache=True)
def all_pairs(ex, ey, ez, lx, ly, lz, lo, hi, chord2, counts):
    """All pairs within ``chord2``: (external index, lake index, squared chord).

    ``counts`` is :func:`count_pairs`' result (sizes the output arrays exactly).
    """
    n = ex.shape[0]
    total = 0
    for i in range(n):
        total += counts[i]
    oi = np.empty(total, np.int64)
    oj = np.empty(total, np.int64)
    od = np.empty(total, np.float64)
    p = 0
    for i in range(n):
        if counts[i] == 0:
            continue
        xi = ex[i]
        yi = ey[i]
        zi = ez[i]
        for k in range(lo.shape[1]):
            for j in range(lo[i, k], hi[i, k]):
                dx = lx[j] - xi
                dy = ly[j] - yi
                dz = lz[j] - zi
                d2 = dx * dx + dy * dy + dz * dz
                if d2 <= chord2:
                    oi[p] = i
                    oj[p] = j
                    od[p] = d2
                    p += 1
    return oi, oj, od


@njit(cache=True)
def nearest(ex, ey, ez, lx, ly, lz, lo, hi, chord2):
    """Nearest lake row within ``chord2`` per external row: (index or -1, squared chord).

    Ties go to the lower lake index.
    """
    n = ex.shape[0]
    best = np.full(n, -1, np.int64)
    bestd = np.full(n, np.inf)
    for i in range(n):
        xi = ex[i]
        yi = ey[i]
        zi = ez[i]
        bj = -1
        bd = chord2
        for k in range(lo.shape[1]):
            for j in range(lo[i, k], hi[i, k]):
                dx = lx[j] - xi
                dy = ly[j] - yi
                dz = lz[j] - zi
                d2 = dx * dx + dy * dy + dz * dz
                if d2 < bd or (d2 == bd and (bj < 0 or j < bj)):
                    bd = d2
                    bj = j
        if bj >= 0:
            best[i] = bj
            bestd[i] = bd
    return best, bestd


@njit(cache=True)
def _gallop(a, key, start, left):
    """Insertion index of ``key`` in sorted ``a`` (side left or right), searching out from ``start``."""
    n = a.shape[0]
    if start > n:
        start = n
    if start < 0:
        start = 0
    # does the answer lie at or after start?
    if start == 0 or (a[start - 1] < key if left else a[start - 1] <= key):
        lo = start
        step = 1
        hi = start
        while hi < n and (a[hi] < key if left else a[hi] <= key):
            lo = hi + 1
            hi = start + step
            step *= 2
        if hi > n:
            hi = n
    else:
        hi = start - 1
        step = 1
        lo = hi
        while lo > 0 and not (a[lo - 1] < key if left else a[lo - 1] <= key):
            hi = lo - 1
            lo = start - 1 - step
            step *= 2
            if lo < 0:
                lo = 0
    while lo < hi:  # answer in [lo, hi]
        mid = (lo + hi) // 2
        if a[mid] < key if left else a[mid] <= key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def cell_ranges(cellk, cells):
    """Rows ``[lo, hi)`` of sorted ``cellk`` equal to each entry of ``cells`` (n, m); -1 gives (0, 0).

    Galloping search from the previous row's answer: fast when rows come in HEALPix order.
    """
    n, m = cells.shape
    lo = np.zeros((n, m), np.int64)
    hi = np.zeros((n, m), np.int64)
    for c in range(m):
        pl = 0
        ph = 0
        for i in range(n):
            key = cells[i, c]
            if key < 0:
                continue
            pl = _gallop(cellk, key, pl, True)
            ph = _gallop(cellk, key, max(ph, pl), False)
            lo[i, c] = pl
            hi[i, c] = ph
    return lo, hi


# ---------------------------------------------------------------- numpy twins


def cell_ranges_np(cellk, cells):
    """Numpy twin of :func:`cell_ranges`."""
    valid = cells >= 0
    lo = np.where(valid, np.searchsorted(cellk, cells, side="left"), 0).astype(np.int64)
    hi = np.where(valid, np.searchsorted(cellk, cells, side="right"), 0).astype(np.int64)
    return lo, hi


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (external index, lake index) named by the ranges, in row-major order."""
    lens = (hi - lo).ravel()
    rows = np.repeat(np.repeat(np.arange(lo.shape[0]), lo.shape[1]), lens)
    starts = np.repeat(lo.ravel(), lens)
    offs = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
    return rows, starts + offs


def all_pairs_np(ex, ey, ez, lx, ly, lz, lo, hi, chord2):
    """Numpy twin of :func:`all_pairs` (no ``counts`` argument)."""
    i, j = _expand(lo, hi)
    d2 = (lx[j] - ex[i]) ** 2 + (ly[j] - ey[i]) ** 2 + (lz[j] - ez[i]) ** 2
    keep = d2 <= chord2
    return i[keep], j[keep], d2[keep]


def nearest_np(ex, ey, ez, lx, ly, lz, lo, hi, chord2):
    """Numpy twin of :func:`nearest`."""
    i, j, d2 = all_pairs_np(ex, ey, ez, lx, ly, lz, lo, hi, chord2)
    best = np.full(ex.shape[0], -1, np.int64)
    bestd = np.full(ex.shape[0], np.inf)
    order = np.lexsort((j, d2, i))
    i, j, d2 = i[order], j[order], d2[order]
    first = np.ones(i.shape[0], bool)
    first[1:] = i[1:] != i[:-1]
    best[i[first]] = j[first]
    bestd[i[first]] = d2[first]
    return best, bestd


def radec_to_xyz(ra_deg: np.ndarray, dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors from RA, Dec in degrees."""
    ra = np.radians(np.asarray(ra_deg, np.float64))
    dec = np.radians(np.asarray(dec_deg, np.float64))
    cd = np.cos(dec)
    return cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)


def chord2_to_arcsec(d2: np.ndarray) -> np.ndarray:
    """Angular separation in arcsec from squared chord length (unit sphere)."""
    return np.degrees(2.0 * np.arcsin(np.minimum(np.sqrt(d2) / 2.0, 1.0))) * 3600.0


def arcsec_to_chord2(radius_arcsec: float) -> float:
    """Squared chord length on the unit sphere of an angle in arcsec."""
    return float((2.0 * np.sin(np.radians(radius_arcsec / 3600.0) / 2.0)) ** 2)
