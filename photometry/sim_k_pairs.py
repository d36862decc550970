"""All pairs of points closer than a radius (flat coordinates, e.g. arcsec): a numba kernel on a
grid of cells one radius wide, and its numpy twin. Pairs (i, j) with i < j and distance <= r,
sorted by (i, j)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def pairs_kernel(x, y, r):
    """(n_pairs, 2) int64 array of the pairs (i < j) at distance <= r, sorted by (i, j).

    Points are counting-sorted into cells (a stable order, no comparison sort) with their
    coordinates copied in cell order, and each point scans the 3 cell rows around it as 3
    contiguous runs of the sorted points."""
    n = x.shape[0]
    if n < 2:
        return np.zeros((0, 2), np.int64)
    x0, y0 = x.min(), y.min()
    cx = np.empty(n, np.int64)
    cy = np.empty(n, np.int64)
    ncx, ncy = 1, 1
    for i in range(n):
        a = int((x[i] - x0) / r)
        b = int((y[i] - y0) / r)
        cx[i], cy[i] = a, b
        ncx, ncy = max(ncx, a + 1), max(ncy, b + 1)
    start = np.zeros(ncx * ncy + 1, np.int64)
    for i in range(n):
        start[cy[i] * ncx + cx[i] + 1] += 1
    for c in range(ncx * ncy):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    idx = np.empty(n, np.int64)
    xs, ys = np.empty(n), np.empty(n)
    for i in range(n):
        c = cy[i] * ncx + cx[i]
        q = fill[c]
        idx[q], xs[q], ys[q] = i, x[i], y[i]
        fill[c] = q + 1
    r2 = r * r
    out = np.empty((max(16, n), 2), np.int64)
    m = 0
    for i in range(n):
        m0 = m
        xi, yi = x[i], y[i]
        glo, ghi = max(cx[i] - 1, 0), min(cx[i] + 2, ncx)
        for gy in range(max(cy[i] - 1, 0), min(cy[i] + 2, ncy)):
            row = gy * ncx
            for q in range(start[row + glo], start[row + ghi]):
                j = idx[q]
                if j <= i:
                    continue
                dx, dy = xi - xs[q], yi - ys[q]
                if dx * dx + dy * dy <= r2:
                    if m == out.shape[0]:
                        bigger = np.empty((2 * m, 2), np.int64)
                        bigger[:m] = out
                        out = bigger
                    out[m, 0], out[m, 1] = i, j
                    m += 1
        for a in range(m0 + 1, m):  # the few partners of i in increasing j (insertion sort)
            v = out[a, 1]
            b = a - 1
            while b >= m0 and out[b, 1] > v:
                out[b + 1, 1] = out[b, 1]
                b -= 1
            out[b + 1, 1] = v
    return out[:m].copy()


def pairs_np(x, y, r) -> np.ndarray:
    """numpy twin of :func:`pairs_kernel` (all pairs, O(n^2) memory: small inputs)."""
    i, j = np.triu_indices(len(x), 1)
    d2 = (x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2
    ok = d2 <= r * r
    return np.stack([i[ok], j[ok]], axis=1).astype(np.int64)
