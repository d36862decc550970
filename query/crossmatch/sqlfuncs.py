"""The crossmatch as DuckDB table functions (``xmatch_all``, ``xmatch_nearest``) registered
on a lake connection."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from legacylake.query.crossmatch.buckets import (
    cells_around,
    healpix29,
    match_order,
)


def register_xmatch(con, lake: str | os.PathLike | None = None) -> None:
    """Add crossmatch table macros to a DuckDB connection.

    ``xmatch_all(ext, lake, radius_arcsec)`` and ``xmatch_nearest(ext, lake, radius_arcsec)``
    take the names of two tables or views (as strings): ``ext`` with ``ra``, ``dec`` in degrees,
    ``lake`` with ``_healpix_29``, ``ra``, ``dec``, ``release``, ``brickid``, ``objid`` (a lake
    catalog view). They return the external columns, the lake's ``release``, ``brickid``,
    ``objid`` under their own names, ``ra_lake``, ``dec_lake`` (the lake's ``ra``, ``dec``, suffixed
    as they collide with the external ``ra``, ``dec``; the external table must not have
    ``release``/``brickid``/``objid`` columns) and ``sep_arcsec``, using the same order-K cells
    as :func:`xmatch` (exact at partition edges) with a hash join in DuckDB. With ``lake`` (a
    lake directory), a view is created for each of its catalogs that has no view yet.
    Meant for external tables that fit in memory; use :func:`xmatch` for large ones.
    """
    import duckdb

    T = getattr(duckdb, "sqltypes", None) or duckdb.typing

    def _hp(ra, dec):
        return pa.array(healpix29(pc.cast(ra, pa.float64()).to_numpy(zero_copy_only=False) % 360.0,
                                  pc.cast(dec, pa.float64()).to_numpy(zero_copy_only=False)))

    def _cells(hp, order):
        o = int(order[0].as_py()) if len(order) else 0
        c = cells_around(np.asarray(hp.to_numpy(zero_copy_only=False), np.int64), o)
        flat = pa.array(c.ravel())
        return pa.ListArray.from_arrays(pa.array(np.arange(0, c.size + 1, 9, dtype=np.int32)), flat)

    for name, fn, args, ret in (
        ("xm_hp29", _hp, [T.DOUBLE, T.DOUBLE], T.BIGINT),
        ("xm_cells", _cells, [T.BIGINT, T.INTEGER], duckdb.list_type(T.BIGINT)),
    ):
        try:
            con.remove_function(name)
        except Exception:
            pass
        con.create_function(name, fn, args, ret, type="arrow")
    try:
        con.remove_function("xm_order")
    except Exception:
        pass
    con.create_function("xm_order", lambda r: match_order(float(r)), [T.DOUBLE], T.INTEGER)
    sep = ("degrees(2 * asin(least(1, sqrt(sin(radians(l.dec - e.dec) / 2) ^ 2 + cos(radians(e.dec)) * "
           "cos(radians(l.dec)) * sin(radians(l.ra - e.ra) / 2) ^ 2)))) * 3600")
    body = f"""
        WITH e AS (SELECT *, row_number() OVER () AS __xid FROM query_table(ext) WHERE isfinite(ra) AND isfinite(dec)),
        k AS (SELECT xm_order(radius_arcsec) AS o),
        c AS (SELECT __xid, unnest(xm_cells(xm_hp29(ra, dec), (SELECT o FROM k))) AS __cell FROM e),
        l AS (SELECT _healpix_29 >> (2 * (29 - (SELECT o FROM k))) AS __cell, release, brickid, objid, ra, dec
              FROM query_table(lake)),
        p AS (SELECT e.* EXCLUDE (__xid), e.__xid, l.release, l.brickid, l.objid,
                     l.ra AS ra_lake, l.dec AS dec_lake, {sep} AS sep_arcsec
              FROM c JOIN l USING (__cell) JOIN e ON e.__xid = c.__xid
              WHERE c.__cell >= 0)
    """
    con.execute(f"CREATE OR REPLACE MACRO xmatch_all(ext, lake, radius_arcsec) AS TABLE {body} "
                "SELECT * EXCLUDE (__xid) FROM p WHERE sep_arcsec <= radius_arcsec")
    con.execute(f"CREATE OR REPLACE MACRO xmatch_nearest(ext, lake, radius_arcsec) AS TABLE {body} "
                "SELECT * EXCLUDE (__xid) FROM p WHERE sep_arcsec <= radius_arcsec "
                "QUALIFY row_number() OVER (PARTITION BY __xid ORDER BY sep_arcsec, p.brickid, p.objid) = 1")
    if lake is not None:
        from legacylake.query.lake import catalogs, parquet_scan

        existing = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() UNION ALL "
                                              "SELECT table_name FROM duckdb_tables()").fetchall()}
        for name, cat in catalogs(lake).items():   # each catalog's current snapshot
            if cat.files and name not in existing:
                con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM {parquet_scan(cat.files)}')
