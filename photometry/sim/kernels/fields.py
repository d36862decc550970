"""Smooth sky fields (sums of plane waves, :class:`legacylake.photometry.sim.rng.SmoothField`) evaluated on a fixed
global RA/Dec grid and interpolated bilinearly: a numba kernel for the grid nodes, one for the
interpolation, and their numpy twins.

The grid (step :data:`STEP` deg, nodes at RA = (i mod NRA) STEP, Dec = j STEP - 90) is the same
for every brick, and a node's value depends only on (i, j), so a position gets the same value
whichever brick or region asks for it. The fields' shortest wavelength (0.2 deg) is ~13 steps:
interpolation changes them by a few per cent of their amplitude at most.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

STEP = 1.0 / 64.0  # deg, exact in binary
NRA = 23040  # 360 / STEP
NDEC = 11520  # 180 / STEP


@njit(cache=True, inline="always")
def _waves(x, y, z, K, phase, amp, w0, w1):
    """One field's value at the unit vector (x, y, z): its waves w0..w1."""
    s = 0.0
    for w in range(w0, w1):
        s += amp[w] * math.cos(x * K[w, 0] + y * K[w, 1] + z * K[w, 2] + phase[w])
    return s


@njit(cache=True)
def node_kernel(cols, rows, K, phase, amp, gstart):
    """Field values (len(rows), len(cols), G) at grid nodes (RA index ``cols``, Dec index ``rows``)."""
    G = gstart.shape[0] - 1
    out = np.zeros((rows.shape[0], cols.shape[0], G))
    d2r = math.pi / 180.0
    cra, sra = np.empty(cols.shape[0]), np.empty(cols.shape[0])
    for c in range(cols.shape[0]):  # a column's RA trig once, not once per row
        ra = (cols[c] % NRA) * STEP * d2r
        cra[c], sra[c] = math.cos(ra), math.sin(ra)
    for a in range(rows.shape[0]):
        dec = (rows[a] * STEP - 90.0) * d2r
        cd, sd = math.cos(dec), math.sin(dec)
        for c in range(cols.shape[0]):
            x, y, z = cd * cra[c], cd * sra[c], sd
            for g in range(G):
                out[a, c, g] = _waves(x, y, z, K, phase, amp, gstart[g], gstart[g + 1])
    return out


@njit(cache=True)
def stencil_kernel(i0, j0, wx, wy, K, phase, amp, gstart):
    """(n, G) fields at points whose lower-left node is (RA index i0, Dec index j0), offsets
    (wx, wy): each point's own four nodes (the values of :func:`node_kernel`) interpolated as
    :func:`bilinear_kernel`. For scattered points, whose node block would be mostly unused."""
    n, G = i0.shape[0], gstart.shape[0] - 1
    out = np.empty((n, G))
    d2r = math.pi / 180.0
    v = np.empty((2, 2, G))
    for p in range(n):
        for da in range(2):
            dec = ((j0[p] + da) * STEP - 90.0) * d2r
            cd, sd = math.cos(dec), math.sin(dec)
            for dc in range(2):
                ra = ((i0[p] + dc) % NRA) * STEP * d2r
                cra, sra = math.cos(ra), math.sin(ra)
                x, y, z = cd * cra, cd * sra, sd
                for g in range(G):
                    v[da, dc, g] = _waves(x, y, z, K, phase, amp, gstart[g], gstart[g + 1])
        fx, fy = wx[p], wy[p]
        for g in range(G):
            v0 = v[0, 0, g] * (1.0 - fx) + v[0, 1, g] * fx
            v1 = v[1, 0, g] * (1.0 - fx) + v[1, 1, g] * fx
            out[p, g] = v0 * (1.0 - fy) + v1 * fy
    return out


def node_np(cols, rows, K, phase, amp, gstart):
    """numpy twin of :func:`node_kernel`."""
    dec = np.deg2rad(rows * STEP - 90.0)[:, None]
    ra = np.deg2rad((cols % NRA) * STEP)[None, :]
    xyz = np.stack(np.broadcast_arrays(np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)), -1)
    w = amp * np.cos(xyz @ K.T + phase)  # (rows, cols, waves)
    return np.stack([w[..., gstart[g]:gstart[g + 1]].sum(-1) for g in range(len(gstart) - 1)], -1)


@njit(cache=True)
def bilinear_kernel(vals, ci, ri, wx, wy):
    """(n, G) bilinear interpolation of node values ``vals`` (rows, cols, G) at points whose
    lower-left node is (ri, ci) in ``vals`` with fractional offsets (wx, wy)."""
    n, G = ci.shape[0], vals.shape[2]
    out = np.empty((n, G))
    for p in range(n):
        a, c, fx, fy = ri[p], ci[p], wx[p], wy[p]
        for g in range(G):
            v0 = vals[a, c, g] * (1.0 - fx) + vals[a, c + 1, g] * fx
            v1 = vals[a + 1, c, g] * (1.0 - fx) + vals[a + 1, c + 1, g] * fx
            out[p, g] = v0 * (1.0 - fy) + v1 * fy
    return out


def bilinear_np(vals, ci, ri, wx, wy):
    """numpy twin of :func:`bilinear_kernel`."""
    fx, fy = wx[:, None], wy[:, None]
    v0 = vals[ri, ci] * (1.0 - fx) + vals[ri, ci + 1] * fx
    v1 = vals[ri + 1, ci] * (1.0 - fx) + vals[ri + 1, ci + 1] * fx
    return v0 * (1.0 - fy) + v1 * fy


def _node_index(i0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted node indices holding every i0 and i0 + 1 (i0 + 1 right after i0), and the
    position of each i0 in them: a contiguous range when the points are compact (a brick),
    the unique indices otherwise."""
    if len(i0) == 0:
        return np.zeros(1, np.int64), i0
    lo, hi = int(i0.min()), int(i0.max())
    if hi - lo < 4 * len(i0) + 64:
        return np.arange(lo, hi + 2, dtype=np.int64), i0 - lo
    nodes = np.unique(np.concatenate([i0, i0 + 1]))
    return nodes, np.searchsorted(nodes, i0)


def grid_fields(ra, dec, K, phase, amp, gstart, use_numba: bool = True, dense: np.ndarray | None = None) -> np.ndarray:
    """(n, G) fields at (ra, dec) deg, interpolated from the global grid. Only the grid columns
    and rows next to the points are evaluated (RA wrap handled by the index, not the angle).
    ``dense`` (bool per point, numba only): the compact points sharing one node block; the
    others (a few scattered ones) use their own four nodes (:func:`stencil_kernel`). Same values."""
    ra = np.asarray(ra, np.float64)
    if len(ra) == 0 or not (ra.min() >= 0.0 and ra.max() < 360.0):  # mod of [0, 360) is the identity
        ra = np.mod(ra, 360.0)
    dec = np.clip(np.asarray(dec, np.float64), -90.0, 90.0)
    x, y = ra / STEP, (dec + 90.0) / STEP
    i0 = np.minimum(np.floor(x).astype(np.int64), NRA - 1)
    j0 = np.minimum(np.floor(y).astype(np.int64), NDEC - 1)
    wx, wy = x - i0, y - j0
    gs = np.asarray(gstart, np.int64)
    if use_numba and dense is not None and len(i0) and not dense.all():
        out = np.empty((len(i0), len(gs) - 1))
        a, b = np.flatnonzero(dense), np.flatnonzero(~dense)
        if len(a):
            cols, ci = _node_index(i0[a])
            urow, ri = _node_index(j0[a])
            out[a] = bilinear_kernel(node_kernel(cols, urow, K, phase, amp, gs), ci, ri, wx[a], wy[a])
        out[b] = stencil_kernel(i0[b], j0[b], wx[b], wy[b], K, phase, amp, gs)
        return out
    cols, ci = _node_index(i0)
    urow, ri = _node_index(j0)
    if use_numba:
        vals = node_kernel(cols, urow, K, phase, amp, gs)
        return bilinear_kernel(vals, ci, ri, wx, wy)
    vals = node_np(cols, urow, K, phase, amp, gs)
    return bilinear_np(vals, ci, ri, wx, wy)
