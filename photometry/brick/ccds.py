"""The CCD table of a survey folder (``survey-ccds-*.fits[.gz]`` or the k-d tree file
``survey-ccds-*.kd.fits`` whose first table HDU holds the rows) and the CCDs touching a target.

Columns are read lower-case. Required: ``image_filename``, ``image_hdu``, ``filter``,
``ccdname``, ``exptime``, ``ccdzpt`` (magnitude of 1 count/s), ``mjd_obs``, and the CCD's
TAN approximation ``crval1/2``, ``crpix1/2``, ``cd1_1 .. cd2_2``, ``width``, ``height``
(pixels) that picks the CCDs overlapping the target. Optional: ``expnum``, ``camera``
(calibration file names), ``ccdraoff/ccddecoff`` (arcsec, applied to the image WCS),
``sig1`` (nmgy), ``ccdskycounts`` (sky, counts/s: tells per-second images from totals).
"""

from __future__ import annotations

import glob
import os

import numpy as np

from legacylake.errors import UserError

REQUIRED = ("image_filename", "image_hdu", "filter", "ccdname", "exptime", "ccdzpt", "mjd_obs",
            "crval1", "crval2", "crpix1", "crpix2", "cd1_1", "cd1_2", "cd2_1", "cd2_2", "width", "height")
#: margin (CCD pixels) around the target when deciding overlap on the TAN approximation
FOOTPRINT_MARGIN = 50.0


def ccd_table_paths(survey_dir: str) -> list[str]:
    """CCD tables of a survey folder, one per name stem (a plain table is preferred to its
    ``.kd.fits`` copy)."""
    by_stem: dict[str, list[str]] = {}
    for p in sorted(glob.glob(os.path.join(survey_dir, "survey-ccds*.fits*"))):
        by_stem.setdefault(os.path.basename(p).split(".")[0], []).append(p)
    return [([p for p in ps if ".kd." not in p] or ps)[0] for _, ps in sorted(by_stem.items())]


def is_survey_dir(path: str) -> bool:
    return bool(ccd_table_paths(path))


def _read_table(path: str) -> np.ndarray:
    import fitsio
    try:
        with fitsio.FITS(path) as f:
            for hdu in f[1:]:
                if hdu.get_exttype() != "IMAGE_HDU" and hdu.get_nrows() > 0:
                    names = [c.lower() for c in hdu.get_colnames()]
                    if "image_filename" in names:
                        return hdu.read(lower=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the CCD table ({exc})") from exc
    raise UserError(f"{path}: no table with an image_filename column")


def read_ccds(survey_dir: str) -> np.ndarray:
    """All rows of the folder's CCD tables (lower-case columns, common columns only)."""
    paths = ccd_table_paths(survey_dir)
    if not paths:
        raise UserError(f"{survey_dir}: no survey-ccds-*.fits CCD table")
    tabs = []
    for p in paths:
        t = _read_table(p)
        miss = [c for c in REQUIRED if c not in t.dtype.names]
        if miss:
            raise UserError(f"{p}: CCD table lacks column(s) {', '.join(miss)}")
        tabs.append(t)
    if len(tabs) == 1:
        return tabs[0]
    common = [c for c in tabs[0].dtype.names if all(c in t.dtype.names for t in tabs[1:])]
    from numpy.lib import recfunctions as rfn
    return np.concatenate([rfn.repack_fields(t[common]) for t in tabs])


def _tan_world2pix(ccds: np.ndarray, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel (x, y) of (ra, dec) (m points) on every CCD's TAN approximation: (n, m) each."""
    r0, d0 = np.deg2rad(ccds["crval1"].astype(np.float64))[:, None], np.deg2rad(ccds["crval2"].astype(np.float64))[:, None]
    r, d = np.deg2rad(ra)[None, :], np.deg2rad(dec)[None, :]
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(r - r0)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.rad2deg(np.cos(d) * np.sin(r - r0) / cosc)
        eta = np.rad2deg((np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(r - r0)) / cosc)
    cd = np.stack([[ccds["cd1_1"], ccds["cd1_2"]], [ccds["cd2_1"], ccds["cd2_2"]]]).astype(np.float64)  # (2,2,n)
    det = cd[0, 0] * cd[1, 1] - cd[0, 1] * cd[1, 0]
    det = np.where(det == 0, np.nan, det)
    ix = (cd[1, 1][:, None] * xi - cd[0, 1][:, None] * eta) / det[:, None]
    iy = (-cd[1, 0][:, None] * xi + cd[0, 0][:, None] * eta) / det[:, None]
    x = ix + ccds["crpix1"].astype(np.float64)[:, None] - 1.0
    y = iy + ccds["crpix2"].astype(np.float64)[:, None] - 1.0
    x[~(cosc > 0)] = np.nan
    return x, y


def ccds_touching(ccds: np.ndarray, radec: np.ndarray, margin: float = FOOTPRINT_MARGIN) -> np.ndarray:
    """Indices of the CCDs whose pixel box (plus ``margin``) overlaps the bounding box of the
    points ``radec`` (n, 2) (the target box's outline) projected with each CCD's TAN."""
    if not len(ccds):
        return np.zeros(0, np.int64)
    x, y = _tan_world2pix(ccds, radec[:, 0], radec[:, 1])
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
        w, h = ccds["width"].astype(np.float64), ccds["height"].astype(np.float64)
        ok &= (np.nanmax(x, axis=1) > -margin) & (np.nanmin(x, axis=1) < w + margin)
        ok &= (np.nanmax(y, axis=1) > -margin) & (np.nanmin(y, axis=1) < h + margin)
    return np.flatnonzero(ok)
