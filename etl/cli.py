"""``legacylake etl build | verify | history | vacuum | upgrade``."""

from __future__ import annotations

import argparse
import sys

from legacylake.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser("etl", help="FITS catalogs -> HATS Parquet lake (build, verify, history, vacuum, upgrade)",
                              description="Ingest Tractor catalogs and sweeps into a HATS-compatible "
                                          "HEALPix-partitioned Parquet lake, exactly once.")
    sub = p.add_subparsers(dest="etl_command", metavar="ETL_COMMAND")
    b = sub.add_parser("build", help="ingest FITS files into LAKE/NAME (incremental, exactly once)",
                       description="Ingest Tractor catalogs (tractor/<AAA>/tractor-<brick>.fits, DR4-DR10) "
                                   "or sweep files into the HATS catalog LAKE/NAME. Re-running skips what is "
                                   "already ingested; new or changed files rewrite only the partitions they "
                                   "touch. Each build publishes a new snapshot of the catalog (a HATS collection "
                                   "with a margin catalog) by one atomic rename: readers see the old snapshot or "
                                   "the new one, never a half-written catalog. One writer at a time: a second "
                                   "build on the same catalog exits 2 naming the holder (or waits, --wait). "
                                   "Exit status 1 if any input was rejected.",
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
    b.add_argument("--row-group-rows", type=int, default=None, help="rows per Parquet row group (default 4096: see README)")
    b.add_argument("--map-to", default=None, metavar="MODEL",
                   help="convert inputs of another data model to this one (a release such as dr9, or a "
                        "model name) by the documented mapping (DR4 -> DR9: see README); without it, "
                        "inputs of two data models are refused")
    b.add_argument("--margin-arcsec", type=float, default=None,
                   help="width of the margin catalog, arcsec (default 10; fixed by the first build): "
                        "lsdb crossmatches against the lake find every pair up to this separation")
    b.add_argument("--wait", action="store_true",
                   help="wait for another writer of the catalog to finish instead of exiting 2")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=_build)
    v = sub.add_parser("verify", help="check a catalog against its manifest and HATS metadata",
                       description="Per-brick row counts equal the manifest's, no duplicate "
                                   "(release, brickid, objid), every row inside its partition's pixel, "
                                   "metadata consistent with the files. Exit 1 on any mismatch (the report "
                                   "on stdout, the FAILED verdict on stderr).")
    v.add_argument("--lake", required=True)
    v.add_argument("--catalog", required=True)
    v.set_defaults(func=_verify)
    h = sub.add_parser("history", help="list a catalog's snapshots (time, files added, rows, bytes)",
                       description="Every commit of the catalog, oldest first: version, time (UTC), input "
                                   "files added and replaced, rows added, rows in the catalog, bytes of the "
                                   "snapshot and bytes this build wrote (the rest shared by hard links). "
                                   "Vacuumed snapshots are listed as removed.")
    h.add_argument("--lake", required=True)
    h.add_argument("--catalog", required=True)
    h.set_defaults(func=_history)
    c = sub.add_parser("vacuum", help="remove old snapshots (keep the newest N, default 2)",
                       description="Remove all but the newest --keep snapshots of the catalog (the current "
                                   "one always stays). Leaves shared with a kept snapshot stay on disk. A "
                                   "reader still open on a removed snapshot fails, so keep enough for the "
                                   "longest-running reader. Takes the writer lock.")
    c.add_argument("--lake", required=True)
    c.add_argument("--catalog", required=True)
    c.add_argument("--keep", type=int, default=2, help="snapshots to keep (default 2, at least 1)")
    c.add_argument("--wait", action="store_true", help="wait for a running build instead of exiting 2")
    c.set_defaults(func=_vacuum)
    u = sub.add_parser("upgrade", help="turn catalogs of the single-folder layout into snapshot collections",
                       description="Convert catalogs written by legacylake 0.1 (LAKE/NAME/hats.properties and "
                                   "dataset/) into a HATS collection with snapshots and a margin catalog, "
                                   "losing nothing (leaves are hard-linked, not rewritten). Every catalog of "
                                   "the lake unless --catalog. A build upgrades its catalog by itself.")
    u.add_argument("--lake", required=True)
    u.add_argument("--catalog", default=None)
    u.add_argument("--workers", type=int, default=None, help="worker processes for the margins")
    u.add_argument("--wait", action="store_true", help="wait for a running build instead of exiting 2")
    u.set_defaults(func=_upgrade)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _build(args) -> int:
    from legacylake.etl.build import build
    from legacylake.etl.task import ROW_GROUP_ROWS

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1 (got {args.workers})")
    s = build(args.sources, args.lake, args.catalog, threshold=args.threshold,
              highest_order=args.highest_order, workers=args.workers, scheduler=args.scheduler,
              row_group_rows=args.row_group_rows or ROW_GROUP_ROWS,
              progress=not args.quiet and sys.stderr.isatty(), map_to=args.map_to,
              margin_arcsec=args.margin_arcsec, wait=args.wait)
    for n in s.notes:
        print(f"note: {n}", file=sys.stderr)
    for _, r in s.rejects:
        print(f"rejected: {r}", file=sys.stderr)
    for line in s.lines():
        if not line.startswith("rejected:"):
            print(line)
    return 0 if s.ok else 1


def _verify(args) -> int:
    from legacylake.etl.verify import verify

    _catalog_dir(args.lake, args.catalog)
    r = verify(args.lake, args.catalog)
    for line in r.lines():
        # the report on stdout; the verdict of a failed check on stderr
        print(line, file=sys.stderr if line.startswith("verify: FAILED") else sys.stdout)
    return 0 if r.ok else 1


def _catalog_dir(lake: str, catalog: str) -> str:
    import os

    if not os.path.isdir(lake):
        raise UserError(f"{lake}: no such lake")
    cat = os.path.join(lake, catalog)
    if not os.path.isdir(cat):
        raise UserError(f"{cat}: no such catalog in the lake {lake}")
    return cat


def _history(args) -> int:
    from legacylake.etl.snapshot import history

    rows = history(_catalog_dir(args.lake, args.catalog))
    if not rows:
        raise UserError(f"{args.lake}/{args.catalog}: no snapshot published")
    print(f"{'version':>8}  {'created (UTC)':<23} {'files+':>7} {'replaced':>8} {'rows added':>12} "
          f"{'rows':>13} {'bytes':>15} {'written':>15}  state")
    for h in rows:
        state = "current" if h.current else ("kept" if h.present else "removed")
        print(f"v{h.version:06d}  {h.created:<23} {h.files_added:>7,} {h.files_replaced:>8,} {h.rows_added:>12,} "
              f"{h.rows:>13,} {h.bytes:>15,} {h.bytes_written:>15,}  {state}{'  ' + h.note if h.note else ''}")
    return 0


def _vacuum(args) -> int:
    from legacylake.etl.snapshot import vacuum

    cat = _catalog_dir(args.lake, args.catalog)
    removed, freed = vacuum(cat, args.keep, wait=args.wait)
    names = ", ".join(f"v{v:06d}" for v in removed) or "none"
    print(f"catalog {cat}: removed {len(removed)} snapshot(s) ({names}); {freed:,} bytes freed")
    return 0


def _upgrade(args) -> int:
    import os

    from legacylake.etl import layout
    from legacylake.etl.upgrade import needs_upgrade, upgrade

    if not os.path.isdir(args.lake):
        raise UserError(f"{args.lake}: no such lake")
    names = [args.catalog] if args.catalog else sorted(
        n for n in os.listdir(args.lake) if os.path.isdir(os.path.join(args.lake, n))
        and (needs_upgrade(os.path.join(args.lake, n)) or layout.is_collection(os.path.join(args.lake, n))))
    if not names:
        raise UserError(f"{args.lake}: no legacylake catalog in this lake")
    for n in names:
        v = upgrade(args.lake, n, workers=args.workers or os.cpu_count() or 1, wait=args.wait)
        print(f"catalog {os.path.join(args.lake, n)}: " +
              ("already a snapshot collection" if v is None else f"upgraded: snapshot v{v:06d} published"))
    return 0
