"""Real Community Pipeline (CP) images for ``run-brick``: a legacypipe survey folder.

A survey folder holds the CCD table (:mod:`legacylake.photometry.brick.ccds`), the images under
``images/<image_filename>`` (ooi: image; oow: inverse variance; ood: CP integer data-quality
codes; each plain or tile-compressed ``.fits.fz``, either name accepted) and the calibration
files (:mod:`legacylake.photometry.brick.calib`). Only the CCDs whose footprint overlaps the target, and of each
only the pixel box covering the target, are read.

Calibration (reference 3.1), everything from the files:

* WCS: the image header's (TPV included), CRVAL moved by the CCD table's ``ccdraoff``,
  ``ccddecoff`` (arcsec), as the survey does; pixel scale from it.
* Units: the image is a count rate when the sky level it holds (the sky model at the
  cut-out centre) is nearer ``ccdskycounts`` (counts/s) than ``ccdskycounts x exptime``;
  without ``ccdskycounts``, when a header BUNIT reads ``.../s``. ``zpscale = 10^((ccdzpt -
  22.5) / 2.5)``, times ``exptime`` for images in counts. nmgy = (image - sky) / zpscale;
  ivar = oow x zpscale^2, weights below 0.1x the median positive weight set to 0 and above
  1.3 / sig1^2 reset to it (sig1 from the CCD table, else from the weights).
* Data quality: CP codes remapped to the DR9 bits (reference 2.3, :func:`remap_dq`), with
  the codes each camera ignores (DECam 8; 90Prime and Mosaic3 7 and 8); ivar 0 where DQ != 0.
* Saturation level: ``SATURATE`` (image or primary header, counts), per second for rates.
* PSF: PsfEx (either layout). Seeing: the CCD table's ``fwhm`` (pixels, or arcsec in some
  older tables: the reading nearer the PSF model's FWHM), else the PsfEx PSF_FWHM, else the
  stamp's effective-area FWHM.
* Electrons per count (for source shot noise in consistency checks): sky level / weight-map
  variance, i.e. measured from the image and its weight map, not a header gain.
"""

from __future__ import annotations

import os

import numpy as np

from legacylake.catalogs_schema import ANYMASK

from legacylake.errors import UserError
from legacylake.photometry.brick.exposure import Exposure
from legacylake.photometry.brick.ccds import ccds_touching, is_survey_dir, read_ccds

#: CP integer DQ code -> DR9 DQ bit name (reference 2.3, remap_dq_cp_codes)
CP_DQ_CODES = {1: "BADPIX", 2: "BADPIX", 3: "SATUR", 4: "BLEED", 5: "CR", 6: "BADPIX", 7: "TRANS", 8: "TRANS"}
#: codes DECam ignores (streaks, code 8)
DECAM_IGNORE = (8,)
#: CP codes each camera's images ignore (the survey's per-camera remapping); others: DECam's
CAMERA_IGNORE = {"decam": (8,), "90prime": (7, 8), "mosaic": (7, 8)}
LOW_WEIGHT = 0.1
HIGH_WEIGHT = 1.3
#: pixels added around the target's footprint when cutting a CCD
CUT_MARGIN = 3


def is_cp_layout(survey_dir: str) -> bool:
    return is_survey_dir(survey_dir)


def remap_dq(dq: np.ndarray, ignore=DECAM_IGNORE) -> np.ndarray:
    """CP integer DQ codes -> DR9 DQ bits (int16). BAD (1) pixels touching SATUR (3) count as
    SATUR; SATUR|BLEED regions touching the image's left or right edge are recoded EDGE
    (reference 2.3; bleed trails run along columns, so only those edges)."""
    from scipy import ndimage
    dq = np.array(dq, copy=True)
    if (dq == 3).any():
        dq[(dq == 1) & ndimage.binary_dilation(dq == 3)] = 3
    out = np.zeros(dq.shape, np.int16)
    for code, name in CP_DQ_CODES.items():
        if code in ignore:
            continue
        out[dq == code] |= ANYMASK.mask(name)
    sb = (out & (ANYMASK.mask("SATUR") | ANYMASK.mask("BLEED"))) != 0
    if sb.any():
        lab, n = ndimage.label(sb)
        edge = np.unique(np.r_[lab[:, 0], lab[:, -1]])
        edge = edge[edge > 0]
        if len(edge):
            m = np.isin(lab, edge)
            out[m] = (out[m] & ~(ANYMASK.mask("SATUR") | ANYMASK.mask("BLEED"))) | ANYMASK.mask("EDGE")
    return out


def _existing(path: str) -> str | None:
    """``path``, or its compressed (``.fz``) / uncompressed twin, whichever exists."""
    for p in (path, path + ".fz", path[:-3] if path.endswith(".fz") else None):
        if p and os.path.exists(p):
            return p
    return None


def image_paths(survey_dir: str, ccd) -> tuple[str, str, str]:
    """(ooi, oow, ood) paths of a CCD-table row; one-line UserError naming a missing file."""
    fn = str(ccd["image_filename"]).strip()
    ooi = os.path.join(survey_dir, "images", fn)
    out = []
    for kind in ("ooi", "oow", "ood"):
        p = ooi.replace("_ooi_", f"_{kind}_").replace("_oki_", f"_{kind}_") if kind != "ooi" else ooi
        if kind != "ooi" and p == ooi:
            raise UserError(f"{ooi}: image name has no _ooi_ part to find its {kind} file "
                            f"(CCD table row {fn} {str(ccd['ccdname']).strip()})")
        q = _existing(p)
        if q is None:
            raise UserError(f"{p}: missing ({kind} of CCD table row {fn} {str(ccd['ccdname']).strip()})")
        out.append(q)
    return tuple(out)


def _hdu_index(f, ccd, path: str) -> int:
    """The HDU holding this CCD: EXTNAME equal to ccdname, else the table's image_hdu."""
    name = str(ccd["ccdname"]).strip().upper()
    for i in range(1, len(f)):
        if f[i].get_extname().strip().upper() == name:
            return i
    i = int(ccd["image_hdu"])
    if not 0 <= i < len(f):
        raise UserError(f"{path}: no HDU {i} and no EXTNAME {name}")
    return i


def _header_dict(hdr) -> dict:
    """Header keywords with values (no COMMENT/HISTORY, no value-less cards)."""
    return {k: hdr[k] for k in hdr.keys() if k and k not in ("COMMENT", "HISTORY") and hdr[k] is not None}


def _wcs(hdr: dict, ccd, path: str):
    """Image WCS with the CCD table's astrometric offsets (arcsec) applied to CRVAL."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w = WCS(hdr, naxis=2)
    if not w.has_celestial:
        raise UserError(f"{path}: no celestial WCS in the image header")
    names = ccd.dtype.names
    dra = float(ccd["ccdraoff"]) if "ccdraoff" in names and np.isfinite(ccd["ccdraoff"]) else 0.0
    ddec = float(ccd["ccddecoff"]) if "ccddecoff" in names and np.isfinite(ccd["ccddecoff"]) else 0.0
    if dra or ddec:
        r, d = w.wcs.crval
        w.wcs.crval = [r + dra / 3600.0 / np.cos(np.deg2rad(d)), d + ddec / 3600.0]
        w.wcs.set()
    return w


def _cut_box(wcs, shape, outline: np.ndarray | None):
    """(x0, x1, y0, y1) of the image pixels covering ``outline`` (RA/Dec points), or None."""
    h, w = shape
    if outline is None:
        return 0, w, 0, h
    with np.errstate(invalid="ignore"):
        try:
            x, y = wcs.all_world2pix(outline, 0, quiet=True).T
        except Exception:  # noqa: BLE001 - far from the CCD the TPV inversion can fail: no overlap
            return None
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    x0, x1 = max(int(np.floor(x.min())) - CUT_MARGIN, 0), min(int(np.ceil(x.max())) + CUT_MARGIN + 1, w)
    y0, y1 = max(int(np.floor(y.min())) - CUT_MARGIN, 0), min(int(np.ceil(y.max())) + CUT_MARGIN + 1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, x1, y0, y1


def per_second(ccd, sky_level: float, primhdr: dict, hdr: dict) -> bool:
    """Is the image a count rate? (module doc: sky level against ccdskycounts, else BUNIT)."""
    t = float(ccd["exptime"])
    names = ccd.dtype.names
    sc = float(ccd["ccdskycounts"]) if "ccdskycounts" in names else float("nan")
    if np.isfinite(sc) and sc > 0 and sky_level > 0 and t > 1.5:
        return abs(np.log(sky_level / sc)) < abs(np.log(sky_level / (sc * t)))
    for h in (primhdr, hdr):
        u = str(h.get("BUNIT", "")).strip().lower()
        if u.endswith("/s") or u.endswith("/sec") or u.endswith("s-1"):
            return True
    return False


def seeing_arcsec(ccd, psf_fwhm_arcsec: float, pixscale: float) -> float:
    """Seeing FWHM (arcsec): the CCD table's ``fwhm`` (the survey's measured seeing), read as
    pixels or as arcsec, whichever is nearer the PSF model's FWHM (tables of both kinds
    exist); the PSF model's when the table has none."""
    v = float(ccd["fwhm"]) if "fwhm" in ccd.dtype.names else float("nan")
    if not (np.isfinite(v) and v > 0 and np.isfinite(psf_fwhm_arcsec) and psf_fwhm_arcsec > 0):
        return float(psf_fwhm_arcsec)
    cands = (v * pixscale, v)
    return float(min(cands, key=lambda c: abs(np.log(c / psf_fwhm_arcsec))))


def read_cp_ccd(survey_dir: str, ccd, outline: np.ndarray | None = None) -> Exposure | None:
    """One CCD-table row as an :class:`Exposure` cut to the pixels covering ``outline``
    (RA/Dec points of the target's outline; None: the whole image), or None if it does not
    overlap. Attributes beyond Exposure's: camera, expnum, ccdname, zpscale, per_second,
    sky (model kind), e_per_count, cut (x0, y0 in the file), psf_path."""
    import fitsio

    from legacylake.photometry.model.image import Image
    from legacylake.photometry.brick.calib import read_psfex, read_sky
    ooi, oow, ood = image_paths(survey_dir, ccd)
    fn, ccdname = str(ccd["image_filename"]).strip(), str(ccd["ccdname"]).strip()
    try:
        with fitsio.FITS(ooi) as f:
            k = _hdu_index(f, ccd, ooi)
            hdr = _header_dict(f[k].read_header())
            primhdr = _header_dict(f[0].read_header())
            dims = f[k].get_dims()
            if len(dims) != 2:
                raise UserError(f"{ooi}[{k}]: not a 2-d image (dims {dims})")
            wcs = _wcs(hdr, ccd, ooi)
            box = _cut_box(wcs, tuple(dims), outline)
            if box is None:
                return None
            x0, x1, y0, y1 = box
            img = f[k][y0:y1, x0:x1].astype(np.float64)
        with fitsio.FITS(oow) as f:
            wt = f[_hdu_index(f, ccd, oow)][y0:y1, x0:x1].astype(np.float64)
        with fitsio.FITS(ood) as f:
            raw_dq = f[_hdu_index(f, ccd, ood)][y0:y1, x0:x1]
    except OSError as exc:
        raise UserError(f"{ooi}: cannot read ({exc})") from exc
    if not (img.shape == wt.shape == raw_dq.shape):
        raise UserError(f"{ooi}: ooi {img.shape}, oow {wt.shape}, ood {raw_dq.shape} differ in shape")
    camera = str(ccd["camera"]).strip().lower() if "camera" in ccd.dtype.names else ""
    dq = remap_dq(raw_dq, CAMERA_IGNORE.get(camera, DECAM_IGNORE))
    good = (dq == 0) & (wt > 0) & np.isfinite(img)
    sky_model = read_sky(survey_dir, ccd, hdr, img[good])
    sky = sky_model.evaluate(img.shape, x0, y0)
    sky_level = float(np.median(sky))
    rate = per_second(ccd, sky_level, primhdr, hdr)
    exptime = float(ccd["exptime"])
    zpt = float(ccd["ccdzpt"]) + (0.0 if rate else 2.5 * np.log10(exptime))
    if not np.isfinite(zpt):
        raise UserError(f"{fn} {ccdname}: CCD table zero point ccdzpt is not finite")
    zpscale = 10 ** ((zpt - 22.5) / 2.5)
    data = (img - sky) / zpscale
    ivar = np.where(np.isfinite(wt) & (wt > 0), wt, 0.0) * zpscale ** 2
    pos = ivar[ivar > 0]
    sig1 = float(ccd["sig1"]) if "sig1" in ccd.dtype.names and np.isfinite(ccd["sig1"]) and ccd["sig1"] > 0 else (
        1.0 / np.sqrt(np.median(pos)) if pos.size else 0.0)
    if pos.size:
        ivar[ivar < LOW_WEIGHT * np.median(pos)] = 0.0
    if sig1 > 0:
        ivar = np.minimum(ivar, HIGH_WEIGHT / sig1 ** 2)
    ivar[(dq != 0) | ~np.isfinite(data)] = 0.0
    data[~np.isfinite(data)] = 0.0
    if not np.any(ivar > 0):
        return None
    psf, psf_path = read_psfex(survey_dir, ccd)
    psf = psf.shifted(x0, y0)
    im = Image(data, ivar, wcs[y0:y1, x0:x1], str(ccd["filter"]).strip().lower(), psf, ooi)
    sat = hdr.get("SATURATE", primhdr.get("SATURATE", np.inf))
    sat = float(sat) / (exptime if rate else 1.0)
    e = Exposure(im, dq, sig1, seeing_arcsec(ccd, psf.fwhm * im.pixscale, im.pixscale), float(ccd["mjd_obs"]),
                 (sat - sky_level) / zpscale)
    e.camera = camera
    e.expnum = int(ccd["expnum"]) if "expnum" in ccd.dtype.names else -1
    e.ccdname = ccdname
    e.zpscale, e.per_second, e.sky, e.exptime = zpscale, rate, sky_model.kind, exptime
    var_counts = float(np.median(1.0 / wt[good])) if good.any() else float("nan")
    # electrons per count in total counts: sky / variance (Poisson), from the image and its weights
    tf = exptime if rate else 1.0
    e.e_per_count = float(sky_level / (var_counts * tf)) if var_counts > 0 and sky_level > 0 else float("nan")
    e.cut = (x0, y0)
    e.psf_path = psf_path
    return e


def load_cp_exposures(survey_dir: str, bands: str | None = None, target=None) -> list[Exposure]:
    """The CCDs of the survey folder's CCD table touching ``target`` (a :class:`legacylake.photometry.brick.target.Target`;
    None: every CCD, whole images) as :class:`Exposure` s, in table order."""
    from legacylake.photometry.brick.target import corners
    ccds = read_ccds(survey_dir)
    keep = np.ones(len(ccds), bool)
    if bands:
        keep &= np.isin(np.char.lower(np.char.strip(ccds["filter"].astype(str))), list(bands))
    outline = None
    if target is not None:
        outline = corners(target, step=50)
        near = np.zeros(len(ccds), bool)
        near[ccds_touching(ccds, outline)] = True
        keep &= near
    out = []
    for c in ccds[keep]:
        e = read_cp_ccd(survey_dir, c, outline)
        if e is not None:
            out.append(e)
    if not out:
        where = f" touching {target.name} box {target.box}" if target is not None else ""
        raise UserError(f"{survey_dir}: no CCDs{where}" + (f" in bands {bands}" if bands else ""))
    return out
