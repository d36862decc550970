"""Iterative detection on the residual images (reference 4.3, last bullet; FITBITS ITERATIVE).

After the first fit, SED-matched detection is run again at 6 sigma on the detection maps
of the residual images (data - all fitted models), avoiding 2 px around every original
source (detected peaks, reference stars and their fitted positions) and the reference
(BRIGHT, MEDIUM and GALAXY) masks and saturated pixels. A new peak is kept only if its residual
detection S/N exceeds 0.2 x max(S/N of the model image's detection map at that pixel, 1),
which rejects residual structure of bright fitted sources. The kept peaks get blobs of
their own (hot regions of the residual maps) and are fitted and classified by the same
machinery on the residual images, i.e. with the first-pass models held fixed (the
first-pass sources are not refitted).
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import ndimage

from legacylake.photometry.brick.images import DET_SATUR_BITS, SATUR_BITS

AVOID_RADIUS = 2.0     # px around original sources
MODEL_SN_FRACTION = 0.2
SATUR_DILATE = 4       # px


def with_data(exp, data: np.ndarray, clear_satur: bool = True):
    """A shallow copy of an exposure whose image pixels are ``data`` (nmgy); SATUR bits cleared
    so the detection map does not fill saturated cores with the image maximum."""
    e = copy.copy(exp)
    e.image = copy.copy(exp.image)
    e.image.data = data
    if clear_satur:
        e.dq = (exp.dq & ~np.int16(DET_SATUR_BITS)).astype(exp.dq.dtype)
    return e


def avoid_map(shape, region, exposures, pixmaps, orig_xy, refs, bw) -> np.ndarray:
    """Region pixels where new peaks are not accepted: 2 px around original sources, the
    reference masks (BRIGHT, MEDIUM, GALAXY: :func:`legacylake.photometry.brick.references.mask_map`), saturated pixels
    dilated 4 px."""
    from legacylake.photometry.brick.detect import _disk_veto
    x0, _, y0, _ = region
    veto = np.zeros(shape, bool)
    for x, y in orig_xy:
        _disk_veto(veto, float(x), float(y), AVOID_RADIUS)
    if refs is not None and len(refs):
        from legacylake.photometry.brick.references import mask_map
        x1, y1 = x0 + shape[1], y0 + shape[0]
        veto |= mask_map(refs, bw, (x0, x1, y0, y1)) != 0
    sat = np.zeros(shape, bool)
    for e, (ix, iy, inside) in zip(exposures, pixmaps):
        s = (e.dq & SATUR_BITS) != 0
        if s.any():
            sat |= inside & s[iy, ix]
    if sat.any():
        veto |= ndimage.binary_dilation(sat, iterations=SATUR_DILATE)
    return veto


def iterative_sources(exposures, pixmaps, models, region, orig_xy, refs, bw, bands):
    """New sources on the residuals: ([(BlobSource, (x, y) region px, blob label)], blob
    label map, residual exposures). ``models``: per exposure, all first-pass models (nmgy)."""
    from legacylake.photometry.brick.detect import band_maps, bands_of, blobs, detect, finish_maps, sed_list, sed_snmap
    from legacylake.photometry.brick.fit import BlobSource
    x0, _, y0, _ = region
    resid = [with_data(e, e.image.data - m) for e, m in zip(exposures, models)]
    modl = [with_data(e, m.astype(np.float64)) for e, m in zip(exposures, models)]
    acc = {}
    band_maps(acc, region, resid, pixmaps)
    dr = finish_maps(acc)
    acc = {}
    band_maps(acc, region, modl, pixmaps)
    dmod = finish_maps(acc)
    del acc, modl
    shape = next(iter(dr.values()))[0].shape
    veto = avoid_map(shape, region, exposures, pixmaps, orig_xy, refs, bw)
    peaks, hot = detect(dr, [], veto_extra=veto)
    seds = dict(sed_list(bands_of(dr)))
    keep = []
    for name in {p[2] for p in peaks}:
        sn_r, sn_m = sed_snmap(dr, seds[name]), sed_snmap(dmod, seds[name])
        for x, y, nm in peaks:
            if nm == name and sn_r[int(y), int(x)] > MODEL_SN_FRACTION * max(sn_m[int(y), int(x)], 1.0):
                keep.append((x, y))
    keep.sort(key=lambda p: (p[1], p[0]))
    if not keep:
        return [], None, resid
    lab, which = blobs(hot, keep)
    out = []
    for (x, y), blab in zip(keep, which):
        ra, dec = bw.all_pix2world([[x + x0, y + y0]], 0)[0]
        fl = {b: float(dr[b][0][int(y), int(x)]) for b in bands if b in dr}
        out.append((BlobSource(float(ra), float(dec), fl, iterative=True), (x, y), int(blab)))
    return out, lab, resid
