"""Real Community Pipeline (CP) images for ``run-brick``: the legacypipe survey-dir layout.

A survey folder (e.g. legacypipe-testcase3) holds::

    survey-ccds-*.fits[.gz]       CCD table: image_filename, image_hdu, filter, ccdname, exptime,
                                  ccdzpt (mag for 1 ADU/s), fwhm (pixels), sig1 (nmgy), mjd_obs
    images/<image_filename>       ooi (image, ADU), with oow (inverse variance, 1/ADU^2) and
                                  ood (CP integer data-quality codes) next to it
    calib/psfex-single/<image base>/<image base>-<ccdname>-psfex.fits     PsfEx model
    calib/sky-single/<image base>/<image base>-<ccdname>-splinesky.fits   spline sky (ADU)
    gaia/chunk-*.fits             Gaia DR2 reference stars

Calibration (reference 3.1): ``zpscale = 10^((ccdzpt + 2.5 log10(exptime) - 22.5) / 2.5)``;
pixels in nmgy = (ooi - spline sky) / zpscale; ivar = oow * zpscale^2, weights below 0.1x
the median positive weight set to 0 and above 1.3 / sig1^2 reset to it. CP DQ codes are
remapped to the DR9 bits (reference 2.3, :func:`remap_dq`) and ivar is 0 wherever DQ != 0.
The PSF is the pixelized PsfEx model (:class:`~.psf.PsfEx`); the cut-outs' PsfEx and sky
files are already expressed in cut-out pixels (PsfEx ``POLZERO`` shifted; spline sky ``x0, y0``
offsets applied here). If a spline-sky file is absent or unreadable, the image's median is
subtracted instead (the exposure's ``sky`` attribute says which).
"""

from __future__ import annotations

import glob
import os

import numpy as np

from legacylake.catalogs_schema import ANYMASK

from ..errors import UserError
from .brick_images import Exposure

#: CP integer DQ code -> DR9 DQ bit name (reference 2.3, remap_dq_cp_codes)
CP_DQ_CODES = {1: "BADPIX", 2: "BADPIX", 3: "SATUR", 4: "BLEED", 5: "CR", 6: "BADPIX", 7: "TRANS", 8: "TRANS"}
#: codes DECam ignores (streaks, code 8)
DECAM_IGNORE = (8,)
LOW_WEIGHT = 0.1
HIGH_WEIGHT = 1.3


def is_cp_layout(survey_dir: str) -> bool:
    return bool(glob.glob(os.path.join(survey_dir, "survey-ccds-*.fits*")))


def remap_dq(dq: np.ndarray, ignore=DECAM_IGNORE) -> np.ndarray:
    """CP integer DQ codes -> DR9 DQ bits (int16). SATUR|BLEED regions touching the image edge
    are recoded EDGE (reference 2.3)."""
    from scipy import ndimage
    dq = np.asarray(dq)
    out = np.zeros(dq.shape, np.int16)
    for code, name in CP_DQ_CODES.items():
        if code in ignore:
            continue
        out[dq == code] |= ANYMASK.mask(name)
    sb = (out & (ANYMASK.mask("SATUR") | ANYMASK.mask("BLEED"))) != 0
    if sb.any():
        lab, n = ndimage.label(sb)
        edge = np.unique(np.r_[lab[0], lab[-1], lab[:, 0], lab[:, -1]])
        edge = edge[edge > 0]
        if len(edge):
            m = np.isin(lab, edge)
            out[m] = (out[m] & ~(ANYMASK.mask("SATUR") | ANYMASK.mask("BLEED"))) | ANYMASK.mask("EDGE")
    return out


def spline_sky(path: str, shape: tuple[int, int]) -> np.ndarray:
    """Sky (ADU) of an image of ``shape`` from a legacypipe spline-sky table: an interpolating
    bicubic spline through ``gridvals`` at (ygrid, xgrid) in CCD pixels; the cut-out's pixel
    (x, y) is CCD pixel (x + x0, y + y0)."""
    import fitsio
    from scipy.interpolate import RectBivariateSpline
    t = fitsio.read(path, ext=1)
    cols = {c.lower(): c for c in t.dtype.names}
    xg = np.asarray(t[cols["xgrid"]][0], np.float64)
    yg = np.asarray(t[cols["ygrid"]][0], np.float64)
    gv = np.asarray(t[cols["gridvals"]][0], np.float64).reshape(len(yg), len(xg))
    x0, y0 = float(t[cols["x0"]][0]), float(t[cols["y0"]][0])
    k = int(t[cols["order"]][0]) if "order" in cols else 3
    spl = RectBivariateSpline(yg, xg, gv, kx=min(k, len(yg) - 1), ky=min(k, len(xg) - 1), s=0)
    h, w = shape
    return spl(np.arange(h) + y0, np.arange(w) + x0)


def _calib(survey_dir: str, kind: str, image_filename: str, ccdname: str, suffix: str) -> str:
    base = image_filename.replace(".fits.fz", "").replace(".fits", "")
    if base.endswith("." + ccdname):  # test cut-outs are named <image>.<ccdname>.fits
        base = base[:-len(ccdname) - 1]
    return os.path.join(survey_dir, "calib", kind, base, f"{os.path.basename(base)}-{ccdname}-{suffix}.fits")


def read_ccds(survey_dir: str) -> np.ndarray:
    import fitsio
    paths = sorted(glob.glob(os.path.join(survey_dir, "survey-ccds-*.fits*")))
    if not paths:
        raise UserError(f"{survey_dir}: no survey-ccds-*.fits CCD table")
    tabs = [fitsio.read(p, ext=1, lower=True) for p in paths]
    return np.concatenate(tabs) if len(tabs) > 1 else tabs[0]


def load_cp_exposures(survey_dir: str, bands: str | None = None) -> list[Exposure]:
    """Every CCD of the survey folder's CCD table as an :class:`Exposure` (nmgy, DR9 DQ bits,
    PsfEx PSF); ``exposure.sky`` is "spline" or "median"."""
    import fitsio
    from astropy.wcs import WCS

    from .image import Image
    from .psf import PsfEx
    ccds = read_ccds(survey_dir)
    out = []
    for c in ccds:
        band = str(c["filter"]).strip().lower()
        if bands and band not in bands:
            continue
        fn = str(c["image_filename"]).strip()
        ccd = str(c["ccdname"]).strip()
        ooi = os.path.join(survey_dir, "images", fn)
        oow, ood = ooi.replace("_ooi_", "_oow_"), ooi.replace("_ooi_", "_ood_")
        for p in (ooi, oow, ood):
            if not os.path.exists(p):
                raise UserError(f"{p}: missing (CCD table row {fn} {ccd})")
        hdu = int(c["image_hdu"])
        img, hdr = fitsio.read(ooi, ext=hdu, header=True)
        wt = fitsio.read(oow, ext=hdu).astype(np.float64)
        dq = remap_dq(fitsio.read(ood, ext=hdu))
        img = img.astype(np.float64)
        if not (img.shape == wt.shape == dq.shape):
            raise UserError(f"{ooi}: ooi {img.shape}, oow {wt.shape}, ood {dq.shape} differ in shape")
        hd = {k: hdr[k] for k in hdr.keys() if k not in ("COMMENT", "HISTORY", "")}
        wcs = WCS(hd, naxis=2)
        if not wcs.has_celestial:
            raise UserError(f"{ooi}[{hdu}]: no celestial WCS in the header")
        skyf = _calib(survey_dir, "sky-single", fn, ccd, "splinesky")
        try:
            sky, how = spline_sky(skyf, img.shape), "spline"
        except (OSError, KeyError, ValueError):
            sky, how = np.full(img.shape, float(np.median(img[dq == 0])) if (dq == 0).any() else 0.0), "median"
        exptime = float(c["exptime"])
        zpt = float(c["ccdzpt"]) + 2.5 * np.log10(exptime)
        zpscale = 10 ** ((zpt - 22.5) / 2.5)
        data = (img - sky) / zpscale
        ivar = wt * zpscale ** 2
        sig1 = float(c["sig1"])
        pos = ivar[ivar > 0]
        if pos.size:
            ivar[ivar < LOW_WEIGHT * np.median(pos)] = 0.0
        ivar = np.minimum(ivar, HIGH_WEIGHT / sig1 ** 2)
        ivar[(dq != 0) | ~np.isfinite(data)] = 0.0
        data[~np.isfinite(data)] = 0.0
        psff = _calib(survey_dir, "psfex-single", fn, ccd, "psfex")
        if not os.path.exists(psff):
            raise UserError(f"{psff}: missing PsfEx model for {fn} {ccd}")
        psf = PsfEx(psff)
        im = Image(data, ivar, wcs, band, psf, ooi)
        sat = float(hdr.get("SATURATE", np.inf))
        e = Exposure(im, dq, sig1, float(c["fwhm"]) * im.pixscale, float(c["mjd_obs"]),
                     (sat - float(np.median(sky))) / zpscale)
        e.sky = how
        e.zpscale = zpscale
        out.append(e)
    if not out:
        raise UserError(f"{survey_dir}: no CCDs in bands {bands}")
    return out


GAIA_COLUMNS = ("SOURCE_ID", "RA", "DEC", "RA_ERROR", "DEC_ERROR", "PHOT_G_MEAN_MAG", "PHOT_BP_MEAN_MAG", "PHOT_RP_MEAN_MAG",
                "PHOT_G_MEAN_FLUX_OVER_ERROR", "ASTROMETRIC_EXCESS_NOISE", "REF_EPOCH", "PMRA", "PMDEC",
                "PARALLAX", "PMRA_ERROR", "PMDEC_ERROR", "PARALLAX_ERROR")


def gaia_refs(survey_dir: str, box, margin_deg: float = 0.01) -> np.ndarray | None:
    """Gaia stars of ``gaia/chunk-*.fits`` inside ``box`` (ra1, ra2, dec1, dec2) plus a margin,
    upper-case columns (:data:`GAIA_COLUMNS`), or None if the folder has no Gaia chunks."""
    import fitsio
    paths = sorted(glob.glob(os.path.join(survey_dir, "gaia", "*.fits")))
    if not paths:
        return None
    ra1, ra2, dec1, dec2 = box
    cosd = np.cos(np.deg2rad(0.5 * (dec1 + dec2)))
    parts = []
    for p in paths:
        t = fitsio.read(p, ext=1, lower=True)
        ok = ((t["ra"] > ra1 - margin_deg / cosd) & (t["ra"] < ra2 + margin_deg / cosd)
              & (t["dec"] > dec1 - margin_deg) & (t["dec"] < dec2 + margin_deg))
        if ok.any():
            parts.append(t[ok])
    dt = [(k, "i8" if k == "SOURCE_ID" else "f8") for k in GAIA_COLUMNS]
    if not parts:
        return np.zeros(0, dtype=dt)
    t = np.concatenate(parts)
    _, first = np.unique(t["source_id"], return_index=True)
    t = t[np.sort(first)]
    out = np.zeros(len(t), dtype=dt)
    for k in GAIA_COLUMNS:
        v = np.asarray(t[k.lower()], np.float64 if k != "SOURCE_ID" else np.int64)
        out[k] = np.nan_to_num(v, nan=0.0) if k.endswith("_ERROR") or k in ("PMRA", "PMDEC", "PARALLAX") else v
    return out
