"""DR4 data model for ``run-brick --model-set dr4`` (reference 4.4): a catalog built with the
DR9 machinery (DR9 column array) and the DR4 rule set's types, rewritten as ``dr4-tractor``.

Type char[4]: PSF, SIMP, DEV, EXP, COMP. Shapes go to ``shapeexp_*`` (EXP, SIMP) or
``shapedev_*`` (DEV); ``fracdev`` is 1 for DEV, 0 otherwise. SIMP is written as the DR4
convention: round, r = 0.45 arcsec, shape ivars 0. COMP is approximated: the composite
DEV + EXP is stood in for by one Sersic fit (tried where max(DEV, EXP) >= PSF + 12 and
chosen by the DR4 COMP rule), written with both shapes equal to the Sersic ellipse and
``fracdev = clip((n - 1) / 3, 0, 1)`` (n = 1 pure EXP, n = 4 pure DEV), fracdev_ivar 0.
DR4 has no maskbits/fitbits; its 7-epoch WISE light-curve columns are zero (no unWISE).
"""

from __future__ import annotations

import numpy as np

RELEASE_DR4 = 4000
SIMP_RE = 0.45


def to_dr4(cat9: np.ndarray, types: list[str], sersic_n: np.ndarray) -> np.ndarray:
    """DR4 array (``photometry.sim.records.catalog_dtype("dr4")``) from the DR9 array and the DR4 types."""
    from legacylake.photometry.sim.records import catalog_dtype
    dt = catalog_dtype("dr4")
    n = len(cat9)
    out = np.zeros(n, dt)
    have = set(cat9.dtype.names)
    for name in dt.names:
        if name in have and out[name].shape == cat9[name].shape:
            out[name] = cat9[name]
    out["release"] = RELEASE_DR4
    t = np.array([s.strip() for s in types], dtype="U4")
    out["type"] = t
    for pre, sel in (("shapeexp", np.isin(t, ("EXP", "COMP"))), ("shapedev", np.isin(t, ("DEV", "COMP")))):
        for k in ("r", "e1", "e2"):
            out[f"{pre}_{k}"] = np.where(sel, cat9[f"shape_{k}"], 0.0)
            out[f"{pre}_{k}_ivar"] = np.where(sel & (t != "COMP"), cat9[f"shape_{k}_ivar"], 0.0)
    simp = t == "SIMP"
    out["shapeexp_r"][simp] = SIMP_RE
    out["fracdev"] = np.where(t == "DEV", 1.0, np.where(t == "COMP", np.clip((sersic_n - 1.0) / 3.0, 0.0, 1.0), 0.0))
    return out
