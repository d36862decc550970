"""``legacylake sql``, ``cone``, ``box`` and ``polygon``: SQL and spatial search over a lake."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from legacylake.errors import UserError

if TYPE_CHECKING:
    import pyarrow as pa


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="FILE", help="write the result to FILE (.parquet, .csv or .fits) instead of printing it")
    p.add_argument("--max-rows", type=int, default=40, help="rows to print (default 40)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sql", help="run a SQL query over a lake (DuckDB, with the lake's SQL functions)",
                       description="Run one read-only SQL query over a lake. Every catalog is a view "
                       "(e.g. dr9) and <catalog>_derived adds Data Lab's derived columns; "
                       "cone('cat', ra, dec, r), box('cat', ra1, ra2, dec1, dec2) and "
                       "polygon('cat', ra1, dec1, ra2, dec2, ...) are pruned spatial tables. "
                       "See --functions for the function library.")
    p.add_argument("query", nargs="?", help="the SQL text (or - to read it from stdin)")
    p.add_argument("--lake", help="lake folder (LAKE/<catalog>/hats.properties)")
    p.add_argument("--functions", action="store_true", help="list the SQL functions with examples and exit")
    _add_output(p)
    p.set_defaults(func=_sql)

    p = sub.add_parser("cone", help="rows within a radius of a position (pruned by HEALPix files, row groups, distance)")
    p.add_argument("ra", type=float, help="centre RA, deg")
    p.add_argument("dec", type=float, help="centre Dec, deg")
    p.add_argument("radius", type=float, help="radius, deg (> 0)")
    _spatial_common(p)
    p.set_defaults(func=_cone)

    p = sub.add_parser("box", help="rows in an RA/Dec box (ra1 > ra2 wraps through RA 0)")
    p.add_argument("ra1", type=float)
    p.add_argument("ra2", type=float)
    p.add_argument("dec1", type=float)
    p.add_argument("dec2", type=float)
    _spatial_common(p)
    p.set_defaults(func=_box)

    p = sub.add_parser("polygon", help="rows inside a spherical polygon (great-circle edges)")
    p.add_argument("vertices", type=float, nargs="+", metavar="RA DEC", help="vertices as ra dec pairs, deg")
    _spatial_common(p)
    p.set_defaults(func=_polygon)


def _spatial_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lake", required=True, help="lake folder")
    p.add_argument("--catalog", help="catalog name (needed if the lake has several)")
    p.add_argument("--columns", help="comma-separated columns (default: all)")
    p.add_argument("--where", help="extra SQL condition (the SQL functions are available)")
    _add_output(p)


def write_table(table: "pa.Table", path: str, units: dict[str, str] | None = None) -> None:
    """Write ``table`` to .parquet, .csv or .fits atomically (units kept in Parquet metadata and FITS)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(path)
    ext = out.suffix.lower()
    if ext not in (".parquet", ".csv", ".fits"):
        raise UserError(f"--out {path}: unknown format {ext or '(none)'}; use .parquet, .csv or .fits")
    if not out.parent.exists():
        raise UserError(f"--out {path}: folder {out.parent} does not exist")
    tmp = out.with_name(out.name + ".tmp")
    if ext == ".parquet":
        if units:
            fields = [f.with_metadata({**(f.metadata or {}), b"unit": units[f.name].encode()})
                      if f.name in units else f for f in table.schema]
            table = table.cast(pa.schema(fields))
        pq.write_table(table, tmp)
    elif ext == ".csv":
        import pyarrow.csv as pcsv

        simple = table.select([i for i, f in enumerate(table.schema)
                               if not (pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type)
                                       or pa.types.is_large_list(f.type))])
        pcsv.write_csv(simple, tmp)
    else:
        from legacylake.query.sql.connect import to_astropy

        t = to_astropy(table, units)
        for name in t.colnames:
            if t[name].dtype == object:
                t[name] = [",".join(map(str, v)) if v is not None else "" for v in t[name]]
        import warnings

        from astropy.io import fits

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdu = fits.table_to_hdu(t)
        for i, name in enumerate(t.colnames):  # keep the lake's unit strings (e.g. nanomaggy) verbatim
            if units and name in units:
                hdu.header[f"TUNIT{i + 1}"] = units[name]
        hdu.writeto(tmp, overwrite=True)
    os.replace(tmp, out)


def _emit(table: "pa.Table", args, units: dict[str, str], elapsed: float, extra: str = "") -> int:
    if args.out:
        write_table(table, args.out, units)
        print(f"{table.num_rows} rows, {table.num_columns} columns -> {args.out} ({elapsed:.3f} s){extra}")
        return 0
    import pandas as pd

    df = table.slice(0, args.max_rows).to_pandas()
    with pd.option_context("display.max_columns", 30, "display.width", 200, "display.max_colwidth", 40):
        print(df.to_string(index=False) if len(df) else "(no rows)")
    more = f" (first {args.max_rows} shown)" if table.num_rows > args.max_rows else ""
    print(f"{table.num_rows} rows, {table.num_columns} columns ({elapsed:.3f} s){more}{extra}", file=sys.stderr)
    return 0


def _sql(args) -> int:
    from legacylake.query.sql import macros

    if args.functions:
        for name, (sig, desc, ex) in macros.FUNCTIONS.items():
            print(f"{sig}\n    {desc}\n    e.g. {ex}")
        return 0
    if not args.query:
        raise UserError("no query given (pass the SQL text, or - for stdin)")
    if not args.lake:
        raise UserError("--lake LAKE is required")
    text = sys.stdin.read() if args.query == "-" else args.query
    from legacylake.query.sql.connect import connect, lake_of, units_for
    from legacylake.query.run import query

    t0 = time.perf_counter()
    con = connect(args.lake, progress_bar=True)
    try:
        res = query(con, text)
        _, cats = lake_of(con)
        return _emit(res, args, units_for(res.column_names, cats), time.perf_counter() - t0)
    finally:
        con.close()


def _search(args, region_fn) -> int:
    from legacylake.query.sql.connect import units_for
    from legacylake.query.spatial.search import _resolve, search

    cat = _resolve(args.lake, args.catalog)  # the catalog's current snapshot, resolved once
    region = region_fn()
    t0 = time.perf_counter()
    stats: dict = {}
    res = search(cat, region, columns=args.columns, where=args.where, stats=stats, progress=True)
    extra = (f"; read {stats['files_read']}/{stats['files_total']} files, {stats['row_groups_read']} row groups, "
             f"{stats['rows_scanned']} rows scanned")
    return _emit(res, args, units_for(res.column_names, {cat.name: cat}), time.perf_counter() - t0, extra)


def _cone(args) -> int:
    from legacylake.query.spatial.regions import Region

    return _search(args, lambda: Region.cone(args.ra, args.dec, args.radius))


def _box(args) -> int:
    from legacylake.query.spatial.regions import Region

    return _search(args, lambda: Region.box(args.ra1, args.ra2, args.dec1, args.dec2))


def _polygon(args) -> int:
    from legacylake.query.spatial.regions import Region

    return _search(args, lambda: Region.polygon(args.vertices))
