"""HEALPix nested pixel index of (ra, dec) (Gorski et al. 2005, ang2pix_nest): a numba kernel
and its numpy twin. Used for Gaia-like source ids (order 12)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _spread(v):
    """Bits of v (< 2^29) moved to the even bit positions."""
    v = np.uint64(v)
    v = (v | (v << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    v = (v | (v << np.uint64(2))) & np.uint64(0x3333333333333333)
    v = (v | (v << np.uint64(1))) & np.uint64(0x5555555555555555)
    return v


@njit(cache=True)
def healpix_nest_kernel(ra_deg, dec_deg, order, out):
    """out[i] = nested HEALPix index at ``order`` of (ra, dec) deg."""
    nside = 1 << order
    for i in range(ra_deg.shape[0]):
        phi = (ra_deg[i] % 360.0) * (math.pi / 180.0)
        z = math.sin(dec_deg[i] * (math.pi / 180.0))
        za = abs(z)
        tt = (phi / (0.5 * math.pi)) % 4.0
        if za <= 2.0 / 3.0:
            t1 = nside * (0.5 + tt)
            t2 = nside * (z * 0.75)
            jp = int(t1 - t2)
            jm = int(t1 + t2)
            ifp, ifm = jp >> order, jm >> order
            face = (ifp | 4) if ifp == ifm else (ifp if ifp < ifm else ifm + 8)
            ix = jm & (nside - 1)
            iy = nside - (jp & (nside - 1)) - 1
        else:
            ntt = min(3, int(tt))
            tp = tt - ntt
            tmp = nside * math.sqrt(3.0 * (1.0 - za))
            jp = min(int(tp * tmp), nside - 1)
            jm = min(int((1.0 - tp) * tmp), nside - 1)
            if z >= 0:
                face, ix, iy = ntt, nside - jm - 1, nside - jp - 1
            else:
                face, ix, iy = ntt + 8, jp, jm
        out[i] = np.int64((np.uint64(face) << np.uint64(2 * order)) | _spread(ix) | (_spread(iy) << np.uint64(1)))


def _spread_np(v):
    v = v.astype(np.uint64)
    for s, m in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                 (2, 0x3333333333333333), (1, 0x5555555555555555)):
        v = (v | (v << np.uint64(s))) & np.uint64(m)
    return v


def healpix_nest_np(ra_deg, dec_deg, order: int) -> np.ndarray:
    """numpy twin of :func:`healpix_nest_kernel`."""
    nside = 1 << order
    phi = np.mod(ra_deg, 360.0) * (np.pi / 180.0)
    z = np.sin(np.asarray(dec_deg) * (np.pi / 180.0))
    za = np.abs(z)
    tt = np.mod(phi / (0.5 * np.pi), 4.0)
    eq = za <= 2.0 / 3.0
    t1, t2 = nside * (0.5 + tt), nside * (z * 0.75)
    jp_e, jm_e = (t1 - t2).astype(np.int64), (t1 + t2).astype(np.int64)
    ifp, ifm = jp_e >> order, jm_e >> order
    face_e = np.where(ifp == ifm, ifp | 4, np.where(ifp < ifm, ifp, ifm + 8))
    ix_e, iy_e = jm_e & (nside - 1), nside - (jp_e & (nside - 1)) - 1
    ntt = np.minimum(3, tt.astype(np.int64))
    tp = tt - ntt
    with np.errstate(invalid="ignore"):
        tmp = nside * np.sqrt(np.maximum(3.0 * (1.0 - za), 0.0))
    jp_p = np.minimum((tp * tmp).astype(np.int64), nside - 1)
    jm_p = np.minimum(((1.0 - tp) * tmp).astype(np.int64), nside - 1)
    north = z >= 0
    face_p = np.where(north, ntt, ntt + 8)
    ix_p = np.where(north, nside - jm_p - 1, jp_p)
    iy_p = np.where(north, nside - jp_p - 1, jm_p)
    face, ix, iy = (np.where(eq, a, b) for a, b in ((face_e, face_p), (ix_e, ix_p), (iy_e, iy_p)))
    return ((face.astype(np.uint64) << np.uint64(2 * order)) | _spread_np(ix) | (_spread_np(iy) << np.uint64(1))).astype(np.int64)
