"""The DR9 / DR4 model-selection rules of :func:`legacylake.photometry.model.selection.select_index` row by row: a numba
kernel (its numpy twin is :func:`legacylake.photometry.model.selection.select_index` itself)."""

from __future__ import annotations

import numpy as np
from numba import njit

from legacylake.photometry.model.selection import (DR4_GALAXY_CUT, DR4_GALAXY_FRAC, DR9_GALAXY_CUT, DR9_GALAXY_FRAC, DR9_SER_CUT,
                        KEEP_THRESHOLD, N_PARAMS)

_NPAR = {k: np.array(v, np.float64) for k, v in N_PARAMS.items()}


@njit(cache=True)
def select_kernel(d, npar, dr9, keep_thr, gcut, gfrac, ser_cut, out):
    """out[i] = chosen model index (0..4) of dchisq row d[i] (NaN = 0 = not computed), -1 if dropped."""
    row = np.empty(5)
    for i in range(d.shape[0]):
        best = -np.inf
        anygal = False
        for m in range(5):
            v = d[i, m]
            if v != v:
                v = 0.0
            row[m] = v
            if v != 0:
                best = max(best, v - npar[m])
                if m > 0:
                    anygal = True
        keep = best >= keep_thr
        psf, b, dev, exp, last = row[0], row[1], row[2], row[3], row[4]
        if dr9:
            cur = 0 if psf - 2 >= b - 3 else 1
            if cur == 1 and b - psf < 0.01 * psf:
                cur = 0 if psf - 2 >= keep_thr else -1
            cur_chi = row[cur] if cur >= 0 else 0.0
            if max(dev, exp) - cur_chi > max(gcut, gfrac * psf):
                cur = 2 if dev >= exp else 3
            cur_chi = row[cur] if cur >= 0 else 0.0
            if (cur == 2 or cur == 3) and last - cur_chi >= ser_cut:
                cur = 4
            if not anygal:
                cur = 0
        else:
            cut = max(gcut, gfrac * psf)
            cur = 0 if psf >= b else 1
            cur_chi = max(psf, b)
            if max(dev, exp) - cur_chi > cut:
                cur = 2 if dev >= exp else 3
            cur_chi = row[cur]
            if (cur == 2 or cur == 3) and last - cur_chi > cut:
                cur = 4
        chosen = row[cur] if cur >= 0 else 0.0
        out[i] = cur if (keep and cur >= 0 and chosen != 0) else -1


def select_index_fast(dchisq: np.ndarray, model_set: str = "dr9") -> np.ndarray:
    """:func:`legacylake.photometry.model.selection.select_index` through :func:`select_kernel` ((n, 5) input)."""
    dr9 = model_set.lower() != "dr4"
    d = np.ascontiguousarray(dchisq, dtype=np.float64)
    out = np.empty(len(d), np.int64)
    if dr9:
        select_kernel(d, _NPAR["dr9"], True, KEEP_THRESHOLD, DR9_GALAXY_CUT, DR9_GALAXY_FRAC, DR9_SER_CUT, out)
    else:
        select_kernel(d, _NPAR["dr4"], False, KEEP_THRESHOLD, DR4_GALAXY_CUT, DR4_GALAXY_FRAC, 0.0, out)
    return out
