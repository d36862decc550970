"""``legacylake xmatch``: crossmatch a lake catalog with an external catalog."""

from __future__ import annotations

import argparse
import sys

from legacylake.errors import UserError

#: Same default as legacylake.query.crossmatch.core.DEFAULT_MEMORY_BUDGET (not imported: keeps --help fast).
DEFAULT_MEMORY_BUDGET = 32 << 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "xmatch",
        help="crossmatch a lake catalog with an external catalog (HATS, Parquet, CSV, FITS)",
        description="Crossmatch the lake catalog LAKE/NAME with EXTERNAL (a HATS catalog directory, a "
        "Parquet file or directory, a CSV file or a FITS table). Exact at partition edges, RA=0/360 "
        "and the poles. Output: the external columns, the lake columns under their own names (suffixed _lake only where an external column has the same name, e.g. ra_lake, dec_lake), and sep_arcsec.",
    )
    p.add_argument("external", metavar="EXTERNAL", help="external catalog (path)")
    p.add_argument("--lake", required=True, help="lake directory")
    p.add_argument("--catalog", required=True, help="catalog name inside the lake (LAKE/NAME)")
    p.add_argument("--radius", required=True, type=float, metavar="ARCSEC", help="match radius in arcsec")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--nearest", action="store_const", dest="mode", const="nearest",
                      help="at most one lake row per external row: the nearest within the radius")
    mode.add_argument("--all", action="store_const", dest="mode", const="all",
                      help="every pair within the radius")
    p.add_argument("--ra-col", help="external RA column in degrees (default: ra, or the HATS catalog's)")
    p.add_argument("--dec-col", help="external Dec column in degrees (default: dec, or the HATS catalog's)")
    p.add_argument("--columns", help="comma-separated lake columns (default release,brickid,objid,ra,dec)")
    p.add_argument("--external-columns", help="comma-separated external columns to keep (default all)")
    p.add_argument("--keep-unmatched", action="store_true",
                   help="keep external rows without a match (lake columns NULL)")
    p.add_argument("--epoch-from", metavar="COL|YEAR",
                   help="external epoch column (or a year) for proper-motion propagation")
    p.add_argument("--pm-cols", metavar="PMRA,PMDEC", help="proper-motion columns in mas/yr (pmra with cos dec)")
    p.add_argument("--epoch-to", type=float, metavar="YEAR",
                   help="epoch to move the external positions to (default: the lake's recorded epoch)")
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", metavar="FILE.parquet", help="output Parquet file (written atomically)")
    dest.add_argument("--into-lake", metavar="NAME", nargs="?", const="",
                      help="write the result as the new HATS catalog LAKE/NAME, partitioned by the external "
                      "positions (streamed, atomic); without NAME, the hosted catalog's style "
                      "x<RADIUS>__<CATALOG>__<EXTERNAL> (e.g. x1p5__dr9__gaia_source). Join it to the "
                      "catalog in SQL on release, brickid, objid")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the per-partition match tasks on this Dask distributed scheduler "
                   "(e.g. tcp://host:8786; the lake must be on a filesystem the workers see)")
    p.add_argument("--force", action="store_true", help="allow a radius above 1 degree")
    p.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_BUDGET >> 20,
                   help="memory for buffering the external catalog before spilling to disk "
                   f"(default {DEFAULT_MEMORY_BUDGET >> 20})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _split(s: str | None) -> list[str] | None:
    if s is None:
        return None
    return [c.strip() for c in s.split(",") if c.strip()]


def run(args: argparse.Namespace) -> int:
    from legacylake.query.crossmatch.core import XmatchStats, xmatch

    pm_cols = _split(args.pm_cols)
    if pm_cols is not None and len(pm_cols) != 2:
        raise UserError(f"--pm-cols needs two comma-separated columns (PMRA,PMDEC), not {args.pm_cols!r}")
    if args.out is not None and not str(args.out).endswith((".parquet", ".pq")):
        raise UserError(f"--out {args.out}: give a .parquet file name")
    if args.into_lake == "":
        from legacylake.query.crossmatch.result import xmatch_table_name

        args.into_lake = xmatch_table_name(args.radius, args.catalog, args.external)
    st = XmatchStats()
    xmatch(args.external, args.lake, args.catalog, radius_arcsec=args.radius, mode=args.mode,
           ra_col=args.ra_col, dec_col=args.dec_col, columns=_split(args.columns),
           external_columns=_split(args.external_columns), keep_unmatched=args.keep_unmatched,
           epoch_from=args.epoch_from, pm_cols=pm_cols, epoch_to=args.epoch_to, out=args.out,
           into_lake=args.into_lake, scheduler=args.scheduler, force=args.force, memory_budget=max(16, args.memory_mb) << 20,
           progress=not args.no_progress and sys.stderr.isatty(), stats=st)
    print(f"xmatch ({args.mode}, {args.radius:g} arcsec): {st.summary()}")
    if args.into_lake:
        print(f"catalog {args.into_lake} in {args.lake}: join it in SQL with "
              f"JOIN {args.into_lake} x USING (release, brickid, objid)")
    return 0
