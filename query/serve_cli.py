"""``legacylake serve``: an IVOA TAP 1.1 service (ADQL, VOTable) over a lake."""

from __future__ import annotations

import argparse
import sys

from legacylake.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a lake as an IVOA TAP service (ADQL; for TOPCAT, pyvo, astroquery, STILTS)",
        description="Serve LAKE as an IVOA TAP 1.1 service: /sync, /async (UWS 1.1, jobs kept on disk), "
        "/capabilities, /availability, /tables, /examples and a landing page at /. ADQL runs on DuckDB over "
        "the lake (read-only, one snapshot per query); CONTAINS on ra, dec reads only the partitions and row "
        "groups the region touches; a JOIN with a TAP_UPLOAD table on CONTAINS/DISTANCE runs as a crossmatch.",
    )
    p.add_argument("--lake", required=True, help="lake directory (or one catalog folder)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8321, help="port (default 8321)")
    p.add_argument("--workers", type=int, default=4, metavar="N", help="queries run at once (default 4)")
    p.add_argument("--max-rows", type=int, default=10_000_000, metavar="N",
                   help="hard cap on the rows of one result (default 10,000,000; MAXREC defaults to "
                   "min(1,000,000, N))")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="S",
                   help="seconds a query may run, sync or async (default 3600; async jobs may ask for "
                   "another EXECUTIONDURATION)")
    p.add_argument("--name", default="legacylake TAP", metavar="TEXT", help="service title")
    p.add_argument("--alias", action="append", default=[], metavar="SCHEMA.TABLE=CATALOG",
                   help="also serve CATALOG's _derived view as SCHEMA.TABLE (e.g. ls_dr9.tractor=dr9, "
                   "so Astro Data Lab queries run unchanged); repeatable")
    p.add_argument("--jobs-dir", metavar="DIR",
                   help="where async jobs and results are kept (default ~/.cache/legacylake/tap-jobs/<lake>)")
    p.set_defaults(func=run)


def parse_aliases(items: list[str]) -> dict[str, str]:
    """``["ls_dr9.tractor=dr9"]`` -> ``{"ls_dr9.tractor": "dr9"}``; UserError on malformed items."""
    out = {}
    for item in items:
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise UserError(f"--alias {item!r}: expected SCHEMA.TABLE=CATALOG, e.g. ls_dr9.tractor=dr9")
        out[name.strip()] = target.strip()
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import uvicorn

    from legacylake.query.tap.app import make_app
    from legacylake.query.tap.engine import Config

    if args.workers < 1 or args.max_rows < 1 or args.timeout <= 0:
        raise UserError("--workers, --max-rows and --timeout must be positive")
    cfg = Config(Path(args.lake), max_rows=args.max_rows, default_maxrec=min(1_000_000, args.max_rows),
                 timeout=args.timeout, workers=args.workers, name=args.name, aliases=parse_aliases(args.alias),
                 jobs_dir=Path(args.jobs_dir) if args.jobs_dir else None)
    app = make_app(cfg)
    snap = app.state.service.engine.snapshot()
    url = f"http://{args.host}:{args.port}/"
    print(f"legacylake serve: {len(snap.cats)} catalog(s) ({', '.join(snap.cats)}), "
          f"{sum(snap.row_counts.values()):,} rows; TAP URL {url}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
