"""unWISE light curves (lc_*[15] in DR9, [7] in DR4) of one WISE band written straight into the
FITS record buffer: a numba kernel and its numpy twin.

Epoch e < nep is used: lc_flux = true flux + noise of ivar flux_ivar / nep (quasars vary by a
further 10%), lc_nobs = nobs // nep + e % 3, lc_fracflux = fracflux, lc_rchisq = 1 + 0.15 |noise
normal|, lc_mjd = mjd0 + 182.6 e, lc_epoch_index = e; unused epochs are 0 (epoch index -1).
Fluxes in nanomaggies, mjd in days.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from legacylake.photometry.sim.kernels.common import normals_into, put_f4, put_f8, put_i2, table_normals_np, uid_base


@njit(cache=True, error_model="numpy")
def lc_rows(buf, r0, i0, i1, offs, mjd_f8, uid, key, stream, table, ftrue, flux_ivar, nep, nobs, fracflux, mjd0,
            is_qso, ne, zl, zq):
    """Rows i0..i1 of the inputs into rows r0.. of ``buf``, as :func:`lc_kernel` (``zl``, ``zq``:
    scratch of at least ``ne`` float64)."""
    for i in range(i0, i1):
        r = r0 + i - i0
        base = uid_base(uid[i], key)
        normals_into(zl, ne, base, stream, table)
        if is_qso[i]:
            normals_into(zq, ne, base, stream + 8, table)
        n_ep = nep[i]
        ivar_ep = np.float32(flux_ivar[i] / n_ep)
        sd = 1.0 / np.sqrt(max(np.float64(ivar_ep), 1e-12))
        for e in range(ne):
            used = e < n_ep
            f = ftrue[i] + zl[e] * sd
            if is_qso[i]:
                f += 0.1 * ftrue[i] * zq[e]
            put_f4(buf, r, offs[0] + 4 * e, f if used else 0.0)
            put_f4(buf, r, offs[1] + 4 * e, ivar_ep if used else 0.0)
            put_i2(buf, r, offs[2] + 2 * e, nobs[i] // n_ep + e % 3 if used else 0)
            put_f4(buf, r, offs[3] + 4 * e, fracflux[i] if used else 0.0)
            put_f4(buf, r, offs[4] + 4 * e, 1.0 + 0.15 * abs(zl[e]) if used else 0.0)
            mjd = mjd0[i] + 182.6 * e if used else 0.0
            if mjd_f8:
                put_f8(buf, r, offs[5] + 8 * e, mjd)
            else:
                put_f4(buf, r, offs[5] + 4 * e, mjd)
            if offs[6] >= 0:
                put_i2(buf, r, offs[6] + 2 * e, e if used else -1)


@njit(cache=True, error_model="numpy")
def lc_kernel(buf, offs, mjd_f8, uid, key, stream, table, ftrue, flux_ivar, nep, nobs, fracflux, mjd0,
              is_qso, ne):
    """Fill lc_flux, lc_flux_ivar, lc_nobs, lc_fracflux, lc_rchisq, lc_mjd, lc_epoch_index
    (byte offsets offs[0..6], -1: not written) for ``ne`` epochs of every row."""
    lc_rows(buf, 0, 0, uid.shape[0], offs, mjd_f8, uid, key, stream, table, ftrue, flux_ivar, nep, nobs, fracflux,
            mjd0, is_qso, ne, np.empty(ne), np.zeros(ne))


def lc_np(uid, key, stream, ftrue, flux_ivar, nep, nobs, fracflux, mjd0, is_qso, ne):
    """numpy twin of :func:`lc_kernel`: dict of (n, ne) arrays (flux, flux_ivar, nobs, fracflux,
    rchisq, mjd, epoch_index)."""
    ep = np.arange(ne)
    used = ep[None, :] < nep[:, None]
    zl = table_normals_np(uid, key, stream, ne)
    ivar_ep = (flux_ivar / nep).astype(np.float32).astype(np.float64)[:, None]
    f = ftrue[:, None] + zl / np.sqrt(np.maximum(ivar_ep, 1e-12))
    zq = table_normals_np(uid, key, stream + 8, ne)
    f = np.where(is_qso[:, None], f + 0.1 * ftrue[:, None] * zq, f)
    return {
        "flux": np.where(used, f, 0.0), "flux_ivar": np.where(used, ivar_ep, 0.0),
        "nobs": np.where(used, (nobs // nep)[:, None] + ep[None, :] % 3, 0),
        "fracflux": np.where(used, fracflux[:, None], 0.0),
        "rchisq": np.where(used, 1.0 + 0.15 * np.abs(zl), 0.0),
        "mjd": np.where(used, mjd0[:, None] + 182.6 * ep[None, :], 0.0),
        "epoch_index": np.where(used, ep[None, :], -1),
    }
