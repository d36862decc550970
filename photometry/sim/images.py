"""CCD-like exposures of a brick's synthetic sky, rendered with GalSim (independent renderer).

``simulate_images(brick, out)`` writes (all files atomic)::

    out/images/sim-<brick>-<band>-<k>.fits   one exposure: HDUs
        IMAGE  float32, nanomaggies per pixel, sky-subtracted; header: TAN WCS, BAND,
               PSF_FWHM (arcsec), SIG1 (nmgy, per-pixel sky noise), MJD_OBS, EXPNUM,
               SATURATE (nmgy), BRICKNAM, SIMSEED, ZPT (22.5: pixels already in nmgy)
        IVAR   float32, 1/nmgy^2; 0 wherever DQ != 0
        DQ     int16, DR9 data-quality bits (catalogs_schema ANYMASK: BADPIX, SATUR, CR, BLEED)
        PSF    float32 41x41 unit-sum stamp of this exposure's Moffat PSF (pixel-convolved sense:
               sampled at pixel centres, like the images)
    out/ccds-<brick>.fits   one row per exposure (IMAGE_FILENAME, FILTER, EXPNUM, MJD_OBS,
                            FWHM [pixels], SEEING [arcsec], SIG1, ZPT, RA, DEC, WIDTH, HEIGHT)
    out/truth-<brick>.fits  truth sources (sky.TRUTH_DTYPE, upper-case) in the rendered area,
                            with BX, BY (0-based brick pixels)
    out/gaia-<brick>.fits   the simulated Gaia catalog of that area (reference stars)

Each exposure is a pointing offset from the brick centre (dithers of up to 4% of the
image size), with its own Moffat (beta 3.5) PSF whose FWHM scatters by 10% around the
sky's seeing (:mod:`legacylake.photometry.sim.conditions`), Gaussian sky noise from the point-source depth,
one bad column, cosmic rays, and saturated stars with bleed trails along columns. Masked
pixels have DQ bits and zero inverse variance. ``size`` renders only the central
``size`` x ``size`` brick pixels (for fast tests). Stars move with their proper motion: each
exposure draws them at its own epoch (MJD_OBS), truth positions are at the truth EPOCH
(2015.5). Source Poisson noise and parallax are not simulated.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from legacylake.catalogs_schema import ANYMASK, bricks
from legacylake.catalogs_schema.astrometry import mjd_to_year, propagate
from legacylake.catalogs_schema.constants import PIXSCALE_ARCSEC

from legacylake.photometry.model.image import tan_wcs
from legacylake.photometry.sim.conditions import conditions
from legacylake.photometry.sim.sky import TRUTH_DTYPE, sin_gal_b, truth_sky

PSF_STAMP = 41
MOFFAT_BETA = 3.5
SATURATE_NMGY = 25.0
PAD_PX = 40
CR_PER_PIX = 1.5e-5
SIM_MJD0 = 58000.0


def image_path(out: str, brick: str, band: str, k: int) -> str:
    return os.path.join(out, "images", f"sim-{brick}-{band}-{k}.fits")


def _atomic_fits(path: str, writer) -> None:
    import fitsio
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    if os.path.exists(tmp):
        os.remove(tmp)
    with fitsio.FITS(tmp, "rw", clobber=True) as f:
        writer(f)
    os.replace(tmp, path)


def region(brick: str, size: int | None):
    """Brick-pixel box (x0, x1, y0, y1) rendered, half-open, 0-based."""
    n = bricks.BRICK_IMAGE_SIZE
    if size is None or size >= n:
        return 0, n, 0, n
    lo = n // 2 - size // 2
    return lo, lo + size, lo, lo + size


def _plan(brick: str, bands: str, nexp: int, seed: int, size: int | None) -> list[dict]:
    """Per exposure: band, k, centre, shape, PSF FWHM (arcsec), sig1 (nmgy), MJD."""
    b = bricks.brick(brick)
    bw = bricks.brick_wcs(brick)
    x0, x1, y0, y1 = region(brick, size)
    cx, cy = (x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0
    rac, decc = bw.all_pix2world([[cx, cy]], 0)[0]
    vec = np.array([[np.cos(np.deg2rad(decc)) * np.cos(np.deg2rad(rac)),
                     np.cos(np.deg2rad(decc)) * np.sin(np.deg2rad(rac)), np.sin(np.deg2rad(decc))]])
    cond = conditions(np.array([rac]), np.array([decc]), sin_gal_b(vec), seed, "dr9")
    rng = np.random.default_rng([seed & 0xFFFFFFFF, int(b["brickid"]), 8])
    w, h = (x1 - x0) + 2 * PAD_PX, (y1 - y0) + 2 * PAD_PX
    plan = []
    expnum = 100000 + int(b["brickid"]) % 100000 * 10
    for band in bands:
        fwhm0 = float(cond[f"psfsize_{band}"][0])
        nobs0 = float(cond[f"nobs_{band}"][0])
        depth_exp = float(cond[f"psfdepth_{band}"][0]) / nobs0  # one exposure at nominal seeing
        for k in range(nexp):
            fwhm = fwhm0 * float(np.exp(0.1 * rng.normal()))
            dx, dy = rng.uniform(-0.04, 0.04, 2) * np.array([w, h])
            ra, dec = bw.all_pix2world([[cx + dx, cy + dy]], 0)[0]
            stamp = psf_stamp(fwhm)
            psfnorm = float(np.sqrt(np.sum(stamp ** 2)))
            # psfdepth of this exposure = psfnorm^2 / sig1^2, scaled from the nominal seeing
            depth = depth_exp * (fwhm0 / fwhm) ** 2
            sig1 = psfnorm / np.sqrt(depth)
            expnum += 1
            plan.append(dict(band=band, k=k, ra=float(ra), dec=float(dec), shape=(h, w), fwhm=fwhm,
                             sig1=float(sig1), mjd=SIM_MJD0 + rng.uniform(0, 1500), expnum=expnum,
                             stamp=stamp, seed=int(rng.integers(1 << 31))))
    return plan


def psf_stamp(fwhm: float) -> np.ndarray:
    """Unit-sum PSF_STAMP^2 Moffat stamp (FWHM arcsec), sampled at pixel centres."""
    p = _moffat(fwhm)
    st = p.drawImage(nx=PSF_STAMP, ny=PSF_STAMP, scale=PIXSCALE_ARCSEC, method="no_pixel").array
    return st / st.sum()


def _moffat(fwhm: float):
    import galsim
    return galsim.Moffat(beta=MOFFAT_BETA, fwhm=fwhm, trunc=(PSF_STAMP // 2) * PIXSCALE_ARCSEC)


def _truth(brick: str, seed: int, density, size, margin_arcsec: float = 40.0) -> np.ndarray:
    bw = bricks.brick_wcs(brick)
    x0, x1, y0, y1 = region(brick, size)
    m = (PAD_PX + 0.05 * (x1 - x0)) + margin_arcsec / PIXSCALE_ARCSEC
    corners = bw.all_pix2world([[x0 - m, y0 - m], [x1 + m, y0 - m], [x0 - m, y1 + m], [x1 + m, y1 + m]], 0)
    ra1, ra2 = corners[:, 0].min(), corners[:, 0].max()
    dec1, dec2 = corners[:, 1].min(), corners[:, 1].max()
    return truth_sky(ra1, ra2, dec1, dec2, seed, density)


def render_exposure(ex: dict, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image nmgy, ivar, dq) of one exposure: GalSim scene + noise + artefacts."""
    import galsim
    from legacylake.photometry.sim.galsim_truth import galsim_galaxy
    h, w = ex["shape"]
    wcs = tan_wcs(ex["ra"], ex["dec"], (h, w), PIXSCALE_ARCSEC)
    img = galsim.ImageF(w, h, xmin=0, ymin=0)
    psf = _moffat(ex["fwhm"])
    band = ex["band"]
    # stars where they are at this exposure's epoch (truth positions are at truth["epoch"])
    ra, dec = propagate(truth["ra"], truth["dec"], truth["pmra"], truth["pmdec"],
                        mjd_to_year(ex["mjd"]) - truth["epoch"])
    xy = wcs.all_world2pix(np.column_stack([ra, dec]), 0)
    gsp = galsim.GSParams(folding_threshold=5e-3, maxk_threshold=1e-3)
    for t, (x, y) in zip(truth, xy):
        flux = float(t[f"flux_{band}"])
        if not (-60 < x < w + 60 and -60 < y < h + 60) or flux <= 0:
            continue
        kind = str(t["morph"]).strip()
        if kind == "PSF":
            obj = psf.withFlux(flux)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = galsim_galaxy(kind if kind != "REX" else "EXP", flux, float(t["shape_r"]),
                                  float(t["shape_e1"]), float(t["shape_e2"]),
                                  float(t["sersic"]) if kind == "SER" else None)
                obj = galsim.Convolve(g, psf, real_space=False, gsparams=gsp)
        ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        try:
            n = int(min(max(obj.getGoodImageSize(PIXSCALE_ARCSEC), 2 * PSF_STAMP), 512))
        except Exception:  # noqa: BLE001 - GalSim size heuristics can fail on extreme shapes
            n = 2 * PSF_STAMP
        n += 1 - n % 2
        st = galsim.ImageF(n, n, scale=PIXSCALE_ARCSEC)
        st.setCenter(ix, iy)
        obj.drawImage(image=st, method="no_pixel", offset=(x - ix, y - iy), add_to_image=False)
        bnd = st.bounds & img.bounds
        if bnd.isDefined():
            img[bnd] += st[bnd]
    data = img.array.astype(np.float64)
    rng = np.random.default_rng(ex["seed"])
    sig1 = ex["sig1"]
    dq = np.zeros((h, w), np.int16)
    # saturation + bleed trails along columns (excess charge spills up and down)
    sat = data > SATURATE_NMGY
    if sat.any():
        from scipy import ndimage
        lab, nlab = ndimage.label(sat)
        for sl in ndimage.find_objects(lab):
            ys, xs = sl
            for xc in range(xs.start, xs.stop):
                col = data[ys, xc]
                excess = float(np.sum(np.clip(col - SATURATE_NMGY, 0, None)))
                if excess <= 0:
                    continue
                L = int(np.ceil(excess / SATURATE_NMGY / 2.0))
                lo, hi = max(ys.start - L, 0), min(ys.stop + L, h)
                trail = np.zeros(h, bool)
                trail[lo:hi] = True
                trail &= ~sat[:, xc]
                dq[trail, xc] |= ANYMASK.mask("BLEED")
                data[trail, xc] = SATURATE_NMGY
        dq[sat] |= ANYMASK.mask("SATUR")
    data = data + rng.normal(0.0, sig1, (h, w))
    data[sat] = SATURATE_NMGY
    data[(dq & ANYMASK.mask("BLEED")) != 0] = SATURATE_NMGY
    # one bad column (part of the chip)
    bc = int(rng.integers(w // 8, w - w // 8))
    y_a = int(rng.integers(0, h // 2))
    dq[y_a:, bc] |= ANYMASK.mask("BADPIX")
    data[y_a:, bc] = rng.normal(5 * sig1, 20 * sig1, h - y_a)
    # cosmic rays: short random tracks, flagged
    ncr = rng.poisson(CR_PER_PIX * h * w)
    for _ in range(ncr):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        ang, ln = rng.uniform(0, np.pi), rng.uniform(1, 6)
        amp = rng.uniform(10, 200) * sig1
        for s in np.linspace(0, ln, int(ln * 2) + 1):
            xi, yi = int(x + s * np.cos(ang)), int(y + s * np.sin(ang))
            if 0 <= xi < w and 0 <= yi < h:
                data[yi, xi] += amp
                dq[yi, xi] |= ANYMASK.mask("CR")
    ivar = np.where(dq == 0, 1.0 / sig1 ** 2, 0.0)
    return data, ivar, dq


def _write_exposure(path, ex, data, ivar, dq, brick, seed):
    wcs = tan_wcs(ex["ra"], ex["dec"], ex["shape"], PIXSCALE_ARCSEC)
    hdr = [{"name": k, "value": v} for k, v in wcs.to_header().items()]
    hdr += [{"name": "BAND", "value": ex["band"]},
            {"name": "PSF_FWHM", "value": float(ex["fwhm"]), "comment": "arcsec, Moffat beta 3.5"},
            {"name": "SIG1", "value": float(ex["sig1"]), "comment": "sky noise, nmgy per pixel"},
            {"name": "MJD_OBS", "value": float(ex["mjd"])},
            {"name": "EXPNUM", "value": int(ex["expnum"])},
            {"name": "SATURATE", "value": SATURATE_NMGY, "comment": "nmgy"},
            {"name": "ZPT", "value": 22.5, "comment": "pixels already in nanomaggies"},
            {"name": "BRICKNAM", "value": brick}, {"name": "SIMSEED", "value": int(seed)},
            {"name": "SIMULATD", "value": True}]

    def wr(f):
        f.write(np.asarray(data, np.float32), extname="IMAGE", header=hdr)
        f.write(np.asarray(ivar, np.float32), extname="IVAR")
        f.write(np.asarray(dq, np.int16), extname="DQ")
        f.write(np.asarray(ex["stamp"], np.float32), extname="PSF")
    _atomic_fits(path, wr)


def _one(job):
    ex, truth, path, brick, seed = job
    d, iv, dq = render_exposure(ex, truth)
    _write_exposure(path, ex, d, iv, dq, brick, seed)
    return path


def simulate_images(brick: str, out: str, bands: str = "grz", nexp: int = 3, seed: int = 0,
                    density: float | None = None, size: int | None = None, workers: int = 1,
                    progress=None) -> dict:
    """Render ``nexp`` exposures per band of ``brick`` into ``out`` (layout in the module doc).

    Returns a summary dict (paths, truth rows, seconds)."""
    from legacylake.photometry.sim.catalog import gaia_catalog
    t0 = time.time()
    bricks.brick(brick)
    plan = _plan(brick, bands, nexp, seed, size)
    truth = _truth(brick, seed, density, size)
    jobs = [(ex, truth, image_path(out, brick, ex["band"], ex["k"]), brick, seed) for ex in plan]
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    paths = []
    if workers <= 1:
        for j in jobs:
            paths.append(_one(j))
            if progress:
                progress(1)
    else:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(workers) as pool:
            for p in pool.imap(_one, jobs):
                paths.append(p)
                if progress:
                    progress(1)
    # CCD table
    ccd = np.zeros(len(plan), dtype=[("IMAGE_FILENAME", "S64"), ("FILTER", "S1"), ("EXPNUM", "i4"),
                                     ("MJD_OBS", "f8"), ("FWHM", "f4"), ("SEEING", "f4"), ("SIG1", "f4"),
                                     ("ZPT", "f4"), ("RA", "f8"), ("DEC", "f8"), ("WIDTH", "i4"),
                                     ("HEIGHT", "i4")])
    for i, ex in enumerate(plan):
        ccd[i] = (os.path.relpath(paths[i], out), ex["band"], ex["expnum"], ex["mjd"],
                  ex["fwhm"] / PIXSCALE_ARCSEC, ex["fwhm"], ex["sig1"], 22.5, ex["ra"], ex["dec"],
                  ex["shape"][1], ex["shape"][0])
    _atomic_fits(os.path.join(out, f"ccds-{brick}.fits"), lambda f: f.write(ccd, extname="CCDS"))
    # truth inside the union of the exposures
    bw = bricks.brick_wcs(brick)
    bxy = bw.all_world2pix(np.column_stack([truth["ra"], truth["dec"]]), 0)
    x0, x1, y0, y1 = region(brick, size)
    m = PAD_PX + 0.05 * (x1 - x0)
    keep = (bxy[:, 0] > x0 - m) & (bxy[:, 0] < x1 + m) & (bxy[:, 1] > y0 - m) & (bxy[:, 1] < y1 + m)
    tt = truth[keep]
    rec = np.zeros(len(tt), dtype=[(n.upper(), ("S3" if n == "morph" else TRUTH_DTYPE[n])) for n in TRUTH_DTYPE.names]
                   + [("BX", "f8"), ("BY", "f8")])
    for n in TRUTH_DTYPE.names:
        rec[n.upper()] = tt[n]
    rec["BX"], rec["BY"] = bxy[keep, 0], bxy[keep, 1]
    hdr = [{"name": "BRICKNAM", "value": brick}, {"name": "SIMSEED", "value": int(seed)},
           {"name": "RX0", "value": x0}, {"name": "RX1", "value": x1}, {"name": "RY0", "value": y0},
           {"name": "RY1", "value": y1}]
    _atomic_fits(os.path.join(out, f"truth-{brick}.fits"), lambda f: f.write(rec, extname="TRUTH", header=hdr))
    # simulated Gaia catalog of the area (reference stars)
    ra1, ra2 = float(tt["ra"].min()), float(tt["ra"].max()) if len(tt) else (0.0, 0.0)
    dec1, dec2 = float(tt["dec"].min()), float(tt["dec"].max())
    g = gaia_catalog(ra1, ra2 + 1e-9, dec1, dec2 + 1e-9, seed, density)
    grec = np.zeros(len(g["ra"]), dtype=[(k.upper(), v.dtype) for k, v in g.items()])
    for k, v in g.items():
        grec[k.upper()] = v
    _atomic_fits(os.path.join(out, f"gaia-{brick}.fits"), lambda f: f.write(grec, extname="GAIA"))
    return {"brick": brick, "exposures": paths, "truth_rows": int(len(tt)), "gaia_rows": int(len(grec)),
            "seconds": time.time() - t0, "region": (x0, x1, y0, y1)}
