"""Detection maps, SED-matched detection with peak vetting, and blobs (reference 4.2).

Maps are over the brick region (see :mod:`.brick_images`); pixel coordinates returned are
region-relative (add rx0, ry0 for brick pixels).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .brick_images import SATUR_BITS, Exposure

NSIGMA = 6.0
#: SEDs (canonical-to-band flux ratios s_b) after the single-band ones: Flat, Red.
SEDS = {"flat": {"g": 1.0, "r": 1.0, "z": 1.0}, "red": {"g": 2.5, "r": 1.0, "z": 0.4}}
VETO_RADIUS = 4.0      # px
HOT_DILATE = 8.0       # px
SADDLE_WINDOW = 40     # px half-size of the window in which the saddle segment is traced


def exposure_detmap(exp: Exposure) -> tuple[np.ndarray, np.ndarray]:
    """Point-source flux estimate (nmgy) of every pixel and its inverse variance (step 1)."""
    im = exp.image
    sigma = exp.fwhm / 2.35482 / im.pixscale
    psfnorm = 1.0 / (2.0 * np.sqrt(np.pi) * sigma)
    sat = (exp.dq & SATUR_BITS) != 0
    good = im.ivar > 0
    data = np.where(good, im.data, 0.0)
    if sat.any():
        data = np.where(sat, max(float(np.max(data)), exp.saturate if np.isfinite(exp.saturate) else 0.0), data)
    det = ndimage.gaussian_filter(data, sigma, mode="constant") / psfnorm ** 2
    detiv = np.where(good | sat, psfnorm ** 2 / exp.sig1 ** 2, 0.0)
    return det, detiv


def band_maps(maps: dict, region, exposures, pixmaps) -> None:
    """Accumulate per-band inverse-variance-weighted detection maps into ``maps``
    ({band: [sum det*iv, sum iv]}); nearest-pixel resampling (step 2)."""
    x0, x1, y0, y1 = region
    for e, (ix, iy, inside) in zip(exposures, pixmaps):
        det, detiv = exposure_detmap(e)
        acc = maps.setdefault(e.band, [np.zeros((y1 - y0, x1 - x0)), np.zeros((y1 - y0, x1 - x0))])
        iv = np.where(inside, detiv[iy, ix], 0.0)
        acc[0] += det[iy, ix] * iv
        acc[1] += iv


def finish_maps(maps: dict) -> dict:
    """{band: (det nmgy, detiv)} from the accumulators."""
    out = {}
    for b, (s, w) in maps.items():
        out[b] = (np.where(w > 0, s / np.maximum(w, 1e-300), 0.0), w)
    return out


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


def find_peaks(sn: np.ndarray, veto: np.ndarray, sources_xy: list, nsigma: float = NSIGMA):
    """Accepted peaks (x, y) of one S/N map, brightest first, with the veto, saddle and
    aperture tests of reference 4.2 step 4. Appends to ``sources_xy`` and updates ``veto``."""
    h, w = sn.shape
    mx = ndimage.maximum_filter(sn, size=3, mode="constant", cval=-np.inf)
    pk = (sn >= mx) & (sn > nsigma)
    pk[0, :] = pk[-1, :] = pk[:, 0] = pk[:, -1] = False
    ys, xs = np.nonzero(pk)
    order = np.argsort(-sn[ys, xs])
    occupied = np.zeros((h, w), bool)
    for sx, sy in sources_xy:
        ix, iy = int(round(sx)), int(round(sy))
        if 0 <= ix < w and 0 <= iy < h:
            occupied[iy, ix] = True
    new = []
    yy_ann, xx_ann = np.mgrid[-20:21, -20:21]
    rr = np.hypot(xx_ann, yy_ann)
    ann = (rr >= 10) & (rr <= 20)
    for k in order:
        x, y = int(xs[k]), int(ys[k])
        if veto[y, x]:
            continue
        peak = sn[y, x]
        # saddle test: the segment above peak - max(2, 0.1 peak) must not hold an earlier source
        lvl = peak - max(2.0, 0.1 * peak)
        xa, xb = max(x - SADDLE_WINDOW, 0), min(x + SADDLE_WINDOW + 1, w)
        ya, yb = max(y - SADDLE_WINDOW, 0), min(y + SADDLE_WINDOW + 1, h)
        lab, _ = ndimage.label(sn[ya:yb, xa:xb] > lvl)
        seg = lab == lab[y - ya, x - xa]
        seg = ndimage.binary_dilation(seg)
        if np.any(seg & occupied[ya:yb, xa:xb]):
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
    any_map = next(iter(dm.values()))[0]
    veto = np.zeros(any_map.shape, bool) if veto_extra is None else veto_extra.copy()
    for x, y in ref_xy:
        _disk_veto(veto, x, y, VETO_RADIUS)
    srcs = list(ref_xy)
    peaks = []
    hot = np.zeros(any_map.shape, bool)
    for name, sed in sed_list(list(dm)):
        sn = sed_snmap(dm, sed)
        new = find_peaks(sn, veto, srcs, nsigma)
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
