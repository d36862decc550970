"""``legacylake photometry fit``: forced/free model photometry of sources on the user's images."""

from __future__ import annotations

import argparse
import os
import tempfile

from legacylake.errors import UserError

DCHISQ_ORDER = ("PSF", "REX", "DEV", "EXP", "SER")
NPARAM = {"PSF": 2, "REX": 3, "DEV": 5, "EXP": 5, "SER": 6}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("photometry", help="Tractor-style model photometry")
    ps = p.add_subparsers(dest="photometry_cmd", required=True)
    f = ps.add_parser("fit", help="fit PSF/REX/EXP/DEV/SER models of sources jointly on images",
                      description="Joint Gauss-Newton fit of sources (ra, dec, type, optional "
                                  "flux_<band>, shape_r/e1/e2, sersic) over IMAGE/IVAR FITS images.")
    f.add_argument("--image", action="append", required=True, help="IMAGE.fits (repeatable)")
    f.add_argument("--sources", required=True, help="FITS table: ra, dec, type, ...")
    f.add_argument("--out", required=True, help="output FITS table")
    f.add_argument("--psfex", help="PsfEx file for images without a PSF/PSFEX HDU")
    f.add_argument("--select", action="store_true", help="DR9 model selection (type, dchisq)")
    f.add_argument("--forced", action="store_true", help="fit fluxes only (forced photometry)")
    f.set_defaults(func=run)
    rb = ps.add_parser("run-brick", help="detect, fit and classify the sources of a brick's CCD images",
                       description="CCD images of a brick (a survey folder with a survey-ccds CCD table, "
                                   "images/, calib/, gaia/, tycho2, SGA; or the `legacylake simulate images` "
                                   "layout) -> OUT/tractor/<AAA>/tractor-<brick>.fits in the DR9 data model, with "
                                   "a run log OUT/logs/<brick>.log (time per stage and per blob). The region: a "
                                   "brick (BRICK or --brick NAME), optionally --zoom X0 X1 Y0 Y1 (brick pixels), "
                                   "or a custom brick --radec RA DEC --width W --height H (0.262\"/px, written "
                                   "as tractor/cus/tractor-custom-<RRRRRR><p|m><DDDDD>.fits).")
    rb.add_argument("brick", nargs="?", help="brick name, e.g. 1501p020 (same as --brick)")
    rb.add_argument("--brick", dest="brick_opt", metavar="NAME", help="brick name, e.g. 2447p120")
    rb.add_argument("--zoom", nargs=4, type=int, metavar=("X0", "X1", "Y0", "Y1"),
                    help="process only this pixel box of the brick (half-open, 0-based brick pixels)")
    rb.add_argument("--radec", nargs=2, type=float, metavar=("RA", "DEC"),
                    help="a custom brick centred here (deg) instead of a brick of the grid")
    rb.add_argument("--width", type=int, metavar="W", help="custom brick width, pixels (default 3600)")
    rb.add_argument("--height", type=int, metavar="H", help="custom brick height, pixels (default 3600)")
    rb.add_argument("--images", required=True, metavar="DIR",
                    help="survey folder (survey-ccds-*.fits[.gz] or .kd.fits, images/, calib/) or simulated "
                         "images folder (images/*.fits + gaia-<brick>.fits)")
    rb.add_argument("--out", required=True, metavar="OUTDIR")
    rb.add_argument("--model-set", default="dr9", choices=("dr9", "dr4"), help="dr9 (PSF REX EXP DEV SER) or dr4 (PSF SIMP DEV EXP COMP)")
    rb.add_argument("--bands", help="only these bands, e.g. grz")
    rb.add_argument("--workers", type=int, default=1, help="processes fitting blobs (default 1)")
    rb.add_argument("--no-iterative", action="store_true",
                    help="skip the second detection pass on the residual images (FITBITS ITERATIVE)")
    rb.add_argument("--coadds", action="store_true",
                    help="also write OUTDIR/coadd/<AAA>/<brick>/legacysurvey-<brick>-{image,model,resid,invvar}-<band>"
                         ".fits.fz and -maskbits.fits.fz on the brick grid")
    rb.set_defaults(func=lambda a: __import__("legacylake.photometry.brick.run", fromlist=["run"]).run(a))


def _read_sources(path, bands):
    import fitsio
    from legacylake.photometry.model.fitter import TYPES, Source
    if not os.path.exists(path):
        raise UserError(f"{path}: no such sources file")
    t = fitsio.read(path, ext=1)
    cols = {c.lower(): c for c in t.dtype.names}
    for need in ("ra", "dec", "type"):
        if need not in cols:
            raise UserError(f"{path}: missing column {need}")
    out = []
    for row in t:
        kind = row[cols["type"]]
        kind = (kind.decode() if isinstance(kind, bytes) else str(kind)).strip().upper()
        if kind not in TYPES:
            raise UserError(f"{path}: type {kind!r} not one of {', '.join(TYPES)}")
        get = lambda k, d: float(row[cols[k]]) if k in cols else d  # noqa: E731
        out.append(Source(kind, get("ra", 0), get("dec", 0),
                          {b: get("flux_" + b, 1.0) for b in bands},
                          get("shape_r", 0.45) or 0.45, get("shape_e1", 0.0), get("shape_e2", 0.0),
                          get("sersic", 4.0) or 4.0))
    return out


def _fit_group(images, sources, forced):
    from legacylake.photometry.model.fitter import Fitter
    f = Fitter(images, sources)
    (f.fit_fluxes() if forced else f.fit())
    return f.results()


def _select(images, results):
    """Per source, others subtracted: fit each candidate model alone, dchisq, DR9 choice
    (shared implementation: :func:`legacylake.photometry.model.select.select_models`)."""
    from legacylake.photometry.model.select import select_models
    return select_models(images, results, "dr9")


def write_results(path, results, bands, selected=None):
    import numpy as np

    import fitsio
    n = len(results)
    cols = {"ra": "f8", "dec": "f8", "ra_ivar": "f4", "dec_ivar": "f4", "type": "U3"}
    for b in bands:
        cols.update({f"flux_{b}": "f4", f"flux_ivar_{b}": "f4", f"flux_sigma_marg_{b}": "f4",
                     f"rchisq_{b}": "f4"})
    for c in ("shape_r", "shape_e1", "shape_e2", "sersic"):
        cols.update({c: "f4", c + "_ivar": "f4", c + "_sigma_marg": "f4"})
    cols.update({"ra_sigma_marg": "f8", "dec_sigma_marg": "f8"})
    if selected is not None:
        cols["dchisq"] = ("f4", (5,))
    dt = [(k.upper(), v) if isinstance(v, str) else (k.upper(), v[0], v[1]) for k, v in cols.items()]
    t = np.zeros(n, dtype=dt)
    for i, r in enumerate(results):
        if selected is not None:
            t["DCHISQ"][i] = selected[i][1]
            r = selected[i][2]
        s = r.source
        t["RA"][i], t["DEC"][i] = s.ra, s.dec
        t["TYPE"][i] = selected[i][0] if selected is not None else s.type
        for k in ("ra", "dec"):
            t[k.upper() + "_IVAR"][i] = r.ivar[k]
            t[k.upper() + "_SIGMA_MARG"][i] = r.sigma_marg[k]
        for b in bands:
            t[f"FLUX_{b.upper()}"][i] = s.flux[b]
            t[f"FLUX_IVAR_{b.upper()}"][i] = r.ivar["flux_" + b]
            t[f"FLUX_SIGMA_MARG_{b.upper()}"][i] = r.sigma_marg["flux_" + b]
            t[f"RCHISQ_{b.upper()}"][i] = r.rchisq[b]
        vals = {"shape_r": s.r_e, "shape_e1": s.e1, "shape_e2": s.e2, "sersic": s.n if s.type == "SER" else 0.0}
        for c, v in vals.items():
            t[c.upper()][i] = v
            t[c.upper() + "_IVAR"][i] = r.ivar[c]
            t[c.upper() + "_SIGMA_MARG"][i] = r.sigma_marg[c]
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".fits.tmp")
    os.close(fd)
    os.remove(tmp)
    with fitsio.FITS(tmp, "rw", clobber=True) as f:
        f.write(t, extname="PHOTOMETRY", header=[
            {"name": "IVARDIAG", "value": "T", "comment": "*_IVAR: diagonal of Fisher matrix (as DR9)"},
            {"name": "SIGMARG", "value": "T", "comment": "*_SIGMA_MARG: sqrt diag of inverse Fisher"}])
    os.replace(tmp, path)


def run(args) -> int:
    from tqdm import tqdm
    from legacylake.photometry.model.image import read_image
    images = [read_image(p, args.psfex) for p in tqdm(args.image, desc="images", disable=len(args.image) < 3)]
    bands = sorted({im.band for im in images})
    sources = _read_sources(args.sources, bands)
    if not sources:
        raise UserError(f"{args.sources}: no sources")
    results = _fit_group(images, sources, args.forced)
    selected = _select(images, results) if args.select else None
    write_results(args.out, results, bands, selected)
    print(f"fitted {len(sources)} sources on {len(images)} images (bands {''.join(bands)}) -> {args.out}")
    return 0
