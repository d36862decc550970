"""A block of FITS catalog records in one numba call: the scalar and string columns
(:mod:`legacylake.photometry.sim.kernels.pack`), the aperture fluxes of every band (:mod:`legacylake.photometry.sim.kernels.apflux`) and the unWISE
light curves of W1/W2 (:mod:`legacylake.photometry.sim.kernels.lc`), for rows i0..i1 of a brick, written into rows
0..i1-i0 of ``buf``.

The writer fills a block of a few hundred rows (inside the L2 cache) and hands it to the
file before the next one, so the ~2 kB records are written once into cache and copied once
into the page cache. Filling the rows in any blocks gives the same bytes as filling them at
once: every value depends only on its row (the test compares block sizes). Band inputs come
stacked: apflux ``ap_f[b] = (ftrue, fmodel, nea_psf, depth, fracmasked)`` (n-vectors),
``ap_gauss[b]`` (8, n) of :func:`legacylake.photometry.sim.kernels.apflux.aperture_gauss` (rows beyond ``ap_nr[b]``
unused); light curves ``lc_f[b] = (ftrue, flux_ivar, fracflux)``, ``lc_i[b] = (nep, nobs)``.

Within a block, SUB_ROWS rows get every column before the next ones (their ~34 kB of records
stay in L1), and the next SUB_ROWS rows' inputs (~400 input rows of F, I, apflux and lc
matrices: more streams than the hardware prefetcher follows) are prefetched into L2.

numba's on-disk cache of this kernel holds the compiled callees too and is keyed on this file
only: after editing :mod:`legacylake.photometry.sim.kernels.pack`, :mod:`legacylake.photometry.sim.kernels.apflux`, :mod:`legacylake.photometry.sim.kernels.lc` or
:mod:`legacylake.photometry.sim.kernels.common`, delete
``photometry/sim/kernels/__pycache__/record*.nb*`` (a fresh checkout compiles everything anew).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from legacylake.photometry.sim.kernels.apflux import apflux_rows
from legacylake.photometry.sim.kernels.common import prefetch_rows
from legacylake.photometry.sim.kernels.lc import lc_rows
from legacylake.photometry.sim.kernels.pack import bytes_rows, pack_rows


SUB_ROWS = 16  # rows filled completely (scalars, apflux, lc) before the next ones: ~34 kB, inside L1


@njit(cache=True)
def record_block_kernel(buf, i0, i1, uid, table, F, foffs, fcodes, I, ioffs, icodes, S, soffs, sstart,
                        ap_offs, ap_keys, ap_f, ap_gauss, ap_radii, ap_nr, ap_opt,
                        lc_offs, lc_keys, lc_f, lc_i, mjd0, is_qso, mjd_f8, ne):
    """Rows i0..i1 of the brick into buf[0:i1-i0] (uint8[m, itemsize], C-contiguous), SUB_ROWS
    rows at a time (every column of those rows is written while they are in the L1 cache)."""
    zz = np.empty(ap_radii.shape[1] + 1)
    zl, zq = np.empty(ne), np.zeros(ne)
    n = uid.shape[0]
    # the per-row inputs as 2-D (rows of n), to prefetch the next sub-block's values of every
    # input row while this one is written (~400 input rows: too many streams for the hardware)
    apf = ap_f.reshape((ap_f.shape[0] * ap_f.shape[1], n))
    apg = ap_gauss.reshape((ap_gauss.shape[0] * ap_gauss.shape[1], n))
    lcf = lc_f.reshape((lc_f.shape[0] * lc_f.shape[1], n))
    lci = lc_i.reshape((lc_i.shape[0] * lc_i.shape[1], n))
    for a0 in range(i0, i1, SUB_ROWS):
        a1 = min(a0 + SUB_ROWS, i1)
        r0 = a0 - i0
        b1 = min(a1 + SUB_ROWS, n)
        if a1 < b1:
            prefetch_rows(F, a1, b1)
            prefetch_rows(I, a1, b1)
            prefetch_rows(apf, a1, b1)
            prefetch_rows(apg, a1, b1)
            prefetch_rows(lcf, a1, b1)
            prefetch_rows(lci, a1, b1)
        pack_rows(buf, r0, a0, a1, F, foffs, fcodes, I, ioffs, icodes)
        bytes_rows(buf, r0, a0, a1, S, soffs, sstart)
        for b in range(ap_offs.shape[0]):
            if ap_offs[b, 0] < 0:
                continue
            apflux_rows(buf, r0, a0, a1, ap_offs[b], uid, ap_keys[b], 0, table, ap_f[b, 0], ap_f[b, 1],
                        ap_gauss[b], ap_f[b, 2], ap_f[b, 3], ap_f[b, 4], ap_radii[b, :ap_nr[b]], ap_opt[b], zz)
        for b in range(lc_offs.shape[0]):
            lc_rows(buf, r0, a0, a1, lc_offs[b], mjd_f8, uid, lc_keys[b], 0, table, lc_f[b, 0], lc_f[b, 1],
                    lc_i[b, 0], lc_i[b, 1], lc_f[b, 2], mjd0, is_qso, ne, zl, zq)
