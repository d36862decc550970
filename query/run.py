"""Run SQL on a lake: spatial-call expansion, read-only check, results as Arrow/pandas/astropy."""

from __future__ import annotations

import os

import duckdb

from legacylake.errors import UserError
from legacylake.query.spatial import search as spatial
from legacylake.query.sql import q3cjoin
from legacylake.query.sql.connect import connect, lake_of, to_astropy, units_for

#: Statement types a lake query may contain.
_READ_ONLY = {"SELECT", "EXPLAIN"}


def check_read_only(sql: str) -> None:
    """UserError unless ``sql`` is one read-only statement (SELECT / WITH ... SELECT / EXPLAIN)."""
    try:
        stmts = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise UserError(f"malformed SQL: {spatial.first_line(exc)}") from None
    if len(stmts) != 1:
        raise UserError(f"expected one SQL statement, got {len(stmts)}")
    kind = str(stmts[0].type).split(".")[-1].upper()
    if kind not in _READ_ONLY:
        raise UserError(f"only read-only queries (SELECT, WITH ... SELECT, EXPLAIN) run on a lake; got {kind}")


def query(lake_or_con, sql: str, output: str = "arrow"):
    """Run ``sql`` on a lake (path or a connection from :func:`connect`).

    ``cone('cat', ...)``, ``box(...)`` and ``polygon(...)`` table calls are expanded into pruned
    scans; a join of a lake view with a table ``ON q3c_join(...)`` runs as the crossmatch
    (:mod:`legacylake.query.sql.q3cjoin`). ``output``: ``arrow`` (pyarrow Table, units in the lake's field metadata where columns are
    passed through), ``pandas`` (units in ``DataFrame.attrs["units"]``) or ``astropy`` (units
    on the columns).
    """
    con = connect(lake_or_con) if isinstance(lake_or_con, (str, os.PathLike)) else lake_or_con
    _, cats = lake_of(con)
    check_read_only(sql)
    text = spatial.expand(sql, cats)
    text = q3cjoin.rewrite(text, set(cats) | {f"{n}_derived" for n in cats})  # lake JOIN table ON q3c_join(...)
    try:
        res = con.sql(text).to_arrow_table()
    except duckdb.Error as exc:
        msg = spatial.first_line(exc)
        if "Permission Error" in msg:
            msg += ("; a lake connection only reads the lake's files (to query other data, "
                    "con.register(name, arrow_table) it)")
        raise UserError(msg) from None
    if output == "arrow":
        return res
    if output == "pandas":
        df = res.to_pandas()
        df.attrs["units"] = units_for(res.column_names, cats)  # column -> unit, for the columns that have one
        return df
    if output == "astropy":
        return to_astropy(res, units_for(res.column_names, cats))
    raise ValueError(f"output must be arrow, pandas or astropy (got {output!r})")
