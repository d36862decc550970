"""Aperture fluxes (apflux_*, optical [8] and WISE [5]) written straight into the FITS record
buffer: numba kernels and their numpy twins.

Optical band: frac_j = 1 - exp(-R_j^2 / (2 s2)) of a Gaussian of variance ``s2`` (arcsec^2),
noise sigma_j = sqrt(pi R_j^2 / nea_psf / psfdepth) (nanomaggy), a noise correlated across
apertures (0.7 common + 0.71 own normal); apflux = true flux * frac + noise,
apflux_resid = apflux - model flux * frac, apflux_blobresid = 0.9 resid, apflux_masked =
fracmasked in every aperture. WISE band: independent noise per aperture, no blobresid/masked.
Normals: :func:`.sim_k_common.normal_at` keyed by the source uid.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .sim_k_common import normal_at, put_f4, table_normals_np, uid_base


@njit(cache=True)
def apflux_kernel(buf, offs, uid, key, stream, table, ftrue, fmodel, s2, nea_psf, depth, fracmasked,
                  radii, correlated):
    """Fill apflux (offs[0]), ivar (offs[1]), resid (offs[2]), blobresid (offs[3]) and masked
    (offs[4]) of one band (offset -1: not written) for every row. float32 big-endian."""
    nr = radii.shape[0]
    for i in range(uid.shape[0]):
        base = uid_base(uid[i], key)
        c = normal_at(base, stream, 0, table) if correlated else 0.0
        for j in range(nr):
            r2 = radii[j] * radii[j]
            frac = 1.0 - np.exp(-r2 / (2.0 * s2[i]))
            sig = np.sqrt(np.pi * r2 / nea_psf[i] / depth[i])
            n_j = normal_at(base, stream, j + 1, table)
            noise = sig * (0.7 * c + 0.71 * n_j) if correlated else sig * n_j
            ap = ftrue[i] * frac + noise
            resid = ap - fmodel[i] * frac
            put_f4(buf, i, offs[0] + 4 * j, ap)
            put_f4(buf, i, offs[1] + 4 * j, 1.0 / (sig * sig))
            put_f4(buf, i, offs[2] + 4 * j, resid)
            if offs[3] >= 0:
                put_f4(buf, i, offs[3] + 4 * j, 0.9 * resid)
            if offs[4] >= 0:
                put_f4(buf, i, offs[4] + 4 * j, fracmasked[i] if fracmasked[i] > 0 else 0.0)


def apflux_np(uid, key, stream, ftrue, fmodel, s2, nea_psf, depth, fracmasked, radii, correlated):
    """numpy twin of :func:`apflux_kernel`: dict of (n, len(radii)) float64 arrays
    (apflux, ivar, resid, blobresid, masked)."""
    nr = len(radii)
    z = table_normals_np(uid, key, stream, nr + 1)
    R2 = np.asarray(radii, np.float64)[None, :] ** 2
    frac = 1.0 - np.exp(-R2 / (2.0 * s2[:, None]))
    sig = np.sqrt(np.pi * R2 / nea_psf[:, None] / depth[:, None])
    noise = sig * (0.7 * z[:, :1] + 0.71 * z[:, 1:]) if correlated else sig * z[:, 1:]
    ap = ftrue[:, None] * frac + noise
    resid = ap - fmodel[:, None] * frac
    masked = np.where(fracmasked[:, None] > 0, fracmasked[:, None] * np.ones(nr), 0.0)
    return {"apflux": ap, "ivar": 1.0 / sig**2, "resid": resid, "blobresid": 0.9 * resid, "masked": masked}
