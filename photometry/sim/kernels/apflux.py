"""Aperture fluxes (apflux_*, optical [8] and WISE [5]) written straight into the FITS record
buffer: numba kernels and their numpy twins.

Optical band: frac_j = 1 - exp(-R_j^2 / (2 s2)) of a Gaussian of variance ``s2`` (arcsec^2; the
exponentials come in precomputed by :func:`aperture_gauss`, numpy's vectorised exp),
noise sigma_j = sqrt(pi R_j^2 / nea_psf / psfdepth) (nanomaggy), a noise correlated across
apertures (0.7 common + 0.71 own normal); apflux = true flux * frac + noise,
apflux_resid = apflux - model flux * frac, apflux_blobresid = 0.9 resid, apflux_masked =
fracmasked in every aperture. WISE band: independent noise per aperture, no blobresid/masked.
Normals: :func:`legacylake.photometry.sim.kernels.common.normal_at` keyed by the source uid.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from legacylake.photometry.sim.kernels.common import normals_into, put_f4, table_normals_np, uid_base


def aperture_gauss(s2: np.ndarray, radii: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(len(radii), n) exp(-R_j^2 / (2 s2_i)), one row per aperture: the flux outside radius
    R_j of a unit circular Gaussian of variance ``s2`` (arcsec^2); written into ``out`` if given
    (rows contiguous, so numpy's vectorised exp runs over long rows)."""
    a = -0.5 / np.asarray(s2, np.float64)
    r2 = np.asarray(radii, np.float64) ** 2
    if out is None:
        out = np.empty((len(r2), len(a)))
    np.multiply(r2[:, None], a[None, :], out=out)  # one call for every aperture (products commute exactly)
    return np.exp(out, out=out)


@njit(cache=True, error_model="numpy")
def apflux_rows(buf, r0, i0, i1, offs, uid, key, stream, table, ftrue, fmodel, gauss, nea_psf, depth, fracmasked,
                radii, correlated, zz):
    """Rows i0..i1 of the inputs into rows r0.. of ``buf``, as :func:`apflux_kernel`
    (``zz``: scratch of at least len(radii) + 1 float64)."""
    nr = radii.shape[0]
    for i in range(i0, i1):
        r = r0 + i - i0
        normals_into(zz, nr + 1, uid_base(uid[i], key), stream, table)
        c = 0.7 * zz[0] if correlated else 0.0
        sb = np.sqrt(np.pi / nea_psf[i] / depth[i])
        ft, fm = ftrue[i], fmodel[i]
        fmask = fracmasked[i] if fracmasked[i] > 0 else 0.0
        for j in range(nr):
            frac = 1.0 - gauss[j, i]
            sig = sb * radii[j]
            noise = sig * (c + 0.71 * zz[j + 1]) if correlated else sig * zz[j + 1]
            ap = ft * frac + noise
            resid = ap - fm * frac
            o = 4 * j
            put_f4(buf, r, offs[0] + o, ap)
            put_f4(buf, r, offs[1] + o, 1.0 / (sig * sig))
            put_f4(buf, r, offs[2] + o, resid)
            if offs[3] >= 0:
                put_f4(buf, r, offs[3] + o, 0.9 * resid)
            if offs[4] >= 0:
                put_f4(buf, r, offs[4] + o, fmask)


@njit(cache=True, error_model="numpy")
def apflux_kernel(buf, offs, uid, key, stream, table, ftrue, fmodel, gauss, nea_psf, depth, fracmasked,
                  radii, correlated):
    """Fill apflux (offs[0]), ivar (offs[1]), resid (offs[2]), blobresid (offs[3]) and masked
    (offs[4]) of one band (offset -1: not written) for every row. float32 big-endian.
    ``gauss``: :func:`aperture_gauss` (nr, n) of the rows' profile variances."""
    apflux_rows(buf, 0, 0, uid.shape[0], offs, uid, key, stream, table, ftrue, fmodel, gauss, nea_psf, depth,
                fracmasked, radii, correlated, np.empty(radii.shape[0] + 1))


def apflux_np(uid, key, stream, ftrue, fmodel, s2, nea_psf, depth, fracmasked, radii, correlated):
    """numpy twin of :func:`apflux_kernel`: dict of (n, len(radii)) float64 arrays
    (apflux, ivar, resid, blobresid, masked)."""
    nr = len(radii)
    z = table_normals_np(uid, key, stream, nr + 1)
    R = np.asarray(radii, np.float64)[None, :]
    frac = 1.0 - aperture_gauss(s2, radii).T
    sig = np.sqrt(np.pi / nea_psf[:, None] / depth[:, None]) * R
    noise = sig * (0.7 * z[:, :1] + 0.71 * z[:, 1:]) if correlated else sig * z[:, 1:]
    ap = ftrue[:, None] * frac + noise
    resid = ap - fmodel[:, None] * frac
    masked = np.where(fracmasked[:, None] > 0, fracmasked[:, None] * np.ones(nr), 0.0)
    return {"apflux": ap, "ivar": 1.0 / sig**2, "resid": resid, "blobresid": 0.9 * resid, "masked": masked}
