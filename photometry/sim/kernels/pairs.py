"""All pairs of points closer than a radius (flat coordinates, e.g. arcsec): a numba kernel on a
grid of cells one radius wide, and its numpy twin. Pairs (i, j) with i < j and distance <= r,
sorted by (i, j)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def pairs_kernel(x, y, r):
    """(n_pairs, 2) int64 array of the pairs (i < j) at distance <= r, sorted by (i, j).

    Points are counting-sorted into cells one radius wide (coordinates copied in cell order);
    each unordered pair is found once, from the half stencil of its first point's cell, then
    the pairs are counting-sorted by i and each i's few partners by j."""
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
    nc = ncx * ncy
    start = np.zeros(nc + 1, np.int64)
    for i in range(n):
        start[cy[i] * ncx + cx[i] + 1] += 1
    for c in range(nc):
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
    # each unordered pair once: a point against the later points of its own cell, the next
    # cell of its row and the three cells of the next row (half stencil)
    pa = np.empty(max(16, n), np.int64)
    pb = np.empty(max(16, n), np.int64)
    m = 0
    for q in range(n):
        i = idx[q]
        c = cy[i] * ncx + cx[i]
        xi, yi = xs[q], ys[q]
        gx, gy = cx[i], cy[i]
        for seg in range(3):
            if seg == 0:
                lo, hi = q + 1, start[c + 1] if gx + 1 >= ncx else start[c + 2]
            elif gy + 1 < ncy:
                if seg == 1:
                    row = c + ncx
                    lo, hi = start[row - 1 if gx > 0 else row], start[row + 2 if gx + 1 < ncx else row + 1]
                else:
                    break
            else:
                break
            for p in range(lo, hi):
                dx, dy = xi - xs[p], yi - ys[p]
                if dx * dx + dy * dy <= r2:
                    if m == pa.shape[0]:
                        pa2, pb2 = np.empty(2 * m, np.int64), np.empty(2 * m, np.int64)
                        pa2[:m], pb2[:m] = pa, pb
                        pa, pb = pa2, pb2
                    j = idx[p]
                    pa[m], pb[m] = min(i, j), max(i, j)
                    m += 1
    # sort by (i, j): counting sort on i, then insertion sort of each i's few partners
    cnt = np.zeros(n + 1, np.int64)
    for e in range(m):
        cnt[pa[e] + 1] += 1
    for i in range(n):
        cnt[i + 1] += cnt[i]
    out = np.empty((m, 2), np.int64)
    for e in range(m):
        q = cnt[pa[e]]
        out[q, 0], out[q, 1] = pa[e], pb[e]
        cnt[pa[e]] = q + 1
    s0 = 0
    for e in range(1, m + 1):
        if e == m or out[e, 0] != out[s0, 0]:
            for a in range(s0 + 1, e):
                v = out[a, 1]
                b = a - 1
                while b >= s0 and out[b, 1] > v:
                    out[b + 1, 1] = out[b, 1]
                    b -= 1
                out[b + 1, 1] = v
            s0 = e
    return out


def pairs_np(x, y, r) -> np.ndarray:
    """numpy twin of :func:`pairs_kernel` (all pairs, O(n^2) memory: small inputs)."""
    i, j = np.triu_indices(len(x), 1)
    d2 = (x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2
    ok = d2 <= r * r
    return np.stack([i[ok], j[ok]], axis=1).astype(np.int64)
