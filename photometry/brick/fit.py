"""Per-blob fitting (reference 4.3): cut-outs, joint PSF fit, model selection, final fit,
and the per-source model metrics (rchisq, fracflux, fracmasked, fracin, nea; reference 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from legacylake.photometry.model.image import Image

#: half-size (pixels) of the cut-out each source's model selection is fitted on
SELECT_WINDOW = 25
MAX_ITER_STAGE1 = 20
MAX_ITER_FINAL = 15


@dataclass
class BlobSource:
    """A source to fit in a blob: initial position (deg), fluxes (nmgy); reference info.

    Reference stars (``ref`` >= 0) keep their catalogue position (at ``ref_epoch``, moved with
    ``pmra``/``pmdec`` mas/yr to each exposure's epoch) in PSF fits; ``forced_psf`` tries
    PSF only (point-source references, detections inside BRIGHT/GALAXY masks). A large
    galaxy starts as ``kind`` (EXP) with shape ``r_e`` (arcsec), ``e1``, ``e2``, tries every
    model (``all_models``), log r_e <= ``logr_max``; ``freeze`` keeps it as given (pre-burned)."""

    ra: float
    dec: float
    flux: dict
    ref: int = -1          # index into the reference table, -1 for detections
    forced_psf: bool = False
    iterative: bool = False
    pmra: float = 0.0
    pmdec: float = 0.0
    ref_epoch: float = 0.0
    kind: str = "PSF"
    r_e: float = 0.0
    e1: float = 0.0
    e2: float = 0.0
    logr_max: float = np.inf
    all_models: bool = False
    freeze: bool = False
    mask_forced: bool = False   # forced to PSF because its centre is in a BRIGHT/GALAXY mask

    @property
    def galaxy(self) -> bool:
        return self.kind != "PSF"

    def source(self, bands):
        """The fitter Source this source starts as."""
        from legacylake.photometry.model.fitter import Source
        return Source(self.kind, self.ra, self.dec, {b: float(self.flux.get(b, 0.0)) for b in bands},
                      self.r_e if self.r_e > 0 else 0.45, self.e1, self.e2, 4.0 if self.kind == "DEV" else 1.0,
                      self.pmra, self.pmdec, self.ref_epoch, self.logr_max)


@dataclass
class FitRow:
    """One fitted source: chosen type, fitter SourceResult, dchisq, model metrics per band."""

    src: BlobSource
    type: str
    result: object
    dchisq: np.ndarray
    metrics: dict = field(default_factory=dict)
    blob: int = 0


def cutouts(exposures, pixmaps, mask: np.ndarray, box) -> list[tuple[int, int, int, Image]]:
    """Per exposure touching the blob: (exposure index, x0, y0, Image cut-out) with ivar 0
    outside the blob (blob pixels mapped nearest-pixel, closed by 1 px). ``mask``: the blob's
    pixels inside ``box`` (region coordinates x0, x1, y0, y1), shape (y1 - y0, x1 - x0)."""
    bx0, bx1, by0, by1 = box
    out = []
    m = mask
    for k, (e, (ix, iy, inside)) in enumerate(zip(exposures, pixmaps)):
        sel = m & inside[by0:by1, bx0:bx1]
        if not sel.any():
            continue
        xs = ix[by0:by1, bx0:bx1][sel].astype(np.int64)
        ys = iy[by0:by1, bx0:bx1][sel].astype(np.int64)
        h, w = e.image.shape
        x0, x1 = max(xs.min() - 1, 0), min(xs.max() + 2, w)
        y0, y1 = max(ys.min() - 1, 0), min(ys.max() + 2, h)
        bm = np.zeros((y1 - y0, x1 - x0), bool)
        bm[ys - y0, xs - x0] = True
        bm = ndimage.binary_closing(bm, iterations=1) | bm
        iv = np.where(bm, e.image.ivar[y0:y1, x0:x1], 0.0)
        if not np.any(iv > 0):
            continue
        im = e.image.cut(x0, x1, y0, y1, ivar=iv)
        out.append((k, int(x0), int(y0), im))
    return out


def fit_blob(exposures, cuts, sources: list[BlobSource], model_set: str = "dr9",
             window: int = SELECT_WINDOW) -> tuple[list[FitRow], list[np.ndarray]]:
    """Fit and classify the sources of one blob on its cut-outs; returns the kept rows and
    the blob's model image on each cut-out."""
    import dataclasses

    from legacylake.photometry.model.fitter import Fitter
    from legacylake.photometry.model.select import select_models
    images = [c[3] for c in cuts]
    bands = sorted({im.band for im in images})
    if not images or not sources:
        return [], []
    init = [s.source(bands) for s in sources]
    # reference stars keep their catalogue positions (reference 4.1: not fitted); frozen
    # (pre-burned) galaxies keep every parameter
    frozen = [s.ref >= 0 and not s.galaxy for s in sources]
    frozen_all = [s.freeze for s in sources]
    f1 = Fitter(images, init, bands, frozen_pos=frozen, frozen_src=frozen_all).fit(MAX_ITER_STAGE1)
    res1 = f1.results()
    sel = select_models(images, res1, model_set, window=window,
                        force_psf=[s.forced_psf for s in sources], max_iter=MAX_ITER_STAGE1,
                        frozen_pos=frozen, all_models=[s.all_models for s in sources], frozen_src=frozen_all)
    kept, chosen = [], []
    for s, (pick, dchisq, r) in zip(sources, sel):
        if pick == "" and s.ref < 0:
            continue
        if pick in ("", "SIMP", "COMP"):
            pick_fit = {"SIMP": "EXP", "COMP": "SER"}.get(pick, "PSF")
        else:
            pick_fit = pick
        src = r.source
        chosen.append(dataclasses.replace(src, type=pick_fit, flux=dict(src.flux), r_e=src.r_e if src.r_e > 0 else 0.45,
                                          n=src.n if src.n > 0 else 4.0))
        kept.append((s, pick if pick else "PSF", dchisq))
    if not kept:
        return [], [np.zeros(im.shape) for im in images]
    # position frozen for reference stars still fitted as PSF (galaxies move: reference 8)
    f = Fitter(images, chosen, bands, frozen_pos=[k[0].ref >= 0 and c.type == "PSF" for k, c in zip(kept, chosen)],
               frozen_src=[k[0].freeze for k in kept])
    if any(k[1] != "SIMP" for k in kept):
        f.fit(MAX_ITER_FINAL)
    results = f.results()
    models = f.model_images()
    rows = []
    for si, ((s, pick, dchisq), r) in enumerate(zip(kept, results)):
        rows.append(FitRow(s, pick, r, dchisq, _metrics(f, si, images, models, bands, exposures, cuts)))
    return rows, models


def _metrics(f, si: int, images, models, bands, exposures, cuts) -> dict:
    """fracflux, fracmasked, fracin, nea and blob-nea sums per band for source ``si``."""
    p = f.p
    d = f.layout[si]
    out = {}
    acc = {b: dict(ff_num=0.0, ff_w=0.0, fm_num=0.0, fin_num=0.0, fin_den=0.0, nea_num=0.0, nea_den=0.0,
                   bnea=0.0) for b in bands}
    for ii, (im, mod) in enumerate(zip(images, models)):
        b = im.band
        e = exposures[cuts[ii][0]]
        flux = float(p[d["flux_" + b]])
        F = abs(flux)
        pt = f._patch(si, ii, p, False)
        a = acc[b]
        a["fin_den"] += F
        if pt is None or F == 0:
            continue
        unit = pt.model
        m = flux * unit
        sl = pt.slices
        w = abs(float(np.sum(m)) / F)
        s2 = float(np.sum(m * m))
        if s2 > 0:
            a["ff_num"] += w * float(np.sum((mod[sl] - m) * np.abs(m))) / s2
        a["ff_w"] += w
        a["fm_num"] += float(np.sum((im.ivar[sl] == 0) * np.abs(m))) / F
        a["fin_num"] += abs(float(np.sum(m)))
        su, s2u = float(np.sum(unit)), float(np.sum(unit * unit))
        if s2u > 0 and su > 0:
            nea = su * su / s2u
            a["nea_num"] += su / e.sig1 ** 2
            a["nea_den"] += su / (e.sig1 ** 2 * nea * im.pixscale ** 2)
        um = unit * (im.ivar[sl] > 0)
        su2 = float(np.sum(um * um))
        if su2 > 0 and float(np.sum(um)) > 0:
            mnea = float(np.sum(um)) ** 2 / su2
            a["bnea"] += 1.0 / (e.sig1 ** 2 * mnea * im.pixscale ** 2)
    for b, a in acc.items():
        out[f"fracflux_{b}"] = a["ff_num"] / a["ff_w"] if a["ff_w"] > 0 else 0.0
        out[f"fracmasked_{b}"] = a["fm_num"] / a["ff_w"] if a["ff_w"] > 0 else 0.0
        out[f"fracin_{b}"] = a["fin_num"] / a["fin_den"] if a["fin_den"] > 0 else 0.0
        out[f"nea_{b}"] = a["nea_num"] / a["nea_den"] if a["nea_den"] > 0 else 0.0
        out[f"bnea_sum_{b}"] = a["bnea"]
    return out
