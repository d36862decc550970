"""Calibration files of a survey folder (legacypipe ``survey-dir``): where each CCD's PsfEx
model and sky model live in the layouts the survey has used, and how to read them.

Searched in this order (``<imgdir>`` = folder of ``image_filename``, ``<base>`` = its file
name up to the first dot, ``<e8>`` = expnum as ``%08i``, ``<e5>`` = its first 5 digits):

========================  ==========================================================
merged, per exposure      ``calib/psfex/<imgdir>/<base>-psfex.fits``,
                          ``calib/sky/<imgdir>/<base>-splinesky.fits`` (a row per CCD)
single, per CCD           ``calib/psfex-single/<imgdir>/<base>/<base>-<ccd>-psfex.fits``,
                          ``calib/sky-single/<imgdir>/<base>/<base>-<ccd>-splinesky.fits``
older merged / single     the same without the ``psfex``/``sky`` folder level
oldest, per CCD           ``calib/<camera>/psfex/<e5>/<e8>/*-<e8>-<ccd>.fits`` (PsfEx terms as
                          header keywords), ``calib/<camera>/{splinesky,sky}/<e5>/<e8>/*-<e8>-<ccd>.fits``
                          (the Tractor's header-serialised sky: ``SKY`` class name and ``SKY_P0..``)
========================  ==========================================================

A table with ``expnum`` and ``ccdname`` columns contributes the row of this CCD (none: the
next candidate is tried); a table without them must hold one model. No sky file: a constant
sky, the image header's ``AVSKY`` (the Community Pipeline's sky level) or else the median
of the good pixels (:func:`read_sky` returns which).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import numpy as np

from legacylake.errors import UserError
from legacylake.photometry.model.psf import PsfEx


def base_name(image_filename: str) -> str:
    """File name up to its first dot (test cut-outs are named ``<base>.<ccd>.fits``)."""
    return os.path.basename(image_filename.strip()).split(".")[0]


def _expstr(expnum) -> str:
    return "%08i" % int(expnum)


def psfex_candidates(survey_dir: str, ccd) -> list[str]:
    """Candidate PsfEx paths of one CCD-table row, in search order (module doc)."""
    fn, ccdname = str(ccd["image_filename"]).strip(), str(ccd["ccdname"]).strip()
    imgdir, base = os.path.dirname(fn), base_name(fn)
    cal = os.path.join(survey_dir, "calib")
    out = [os.path.join(cal, "psfex", imgdir, f"{base}-psfex.fits"),
           os.path.join(cal, "psfex-single", imgdir, base, f"{base}-{ccdname}-psfex.fits"),
           os.path.join(cal, imgdir, f"{base}-psfex.fits"),
           os.path.join(cal, imgdir, base, f"{base}-{ccdname}-psfex.fits")]
    return out + _oldest(cal, ccd, ("psfex",))


def sky_candidates(survey_dir: str, ccd) -> list[str]:
    """Candidate sky-model paths of one CCD-table row, in search order (module doc)."""
    fn, ccdname = str(ccd["image_filename"]).strip(), str(ccd["ccdname"]).strip()
    imgdir, base = os.path.dirname(fn), base_name(fn)
    cal = os.path.join(survey_dir, "calib")
    out = [os.path.join(cal, "sky-single", imgdir, base, f"{base}-{ccdname}-splinesky.fits"),
           os.path.join(cal, "sky", imgdir, f"{base}-splinesky.fits"),
           os.path.join(cal, imgdir, f"{base}-splinesky.fits"),
           os.path.join(cal, imgdir, base, f"{base}-{ccdname}-splinesky.fits")]
    return out + _oldest(cal, ccd, ("splinesky", "sky"))


def _oldest(cal: str, ccd, kinds) -> list[str]:
    names = ccd.dtype.names
    if "expnum" not in names or "camera" not in names:
        return []
    e8 = _expstr(ccd["expnum"])
    cam, ccdname = str(ccd["camera"]).strip(), str(ccd["ccdname"]).strip()
    out = []
    for kind in kinds:
        out += sorted(glob.glob(os.path.join(cal, cam, kind, e8[:5], e8, f"*-{e8}-{ccdname}.fits")))
    return out


def _table_row(path: str, ccd):
    """(table, header, row index) of this CCD in a calibration table, or None if the table
    lists other CCDs only. The table is the first HDU with rows."""
    import fitsio
    try:
        with fitsio.FITS(path) as f:
            for hdu in f[1:]:
                if hdu.get_exttype() != "IMAGE_HDU" and hdu.get_nrows() > 0:
                    t, h = hdu.read(), hdu.read_header()
                    break
            else:
                return None
    except OSError as exc:
        raise UserError(f"{path}: cannot read calibration table ({exc})") from exc
    cols = {c.lower(): c for c in t.dtype.names}
    if "expnum" in cols and "ccdname" in cols:
        ok = (t[cols["expnum"]] == int(ccd["expnum"])) if "expnum" in ccd.dtype.names else np.ones(len(t), bool)
        ok &= np.char.strip(t[cols["ccdname"]].astype(str)) == str(ccd["ccdname"]).strip()
        idx = np.flatnonzero(ok)
        return (t, h, int(idx[0])) if len(idx) == 1 else None
    if len(t) != 1:
        raise UserError(f"{path}: {len(t)} rows and no expnum/ccdname columns to pick this CCD's model")
    return t, h, 0


def read_psfex(survey_dir: str, ccd) -> tuple[PsfEx, str]:
    """(PsfEx model, path) of one CCD-table row; one-line UserError naming the paths tried."""
    tried = psfex_candidates(survey_dir, ccd)
    for p in tried:
        if not os.path.exists(p):
            continue
        r = _table_row(p, ccd)
        if r is None:
            continue
        t, h, i = r
        return PsfEx.from_table(t, p, header=h, row=i), p
    raise UserError(f"{_ccd_label(ccd)}: no PsfEx model (tried {', '.join(_short(survey_dir, tried))})")


@dataclass
class SkyModel:
    """Sky of one CCD in image units: a constant or an interpolating spline over CCD pixels."""

    kind: str                    # "spline", "constant" (a sky file) or "avsky"/"median" (no file)
    path: str
    value: float = 0.0
    xgrid: np.ndarray | None = None
    ygrid: np.ndarray | None = None
    gridvals: np.ndarray | None = None
    x0: float = 0.0              # the spline's pixel (0, 0) in the grid's frame
    y0: float = 0.0
    order: int = 3

    def evaluate(self, shape: tuple[int, int], ox: int = 0, oy: int = 0) -> np.ndarray:
        """Sky on a cut-out of ``shape`` whose pixel (0, 0) is pixel (ox, oy) of the image file."""
        if self.kind != "spline":
            return np.full(shape, float(self.value))
        from scipy.interpolate import RectBivariateSpline
        ny, nx = len(self.ygrid), len(self.xgrid)
        spl = RectBivariateSpline(self.ygrid, self.xgrid, self.gridvals, kx=min(self.order, ny - 1),
                                  ky=min(self.order, nx - 1), s=0)
        h, w = shape
        return spl(np.arange(h) + oy + self.y0, np.arange(w) + ox + self.x0)


def read_sky(survey_dir: str, ccd, image_header=None, good_pixels: np.ndarray | None = None) -> SkyModel:
    """Sky model of one CCD-table row (module doc). ``image_header``/``good_pixels`` give the
    constant sky when no sky file exists."""
    import fitsio
    for p in sky_candidates(survey_dir, ccd):
        if not os.path.exists(p):
            continue
        try:
            h0 = fitsio.read_header(p, ext=0)
        except OSError as exc:
            raise UserError(f"{p}: cannot read sky model ({exc})") from exc
        cls = str(h0.get("SKY", "")).strip()
        if cls.endswith("ConstantSky"):        # the Tractor's header serialisation
            if "SKY_P0" not in h0:
                raise UserError(f"{p}: ConstantSky header without SKY_P0")
            return SkyModel("constant", p, float(h0["SKY_P0"]))
        r = _table_row(p, ccd)
        if r is None:
            continue
        t, _, i = r
        cols = {c.lower(): c for c in t.dtype.names}
        skyclass = str(t[cols["skyclass"]][i]).strip() if "skyclass" in cols else cls
        if skyclass.endswith("ConstantSky"):
            for k in ("sky", "skyval", "sky_p0", "constant"):
                if k in cols:
                    return SkyModel("constant", p, float(t[cols[k]][i]))
            raise UserError(f"{p}: ConstantSky table without a sky value column")
        for need in ("xgrid", "ygrid", "gridvals"):
            if need not in cols:
                raise UserError(f"{p}: spline sky table has no {need} column")
        xg = np.asarray(t[cols["xgrid"]][i], np.float64).ravel()
        yg = np.asarray(t[cols["ygrid"]][i], np.float64).ravel()
        gv = np.asarray(t[cols["gridvals"]][i], np.float64)
        gw = int(t[cols["gridw"]][i]) if "gridw" in cols else len(xg)
        gh = int(t[cols["gridh"]][i]) if "gridh" in cols else len(yg)
        xg, yg = xg[:gw], yg[:gh]
        gv = gv.reshape(gv.shape[-2:])[:gh, :gw] if gv.ndim >= 2 else gv.reshape(gh, gw)
        if gv.shape != (len(yg), len(xg)):
            raise UserError(f"{p}: gridvals {gv.shape} do not match ygrid {len(yg)} x xgrid {len(xg)}")
        return SkyModel("spline", p, 0.0, xg, yg, gv,
                        float(t[cols["x0"]][i]) if "x0" in cols else 0.0,
                        float(t[cols["y0"]][i]) if "y0" in cols else 0.0,
                        int(t[cols["order"]][i]) if "order" in cols else 3)
    if image_header is not None and "AVSKY" in image_header:
        return SkyModel("avsky", "", float(image_header["AVSKY"]))
    if good_pixels is not None and good_pixels.size:
        return SkyModel("median", "", float(np.median(good_pixels)))
    return SkyModel("median", "", 0.0)


def _ccd_label(ccd) -> str:
    return f"{str(ccd['image_filename']).strip()} {str(ccd['ccdname']).strip()}"


def _short(survey_dir: str, paths) -> list[str]:
    return [os.path.relpath(p, survey_dir) for p in paths]
