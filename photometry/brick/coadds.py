"""Optional coadds of ``run-brick --coadds`` on the target's grid (a brick's 3600 x 3600 image,
reference 1.3, or a custom brick's W x H).

Files (atomic, ``OUTDIR/coadd/<AAA>/<brick>/``)::

    legacysurvey-<brick>-image-<band>.fits.fz    inverse-variance weighted coadd of the exposures (nmgy)
    legacysurvey-<brick>-model-<band>.fits.fz    same weights, the fitted models (nmgy)
    legacysurvey-<brick>-resid-<band>.fits.fz    image - model (nmgy)
    legacysurvey-<brick>-invvar-<band>.fits.fz   sum of the exposures' inverse variances (nmgy^-2)
    legacysurvey-<brick>-maskbits.fits.fz        int16 DR9 MASKBITS per pixel

Resampling is nearest-pixel (each brick pixel takes the value of the nearest exposure pixel;
the survey uses Lanczos-3), masked exposure pixels are excluded (not interpolated). Images are
RICE tile-compressed with quantisation (qlevel 8, SUBTRACTIVE_DITHER_2: exact zeros kept);
maskbits losslessly. Pixels not covered by any exposure are 0. Maskbits: NPRIMARY outside the
brick's RA/Dec box, BRIGHT, MEDIUM and GALAXY reference masks (:func:`legacylake.photometry.brick.references.mask_map`),
SATUR_<B> (saturated in any exposure of the band, dilated 4 px), ALLMASK_<B> (AND of the
exposures' DQ bits non-zero; as in the survey, also set where the band has no coverage).
"""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage

from legacylake.catalogs_schema import ANYMASK, MASKBITS

from legacylake.photometry.brick.target import as_target

QLEVEL = 8
SATUR_DILATE = 4


def coadd_dir(outdir: str, brick: str) -> str:
    return os.path.join(outdir, "coadd", brick[:3], brick)


def coadd_path(outdir: str, brick: str, kind: str, band: str | None = None) -> str:
    """Path of one coadd file; ``kind`` in image, model, resid, invvar (with band) or maskbits."""
    name = f"legacysurvey-{brick}-{kind}" + (f"-{band}" if band else "") + ".fits.fz"
    return os.path.join(coadd_dir(outdir, brick), name)


def _write(path: str, arr: np.ndarray, header: list, compress_float: bool) -> None:
    import fitsio
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    if os.path.exists(tmp):
        os.remove(tmp)
    kw = dict(compress="RICE", qlevel=QLEVEL, qmethod="SUBTRACTIVE_DITHER_2") if compress_float else dict(compress="RICE")
    with fitsio.FITS(tmp, "rw", clobber=True) as f:
        f.write(arr, header=header, **kw)
    os.replace(tmp, path)


def primary_map(brick, block: int = 16) -> np.ndarray:
    """bool target grid: pixel centre inside the brick's RA/Dec box. Exact per pixel: evaluated
    on block corners, and pixel by pixel only in blocks whose corners disagree (the box edges
    are straight to far below a pixel over one block)."""
    t = as_target(brick)
    W, H = t.width, t.height
    bw = t.wcs

    def prim(xx, yy):
        ra, dec = bw.all_pix2world(xx.ravel().astype(np.float64), yy.ravel().astype(np.float64), 0)
        return t.is_primary(ra, dec).reshape(xx.shape)
    gx = np.minimum(np.arange(0, W + block, block), W - 1)
    gy = np.minimum(np.arange(0, H + block, block), H - 1)
    G = prim(*np.meshgrid(gx, gy))
    c = G[:-1, :-1].astype(int) + G[1:, :-1] + G[:-1, 1:] + G[1:, 1:]
    out = np.repeat(np.repeat(c == 4, block, 0), block, 1)[:H, :W]
    for by, bx in zip(*np.nonzero((c > 0) & (c < 4))):
        ya, xa = by * block, bx * block
        yy, xx = np.mgrid[ya:min(ya + block, H), xa:min(xa + block, W)]
        out[ya:ya + block, xa:xa + block] = prim(xx, yy)
    return out


def maskbits_map(brick, region, exposures, pixmaps, bands, refs) -> np.ndarray:
    """int16 MASKBITS on the full target grid."""
    from legacylake.photometry.brick.references import mask_map
    t = as_target(brick)
    mb = np.zeros((t.height, t.width), np.int16)
    # NPRIMARY: pixel centres outside the brick's half-open RA/Dec box
    mb[~primary_map(t)] |= MASKBITS.mask("NPRIMARY")
    x0, x1, y0, y1 = region
    sub = mb[y0:y1, x0:x1]
    sat_bits = ANYMASK.mask("SATUR")
    for band in bands:
        if band not in "grz":
            continue
        allm = np.full(sub.shape, -1, np.int16)
        sat = np.zeros(sub.shape, bool)
        for e, (ix, iy, inside) in zip(exposures, pixmaps):
            if e.band != band:
                continue
            dq = e.dq[iy, ix]
            allm &= np.where(inside, dq, np.int16(-1))
            sat |= inside & ((dq & sat_bits) != 0)
        if sat.any():
            sat = ndimage.binary_dilation(sat, iterations=SATUR_DILATE)
        sub |= np.where(sat, MASKBITS.mask(f"SATUR_{band.upper()}"), 0).astype(np.int16)
        # the survey's AND accumulator starts at all ones: set where no exposure covers the pixel too
        bit = MASKBITS.mask(f"ALLMASK_{band.upper()}")
        mb |= np.int16(bit)
        sub &= np.int16(~bit)
        sub |= np.where(allm != 0, bit, 0).astype(np.int16)
    if refs is not None and len(refs):
        mb |= mask_map(refs, t.wcs, (0, t.width, 0, t.height)).astype(np.int16)
    return mb


def write_coadds(outdir: str, brick, region, exposures, pixmaps, models, bands, refs) -> list[str]:
    """Write the coadd files (module doc); returns their paths."""
    from legacylake.photometry.brick.derived import coadds
    t = as_target(brick)
    brick = t.name
    x0, x1, y0, y1 = region
    hdr0 = [{"name": k, "value": v} for k, v in t.wcs.to_header().items()]
    hdr0 += [{"name": "BRICKNAM", "value": brick}, {"name": "RESAMPLE", "value": "nearest",
                                                    "comment": "nearest-pixel resampling"}]
    paths = []
    for band in bands:
        co = coadds(region, exposures, pixmaps, models, [band])
        if band not in co:
            continue
        img, iv, res = co[band]
        full = np.zeros((t.height, t.width), np.float32)
        for kind, arr, unit in (("image", img, "nanomaggy"), ("model", img - res, "nanomaggy"),
                                ("resid", res, "nanomaggy"), ("invvar", iv, "1/nanomaggy^2")):
            full[:] = 0
            full[y0:y1, x0:x1] = arr
            p = coadd_path(outdir, brick, kind, band)
            _write(p, full, hdr0 + [{"name": "BAND", "value": band}, {"name": "BUNIT", "value": unit},
                                    {"name": "IMTYPE", "value": kind}], compress_float=True)
            paths.append(p)
        del co, full
    p = coadd_path(outdir, brick, "maskbits")
    _write(p, maskbits_map(t, region, exposures, pixmaps, bands, refs),
           hdr0 + [{"name": "IMTYPE", "value": "maskbits"}], compress_float=False)
    paths.append(p)
    return paths
