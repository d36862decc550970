"""numba kernels building the Gauss-Newton normal equations from per-source column patches,
without materialising the dense (pixels x parameters) matrix; each with a numpy twin.

A column patch ``c`` is (k, h, w): k derivative images of one source on image pixels
[y0:y0+h, x0:x0+w]. ``ivar`` and ``wr`` (= ivar * residual) are whole-image arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, fastmath=True)
def block_dots(ca, ay0, ax0, ia, cb, by0, bx0, ib, ivar, ata):
    """ata[ia[a], ib[b]] and ata[ib[b], ia[a]] += sum over the overlap of ca[a] ivar cb[b]
    (two different sources' column patches, image pixel coordinates)."""
    ka, ha, wa = ca.shape
    kb, hb, wb = cb.shape
    y0 = max(ay0, by0)
    y1 = min(ay0 + ha, by0 + hb)
    x0 = max(ax0, bx0)
    x1 = min(ax0 + wa, bx0 + wb)
    for a in range(ka):
        for b in range(kb):
            s = 0.0
            for y in range(y0, y1):
                for x in range(x0, x1):
                    s += ca[a, y - ay0, x - ax0] * ivar[y, x] * cb[b, y - by0, x - bx0]
            ata[ia[a], ib[b]] += s
            ata[ib[b], ia[a]] += s


def block_dots_np(ca, ay0, ax0, ia, cb, by0, bx0, ib, ivar, ata):
    """numpy twin of :func:`block_dots`."""
    ka, ha, wa = ca.shape
    kb, hb, wb = cb.shape
    y0, y1 = max(ay0, by0), min(ay0 + ha, by0 + hb)
    x0, x1 = max(ax0, bx0), min(ax0 + wa, bx0 + wb)
    if y1 <= y0 or x1 <= x0:
        return
    A = ca[:, y0 - ay0:y1 - ay0, x0 - ax0:x1 - ax0].reshape(ka, -1)
    B = cb[:, y0 - by0:y1 - by0, x0 - bx0:x1 - bx0].reshape(kb, -1)
    blk = (A * ivar[y0:y1, x0:x1].ravel()) @ B.T
    np.add.at(ata, (ia[:, None], ib[None, :]), blk)
    np.add.at(ata, (ib[:, None], ia[None, :]), blk.T)


@njit(cache=True, fastmath=True)
def self_dots(c, y0, x0, idx, ivar, wr, ata, atr):
    """ata[idx[a], idx[b]] += sum c[a] ivar c[b] and atr[idx[a]] += sum c[a] wr over c's box."""
    k, h, w = c.shape
    for a in range(k):
        s = 0.0
        for i in range(h):
            for j in range(w):
                s += c[a, i, j] * wr[y0 + i, x0 + j]
        atr[idx[a]] += s
        for b in range(a, k):
            s = 0.0
            for i in range(h):
                for j in range(w):
                    s += c[a, i, j] * ivar[y0 + i, x0 + j] * c[b, i, j]
            ata[idx[a], idx[b]] += s
            if b != a:
                ata[idx[b], idx[a]] += s


def self_dots_np(c, y0, x0, idx, ivar, wr, ata, atr):
    """numpy twin of :func:`self_dots`."""
    k, h, w = c.shape
    A = c.reshape(k, -1)
    iv = ivar[y0:y0 + h, x0:x0 + w].ravel()
    np.add.at(ata, (idx[:, None], idx[None, :]), (A * iv) @ A.T)
    np.add.at(atr, idx, A @ wr[y0:y0 + h, x0:x0 + w].ravel())


@njit(cache=True, fastmath=True)
def combine(T, raw, cols):
    """cols[p] = sum_r T[p, r] raw[r] (parameter columns from raw derivative planes)."""
    npar, nraw = T.shape
    _, h, w = raw.shape
    for p in range(npar):
        for i in range(h):
            for j in range(w):
                cols[p, i, j] = 0.0
        for r in range(nraw):
            t = T[p, r]
            if t == 0.0:
                continue
            for i in range(h):
                for j in range(w):
                    cols[p, i, j] += t * raw[r, i, j]


def combine_np(T, raw, cols):
    """numpy twin of :func:`combine`."""
    cols[...] = np.tensordot(T, raw, axes=1)


@njit(cache=True)
def solve_psd(a, b, tol, x):
    """x = a^-1 b for symmetric positive semi-definite ``a`` by Cholesky, dropping (x = 0)
    every parameter whose pivot falls below tol * a[j, j] (degenerate directions), which is
    how a rank-revealing least-squares solve treats them. Small dense systems only."""
    n = a.shape[0]
    L = np.zeros((n, n))
    keep = np.zeros(n, dtype=np.bool_)
    for j in range(n):
        d = a[j, j]
        for k in range(j):
            d -= L[j, k] * L[j, k]
        if a[j, j] <= 0.0 or d <= tol * a[j, j]:
            continue
        keep[j] = True
        ljj = np.sqrt(d)
        L[j, j] = ljj
        for i in range(j + 1, n):
            s = a[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            L[i, j] = s / ljj
    y = np.zeros(n)
    for i in range(n):
        if keep[i]:
            s = b[i]
            for k in range(i):
                s -= L[i, k] * y[k]
            y[i] = s / L[i, i]
    for i in range(n - 1, -1, -1):
        x[i] = 0.0
        if keep[i]:
            s = y[i]
            for k in range(i + 1, n):
                s -= L[k, i] * x[k]
            x[i] = s / L[i, i]


def solve_psd_np(a, b, tol, x):
    """numpy twin of :func:`solve_psd` (same pivot-dropping rule, column-oriented)."""
    n = a.shape[0]
    L = np.zeros((n, n))
    keep = np.zeros(n, dtype=bool)
    for j in range(n):
        d = a[j, j] - L[j, :j] @ L[j, :j]
        if a[j, j] <= 0 or d <= tol * a[j, j]:
            continue
        keep[j] = True
        L[j, j] = np.sqrt(d)
        L[j + 1:, j] = (a[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    k = np.flatnonzero(keep)
    Lk = L[np.ix_(k, k)]
    x[:] = 0.0
    x[k] = np.linalg.solve(Lk.T, np.linalg.solve(Lk, b[k]))
