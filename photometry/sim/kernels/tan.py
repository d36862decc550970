"""Gnomonic (TAN) projection of (ra, dec) about a tangent point: a numba kernel and its numpy
twin. x is East-positive, (x, y) in degrees on the tangent plane; cosc = cos(distance)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def tan_kernel(ra, dec, ra0, dec0, x, y, cosc):
    """Fill x, y (deg) and cosc for every point (ra, dec in deg); x, y are inf/nan where cosc = 0."""
    d2r = math.pi / 180.0
    r2d = 180.0 / math.pi
    a0, d0 = ra0 * d2r, dec0 * d2r
    s0, c0 = math.sin(d0), math.cos(d0)
    for i in range(ra.shape[0]):
        dr = dec[i] * d2r
        cd, sd = math.cos(dr), math.sin(dr)
        dra = ra[i] * d2r - a0
        cdra = math.cos(dra)
        cc = s0 * sd + c0 * cd * cdra
        cosc[i] = cc
        x[i] = (cd * math.sin(dra) / cc) * r2d if cc != 0 else np.inf
        y[i] = ((c0 * sd - s0 * cd * cdra) / cc) * r2d if cc != 0 else np.inf


def tan_np(ra, dec, ra0: float, dec0: float):
    """numpy twin of :func:`tan_kernel`: (x, y, cosc)."""
    ra_r, dec_r = np.deg2rad(ra), np.deg2rad(dec)
    a0, d0 = np.deg2rad(ra0), np.deg2rad(dec0)
    cd, sd = np.cos(dec_r), np.sin(dec_r)
    dra = ra_r - a0
    cosc = np.sin(d0) * sd + np.cos(d0) * cd * np.cos(dra)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = cd * np.sin(dra) / cosc
        y = (np.cos(d0) * sd - np.sin(d0) * cd * np.cos(dra)) / cosc
    return np.rad2deg(x), np.rad2deg(y), cosc
