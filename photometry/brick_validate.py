"""Compare a run-brick catalog with the simulation's truth (completeness, purity, star/galaxy).

``validate(images_dir, outdir, brick)`` returns a dict: completeness of truth sources with
predicted S/N > 8 (max over bands of flux x sqrt(depth), PSF depth for stars, galaxy depth
for galaxies, median depths from the catalog), purity of catalog sources, fraction of
S/N > ``sg_sn`` (default 50) sources whose PSF/non-PSF type matches the truth; all inside the rendered area
less a 20-pixel edge, matched within 4 pixels (about 1 arcsec).
"""

from __future__ import annotations

import os

import numpy as np

MATCH_PX = 4.0
EDGE_PX = 20


def validate(images_dir: str, outdir: str, brick: str, sg_sn: float = 50.0) -> dict:
    import fitsio
    from scipy.spatial import cKDTree
    tp = os.path.join(images_dir, f"truth-{brick}.fits")
    t, h = fitsio.read(tp, header=True)
    c = fitsio.read(os.path.join(outdir, "tractor", brick[:3], f"tractor-{brick}.fits"))
    x0, x1, y0, y1 = h["RX0"], h["RX1"], h["RY0"], h["RY1"]

    def inner(x, y):
        return (x > x0 + EDGE_PX) & (x < x1 - EDGE_PX) & (y > y0 + EDGE_PX) & (y < y1 - EDGE_PX)
    star = np.char.strip(t["MORPH"].astype(str)) == "PSF"
    pd = {b: float(np.median(c["PSFDEPTH_" + b.upper()])) for b in "grz"}
    gd = {b: float(np.median(c["GALDEPTH_" + b.upper()])) for b in "grz"}
    sn = np.max([t["FLUX_" + b.upper()] * np.sqrt(np.where(star, pd[b], gd[b])) for b in "grz"], axis=0)
    ti, ci = inner(t["BX"], t["BY"]), inner(c["BX"], c["BY"])
    txy, cxy = np.column_stack([t["BX"], t["BY"]]), np.column_stack([c["BX"], c["BY"]])
    dt, _ = cKDTree(cxy).query(txy) if len(c) else (np.full(len(t), np.inf), None)
    dc, ic = cKDTree(txy).query(cxy)
    sel = ti & (sn > 8)
    snc = np.max([c["FLUX_" + b] * np.sqrt(c["FLUX_IVAR_" + b]) for b in "GRZ"], axis=0)
    m50 = ci & (dc < MATCH_PX) & (snc > sg_sn)
    cpsf = np.char.strip(c["TYPE"].astype(str)) == "PSF"
    return {"completeness_sn8": float(np.mean(dt[sel] < MATCH_PX)) if sel.any() else float("nan"),
            "n_truth_sn8": int(sel.sum()),
            "purity": float(np.mean(dc[ci] < MATCH_PX)) if ci.any() else float("nan"),
            "n_catalog": int(ci.sum()),
            "star_galaxy_sn50": float(np.mean(cpsf[m50] == star[ic[m50]])) if m50.any() else float("nan"),
            "n_sn50": int(m50.sum())}
