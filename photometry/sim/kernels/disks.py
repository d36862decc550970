"""Which points lie inside any of a set of disks (flat-sky offsets in arcsec): a numba kernel
over the points sorted by y, and its numpy twin. A point at distance <= r is inside."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def disks_kernel(px, py, ysort, ys, cx, cy, r, out):
    """Set out[i] = True for every point (px, py) inside a disk (cx, cy, r); ``ysort`` orders
    the points by y and ``ys = py[ysort]``. Only points within each disk's y band are tested."""
    for d in range(cx.shape[0]):
        rd = r[d]
        lo = np.searchsorted(ys, cy[d] - rd, side="left")
        hi = np.searchsorted(ys, cy[d] + rd, side="right")
        r2 = rd * rd
        for q in range(lo, hi):
            i = ysort[q]
            dx = px[i] - cx[d]
            dy = py[i] - cy[d]
            if dx * dx + dy * dy <= r2:
                out[i] = True


def disks_np(px, py, cx, cy, r) -> np.ndarray:
    """numpy twin of :func:`disks_kernel` (all pairs): bool per point."""
    if len(cx) == 0:
        return np.zeros(len(px), bool)
    dx = px[:, None] - cx[None, :]
    dy = py[:, None] - cy[None, :]
    return (dx * dx + dy * dy <= (r * r)[None, :]).any(axis=1)
