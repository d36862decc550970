"""``legacylake photometry run-brick``: CCD images of a brick -> ``tractor/<AAA>/tractor-<brick>.fits``.

Stages (reference 4 and 5): load exposures, detection maps, SED-matched detection with
peak vetting, blobs, reference (Gaia) stars forced as point sources, per-blob fitting and
DR9 model selection, derived columns, catalog (DR9 data model, upper-case, atomic). The
run log (``OUTDIR/logs/<brick>.log``) has the time per stage and per blob, and says which
columns had no input (WISE: flux 0, ivar 0).

Python API: ``run_brick(brick, images_dir, outdir, model_set="dr9") -> dict`` (summary);
``model_set="dr4"`` writes the DR4 data model (:mod:`.brick_dr4`).
"""

from __future__ import annotations

import os
import time

import numpy as np

from legacylake.catalogs_schema import FITBITS, MASKBITS, bricks, model
from legacylake.catalogs_schema.constants import (APERTURE_RADII_OPTICAL_ARCSEC, APERTURE_RADII_WISE_ARCSEC,
                                                  DCHISQ_MODELS, GAIA_BPRP_RANGE, GAIA_TO_DECAM,
                                                  WISE_VEGA_TO_AB, mask_radius_arcsec, mw_transmission)

from ..errors import UserError

RELEASE_SOUTH = 9010
WISE = ("w1", "w2", "w3", "w4")


class RunLog:
    """Timed stages and messages, written to the log file at the end."""

    def __init__(self):
        self.lines, self.t0, self.stages = [], time.time(), {}

    def msg(self, text: str) -> None:
        self.lines.append(f"[{time.time() - self.t0:8.2f} s] {text}")

    def stage(self, name: str, seconds: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + seconds
        self.msg(f"stage {name}: {seconds:.2f} s")


def _gaia_refs(images_dir: str, brick: str):
    """Gaia reference stars: gaia/chunk-*.fits of a survey folder (CP layout) around the brick,
    or the simulation's gaia-<brick>.fits; None if neither."""
    import fitsio
    from .brick_cp import gaia_refs
    b = bricks.brick(brick)
    g = gaia_refs(images_dir, (float(b["ra1"]), float(b["ra2"]), float(b["dec1"]), float(b["dec2"])))
    if g is not None:
        return g if len(g) else None
    p = os.path.join(images_dir, f"gaia-{brick}.fits")
    if not os.path.exists(p):
        return None
    with fitsio.FITS(p) as f:
        if len(f) < 2 or f[1].get_nrows() == 0:
            return None
        return f[1].read()


def _refs_at_epoch(refs: np.ndarray, mjd: float) -> np.ndarray:
    """``refs`` with RA_FIT/DEC_FIT (deg): RA/DEC moved by PMRA/PMDEC (mas/yr) from REF_EPOCH
    to ``mjd`` (parallax neglected)."""
    from numpy.lib import recfunctions as rfn

    from legacylake.catalogs_schema.astrometry import mjd_to_year, propagate
    dt = mjd_to_year(mjd) - refs["REF_EPOCH"].astype(np.float64)
    ra, dec = propagate(refs["RA"], refs["DEC"], refs["PMRA"], refs["PMDEC"], dt)
    return rfn.append_fields(refs, ["RA_FIT", "DEC_FIT"], [ra, dec], usemask=False)


def _gaia_flux(g: np.ndarray, bprp: np.ndarray, band: str) -> np.ndarray:
    x = np.clip(np.nan_to_num(bprp, nan=1.4), *GAIA_BPRP_RANGE)
    mag = g + sum(c * x ** k for k, c in enumerate(GAIA_TO_DECAM[band]))
    return 10 ** (-0.4 * (mag - 22.5))


def _ebv_function(images_dir: str, exposures):
    """E(B-V) at (ra, dec): the simulation's dust field for simulated images, else None (0)."""
    import fitsio
    try:
        hdr = fitsio.read_header(exposures[0].image.name, "IMAGE")
    except (OSError, ValueError):  # CP images: no IMAGE HDU, not simulated
        return None
    if "SIMSEED" not in hdr:
        return None
    from .sim_sky import ebv_at
    seed = int(hdr["SIMSEED"])

    def f(ra, dec):
        r, d = np.deg2rad(ra), np.deg2rad(dec)
        xyz = np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])
        return ebv_at(xyz, seed, ra, dec)
    return f


_CTX = None  # (exposures, pixmaps, blob labels, blob slices, sources, model set) shared with forked workers


def _fit_one_blob(job):
    """Fit one blob (worker side): (label, n sources, rows, [(exposure, x0, y0, model)], seconds)."""
    from .brick_fit import cutouts, fit_blob
    exps, pixmaps, lab, slices, allsrc, model_set = _CTX
    blab, members = job
    tb = time.time()
    sl = slices[blab - 1]
    box = (sl[1].start, sl[1].stop, sl[0].start, sl[0].stop)
    cuts = cutouts(exps, pixmaps, lab[sl] == blab, box)
    blob_rows, bmods = fit_blob(exps, cuts, [allsrc[k] for k in members], model_set)
    for r in blob_rows:
        r.blob = blab
    placed = [(k, cx, cy, m.astype(np.float32)) for (k, cx, cy, _), m in zip(cuts, bmods)]
    return blab, len(members), blob_rows, placed, time.time() - tb



def _fit_blobs(exps, pixmaps, lab, slices, sources, by_blob, model_set, models, workers, progress, desc):
    """Fit every blob (``by_blob``: label -> source indices); adds each blob's model into
    ``models`` (per exposure); returns (rows, [(label, n in, n kept, seconds)])."""
    from tqdm import tqdm
    global _CTX
    rows, blob_times = [], []
    _CTX = (exps, pixmaps, lab, slices, sources, model_set)
    jobs = sorted(by_blob.items(), key=lambda kv: -len(kv[1]))
    pool = None
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp
        pool = mp.get_context("fork").Pool(workers)
        it = pool.imap_unordered(_fit_one_blob, jobs)
    else:
        it = map(_fit_one_blob, jobs)
    try:
        for blab, nin, blob_rows, placed, dt in tqdm(it, total=len(jobs), desc=desc, unit="blob",
                                                      disable=not progress):
            rows += blob_rows
            for k, cx, cy, m in placed:
                models[k][cy:cy + m.shape[0], cx:cx + m.shape[1]] += m
            blob_times.append((blab, nin, len(blob_rows), dt))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        _CTX = None
    blob_times.sort()
    return rows, blob_times


def run_brick(brick: str, images_dir: str, outdir: str, model_set: str = "dr9", bands: str | None = None,
              progress: bool = True, workers: int = 1, iterative: bool = True, coadds: bool = False) -> dict:
    """Run the photometry of one brick; returns a summary (path, rows, seconds per stage).

    ``iterative``: second detection pass on the residual images (new sources get FITBITS
    ITERATIVE); ``coadds``: write OUTDIR/coadd/<AAA>/<brick>/ images (:mod:`.brick_coadds`)."""
    from scipy import ndimage
    from . import brick_derived as bd
    from .brick_detect import band_maps, blobs, detect, finish_maps
    from .brick_fit import BlobSource
    from .brick_images import brick_region, load_exposures, pixel_map
    model_set = str(model_set).lower()
    if model_set not in ("dr9", "dr4"):
        raise UserError(f"--model-set {model_set}: use dr9 or dr4")
    try:
        b = bricks.brick(brick)
    except KeyError as exc:
        raise UserError(f"brick {brick}: {exc.args[0]}") from None
    log = RunLog()
    t = time.time()
    exps = load_exposures(images_dir, bands)
    bands_all = sorted({e.band for e in exps}, key="grz".index)
    region = brick_region(brick, exps)
    pixmaps = []
    for e in exps:
        ix, iy, inside = pixel_map(brick, region, e)
        pixmaps.append((ix.astype(np.int16), iy.astype(np.int16), inside))
    log.msg(f"{len(exps)} exposures, bands {''.join(bands_all)}, brick region x {region[0]}:{region[1]} "
            f"y {region[2]}:{region[3]}")
    log.stage("load", time.time() - t)
    x0, x1, y0, y1 = region
    bw = bricks.brick_wcs(brick)

    # ---- detection maps and SED-matched detection
    t = time.time()
    acc = {}
    band_maps(acc, region, exps, pixmaps)
    dm = finish_maps(acc)
    refs = _gaia_refs(images_dir, brick)
    ref_src = []
    if refs is not None and len(refs):
        # reference positions are not fitted (reference 4.1): each star is held at its Gaia
        # position moved with its proper motion to the mean epoch of the brick's exposures
        refs = _refs_at_epoch(refs, float(np.mean([e.mjd for e in exps])))
        rx, ry = bw.all_world2pix(np.column_stack([refs["RA_FIT"], refs["DEC_FIT"]]), 0).T
        ok = (rx >= x0) & (rx < x1) & (ry >= y0) & (ry < y1) & (refs["PHOT_G_MEAN_MAG"] <= 18.0)
        for i in np.flatnonzero(ok):
            bprp = refs["PHOT_BP_MEAN_MAG"][i] - refs["PHOT_RP_MEAN_MAG"][i]
            fl = {bb: float(_gaia_flux(refs["PHOT_G_MEAN_MAG"][i], bprp, bb)) for bb in bands_all}
            ref_src.append((i, float(rx[i] - x0), float(ry[i] - y0), fl))
    peaks, hot = detect(dm, [(x, y) for _, x, y, _ in ref_src])
    log.msg(f"detection: {len(peaks)} peaks at 6 sigma, {len(ref_src)} Gaia reference stars (G <= 18)")
    log.stage("detect", time.time() - t)

    # ---- blobs and sources
    t = time.time()
    srcs = []
    for i, x, y, fl in ref_src:
        srcs.append((x, y, BlobSource(float(refs["RA_FIT"][i]), float(refs["DEC_FIT"][i]), fl, ref=int(i),
                                      forced_psf=True)))
    for x, y, _ in peaks:
        ra, dec = bw.all_pix2world([[x + x0, y + y0]], 0)[0]
        fl = {bb: float(dm[bb][0][int(y), int(x)]) for bb in bands_all}
        srcs.append((x, y, BlobSource(float(ra), float(dec), fl)))
    lab, which = blobs(hot, [(x, y) for x, y, _ in srcs])
    slices = ndimage.find_objects(lab)
    by_blob = {}
    for k, blab in enumerate(which):
        by_blob.setdefault(int(blab), []).append(k)
    log.msg(f"blobs: {len(by_blob)} with sources")
    log.stage("blobs", time.time() - t)

    # ---- per-blob fitting
    t = time.time()
    models = [np.zeros(e.image.shape, np.float32) for e in exps]
    rows, blob_times = _fit_blobs(exps, pixmaps, lab, slices, [s[2] for s in srcs], by_blob, model_set, models,
                                  workers, progress, f"blobs {brick}")
    log.stage("fitblobs", time.time() - t)
    for blab, nin, nout, dt in blob_times:
        log.msg(f"blob {blab}: {nin} sources in, {nout} kept, {dt:.2f} s")

    # ---- iterative detection on the residual images (reference 4.3, FITBITS ITERATIVE)
    n_iter_peaks = n_iter_kept = 0
    if iterative:
        from .brick_iterative import iterative_sources
        t = time.time()
        orig_xy = [(x, y) for x, y, _ in srcs]
        if rows:
            fx, fy = bw.all_world2pix(np.array([[r.result.source.ra, r.result.source.dec] for r in rows]), 0).T
            orig_xy += list(zip(fx - x0, fy - y0))
        new_srcs, lab2, resid_exps = iterative_sources(exps, pixmaps, models, region, orig_xy, refs, bw, bands_all)
        n_iter_peaks = len(new_srcs)
        if new_srcs:
            slices2 = ndimage.find_objects(lab2)
            by_blob2 = {}
            for k, (_, _, blab) in enumerate(new_srcs):
                by_blob2.setdefault(int(blab), []).append(k)
            off = int(lab.max()) if lab.size else 0
            rows2, bt2 = _fit_blobs(resid_exps, pixmaps, lab2, slices2, [s for s, _, _ in new_srcs], by_blob2,
                                    model_set, models, workers, progress, f"iterative {brick}")
            for r in rows2:
                r.blob += off
            rows += rows2
            n_iter_kept = len(rows2)
            for blab, nin, nout, dt in bt2:
                log.msg(f"blob {blab + off} (iterative): {nin} sources in, {nout} kept, {dt:.2f} s")
        del resid_exps
        log.msg(f"iterative detection: {n_iter_peaks} new peaks on the residuals, {n_iter_kept} kept")
        log.stage("iterative", time.time() - t)

    # ---- derived columns and catalog
    t = time.time()
    kept = []
    cat = _catalog(brick, b, rows, refs, exps, pixmaps, models, region, bands_all, images_dir, log, model_set, kept)
    log.stage("derived", time.time() - t)
    t = time.time()
    path = _write(outdir, brick, cat, model_set)
    sigma_path = _write_sigma(outdir, brick, cat, kept, bands_all)
    log.stage("write", time.time() - t)
    coadd_paths = []
    if coadds:
        from .brick_coadds import write_coadds
        t = time.time()
        coadd_paths = write_coadds(outdir, brick, region, exps, pixmaps, models, bands_all, refs)
        log.msg(f"coadds: {len(coadd_paths)} files in {os.path.dirname(coadd_paths[0])} "
                "(nearest-pixel resampling, inverse-variance weighted)")
        log.stage("coadds", time.time() - t)
    total = time.time() - log.t0
    log.msg(f"total {total:.1f} s, {len(cat)} sources -> {path}")
    os.makedirs(os.path.join(outdir, "logs"), exist_ok=True)
    logpath = os.path.join(outdir, "logs", f"{brick}.log")
    tmp = logpath + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(log.lines) + "\n")
    os.replace(tmp, logpath)
    return {"path": path, "log": logpath, "sigma": sigma_path, "rows": int(len(cat)), "peaks": len(peaks), "refs": len(ref_src),
            "blobs": len(by_blob), "seconds": total, "stages": dict(log.stages),
            "iterative_peaks": n_iter_peaks, "iterative_kept": n_iter_kept, "coadds": coadd_paths,
            "types": {k: int(v) for k, v in zip(*np.unique(cat["type"], return_counts=True))} if len(cat) else {}}


def _fit_type(t: str) -> str:
    """DR9 profile of a row type (DR4's SIMP is an EXP, its COMP is approximated by a SER)."""
    return {"SIMP": "EXP", "COMP": "SER"}.get(t, t)


def _catalog(brick, b, rows, refs, exps, pixmaps, models, region, bands, images_dir, log,
             model_set: str = "dr9", kept: list | None = None) -> np.ndarray:
    """The catalog rows (objid order); ``kept`` (if given) receives the FitRows in that order."""
    from . import brick_derived as bd
    from .sim_measure import catalog_dtype
    bw = bricks.brick_wcs(brick)
    n0 = len(rows)
    ra = np.array([r.result.source.ra for r in rows]) if rows else np.zeros(0)
    dec = np.array([r.result.source.dec for r in rows]) if rows else np.zeros(0)
    ra = np.mod(ra, 360.0)
    bxy = bw.all_world2pix(np.column_stack([ra, dec]), 0) if n0 else np.zeros((0, 2))
    n = bricks.BRICK_IMAGE_SIZE
    inb = (np.rint(bxy[:, 0]) >= 0) & (np.rint(bxy[:, 0]) < n) & (np.rint(bxy[:, 1]) >= 0) & (np.rint(bxy[:, 1]) < n)
    if n0:  # sources whose final position left every exposure are dropped
        cov = bd.at_sources(exps, ra, dec, bands, depths=False)
        inb &= sum(cov[f"nobs_{bb}"].astype(int) for bb in bands) > 0
        if (~inb).any():
            log.msg(f"{int((~inb).sum())} sources dropped: final position outside the brick or every exposure")
    rows = [r for r, k in zip(rows, inb) if k]
    ra, dec, bxy = ra[inb], dec[inb], bxy[inb]
    order = np.argsort(ra, kind="stable")
    rows = [rows[i] for i in order]
    ra, dec, bxy = ra[order], dec[order], bxy[order]
    N = len(rows)
    if kept is not None:
        kept[:] = rows
    cat = np.zeros(N, dtype=catalog_dtype("dr9"))
    cat["release"] = RELEASE_SOUTH
    cat["brickid"] = b["brickid"]
    cat["brickname"] = brick
    cat["objid"] = np.arange(N)
    cat["ra"], cat["dec"] = ra, dec
    cat["bx"], cat["by"] = bxy[:, 0], bxy[:, 1]
    cat["brick_primary"] = bricks.is_primary(ra, dec, np.full(N, b["brickid"]))
    cat["type"] = [_fit_type(r.type) for r in rows]
    cat["dchisq"] = np.array([r.dchisq for r in rows]).reshape(N, 5)
    for i, r in enumerate(rows):
        s, iv = r.result.source, r.result.ivar
        cosd = np.cos(np.deg2rad(s.dec))
        cat["ra_ivar"][i] = iv["ra"] / cosd ** 2 if cosd > 0 else 0.0
        cat["dec_ivar"][i] = iv["dec"]
        for bb in bands:
            fl, fiv = s.flux.get(bb, 0.0), iv.get("flux_" + bb, 0.0)
            cat[f"flux_{bb}"][i] = fl if fiv > 0 else 0.0
            cat[f"flux_ivar_{bb}"][i] = fiv
            cat[f"rchisq_{bb}"][i] = r.result.rchisq.get(bb, 0.0)
            for k in ("fracflux", "fracmasked", "fracin", "nea"):
                cat[f"{k}_{bb}"][i] = r.metrics.get(f"{k}_{bb}", 0.0)
        rt = _fit_type(r.type)
        if rt != "PSF":
            cat["shape_r"][i], cat["shape_r_ivar"][i] = s.r_e, iv["shape_r"]
            if rt != "REX":
                cat["shape_e1"][i], cat["shape_e2"][i] = s.e1, s.e2
                cat["shape_e1_ivar"][i], cat["shape_e2_ivar"][i] = iv["shape_e1"], iv["shape_e2"]
        cat["sersic"][i] = {"PSF": 0.0, "REX": 1.0, "EXP": 1.0, "DEV": 4.0}.get(rt, s.n)
        if rt == "SER":
            cat["sersic_ivar"][i] = iv["sersic"]
    # fluxes zeroed where fracin < 1e-3
    for bb in bands:
        tiny = cat[f"fracin_{bb}"] < 1e-3
        cat[f"flux_{bb}"][tiny] = 0.0
        cat[f"flux_ivar_{bb}"][tiny] = 0.0
    # per-exposure quantities at the source pixel
    d = bd.at_sources(exps, ra, dec, bands)
    for bb in bands:
        for k in ("nobs", "anymask", "allmask", "psfsize", "psfdepth", "galdepth"):
            cat[f"{k}_{bb}"] = d[f"{k}_{bb}"]
        psfsize, psfdepth = d[f"psfsize_{bb}"], d[f"psfdepth_{bb}"]
        s = np.array([r.metrics.get(f"bnea_sum_{bb}", 0.0) for r in rows])
        with np.errstate(invalid="ignore", divide="ignore"):
            cat[f"blob_nea_{bb}"] = np.where(s > 0, psfdepth * 4 * np.pi * (psfsize / 2.3548) ** 2 / np.where(s > 0, s, 1), 0)
    cat["mjd_min"], cat["mjd_max"] = d["mjd_min"], d["mjd_max"]
    # maskbits
    mb = np.where(cat["brick_primary"], 0, MASKBITS.mask("NPRIMARY")).astype(np.int64)
    for bb in bands:
        if bb in "grz":
            mb |= np.where(d[f"satur_{bb}"], MASKBITS.mask(f"SATUR_{bb.upper()}"), 0)
            mb |= np.where(cat[f"allmask_{bb}"] != 0, MASKBITS.mask(f"ALLMASK_{bb.upper()}"), 0)
    fb = np.zeros(N, np.int64)
    # reference stars: BRIGHT / MEDIUM disks, ref columns, fitbits
    if refs is not None and len(refs):
        g = refs["PHOT_G_MEAN_MAG"].astype(np.float64)
        mmag = g
        rr = mask_radius_arcsec(mmag)
        from scipy.spatial import cKDTree
        cosd = np.cos(np.deg2rad(b["dec"]))
        pts = np.column_stack([refs["RA"] * cosd, refs["DEC"]]) * 3600.0
        tree = cKDTree(pts)
        q = np.column_stack([ra * cosd, dec]) * 3600.0
        for j, near in enumerate(tree.query_ball_point(q, float(rr.max())) if N else []):
            for k in near:
                dist = np.hypot(*(q[j] - pts[k]))
                if mmag[k] < 13 and dist < rr[k] / 2:
                    mb[j] |= MASKBITS.mask("BRIGHT")
                if mmag[k] < 16 and dist < rr[k]:
                    mb[j] |= MASKBITS.mask("MEDIUM")
        for i, r in enumerate(rows):
            k = r.src.ref
            if k < 0:
                continue
            cat["ref_cat"][i] = "G2"
            # the catalogue's position at its epoch, and its astrometric errors (mas)
            cat["ra"][i], cat["dec"][i] = refs["RA"][k], refs["DEC"][k]
            for c, e in (("ra", "RA_ERROR"), ("dec", "DEC_ERROR")):
                err = float(refs[e][k]) if e in refs.dtype.names else 0.0
                cat[f"{c}_ivar"][i] = 1.0 / (err / 3.6e6) ** 2 if err > 0 else 0.0
            cat["ref_id"][i] = refs["SOURCE_ID"][k]
            cat["ref_epoch"][i] = refs["REF_EPOCH"][k]
            cat["gaia_phot_g_mean_mag"][i] = refs["PHOT_G_MEAN_MAG"][k]
            cat["gaia_phot_bp_mean_mag"][i] = refs["PHOT_BP_MEAN_MAG"][k]
            cat["gaia_phot_rp_mean_mag"][i] = refs["PHOT_RP_MEAN_MAG"][k]
            cat["gaia_phot_g_mean_flux_over_error"][i] = refs["PHOT_G_MEAN_FLUX_OVER_ERROR"][k]
            cat["gaia_astrometric_excess_noise"][i] = refs["ASTROMETRIC_EXCESS_NOISE"][k]
            cat["pmra"][i], cat["pmdec"][i], cat["parallax"][i] = refs["PMRA"][k], refs["PMDEC"][k], refs["PARALLAX"][k]
            for c, e in (("pmra", "PMRA_ERROR"), ("pmdec", "PMDEC_ERROR"), ("parallax", "PARALLAX_ERROR")):
                err = float(refs[e][k])
                cat[f"{c}_ivar"][i] = 1.0 / err ** 2 if err > 0 else 0.0
            fb[i] |= FITBITS.mask("GAIA") | FITBITS.mask("GAIA_POINTSOURCE") | FITBITS.mask("FORCED_POINTSOURCE")
            if mmag[k] < 13:
                fb[i] |= FITBITS.mask("BRIGHT")
            if mmag[k] < 16:
                fb[i] |= FITBITS.mask("MEDIUM")
    for i, r in enumerate(rows):
        moved = np.hypot((r.result.source.ra - r.src.ra) * np.cos(np.deg2rad(r.src.dec)),
                         r.result.source.dec - r.src.dec) * 3600.0
        if moved > 1.0:
            fb[i] |= FITBITS.mask("WALKER")
        if moved > 2.5:
            fb[i] |= FITBITS.mask("RUNNER")
        if r.src.iterative:
            fb[i] |= FITBITS.mask("ITERATIVE")
        rt = _fit_type(r.type)
        if rt in ("REX", "EXP", "DEV", "SER"):
            from .ellipse import LOGR_MAX, LOGR_MIN
            lr = np.log(max(r.result.source.r_e, 1e-30))
            if abs(lr - LOGR_MIN) < 0.01 or abs(lr - LOGR_MAX[rt]) < 0.01:
                fb[i] |= FITBITS.mask("HIT_RADIUS_LIMIT")
        if rt == "SER":
            from .mixtures import SERSIC_MAX, SERSIC_MIN
            if min(abs(r.result.source.n - SERSIC_MIN), abs(r.result.source.n - SERSIC_MAX)) < 0.001:
                fb[i] |= FITBITS.mask("HIT_SERSIC_LIMIT")
    cat["maskbits"], cat["fitbits"] = mb, fb
    # Galactic extinction
    ebvf = _ebv_function(images_dir, exps)
    if ebvf is None:
        log.msg("ebv: no SFD map for these images; ebv = 0, mw_transmission = 1")
        cat["ebv"] = 0.0
    else:
        cat["ebv"] = ebvf(ra, dec) if N else 0.0
    for bb in ("g", "r", "z") + WISE:
        cat[f"mw_transmission_{bb}"] = mw_transmission(cat["ebv"].astype(np.float64), bb)
    # coadds, apertures, fibers
    co = bd.coadds(region, exps, pixmaps, models, bands)
    for bb in bands:
        ap = bd.aperture_photometry(co[bb], bxy[:, 0], bxy[:, 1], region)
        cat[f"apflux_{bb}"] = ap["apflux"]
        cat[f"apflux_ivar_{bb}"] = ap["apflux_ivar"]
        cat[f"apflux_resid_{bb}"] = ap["apflux_resid"]
        cat[f"apflux_blobresid_{bb}"] = ap["apflux_resid"]
        cat[f"apflux_masked_{bb}"] = ap["apflux_masked"]
    del co
    srcs = []
    for i, r in enumerate(rows):
        s = r.result.source
        from .fitter import Source
        kind = _fit_type(r.type) if _fit_type(r.type) in ("PSF", "REX", "EXP", "DEV", "SER") else "PSF"
        src = Source(kind, s.ra, s.dec, dict(s.flux), s.r_e if s.r_e > 0 else 0.45, s.e1, s.e2, s.n if s.n > 0 else 4.0)
        srcs.append(src)
    ok = [{bb: bool(cat[f"flux_ivar_{bb}"][i] > 0) for bb in bands} for i in range(N)]
    fib = bd.fiber_fluxes(brick, region, srcs, bands, ok)
    for k, v in fib.items():
        cat[k] = v
    # WISE and other inputs we do not have
    cat["wise_coadd_id"] = ""
    cat["lc_epoch_index_w1"] = -1
    cat["lc_epoch_index_w2"] = -1
    log.msg("WISE: no unWISE images; flux_w1..w4 = 0, flux_ivar_w1..w4 = 0, nobs_w* = 0, lc_* empty")
    missing = [bb for bb in "grz" if bb not in bands]
    if missing:
        log.msg(f"bands without exposures: {''.join(missing)} (flux 0, ivar 0, nobs 0)")
    if model_set == "dr4":
        from .brick_dr4 import to_dr4
        log.msg("DR4 data model: types PSF/SIMP/DEV/EXP/COMP (COMP approximated by a Sersic fit), "
                "no maskbits/fitbits, lc_* (7 epochs) empty")
        return to_dr4(cat, [r.type for r in rows], cat["sersic"].astype(np.float64))
    return cat


def _write(outdir: str, brick: str, cat: np.ndarray, model_set: str = "dr9") -> str:
    from .sim_fits import write_table
    from .simulate import brick_path
    b = bricks.brick(brick)
    dm = model(f"{model_set}-tractor")
    path = brick_path(outdir, brick)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cards = [("RELEASE", int(cat["release"][0]) if len(cat) else RELEASE_SOUTH), ("BRICKNAM", brick, "brick name"), ("BRICKID", int(b["brickid"])),
             ("RAMIN", float(b["ra1"])), ("RAMAX", float(b["ra2"])), ("DECMIN", float(b["dec1"])),
             ("DECMAX", float(b["dec2"])), ("PHOTPIPE", "legacylake run-brick")]
    for i, name in enumerate(DCHISQ_MODELS[model_set]):
        cards.append((f"DCHISQ_{i}", name, "dchisq model"))
    for i, r in enumerate(APERTURE_RADII_OPTICAL_ARCSEC):
        cards.append((f"APRAD{i}", float(r), "aperture radius, arcsec"))
    for i, r in enumerate(APERTURE_RADII_WISE_ARCSEC):
        cards.append((f"WAPRAD{i}", float(r), "WISE aperture radius, arcsec"))
    for i, band in enumerate(WISE, 1):
        cards.append((f"WISEAB{i}", float(WISE_VEGA_TO_AB[band]), "WISE Vega to AB, mag"))
    write_table(path, cat, dm, cards)
    return path


def sigma_path(outdir: str, brick: str) -> str:
    """``OUTDIR/metrics/<AAA>/sigma-<brick>.fits``: marginalised uncertainties per catalog row."""
    return os.path.join(outdir, "metrics", brick[:3], f"sigma-{brick}.fits")


def _write_sigma(outdir: str, brick: str, cat: np.ndarray, rows: list, bands) -> str:
    """Side file (not part of the data model) with, per catalog row (OBJID), the marginalised
    1-sigma of the fluxes (nmgy, FLUX_SIGMA_MARG_<B>) and position (arcsec, RA east / DEC):
    square root of the diagonal of the inverse Fisher matrix of the blob's final joint fit,
    i.e. marginalised over every other parameter of the blob (the catalog's FLUX_IVAR is the
    survey's diagonal Fisher term), floored at 1/sqrt(FLUX_IVAR) (a marginal sigma cannot be
    smaller; ``fitter.marginal_sigmas`` floors at the fit's own diagonal, the catalog's ivar
    may come from another fit). 0 where the catalog has no flux (flux_ivar 0)."""
    from .sim_images import _atomic_fits
    n = len(cat)
    rec = np.zeros(n, dtype=[("OBJID", "i4")] + [(f"FLUX_SIGMA_MARG_{bb.upper()}", "f4") for bb in "grz"]
                   + [("RA_SIGMA_MARG", "f4"), ("DEC_SIGMA_MARG", "f4")])
    rec["OBJID"] = cat["objid"]
    for i, r in enumerate(rows):
        sm = r.result.sigma_marg
        for bb in bands:
            iv = float(cat[f"flux_ivar_{bb}"][i])
            if iv > 0:
                # marginal >= conditional (1/sqrt(diagonal))
                rec[f"FLUX_SIGMA_MARG_{bb.upper()}"][i] = max(sm.get("flux_" + bb, 0.0), 1.0 / np.sqrt(iv))
        cosd = np.cos(np.deg2rad(cat["dec"][i]))
        rec["RA_SIGMA_MARG"][i] = sm.get("ra", 0.0) * cosd * 3600.0
        rec["DEC_SIGMA_MARG"][i] = sm.get("dec", 0.0) * 3600.0
    path = sigma_path(outdir, brick)
    _atomic_fits(path, lambda f: f.write(rec, extname="SIGMA", header=[
        {"name": "BRICKNAM", "value": brick},
        {"name": "COMMENT", "value": "marginalised 1-sigma: fluxes nmgy, positions arcsec"}]))
    return path


def run(args) -> int:
    """CLI handler of ``photometry run-brick``."""
    if not os.path.isdir(args.images):
        raise UserError(f"--images {args.images}: no such folder")
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    s = run_brick(args.brick, args.images, args.out, args.model_set, args.bands, workers=args.workers,
                  iterative=not getattr(args, "no_iterative", False), coadds=getattr(args, "coadds", False))
    types = ", ".join(f"{k} {v}" for k, v in sorted(s["types"].items()))
    st = ", ".join(f"{k} {v:.1f}s" for k, v in s["stages"].items())
    print(f"run-brick {args.brick}: {s['rows']} sources ({types}); {s['peaks']} peaks, {s['refs']} Gaia refs, "
          f"{s['blobs']} blobs, {s['iterative_kept']} iterative; {s['seconds']:.1f} s ({st}) -> {s['path']} "
          f"(log {s['log']})")
    if s["coadds"]:
        print(f"coadds: {len(s['coadds'])} files in {os.path.dirname(s['coadds'][0])}")
    return 0
