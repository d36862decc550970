"""``legacylake simulate catalogs`` and ``legacylake simulate external``."""

from __future__ import annotations

import argparse
import time

from legacylake.errors import UserError


def _box(values) -> tuple[float, float, float, float]:
    ra1, ra2, dec1, dec2 = (float(v) for v in values)
    if not (-90 <= dec1 < dec2 <= 90):
        raise UserError(f"--box: need -90 <= DEC1 < DEC2 <= 90, got {dec1} {dec2}")
    if not (0 <= ra1 <= 360 and 0 <= ra2 <= 360) or ra1 == ra2:
        raise UserError(f"--box: RA1 and RA2 must be distinct and within [0, 360], got {ra1} {ra2}")
    return ra1, ra2, dec1, dec2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="synthetic Legacy Surveys sky: Tractor catalogs, external catalogs")
    ss = p.add_subparsers(dest="simulate_command", metavar="ACTION", required=True)
    s = ss.add_parser("catalogs", help="write tractor/<AAA>/tractor-<brick>.fits for a set of bricks",
                      description="Write per-brick Tractor catalogs (DR9 or DR4 data model) of a seeded "
                      "synthetic sky. A brick's content depends only on the seed, the density and the brick.")
    s.add_argument("--out", required=True, metavar="DIR", help="output folder (tractor/ is created in it)")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--box", nargs=4, metavar=("RA1", "RA2", "DEC1", "DEC2"), help="bricks overlapping this box (deg)")
    g.add_argument("--bricks", metavar="NAME,NAME,...", help="comma-separated brick names")
    g.add_argument("--random", type=int, metavar="N", help="N bricks drawn at random (seeded) in Dec -20..80")
    s.add_argument("--release", choices=("dr9", "dr4"), default="dr9", help="data model (default dr9)")
    s.add_argument("--seed", type=int, default=0, help="sky seed (default 0)")
    s.add_argument("--density", type=float, metavar="PER_DEG2",
                   help="truth-source density per deg^2 at the Galactic pole (default %(default)s = about "
                   "4,000 catalog rows per brick); scales the faint populations")
    s.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    s.set_defaults(func=_catalogs)
    s = ss.add_parser("external", help="a Gaia-like or SDSS-like catalog of the same sky, as Parquet")
    s.add_argument("--kind", choices=("gaia", "sdss"), required=True)
    s.add_argument("--out", required=True, metavar="FILE.parquet")
    s.add_argument("--box", nargs=4, required=True, metavar=("RA1", "RA2", "DEC1", "DEC2"))
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--density", type=float, metavar="PER_DEG2")
    s.set_defaults(func=_external)
    s = ss.add_parser("images", help="CCD-like exposures of one brick rendered with GalSim, plus its truth",
                      description="Render the synthetic sky of a brick into IMAGE/IVAR/DQ/PSF exposures "
                      "(DIR/images/), with DIR/ccds-<brick>.fits, DIR/truth-<brick>.fits, DIR/gaia-<brick>.fits.")
    s.add_argument("--brick", required=True)
    s.add_argument("--out", required=True, metavar="DIR")
    s.add_argument("--bands", default="grz")
    s.add_argument("--nexp", type=int, default=3, help="exposures per band (default 3)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--density", type=float, metavar="PER_DEG2")
    s.add_argument("--size", type=int, metavar="PIX", help="render only the central PIX x PIX brick pixels")
    s.add_argument("--workers", type=int, default=1)
    s.set_defaults(func=lambda a: __import__("legacylake.photometry.sim_images_cli", fromlist=["run"]).run(a))


def _catalogs(args) -> int:
    from legacylake.catalogs_schema import bricks
    from tqdm import tqdm

    from legacylake.photometry.sim.catalog import bricks_for_box, random_bricks, write_bricks

    if args.density is not None and args.density <= 0:
        raise UserError(f"--density must be positive, got {args.density}")
    if args.box:
        names = bricks_for_box(*_box(args.box))
    elif args.bricks:
        names = [n.strip() for n in args.bricks.split(",") if n.strip()]
        for n in names:
            try:
                bricks.brick(n)
            except KeyError as exc:
                raise UserError(f"--bricks: {exc.args[0]}") from None
    else:
        if args.random <= 0:
            raise UserError(f"--random must be positive, got {args.random}")
        names = random_bricks(args.random, args.seed)
    if not names:
        raise UserError("no bricks selected")
    t0 = time.time()
    rows = 0
    with tqdm(total=len(names), unit="brick", disable=None) as bar:
        def progress(n):
            nonlocal rows
            rows += n
            bar.update(1)
            bar.set_postfix(rows=rows)
        write_bricks(args.out, names, args.release, args.seed, args.density, args.workers, progress)
    dt = time.time() - t0
    print(f"simulate catalogs: {len(names)} bricks, {rows:,} rows, release {args.release}, seed {args.seed}, "
          f"{dt:.1f} s ({rows / max(dt, 1e-9):,.0f} rows/s) -> {args.out}/tractor/")
    return 0


def _external(args) -> int:
    from legacylake.photometry.sim.catalog import write_external

    box = _box(args.box)
    t0 = time.time()
    n = write_external(args.out, args.kind, box, args.seed, args.density)
    print(f"simulate external: {args.kind}, {n:,} rows over RA {box[0]}..{box[1]} Dec {box[2]}..{box[3]}, "
          f"seed {args.seed}, {time.time() - t0:.1f} s -> {args.out}")
    return 0
