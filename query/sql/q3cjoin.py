"""``q3c_join`` executed as the lake's crossmatch: a rewrite of ``ext e JOIN lake t ON
q3c_join(e.ra, e.dec, t.ra, t.dec, R)`` (either order, either side first) into the
``xmatch_all`` cell join (:mod:`legacylake.query.crossmatch.sqlfuncs`) and a key join on
release, brickid, objid. Anything that does not fit the pattern is left as written (then
``q3c_join`` is a macro: a Dec band plus the distance, run by DuckDB as a range join)."""

from __future__ import annotations

import re


def rewrite(sql: str, lake_views: set[str]) -> str:
    """``sql`` with each lake/table ``q3c_join`` join turned into the crossmatch, or unchanged.

    Conditions: the ON clause is exactly one ``q3c_join`` call with a constant radius (deg); one
    side is a lake view in ``lake_views`` (``dr9``, ``dr9_derived``), the other a named table or
    view whose position columns are ``ra``, ``dec`` and that has no ``release``/``brickid``/
    ``objid`` columns. The external side then carries three extra columns ``__xm_release``,
    ``__xm_brickid``, ``__xm_objid`` (visible in ``e.*``)."""
    try:
        import sqlglot
        from sqlglot import exp
    except ImportError:  # pragma: no cover
        return sql
    if "q3c_join" not in sql.lower():
        return sql
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except Exception:
        return sql
    changed = False
    for join in list(tree.find_all(exp.Join)):
        on = join.args.get("on")
        if not isinstance(on, exp.Anonymous) or str(on.this).lower() != "q3c_join" or len(on.expressions) != 5:
            continue
        sel = join.parent_select
        src = sel.args.get("from_") or sel.args.get("from") if sel is not None else None
        left, right = (src.this if src is not None else None), join.this
        if not isinstance(left, exp.Table) or not isinstance(right, exp.Table):
            continue
        a = [c for c in on.expressions[:4]]
        if not all(isinstance(c, exp.Column) and c.table for c in a):
            continue
        rtext = on.expressions[4].sql()
        if not re.fullmatch(r"[0-9eE.+\-*/() ]+", rtext):
            continue  # a constant radius only (e.g. 1.0 / 3600)
        try:
            radius = float(eval(rtext, {"__builtins__": {}}, {}))  # digits and arithmetic only (checked above)
        except Exception:
            continue
        alias = {t.alias_or_name: t for t in (left, right)}
        names = {t.alias_or_name: t.name for t in (left, right)}
        if a[0].table != a[1].table or a[2].table != a[3].table or {a[0].table, a[2].table} != set(alias):
            continue
        lake_side = [k for k in alias if names[k] in lake_views]
        if len(lake_side) != 1:
            continue
        lk = lake_side[0]
        ek = next(k for k in alias if k != lk)
        e_pos = [c.name.lower() for c in (a[0], a[1]) if c.table == ek] or [c.name.lower() for c in (a[2], a[3])]
        if e_pos != ["ra", "dec"]:
            continue
        ext_table, lake_name = names[ek], names[lk]
        pairs = (f"(SELECT * EXCLUDE (ra_lake, dec_lake, sep_arcsec) RENAME (release AS __xm_release, "
                 f"brickid AS __xm_brickid, objid AS __xm_objid) FROM xmatch_all('{ext_table}', '{lake_name}', "
                 f"{radius * 3600.0!r})) AS {ek}")
        key = (f"{ek}.__xm_release = {lk}.release AND {ek}.__xm_brickid = {lk}.brickid AND "
               f"{ek}.__xm_objid = {lk}.objid")
        sub = sqlglot.parse_one(f"SELECT * FROM {pairs}", read="duckdb")
        alias[ek].replace((sub.args.get("from_") or sub.args.get("from")).this)
        join.set("on", exp.maybe_parse(key, dialect="duckdb"))
        changed = True
    return tree.sql(dialect="duckdb") if changed else sql
