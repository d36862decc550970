"""Exposures of a brick for ``run-brick``: loading, and nearest-pixel mapping into the brick grid.

An :class:`Exposure` is one calibrated CCD image in nanomaggies (reference 3.1) with its
data-quality map (DR9 DQ bits), per-pixel sky noise ``sig1`` (nmgy), PSF FWHM (arcsec) and
MJD. The brick "region" is the part of the brick's 3600^2 grid (reference 1.3) covered by
the exposures; maps over it are (H, W) arrays with origin (rx0, ry0) in brick pixels.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from legacylake.catalogs_schema import ANYMASK

from legacylake.errors import UserError
from legacylake.photometry.brick.exposure import Exposure  # noqa: F401  (re-exported)


def load_exposures(images_dir: str, bands: str | None = None, target=None) -> list[Exposure]:
    """Read every ``images/*.fits`` (simulated layout: IMAGE, IVAR, DQ, PSF HDUs) under ``images_dir``,
    or, if it holds a ``survey-ccds-*`` CCD table, its Community Pipeline CCDs touching
    ``target`` (:mod:`legacylake.photometry.brick.cp`; a :class:`legacylake.photometry.brick.target.Target`, None: all, whole images)."""
    import fitsio
    from legacylake.photometry.brick.cp import is_cp_layout, load_cp_exposures
    from legacylake.photometry.model.image import read_image
    if is_cp_layout(images_dir):
        return load_cp_exposures(images_dir, bands, target)
    paths = sorted(glob.glob(os.path.join(images_dir, "images", "*.fits")))
    if not paths:
        raise UserError(f"{images_dir}: no images/*.fits exposures (see `legacylake simulate images`)")
    out = []
    for p in paths:
        im = read_image(p)
        if bands and im.band not in bands:
            continue
        with fitsio.FITS(p) as f:
            names = {f[i].get_extname().upper() for i in range(len(f))}
            h = f["IMAGE"].read_header()
            dq = f["DQ"].read().astype(np.int16) if "DQ" in names else np.where(im.ivar > 0, 0, 1).astype(np.int16)
        if dq.shape != im.shape:
            raise UserError(f"{p}: DQ shape {dq.shape} differs from IMAGE {im.shape}")
        im.ivar[dq != 0] = 0.0
        for key in ("SIG1", "PSF_FWHM"):
            if key not in h:
                raise UserError(f"{p}: IMAGE header has no {key}")
        out.append(Exposure(im, dq, float(h["SIG1"]), float(h["PSF_FWHM"]), float(h.get("MJD_OBS", 0.0)),
                            float(h.get("SATURATE", np.inf))))
    if not out:
        raise UserError(f"{images_dir}: no exposures in bands {bands}")
    return out


def brick_region(brick, exposures: list[Exposure]) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) half-open box of target pixels covered by any exposure, within the
    target's processed box (``brick``: a brick name or :class:`legacylake.photometry.brick.target.Target`)."""
    from legacylake.photometry.brick.target import as_target
    t = as_target(brick)
    bw = t.wcs
    zx0, zx1, zy0, zy1 = t.box
    xs, ys = [], []
    for e in exposures:
        h, w = e.image.shape
        c = e.image.wcs.all_pix2world([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], 0)
        bx, by = bw.all_world2pix(c, 0).T
        xs += [bx.min(), bx.max()]
        ys += [by.min(), by.max()]
    x0, x1 = max(int(np.floor(min(xs))), zx0), min(int(np.ceil(max(xs))) + 1, zx1)
    y0, y1 = max(int(np.floor(min(ys))), zy0), min(int(np.ceil(max(ys))) + 1, zy1)
    if x1 <= x0 or y1 <= y0:
        raise UserError(f"{t.name}: no exposure overlaps the box x {zx0}:{zx1} y {zy0}:{zy1}")
    return x0, x1, y0, y1


def pixel_map(brick: str, region, exp: Exposure, step: int = 64):
    """Nearest exposure pixel (ix, iy) of every region pixel and the in-footprint mask.

    The exact WCS mapping is evaluated on a coarse grid every ``step`` pixels and
    interpolated bilinearly (TAN-to-TAN over a brick: sub-millipixel error)."""
    from scipy.ndimage import map_coordinates

    from legacylake.photometry.brick.target import as_target
    x0, x1, y0, y1 = region
    bw = as_target(brick).wcs
    gx = np.unique(np.r_[np.arange(x0, x1, step), x1 - 1])
    gy = np.unique(np.r_[np.arange(y0, y1, step), y1 - 1])
    X, Y = np.meshgrid(gx, gy)
    rd = bw.all_pix2world(np.column_stack([X.ravel(), Y.ravel()]), 0)
    ex, ey = exp.image.wcs.all_world2pix(rd, 0).T
    ex, ey = ex.reshape(X.shape), ey.reshape(X.shape)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    fx = np.interp(xx[0], gx, np.arange(len(gx)))
    fy = np.interp(yy[:, 0], gy, np.arange(len(gy)))
    FX, FY = np.meshgrid(fx, fy)
    mx = map_coordinates(ex, [FY, FX], order=1)
    my = map_coordinates(ey, [FY, FX], order=1)
    ix, iy = np.rint(mx).astype(np.int32), np.rint(my).astype(np.int32)
    h, w = exp.image.shape
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    return np.clip(ix, 0, w - 1), np.clip(iy, 0, h - 1), inside


SATUR_BITS = ANYMASK.mask("SATUR")
#: pixels treated as saturated by detection (filled with the image maximum, joining saddle
#: segments): SATUR and BLEED (a bleed trail is saturated charge; without it the masked
#: bleed pixels around a saturated core cut the star's halo off its core, and halo peaks
#: survive the saddle test as separate sources)
DET_SATUR_BITS = ANYMASK.mask("SATUR") | ANYMASK.mask("BLEED")
