"""``legacylake export sweeps | tractor``: the survey's file products written from a lake."""

from __future__ import annotations

import argparse
import time


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write the survey's products from a lake (sweep files, per-brick Tractor catalogs)",
                              description="Write the survey's own file products from a lake catalog.")
    sub = p.add_subparsers(dest="export_command", metavar="EXPORT_COMMAND")
    s = sub.add_parser("sweeps", help="10 x 5 degree sweep FITS files of brick_primary rows (HDU SWEEP)",
                       description="Write LAKE/NAME as the survey's sweep files: 10 x 5 degree boxes of "
                                   "brick_primary rows, OUT/9.0/sweep-<RA>{p|m}<DEC>-<RA>{p|m}<DEC>.fits in the "
                                   "drN-sweep data model, light curves in OUT/9.0-lightcurves/*-lc.fits, the other "
                                   "Tractor columns in OUT/9.0-extra/*-ex.fits; each "
                                   "file written under a temporary name and renamed.")
    s.add_argument("--lake", required=True, help="lake folder")
    s.add_argument("--catalog", required=True, help="catalog name")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--box", type=float, nargs=4, metavar=("RA1", "RA2", "DEC1", "DEC2"),
                   help="only the sweep boxes overlapping this RA/Dec box, deg")
    s.add_argument("--workers", type=int, default=1, help="processes writing boxes in parallel (default 1)")
    s.set_defaults(func=_sweeps)
    t = sub.add_parser("tractor", help="per-brick tractor-<brick>.fits in the catalog's data model",
                       description="Write LAKE/NAME as per-brick catalogs OUT/tractor/<AAA>/tractor-<brick>.fits "
                                   "in the catalog's data model (rows in objid order), each written under a "
                                   "temporary name and renamed.")
    t.add_argument("--lake", required=True, help="lake folder")
    t.add_argument("--catalog", required=True, help="catalog name")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--bricks", nargs="+", metavar="BRICK", help="brick names (e.g. 1126p222) or ids (default: all)")
    t.set_defaults(func=_tractor)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _sweeps(args: argparse.Namespace) -> int:
    from legacylake.catalogs_schema.sweeps import EXTRA_SUFFIX, LIGHTCURVE_SUFFIX
    from legacylake.query.export.sweeps import export_sweeps

    t0 = time.perf_counter()
    s = export_sweeps(args.lake, args.catalog, args.out, tuple(args.box) if args.box else None, args.workers)
    dt = time.perf_counter() - t0
    n_lc = sum(1 for k in s.files if k.endswith(f"{LIGHTCURVE_SUFFIX}.fits"))
    n_ex = sum(1 for k in s.files if k.endswith(f"{EXTRA_SUFFIX}.fits"))
    print(f"{s.rows:,} rows in {len(s.files) - n_lc - n_ex} sweep files (+{n_lc} light-curve, {n_ex} extra "
          f"files) -> {args.out} ({dt:.1f} s, {s.rows / max(dt, 1e-9):,.0f} rows/s)")
    return 0


def _tractor(args: argparse.Namespace) -> int:
    from legacylake.query.export.tractor import export_tractor

    t0 = time.perf_counter()
    files = export_tractor(args.lake, args.catalog, args.out, args.bricks)
    print(f"{sum(files.values()):,} rows in {len(files)} brick files -> {args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0
