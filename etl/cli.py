"""``legacylake etl build`` and ``legacylake etl verify``."""

from __future__ import annotations

import argparse
import sys

from legacylake.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser("etl", help="FITS catalogs -> HATS Parquet lake (build, verify)",
                              description="Ingest Tractor catalogs and sweeps into a HATS-compatible "
                                          "HEALPix-partitioned Parquet lake, exactly once.")
    sub = p.add_subparsers(dest="etl_command", metavar="ETL_COMMAND")
    b = sub.add_parser("build", help="ingest FITS files into LAKE/NAME (incremental, exactly once)",
                       description="Ingest Tractor catalogs (tractor/<AAA>/tractor-<brick>.fits, DR4-DR10) "
                                   "or sweep files into the HATS catalog LAKE/NAME. Re-running skips what is "
                                   "already ingested; new or changed files rewrite only the partitions they "
                                   "touch. Exit status 1 if any input was rejected.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    b.add_argument("sources", nargs="+", metavar="SRC", help="FITS files or directory trees of them")
    b.add_argument("--lake", required=True, help="lake directory")
    b.add_argument("--catalog", required=True, help="catalog name (LAKE/NAME becomes a HATS catalog)")
    b.add_argument("--threshold", type=int, default=None,
                   help="split a pixel into its four children above this many rows (default 1,000,000; "
                        "fixed by the first build of a catalog)")
    b.add_argument("--highest-order", type=int, default=None,
                   help="deepest HEALPix order of a partition, 0-10 (default 10)")
    b.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    b.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the write tasks on this Dask distributed scheduler (shared filesystem)")
    b.add_argument("--row-group-rows", type=int, default=None, help="rows per Parquet row group (2048: see README)")
    b.add_argument("--map-to", default=None, metavar="MODEL",
                   help="convert inputs of another data model to this one (a release such as dr9, or a "
                        "model name) by the documented mapping (DR4 -> DR9: see README); without it, "
                        "inputs of two data models are refused")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=_build)
    v = sub.add_parser("verify", help="check a catalog against its manifest and HATS metadata",
                       description="Per-brick row counts equal the manifest's, no duplicate "
                                   "(release, brickid, objid), every row inside its partition's pixel, "
                                   "metadata consistent with the files. Exit 1 on any mismatch.")
    v.add_argument("--lake", required=True)
    v.add_argument("--catalog", required=True)
    v.set_defaults(func=_verify)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _build(args) -> int:
    from .build import build
    from .write import ROW_GROUP_ROWS

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1 (got {args.workers})")
    s = build(args.sources, args.lake, args.catalog, threshold=args.threshold,
              highest_order=args.highest_order, workers=args.workers, scheduler=args.scheduler,
              row_group_rows=args.row_group_rows or ROW_GROUP_ROWS,
              progress=not args.quiet and sys.stderr.isatty(), map_to=args.map_to)
    for n in s.notes:
        print(f"note: {n}", file=sys.stderr)
    for _, r in s.rejects:
        print(f"rejected: {r}", file=sys.stderr)
    for line in s.lines():
        if not line.startswith("rejected:"):
            print(line)
    return 0 if s.ok else 1


def _verify(args) -> int:
    from .verify import verify

    r = verify(args.lake, args.catalog)
    for line in r.lines():
        print(line)
    return 0 if r.ok else 1
