"""``legacylake photometry run-brick``: CCD images of a brick -> ``tractor/<AAA>/tractor-<brick>.fits``.

Stages (reference 4 and 5): load exposures, detection maps, SED-matched detection with
peak vetting, blobs, reference sources (Gaia and Tycho-2 stars at their catalogue positions
moved to each exposure's epoch, SGA large galaxies: :mod:`legacylake.photometry.brick.sources`), per-blob fitting
and DR9 model selection, derived columns, catalog (DR9 data model, upper-case, atomic:
:mod:`legacylake.photometry.brick.catalog`). The run log (``OUTDIR/logs/<brick>.log``) has the time per stage and
per blob, and says which columns had no input (WISE: flux 0, ivar 0).

The region is a brick of the grid, optionally zoomed to a pixel box, or a custom brick
(:mod:`legacylake.photometry.brick.target`). Images: the simulated layout (``legacylake simulate images``) or a survey
folder with a CCD table (:mod:`legacylake.photometry.brick.cp`).

Python API: ``run_brick(brick, images_dir, outdir, model_set="dr9") -> dict`` (summary;
``brick`` a name or a :class:`legacylake.photometry.brick.target.Target`); ``model_set="dr4"`` writes the DR4 data model.
"""

from __future__ import annotations

import os
import time

import numpy as np

from legacylake.catalogs_schema import model
from legacylake.catalogs_schema.constants import (APERTURE_RADII_OPTICAL_ARCSEC, APERTURE_RADII_WISE_ARCSEC,
                                                  DCHISQ_MODELS, WISE_VEGA_TO_AB)

from legacylake.errors import UserError
from legacylake.photometry.brick.catalog import RELEASE_SOUTH, WISE


class RunLog:
    """Timed stages and messages, written to the log file at the end."""

    def __init__(self):
        self.lines, self.t0, self.stages = [], time.time(), {}

    def msg(self, text: str) -> None:
        self.lines.append(f"[{time.time() - self.t0:8.2f} s] {text}")

    def stage(self, name: str, seconds: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + seconds
        self.msg(f"stage {name}: {seconds:.2f} s")


_CTX = None  # (exposures, pixmaps, blob labels, blob slices, sources, model set) shared with forked workers


def _fit_one_blob(job):
    """Fit one blob (worker side): (label, n sources, rows, [(exposure, x0, y0, model)], seconds)."""
    from legacylake.photometry.brick.fit import cutouts, fit_blob
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
                                                      disable=None if progress else True):  # None: off when not a TTY
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


def run_brick(brick, images_dir: str, outdir: str, model_set: str = "dr9", bands: str | None = None,
              progress: bool = True, workers: int = 1, iterative: bool = True, coadds: bool = False) -> dict:
    """Run the photometry of one brick (a name, or a :class:`legacylake.photometry.brick.target.Target` for a zoom or a
    custom brick); returns a summary (path, rows, seconds per stage).

    ``iterative``: second detection pass on the residual images (new sources get FITBITS
    ITERATIVE); ``coadds``: write OUTDIR/coadd/<AAA>/<brick>/ images (:mod:`legacylake.photometry.brick.coadds`)."""
    from scipy import ndimage

    from legacylake.photometry.brick.catalog import build_catalog
    from legacylake.photometry.brick.detect import band_maps, blobs, detect, finish_maps
    from legacylake.photometry.brick.fit import BlobSource
    from legacylake.photometry.brick.images import brick_region, load_exposures, pixel_map
    from legacylake.photometry.brick.sources import epochs, force_psf_in_masks, reference_sources, veto_map
    from legacylake.photometry.brick.references import reference_table
    from legacylake.photometry.brick.target import as_target
    model_set = str(model_set).lower()
    if model_set not in ("dr9", "dr4"):
        raise UserError(f"--model-set {model_set}: use dr9 or dr4")
    target = as_target(brick)
    log = RunLog()
    t = time.time()
    exps = load_exposures(images_dir, bands, target)
    for e, ep in zip(exps, epochs(exps)):
        e.image.epoch = float(ep)
    bands_all = sorted({e.band for e in exps}, key="grz".index)
    region = brick_region(target, exps)
    pixmaps = []
    for e in exps:
        ix, iy, inside = pixel_map(target, region, e)
        pixmaps.append((ix.astype(np.int16), iy.astype(np.int16), inside))
    cams = sorted({getattr(e, "camera", "") or "sim" for e in exps})
    log.msg(f"{target.name}: {len(exps)} exposures ({', '.join(cams)}), bands {''.join(bands_all)}, region x "
            f"{region[0]}:{region[1]} y {region[2]}:{region[3]}")
    for e in exps:
        if hasattr(e, "expnum"):
            log.msg(f"  {e.camera} {e.expnum} {e.ccdname} {e.band}: cut at {e.cut}, {e.image.shape[1]}x{e.image.shape[0]} px "
                    f"at {e.image.pixscale:.3f}\"/px, zpscale {e.zpscale:.4g} ({'per second' if e.per_second else 'counts'}), "
                    f"sky {e.sky}, FWHM {e.fwhm:.2f}\", PsfEx {os.path.relpath(e.psf_path, images_dir)}")
    log.stage("load", time.time() - t)
    x0, x1, y0, y1 = region

    # ---- reference sources, detection maps and SED-matched detection
    t = time.time()
    acc = {}
    band_maps(acc, region, exps, pixmaps)
    dm = finish_maps(acc)
    refs = reference_table(images_dir, target)
    ref_src = reference_sources(refs, target, region, exps, bands_all)
    peaks, hot = detect(dm, [(x, y) for x, y, _ in ref_src], veto_extra=veto_map(refs, target, region, exps))
    nref = {k: int(np.sum(refs[k])) for k in ("ISGAIA", "ISTYCHO", "ISLARGEGALAXY", "DONOTFIT")} if len(refs) else {}
    log.msg(f"detection: {len(peaks)} peaks at 6 sigma; references near the region: {len(refs)} "
            f"({nref.get('ISGAIA', 0)} Gaia, {nref.get('ISTYCHO', 0)} Tycho-2, {nref.get('ISLARGEGALAXY', 0)} SGA, "
            f"{nref.get('DONOTFIT', 0)} not fitted), {len(ref_src)} fitted in the region")
    log.stage("detect", time.time() - t)

    # ---- blobs and sources
    t = time.time()
    bw = target.wcs
    srcs = list(ref_src)
    for x, y, _ in peaks:
        ra, dec = bw.all_pix2world([[x + x0, y + y0]], 0)[0]
        fl = {bb: float(dm[bb][0][int(y), int(x)]) for bb in bands_all}
        srcs.append((x, y, BlobSource(float(ra), float(dec), fl)))
    nforced = force_psf_in_masks(refs, [s[2] for s in srcs])
    if nforced:
        log.msg(f"{nforced} detections inside BRIGHT/GALAXY masks forced to PSF")
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
                                  workers, progress, f"blobs {target.name}")
    log.stage("fitblobs", time.time() - t)
    for blab, nin, nout, dt in blob_times:
        log.msg(f"blob {blab}: {nin} sources in, {nout} kept, {dt:.2f} s")

    # ---- iterative detection on the residual images (reference 4.3, FITBITS ITERATIVE)
    n_iter_peaks = n_iter_kept = 0
    if iterative:
        from legacylake.photometry.brick.iterative import iterative_sources
        t = time.time()
        orig_xy = [(x, y) for x, y, _ in srcs]
        if rows:
            fx, fy = bw.all_world2pix(np.array([[r.result.source.ra, r.result.source.dec] for r in rows]), 0).T
            orig_xy += list(zip(fx - x0, fy - y0))
        new_srcs, lab2, resid_exps = iterative_sources(exps, pixmaps, models, region, orig_xy, refs, bw, bands_all)
        n_iter_peaks = len(new_srcs)
        if new_srcs:
            force_psf_in_masks(refs, [s for s, _, _ in new_srcs])
            slices2 = ndimage.find_objects(lab2)
            by_blob2 = {}
            for k, (_, _, blab) in enumerate(new_srcs):
                by_blob2.setdefault(int(blab), []).append(k)
            off = int(lab.max()) if lab.size else 0
            rows2, bt2 = _fit_blobs(resid_exps, pixmaps, lab2, slices2, [s for s, _, _ in new_srcs], by_blob2,
                                    model_set, models, workers, progress, f"iterative {target.name}")
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
    cat = build_catalog(target, rows, refs, exps, pixmaps, models, region, bands_all, images_dir, log, model_set, kept)
    log.stage("derived", time.time() - t)
    t = time.time()
    path = _write(outdir, target, cat, model_set)
    sigma_path_ = _write_sigma(outdir, target.name, cat, kept, bands_all)
    log.stage("write", time.time() - t)
    coadd_paths = []
    if coadds:
        from legacylake.photometry.brick.coadds import write_coadds
        t = time.time()
        coadd_paths = write_coadds(outdir, target, region, exps, pixmaps, models, bands_all, refs)
        log.msg(f"coadds: {len(coadd_paths)} files in {os.path.dirname(coadd_paths[0])} "
                "(nearest-pixel resampling, inverse-variance weighted)")
        log.stage("coadds", time.time() - t)
    total = time.time() - log.t0
    log.msg(f"total {total:.1f} s, {len(cat)} sources -> {path}")
    os.makedirs(os.path.join(outdir, "logs"), exist_ok=True)
    logpath = os.path.join(outdir, "logs", f"{target.name}.log")
    tmp = logpath + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(log.lines) + "\n")
    os.replace(tmp, logpath)
    types = cat["type"]
    return {"path": path, "log": logpath, "sigma": sigma_path_, "rows": int(len(cat)), "peaks": len(peaks),
            "refs": len(ref_src), "blobs": len(by_blob), "seconds": total, "stages": dict(log.stages),
            "iterative_peaks": n_iter_peaks, "iterative_kept": n_iter_kept, "coadds": coadd_paths,
            "brick": target.name, "region": region, "exposures": len(exps), "cameras": cams,
            "types": {str(k).strip(): int(v) for k, v in zip(*np.unique(types, return_counts=True))} if len(cat) else {}}


def _write(outdir: str, target, cat: np.ndarray, model_set: str = "dr9") -> str:
    from legacylake.photometry.sim.fitswriter import write_table
    from legacylake.photometry.sim.catalog import brick_path
    dm = model(f"{model_set}-tractor")
    path = brick_path(outdir, target.name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cards = [("RELEASE", int(cat["release"][0]) if len(cat) else RELEASE_SOUTH), ("BRICKNAM", target.name, "brick name"),
             ("BRICKID", int(target.brickid)), ("RAMIN", float(target.ra1)), ("RAMAX", float(target.ra2)),
             ("DECMIN", float(target.dec1)), ("DECMAX", float(target.dec2)), ("PHOTPIPE", "legacylake run-brick")]
    if target.zoom is not None:
        for k, v in zip(("ZOOMX0", "ZOOMX1", "ZOOMY0", "ZOOMY1"), target.zoom):
            cards.append((k, int(v), "processed pixel box (half-open)"))
    if target.custom:
        cards += [("CUSTOM", True, "custom brick (--radec)"), ("BRICKRA", float(target.ra)),
                  ("BRICKDEC", float(target.dec)), ("BRICKW", int(target.width)), ("BRICKH", int(target.height))]
    for i, name in enumerate(DCHISQ_MODELS[model_set]):
        cards.append((f"DCHISQ_{i}", name, "dchisq model"))
    for i, r in enumerate(APERTURE_RADII_OPTICAL_ARCSEC):
        cards.append((f"APRAD{i}", float(r), "aperture radius, arcsec"))
    for i, r in enumerate(APERTURE_RADII_WISE_ARCSEC):
        cards.append((f"WAPRAD{i}", float(r), "WISE aperture radius, arcsec"))
    for i, band in enumerate(WISE, 1):
        cards.append((f"WISEAB{i}", float(WISE_VEGA_TO_AB[band]), "WISE Vega to AB, mag"))
    widths = {}
    if "brickname" in cat.dtype.names and len(target.name) > dm["brickname"].width:
        widths["brickname"] = len(target.name)
    write_table(path, cat, dm, cards, widths=widths or None)
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
    smaller; ``photometry.model.fitter.marginal_sigmas`` floors at the fit's own diagonal, the catalog's ivar
    may come from another fit). 0 where the catalog has no flux (flux_ivar 0)."""
    from legacylake.photometry.sim.images import _atomic_fits
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


def target_from_args(args):
    """The :class:`legacylake.photometry.brick.target.Target` of the CLI options: a brick (positional or ``--brick``,
    optional ``--zoom X0 X1 Y0 Y1``) or a custom brick (``--radec RA DEC --width W --height H``)."""
    from legacylake.photometry.brick.target import brick_target, custom_target
    pos, opt = getattr(args, "brick", None), getattr(args, "brick_opt", None)
    if pos and opt and pos != opt:
        raise UserError(f"brick given twice: {pos} and --brick {opt}")
    name = pos or opt
    radec = getattr(args, "radec", None)
    width, height = getattr(args, "width", None), getattr(args, "height", None)
    if radec is not None:
        if name:
            raise UserError("give a brick name or --radec RA DEC, not both")
        return custom_target(float(radec[0]), float(radec[1]), int(width or 3600), int(height or 3600),
                             getattr(args, "zoom", None))
    if width is not None or height is not None:
        raise UserError("--width/--height go with --radec RA DEC (a custom brick)")
    if not name:
        raise UserError("which region? give a brick name (BRICK or --brick NAME) or --radec RA DEC")
    return brick_target(name, getattr(args, "zoom", None))


def run(args) -> int:
    """CLI handler of ``photometry run-brick``."""
    if not os.path.isdir(args.images):
        raise UserError(f"--images {args.images}: no such folder")
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    target = target_from_args(args)
    s = run_brick(target, args.images, args.out, args.model_set, args.bands, workers=args.workers,
                  iterative=not getattr(args, "no_iterative", False), coadds=getattr(args, "coadds", False))
    types = ", ".join(f"{k} {v}" for k, v in sorted(s["types"].items()))
    st = ", ".join(f"{k} {v:.1f}s" for k, v in s["stages"].items())
    where = f" box {target.box}" if target.zoom is not None or target.custom else ""
    print(f"run-brick {target.name}{where}: {s['rows']} sources ({types}); {s['peaks']} peaks, {s['refs']} references, "
          f"{s['blobs']} blobs, {s['iterative_kept']} iterative; {s['seconds']:.1f} s ({st}) -> {s['path']} "
          f"(log {s['log']})")
    if s["coadds"]:
        print(f"coadds: {len(s['coadds'])} files in {os.path.dirname(s['coadds'][0])}")
    return 0
