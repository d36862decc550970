"""Detection maps, SED-matched detection with peak vetting, and blobs (reference 4.2).

Maps are over the brick region (see :mod:`legacylake.photometry.brick.images`); pixel coordinates returned are
region-relative (add rx0, ry0 for brick pixels).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from legacylake.photometry.brick.images import DET_SATUR_BITS, Exposure

NSIGMA = 6.0
#: SEDs (canonical-to-band flux ratios s_b) after the single-band ones: Flat, Red.
SEDS = {"flat": {"g": 1.0, "r": 1.0, "z": 1.0}, "red": {"g": 2.5, "r": 1.0, "z": 0.4}}
VETO_RADIUS = 4.0      # px
HOT_DILATE = 8.0       # px
SADDLE_MIN = 2.0       # a saddle drops at least this much S/N ...
SADDLE_FRACTION = 0.1  # ... or this fraction of the peak


def exposure_detmap(exp: Exposure) -> tuple[np.ndarray, np.ndarray]:
    """Point-source flux estimate (nmgy) of every pixel and its inverse variance (step 1)."""
    im = exp.image
    sigma = exp.fwhm / 2.35482 / im.pixscale
    psfnorm = 1.0 / (2.0 * np.sqrt(np.pi) * sigma)
    sat = (exp.dq & DET_SATUR_BITS) != 0
    good = im.ivar > 0
    data = np.where(good, im.data, 0.0)
    if sat.any():
        data = np.where(sat, max(float(np.max(data)), exp.saturate if np.isfinite(exp.saturate) else 0.0), data)
    det = ndimage.gaussian_filter(data, sigma, mode="constant") / psfnorm ** 2
    detiv = np.where(good | sat, psfnorm ** 2 / exp.sig1 ** 2, 0.0)
    return det, detiv


def band_maps(maps: dict, region, exposures, pixmaps) -> None:
    """Accumulate per-band inverse-variance-weighted detection maps into ``maps``
    ({band: [sum det*iv, sum iv, saturated]}); nearest-pixel resampling (step 2)."""
    x0, x1, y0, y1 = region
    for e, (ix, iy, inside) in zip(exposures, pixmaps):
        det, detiv = exposure_detmap(e)
        acc = maps.setdefault(e.band, [np.zeros((y1 - y0, x1 - x0)), np.zeros((y1 - y0, x1 - x0)),
                                       np.zeros((y1 - y0, x1 - x0), bool)])
        iv = np.where(inside, detiv[iy, ix], 0.0)
        acc[0] += det[iy, ix] * iv
        acc[1] += iv
        acc[2] |= inside & ((e.dq[iy, ix] & DET_SATUR_BITS) != 0)


def finish_maps(maps: dict) -> dict:
    """{band: (det nmgy, detiv)} from the accumulators; the saturated pixels of all bands
    (any exposure) under key ``"satur"`` when any."""
    out = {}
    sat = None
    for b, (s, w, *rest) in maps.items():
        out[b] = (np.where(w > 0, s / np.maximum(w, 1e-300), 0.0), w)
        if rest:
            sat = rest[0] if sat is None else (sat | rest[0])
    if sat is not None and sat.any():
        out["satur"] = sat
    return out


def bands_of(dm: dict) -> list[str]:
    """The band keys of a detection-map dict (not ``"satur"``)."""
    return [b for b in dm if b != "satur"]


def sed_snmap(dm: dict, sed: dict) -> np.ndarray:
    """Combined S/N map for an SED: m = sum D iv / s / sum iv / s^2, S/N = m sqrt(sum iv / s^2)."""
    num = den = 0.0
    for b, s in sed.items():
        if b not in dm or s == 0:
            continue
        d, iv = dm[b]
        num = num + d * iv / s
        den = den + iv / s ** 2
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.sqrt(np.maximum(den, 1e-300)), 0.0)


def sed_list(bands) -> list[tuple[str, dict]]:
    """Single-band SEDs in reversed band order (z first), then Flat and Red."""
    order = [b for b in ("g", "r", "i", "z") if b in bands][::-1]
    seds = [(b, {b: 1.0}) for b in order]
    if len(order) > 1:
        seds += [(k, {b: v for b, v in s.items() if b in bands}) for k, s in SEDS.items()]
    return seds


def _disk_veto(veto: np.ndarray, x: float, y: float, r: float) -> None:
    h, w = veto.shape
    xa, xb = max(int(x - r), 0), min(int(x + r) + 2, w)
    ya, yb = max(int(y - r), 0), min(int(y + r) + 2, h)
    if xa >= xb or ya >= yb:
        return
    yy, xx = np.mgrid[ya:yb, xa:xb]
    veto[ya:yb, xa:xb] |= (xx - x) ** 2 + (yy - y) ** 2 <= r * r


def find_peaks(sn: np.ndarray, veto: np.ndarray, sources_xy: list, nsigma: float = NSIGMA,
               satur: np.ndarray | None = None):
    """Accepted peaks (x, y) of one S/N map, brightest first, with the veto, saddle and
    aperture tests of reference 4.2 step 4. Appends to ``sources_xy`` and updates ``veto``.

    Saddle test as the survey runs it: the map is first cut into regions above the lowest
    saddle (nsigma - 2, dilated 1 px, saturated pixels ``satur`` included); a peak's segment
    is the part of its region above peak - max(2, 0.1 peak) (dilated, saturated pixels
    included, holes filled) connected to it; a peak whose segment holds an earlier source is
    rejected. Either way the segment joins the veto map (fainter peaks in it are rejected
    at once). Saturated pixels joining every segment is what keeps the peaks of a saturated
    star's halo and bleed trail from becoming sources."""
    h, w = sn.shape
    mx = ndimage.maximum_filter(sn, size=3, mode="constant", cval=-np.inf)
    pk = (sn >= mx) & (sn > nsigma)
    pk[0, :] = pk[-1, :] = pk[:, 0] = pk[:, -1] = False
    ys, xs = np.nonzero(pk)
    order = np.argsort(-sn[ys, xs], kind="stable")
    occupied = np.zeros((h, w), bool)
    for sx, sy in sources_xy:
        ix, iy = int(round(sx)), int(round(sy))
        if 0 <= ix < w and 0 <= iy < h:
            occupied[iy, ix] = True
    new = []
    if not len(order):
        return new
    low = ndimage.binary_dilation(sn > nsigma - SADDLE_MIN)
    if satur is not None:
        low |= satur
    allblobs, _ = ndimage.label(low)
    allslices = ndimage.find_objects(allblobs)
    yy_ann, xx_ann = np.mgrid[-20:21, -20:21]
    rr = np.hypot(xx_ann, yy_ann)
    ann = (rr >= 10) & (rr <= 20)
    for k in order:
        x, y = int(xs[k]), int(ys[k])
        if veto[y, x]:
            continue
        peak = sn[y, x]
        ab = allblobs[y, x]
        sl = allslices[ab - 1]
        lvl = peak - max(SADDLE_MIN, SADDLE_FRACTION * peak)
        seg = ndimage.binary_dilation(sn[sl] > lvl)
        if satur is not None:
            seg |= satur[sl]
        seg &= allblobs[sl] == ab
        seg = ndimage.binary_fill_holes(seg)
        lab, _ = ndimage.label(seg)
        seg = lab == lab[y - sl[0].start, x - sl[1].start]
        veto[sl] |= seg
        if np.any(seg & occupied[sl]):
            continue
        # aperture test: the peak must stand 6 above the 16th percentile of an annulus 10-20 px
        ay, ax = yy_ann + y, xx_ann + x
        ok = ann & (ay >= 0) & (ay < h) & (ax >= 0) & (ax < w)
        if ok.any() and peak - np.percentile(sn[ay[ok], ax[ok]], 16) < nsigma:
            continue
        new.append((float(x), float(y)))
        occupied[y, x] = True
        _disk_veto(veto, x, y, VETO_RADIUS)
    sources_xy.extend(new)
    return new


def hot_regions(sn: np.ndarray, src_xy: list, nsigma: float = NSIGMA) -> np.ndarray:
    """Pixels with S/N > nsigma dilated by 8 px, holes filled, only regions holding a source."""
    hot = sn > nsigma
    if not hot.any():
        return hot
    hot = ndimage.distance_transform_edt(~hot) <= HOT_DILATE
    hot = ndimage.binary_fill_holes(hot)
    lab, n = ndimage.label(hot)
    keep = np.zeros(n + 1, bool)
    h, w = sn.shape
    for x, y in src_xy:
        ix, iy = int(round(x)), int(round(y))
        if 0 <= ix < w and 0 <= iy < h:
            keep[lab[iy, ix]] = True
    keep[0] = False
    return keep[lab]


def detect(dm: dict, ref_xy: list, nsigma: float = NSIGMA, veto_extra: np.ndarray | None = None):
    """SED-matched detection: (peaks [(x, y, sed)], hot mask). ``ref_xy`` are reference
    sources (vetoed within 4 px, they own hot regions)."""
    bands = bands_of(dm)
    any_map = dm[bands[0]][0]
    satur = dm.get("satur")
    veto = np.zeros(any_map.shape, bool) if veto_extra is None else veto_extra.copy()
    for x, y in ref_xy:
        _disk_veto(veto, x, y, VETO_RADIUS)
    srcs = list(ref_xy)
    peaks = []
    hot = np.zeros(any_map.shape, bool)
    for name, sed in sed_list(bands):
        sn = sed_snmap(dm, sed)
        # each SED starts from the base veto plus 4-px disks around the peaks found so far
        # (its own saddle segments veto only its own fainter peaks), as the survey runs them
        v = veto.copy()
        for x, y, _ in peaks:
            _disk_veto(v, x, y, VETO_RADIUS)
        new = find_peaks(sn, v, srcs, nsigma, satur)
        peaks += [(x, y, name) for x, y in new]
        hot |= hot_regions(sn, srcs, nsigma)
    return peaks, hot


def blobs(hot: np.ndarray, xy: list) -> tuple[np.ndarray, np.ndarray]:
    """Blob label map (0 = none) and per-source blob label (sources outside any hot region
    get a small blob of their own: a 6-px disk)."""
    hot = hot.copy()
    h, w = hot.shape
    for x, y in xy:
        ix, iy = int(round(x)), int(round(y))
        if 0 <= ix < w and 0 <= iy < h and not hot[iy, ix]:
            _disk_veto(hot, ix, iy, 6.0)
    lab, n = ndimage.label(ndimage.binary_fill_holes(hot))
    which = np.array([lab[min(max(int(round(y)), 0), h - 1), min(max(int(round(x)), 0), w - 1)] for x, y in xy],
                     dtype=np.int64)
    return lab, which
