"""Derived catalog columns (reference 5): per-exposure quantities at each source's central
brick pixel (nobs, anymask, allmask, psfsize, psfdepth, galdepth, mjd_min/max, SATUR),
inverse-variance coadds and aperture photometry, fiber fluxes.

Differences from the survey, by design here: coadds are nearest-pixel resamples (not
Lanczos-3) and masked input pixels are not interpolated, only excluded; apertures are
exact circles approximated by 7x7 sub-pixel sampling; ``apflux_blobresid`` uses the model
of all sources (equal to ``apflux_resid``).
"""

from __future__ import annotations

import numpy as np

from legacylake.catalogs_schema import ANYMASK
from legacylake.catalogs_schema.constants import (APERTURE_RADII_OPTICAL_ARCSEC, FIBER_DIAMETER_ARCSEC,
                                                  FIBER_SEEING_FWHM_ARCSEC, PIXSCALE_ARCSEC)

from legacylake.photometry.model.image import Image, tan_wcs

SATUR_DILATE = 4
SUBSAMPLE = 7


def galnorm(exp) -> float:
    """sqrt(sum p^2) of a 0.45 arcsec round EXP convolved with the exposure PSF (65x65 box)."""
    from legacylake.photometry.model.fitter import Fitter, Source
    im = Image(np.zeros((65, 65)), np.ones((65, 65)), tan_wcs(0.0, 0.0, (65, 65), exp.image.pixscale),
               exp.band, exp.image.psf)
    f = Fitter([im], [Source("EXP", 0.0, 0.0, {exp.band: 1.0}, 0.45)], [exp.band])
    m = f.model_images()[0]
    return float(np.sqrt(np.sum(m * m)))


def at_sources(exposures, ra: np.ndarray, dec: np.ndarray, bands, depths: bool = True) -> dict:
    """Per-band columns from the exposures covering each source's position (nearest pixel);
    ``depths=False``: coverage (nobs) only."""
    n = len(ra)
    out = {}
    for b in bands:
        for k, dt in (("nobs", np.int16), ("anymask", np.int16), ("satur", bool)):
            out[f"{k}_{b}"] = np.zeros(n, dt)
        out[f"allmask_{b}"] = np.full(n, -1, np.int16)
        for k in ("psfdepth", "galdepth", "s1", "s2"):
            out[f"{k}_{b}"] = np.zeros(n)
    out["mjd_min"] = np.full(n, np.inf)
    out["mjd_max"] = np.full(n, -np.inf)
    satur_bits = ANYMASK.mask("SATUR")
    for e in exposures:
        b = e.band
        if b not in bands:
            continue
        h, w = e.image.shape
        x, y = e.image.wcs.all_world2pix(np.column_stack([ra, dec]), 0).T
        ix, iy = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
        cov = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        c = np.flatnonzero(cov)
        dq = e.dq[iy[c], ix[c]].astype(np.int16)
        out[f"nobs_{b}"][c] += 1
        if not depths:
            continue
        out[f"anymask_{b}"][c] |= dq
        out[f"allmask_{b}"][c] &= dq
        good = e.image.ivar[iy[c], ix[c]] > 0
        pn = e.psfnorm
        gn = getattr(e, "galnorm", None) or galnorm(e)
        e.galnorm = gn
        out[f"psfdepth_{b}"][c[good]] += pn ** 2 / e.sig1 ** 2
        out[f"galdepth_{b}"][c[good]] += gn ** 2 / e.sig1 ** 2
        neff = e.image.pixscale ** 2 / pn ** 2
        out[f"s1_{b}"][c] += 1.0 / e.sig1 ** 2
        out[f"s2_{b}"][c] += 1.0 / (e.sig1 ** 2 * neff)
        out["mjd_min"][c] = np.minimum(out["mjd_min"][c], e.mjd)
        out["mjd_max"][c] = np.maximum(out["mjd_max"][c], e.mjd)
        # SATUR within 4 px (the survey dilates its SATUR map by 4 px)
        sat = (e.dq & satur_bits) != 0
        if sat.any():
            for j in c:
                ya, yb = max(iy[j] - SATUR_DILATE, 0), min(iy[j] + SATUR_DILATE + 1, h)
                xa, xb = max(ix[j] - SATUR_DILATE, 0), min(ix[j] + SATUR_DILATE + 1, w)
                if sat[ya:yb, xa:xb].any():
                    out[f"satur_{b}"][j] = True
    for b in bands:
        nobs = out[f"nobs_{b}"]
        out[f"allmask_{b}"][nobs == 0] = 0
        s1, s2 = out.pop(f"s1_{b}"), out.pop(f"s2_{b}")
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"psfsize_{b}"] = np.where(s2 > 0, 2 * np.sqrt(2 * np.log(2)) * np.sqrt(s1 / np.where(s2 > 0, s2, 1))
                                           / (2 * np.sqrt(np.pi)), 0.0)
    out["mjd_min"][~np.isfinite(out["mjd_min"])] = 0.0
    out["mjd_max"][~np.isfinite(out["mjd_max"])] = 0.0
    return out


def coadds(region, exposures, pixmaps, models, bands) -> dict:
    """{band: (image coadd, ivar coadd, residual coadd)} over the region, nmgy, nearest pixel."""
    x0, x1, y0, y1 = region
    out = {}
    for e, (ix, iy, inside), m in zip(exposures, pixmaps, models):
        if e.band not in bands:
            continue
        if e.band not in out:
            out[e.band] = [np.zeros((y1 - y0, x1 - x0), np.float32) for _ in range(3)]
        ci, cv, cr = out[e.band]
        iv = np.where(inside, e.image.ivar[iy, ix], 0.0)
        d = e.image.data[iy, ix]
        ci += (iv * d).astype(np.float32)
        cv += iv.astype(np.float32)
        cr += (iv * (d - m[iy, ix])).astype(np.float32)
    res = {}
    for b, (ci, cv, cr) in out.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            res[b] = (np.where(cv > 0, ci / cv, 0.0), cv, np.where(cv > 0, cr / cv, 0.0))
    return res


def _aperture_weights(dx: float, dy: float, radii_px, half: int) -> np.ndarray:
    """(nr, 2 half+1, 2 half+1) fractional pixel coverage of circles centred at sub-pixel (dx, dy)."""
    s = (np.arange(SUBSAMPLE) + 0.5) / SUBSAMPLE - 0.5
    g = np.arange(-half, half + 1)
    X = (g[None, :, None, None] + s[None, None, None, :]) - dx
    Y = (g[:, None, None, None] + s[None, None, :, None]) - dy
    r2 = X * X + Y * Y  # (ny, nx, sy, sx)
    return np.stack([np.mean(r2 <= r * r, axis=(2, 3)) for r in radii_px])


def aperture_photometry(co, bx: np.ndarray, by: np.ndarray, region) -> dict:
    """apflux, apflux_ivar, apflux_resid, apflux_masked at region pixel (bx, by) (brick px)."""
    img, iv, res = co
    x0, _, y0, _ = region
    radii = np.asarray(APERTURE_RADII_OPTICAL_ARCSEC) / PIXSCALE_ARCSEC
    half = int(np.ceil(radii.max())) + 1
    n = len(bx)
    out = {k: np.zeros((n, len(radii)), np.float32) for k in ("apflux", "apflux_ivar", "apflux_resid",
                                                                 "apflux_masked")}
    H, W = img.shape
    for i in range(n):
        cx, cy = bx[i] - x0, by[i] - y0
        ix, iy = int(np.rint(cx)), int(np.rint(cy))
        wts = _aperture_weights(cx - ix, cy - iy, radii, half)
        ya, yb, xa, xb = iy - half, iy + half + 1, ix - half, ix + half + 1
        sy = slice(max(ya, 0), min(yb, H))
        sx = slice(max(xa, 0), min(xb, W))
        if sy.start >= sy.stop or sx.start >= sx.stop:
            continue
        wsub = wts[:, sy.start - ya:sy.stop - ya, sx.start - xa:sx.stop - xa]
        d, v, r = img[sy, sx], iv[sy, sx], res[sy, sx]
        good = v > 0
        out["apflux"][i] = np.sum(wsub * (d * good), axis=(1, 2))
        out["apflux_resid"][i] = np.sum(wsub * (r * good), axis=(1, 2))
        var = np.sum(wsub * np.where(good, 1.0 / np.where(good, v, 1.0), 0.0), axis=(1, 2))
        out["apflux_ivar"][i] = np.where(var > 0, 1.0 / np.maximum(var, 1e-300), 0.0)
        area = np.pi * radii ** 2
        out["apflux_masked"][i] = np.sum(wsub * ~good, axis=(1, 2)) / area
    return out


def fiber_fluxes(brick, region, sources, bands, ok) -> dict:
    """fiberflux_b / fibertotflux_b: each source rendered with a 1 arcsec FWHM Gaussian PSF on
    the brick grid, summed in a 1.5 arcsec diameter aperture at its position (reference 5).
    ``sources``: fitter Sources (final fits); ``ok[i][b]``: flux_ivar > 0 (else fiberflux 0)."""
    from legacylake.photometry.model.fitter import Fitter
    from legacylake.photometry.model.psf import GaussianMixturePSF
    from legacylake.photometry.brick.target import as_target
    x0, x1, y0, y1 = region
    bw = as_target(brick).wcs[y0:y1, x0:x1]
    psf = GaussianMixturePSF.from_fwhm(FIBER_SEEING_FWHM_ARCSEC, PIXSCALE_ARCSEC)
    rfib = FIBER_DIAMETER_ARCSEC / 2 / PIXSCALE_ARCSEC
    n = len(sources)
    out = {}
    if n == 0:
        return {f"{k}_{b}": np.zeros(0, np.float32) for b in bands for k in ("fiberflux", "fibertotflux")}
    xy = bw.all_world2pix(np.array([[s.ra, s.dec] for s in sources]), 0)
    for b in bands:
        im = Image(np.zeros((y1 - y0, x1 - x0)), np.zeros((y1 - y0, x1 - x0)), bw, b, psf)
        f = Fitter([im], sources, [b])
        tot = np.zeros(im.shape)
        own = np.zeros(n)
        for si, s in enumerate(sources):
            fl = float(s.flux.get(b, 0.0))
            if fl <= 0 or not ok[si].get(b, False):
                continue
            pt = f._patch(si, 0, f.p, False)
            if pt is None:
                continue
            m = fl * pt.model
            tot[pt.slices] += m
            w = _aperture_weights(*(xy[si] - np.rint(xy[si])), [rfib], int(np.ceil(rfib)) + 1)[0]
            own[si] = _sum_at(m, pt.x0, pt.y0, xy[si], w)
        out[f"fiberflux_{b}"] = own.astype(np.float32)
        w_all = [(_aperture_weights(*(p - np.rint(p)), [rfib], int(np.ceil(rfib)) + 1)[0]) for p in xy]
        out[f"fibertotflux_{b}"] = np.array([_sum_at(tot, 0, 0, p, w) for p, w in zip(xy, w_all)], np.float32)
    return out


def _sum_at(arr: np.ndarray, ox: int, oy: int, p, w: np.ndarray) -> float:
    half = w.shape[0] // 2
    ix, iy = int(np.rint(p[0])) - ox, int(np.rint(p[1])) - oy
    H, W = arr.shape
    ya, xa = iy - half, ix - half
    sy = slice(max(ya, 0), min(iy + half + 1, H))
    sx = slice(max(xa, 0), min(ix + half + 1, W))
    if sy.start >= sy.stop or sx.start >= sx.stop:
        return 0.0
    return float(np.sum(w[sy.start - ya:sy.stop - ya, sx.start - xa:sx.stop - xa] * arr[sy, sx]))
