"""Model selection from dchisq: the DR9 rules (``oneblob.py:_select_model``) and DR4's.

Pure and vectorised: :func:`select_type` takes the ``dchisq`` array of a catalog
(models in :data:`legacylake.catalogs_schema.constants.DCHISQ_MODELS` order, 0 where a
model was not computed) and returns the type the pipeline would have chosen, or ``""``
where the source is dropped. The simulator and the photometry fitter both use it.
"""

from __future__ import annotations

import numpy as np

from legacylake.catalogs_schema.constants import DCHISQ_MODELS

#: Free (non-flux) parameters of each model, in DCHISQ_MODELS order.
N_PARAMS: dict[str, tuple[int, ...]] = {"dr9": (2, 3, 5, 5, 6), "dr4": (2, 2, 5, 5, 9)}
#: Penalised dchisq a source needs to be kept.
KEEP_THRESHOLD: float = 25.0
#: DR9: EXP/DEV must beat the current model by max(12, 0.01 dchisq_PSF); SER must beat EXP/DEV by 25.
DR9_GALAXY_CUT, DR9_GALAXY_FRAC, DR9_SER_CUT = 12.0, 0.01, 25.0
#: DR4: DEV/EXP and COMP must improve by max(12, 0.02 dchisq_PSF).
DR4_GALAXY_CUT, DR4_GALAXY_FRAC = 12.0, 0.02


def _release_key(model_set: str) -> str:
    key = model_set.lower()
    if key in ("dr9", "dr8", "dr10"):
        return "dr9"
    if key in ("dr4",):
        return "dr4"
    raise ValueError(f"unknown model set {model_set!r}; valid: dr9, dr4")


def select_index(dchisq: np.ndarray, model_set: str = "dr9") -> np.ndarray:
    """Index (0..4, into DCHISQ_MODELS[model_set]) of the chosen model, or -1 where dropped.

    ``dchisq`` is (n, 5) or (5,); NaN is treated as "not computed" (0).
    """
    key = _release_key(model_set)
    d = np.nan_to_num(np.atleast_2d(np.asarray(dchisq, dtype=np.float64)), nan=0.0)
    if d.shape[-1] != 5:
        raise ValueError(f"dchisq must have 5 entries per row, got shape {d.shape}")
    n = np.asarray(N_PARAMS[key], dtype=np.float64)
    computed = d != 0
    keep = np.max(np.where(computed, d - n, -np.inf), axis=1) >= KEEP_THRESHOLD
    rows = np.arange(len(d))
    if key == "dr9":
        psf, rex, dev, exp, ser = d.T
        cur = np.where(psf - 2 >= rex - 3, 0, 1)
        # REX barely better than PSF: revert to PSF if PSF alone is significant, else "none"
        weak = (cur == 1) & (rex - psf < 0.01 * psf)
        cur = np.where(weak, np.where(psf - 2 >= KEEP_THRESHOLD, 0, -1), cur)
        cur_chi = np.where(cur >= 0, d[rows, np.maximum(cur, 0)], 0.0)
        best_ed = np.where(dev >= exp, 2, 3)
        up = np.maximum(dev, exp) - cur_chi > np.maximum(DR9_GALAXY_CUT, DR9_GALAXY_FRAC * psf)
        cur = np.where(up, best_ed, cur)
        cur_chi = np.where(cur >= 0, d[rows, np.maximum(cur, 0)], 0.0)
        to_ser = ((cur == 2) | (cur == 3)) & (ser - cur_chi >= DR9_SER_CUT)
        cur = np.where(to_ser, 4, cur)
        only_psf = ~computed[:, 1:].any(axis=1)
        cur = np.where(only_psf, 0, cur)
    else:
        psf, simp, dev, exp, comp = d.T
        cut = np.maximum(DR4_GALAXY_CUT, DR4_GALAXY_FRAC * psf)
        cur = np.where(psf >= simp, 0, 1)
        cur_chi = np.maximum(psf, simp)
        best_ed = np.where(dev >= exp, 2, 3)
        up = np.maximum(dev, exp) - cur_chi > cut
        cur = np.where(up, best_ed, cur)
        cur_chi = d[rows, cur]
        to_comp = ((cur == 2) | (cur == 3)) & (comp - cur_chi > cut)
        cur = np.where(to_comp, 4, cur)
    chosen = np.where(cur >= 0, d[rows, np.maximum(cur, 0)], 0.0)
    return np.where(keep & (cur >= 0) & (chosen != 0), cur, -1)


def select_type(dchisq: np.ndarray, model_set: str = "dr9") -> np.ndarray:
    """Chosen type per row (``PSF``, ``REX``, ``DEV``, ``EXP``, ``SER``; DR4 ``PSF``, ``SIMP``,
    ``DEV``, ``EXP``, ``COMP``) as a ``U4`` array; ``""`` where the source is dropped."""
    key = _release_key(model_set)
    names = np.array(list(DCHISQ_MODELS[key]) + [""], dtype="U4")
    return names[select_index(dchisq, key)]  # index -1 picks the trailing ""
