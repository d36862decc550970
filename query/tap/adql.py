"""ADQL 2.1 to DuckDB SQL through sqlglot's syntax tree (no text patterns).

:class:`ADQL` is a small sqlglot dialect (PostgreSQL's grammar plus ``TOP``, and ADQL's
``LOG(x)`` = natural log). :func:`translate` parses one ADQL query, checks its tables and
functions, rewrites the geometry functions (:mod:`.geometry`), hands spatial constraints and
crossmatch joins on lake tables to the service's :class:`Planner` (pruned reads, crossmatch),
applies ``MAXREC`` and returns DuckDB SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from legacylake.errors import UserError
from legacylake.query.tap import geometry as geo


class ADQL(Postgres):
    """ADQL: SQL-92 SELECT with TOP; identifiers case-insensitive unless delimited."""

    class Tokenizer(Postgres.Tokenizer):
        KEYWORDS = {**Postgres.Tokenizer.KEYWORDS, "TOP": TokenType.TOP}

    class Parser(Postgres.Parser):
        LOG_DEFAULTS_TO_LN = True


class ADQLError(UserError):
    """A query the service cannot run: the message names the column, function, table or position."""


#: ADQL and DuckDB functions sqlglot leaves as plain calls that the service allows.
EXTRA_FUNCTIONS = frozenset({
    "cot", "log10", "degrees", "radians", "atan2", "pi", "sign", "median", "mode", "stddev", "variance",
    "quantile_cont", "quantile_disc", "greatest", "least", "isfinite", "isnan", "list_value", "array_length",
    "len", "strlen", "length", "char_length", "character_length", "trim", "ltrim", "rtrim", "position",
    "replace", "regexp_matches", "contains", "starts_with", "ends_with", "abs", "ceiling", "floor",
    "round", "sqrt", "exp", "ln", "power", "mod", "rand", "random", "truncate", "trunc", "upper", "lower",
    "sin", "cos", "tan", "asin", "acos", "atan", "coalesce", "nullif", "bit_count", "xor", "hypot",
    "list_extract", "array_extract", "count_if", "bool_and", "bool_or", "arg_min", "arg_max",
    "histogram", "approx_count_distinct", "string_agg", "concat", "substring", "substr", "left", "right",
})


class Planner(Protocol):
    """What the translator asks the service for (see :mod:`.engine`)."""

    def resolve(self, parts: tuple[str, ...]) -> "TableRef | None": ...

    def table_names(self) -> list[str]: ...

    def functions(self) -> frozenset[str]: ...

    def region_source(self, ref: "TableRef", region, columns: set[str] | None) -> tuple[str, dict]: ...

    def xmatch_source(self, ref: "TableRef", upload: "TableRef", lake_pos: tuple[str, str],
                      up_pos: tuple[str, str], radius_deg: float,
                      columns: set[str] | None) -> tuple[str, dict]: ...

    def pair_source(self, ref1: "TableRef", ref2: "TableRef", pos1: tuple[str, str], pos2: tuple[str, str],
                    radius_deg: float, columns: set[str] | None) -> tuple[str, str, dict]: ...


@dataclass(frozen=True)
class TableRef:
    """A table a query may name: its SQL in DuckDB, and for lake tables the catalog and whether
    it is the ``_derived`` view; for uploads the Arrow table."""

    sql: str
    catalog: str | None = None
    derived: bool = False
    upload: pa.Table | None = field(default=None, compare=False, hash=False)


@dataclass
class Translation:
    """DuckDB SQL for one ADQL query, the Arrow tables to register for it, and what was planned."""

    tree: exp.Expression
    registrations: dict[str, pa.Table]
    notes: list[str]
    #: (registered table, [(column, output name)], row limit) when the query only picks columns of
    #: a region's rows: the answer is those rows, no SQL engine needed
    direct: tuple[str, list[tuple[str, str]], int | None] | None = None

    @property
    def sql(self) -> str:
        """The DuckDB SQL (generated when first asked for)."""
        if not hasattr(self, "_sql"):
            self._sql = self.tree.sql(dialect="duckdb")
        return self._sql


def parse(adql: str) -> exp.Expression:
    """The syntax tree of one ADQL query; ADQLError with line and column on a syntax error."""
    if not adql or not adql.strip():
        raise ADQLError("empty QUERY")
    try:
        trees = [t for t in sqlglot.parse(adql, read=ADQL) if t is not None]
    except ParseError as exc:
        e = exc.errors[0] if exc.errors else {}
        hl = e.get("highlight", "")
        col = e["col"] - len(hl) + 1 if isinstance(e.get("col"), int) and hl else e.get("col", "?")  # col: token end
        desc = _short(e.get("description", str(exc)))
        desc = desc + f" '{hl}'" if desc.endswith("got") else desc
        raise ADQLError(f"ADQL parse error at line {e.get('line', '?')}, column {col} (at '{hl}'): {desc}") from None
    except TokenError as exc:
        raise ADQLError(f"ADQL parse error: {exc}") from None
    if len(trees) != 1:
        raise ADQLError(f"expected one ADQL query, got {len(trees)} statements")
    tree = trees[0]
    if not isinstance(tree, exp.Query):
        raise ADQLError(f"only SELECT queries are ADQL (got {tree.key.upper()})")
    return tree


def _short(desc: str) -> str:
    return desc.split(". Line ")[0].split("<Token")[0].strip().rstrip(":")


def translate(adql: str, planner: Planner, maxrec: int | None = None) -> Translation:
    """DuckDB SQL for ``adql`` with at most ``maxrec + 1`` rows (to detect overflow)."""
    try:
        return _translate(adql, planner, maxrec)
    except ADQLError:
        raise
    except UserError as exc:   # geometry and region checks
        raise ADQLError(str(exc)) from None


def _translate(adql: str, planner: Planner, maxrec: int | None) -> Translation:
    tree = parse(adql)
    regs: dict[str, pa.Table] = {}
    notes: list[str] = []
    _check_functions(tree, planner.functions())
    refs = _resolve_tables(tree, planner)
    wants = _wanted_columns(tree)
    for select in list(tree.find_all(exp.Select)):
        _plan_xmatch(select, refs, planner, wants, regs, notes)
        _plan_region(select, refs, planner, wants, regs, notes)
    for node, ref in refs.items():
        if node.parent is not None:
            _replace_table(node, exp.to_table(ref.sql, dialect="duckdb"), node.alias)
    if maxrec is not None:
        tree = _limit(tree, maxrec + 1)
    direct = _direct(tree, regs)
    tree = geo.rewrite(tree)
    return Translation(tree, regs, notes, direct)


# ---------------------------------------------------------------- checks


def _check_functions(tree: exp.Expression, ours: frozenset[str]) -> None:
    allowed = ours | EXTRA_FUNCTIONS | geo.NAMES
    for fn in tree.find_all(exp.Anonymous):
        name = str(fn.this).lower()
        if name not in allowed:
            raise ADQLError(f"unknown function '{fn.this}' (ADQL math, string and geometry functions and the "
                            "lake's functions, listed at /capabilities and on the landing page, are available)")


def _table_parts(t: exp.Table) -> tuple[str, ...]:
    return tuple(p.name.lower() for p in t.parts)


def _resolve_tables(tree: exp.Expression, planner: Planner) -> dict[exp.Table, TableRef]:
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    out = {}
    for t in tree.find_all(exp.Table):
        if isinstance(t.this, exp.Func) or not isinstance(t.this, exp.Identifier):
            raise ADQLError(f"'{t.sql()}' is not a table name (table functions are not ADQL)")
        parts = _table_parts(t)
        if len(parts) == 1 and parts[0] in ctes:
            continue
        ref = planner.resolve(parts)
        if ref is None:
            raise ADQLError(f"unknown table '{'.'.join(p.name for p in t.parts)}'; tables: "
                            + ", ".join(planner.table_names()))
        out[t] = ref
    return out


def _wanted_columns(tree: exp.Expression) -> set[str] | None:
    """Lower-case names of all columns the query names (None when it selects ``*``)."""
    if any(not isinstance(s.parent, exp.Count) for s in tree.find_all(exp.Star)):   # COUNT(*) reads nothing
        return None
    return {c.name.lower() for c in tree.find_all(exp.Column)}


# ---------------------------------------------------------------- planning hooks


def _scope_tables(select: exp.Select, refs: dict[exp.Table, TableRef]) -> dict[str, exp.Table]:
    """alias-or-name (lower case) -> Table node of the FROM and JOIN items of ``select``."""
    out = {}
    items = ([select.args["from_"].this] if select.args.get("from_") else []) + \
        [j.this for j in select.args.get("joins") or []]
    for it in items:
        if isinstance(it, exp.Table) and it in refs:
            out[(it.alias or it.name).lower()] = it
    return out


def _owner(col: exp.Expression, scope: dict[str, exp.Table], refs, lake_only: bool = True) -> exp.Table | None:
    """The Table node a column reference belongs to (its qualifier, or the only table in scope)."""
    if not isinstance(col, exp.Column):
        return None
    if col.table:
        return scope.get(col.table.lower())
    cands = [t for t in scope.values() if (refs[t].catalog is not None) or not lake_only]
    return cands[0] if len(scope) == 1 and cands else None


def _conjuncts(cond: exp.Expression | None) -> list[exp.Expression]:
    if cond is None:
        return []
    cond = cond.unnest()
    if isinstance(cond, exp.And):
        return _conjuncts(cond.left) + _conjuncts(cond.right)
    return [cond]


def _plan_region(select, refs, planner, wants, regs, notes) -> None:
    """``1=CONTAINS(POINT(ra, dec), CIRCLE|BOX|POLYGON(constants))`` on a lake table: read only
    the region's partitions and row groups (the table becomes the pruned rows)."""
    where = select.args.get("where")
    scope = _scope_tables(select, refs)
    for cond in _conjuncts(where.this if where else None):
        hit = geo.point_in_region(cond)
        if hit is None:
            continue
        (ra, dec), region = hit
        t = _owner(ra, scope, refs)
        if t is None or _owner(dec, scope, refs) is not t or refs[t].catalog is None:
            continue
        if (ra.name.lower(), dec.name.lower()) != ("ra", "dec") or getattr(t, "_planned", False):
            continue
        sql, new = planner.region_source(refs[t], region, wants)
        regs.update(new)
        notes.append(f"{region.kind} on {t.name}: pruned read")
        _replace_table(t, _subquery(sql), t.alias or t.name)
        refs.pop(t)
        select._region_cond = cond
        return


def _direct(tree: exp.Expression, regs: dict[str, pa.Table]):
    """:attr:`Translation.direct` of ``SELECT col [AS name], ... FROM <region rows> WHERE <that region>
    [TOP n]`` (the region's rows are already exact); None for anything more."""
    if not isinstance(tree, exp.Select) or getattr(tree, "_region_cond", None) is None:
        return None
    if any(tree.args.get(k) for k in ("with_", "joins", "group", "having", "order", "offset", "distinct",
                                      "qualify", "windows", "laterals")):
        return None
    where = tree.args.get("where")
    if where is None or where.this.unnest() is not tree._region_cond:
        return None
    src = tree.args["from_"].this
    inner = src.this if isinstance(src, exp.Subquery) else None
    if not (isinstance(inner, exp.Select) and len(inner.expressions) == 1 and isinstance(inner.expressions[0], exp.Star)
            and inner.args.get("from_") is not None and not inner.args.get("where")):
        return None
    reg = inner.args["from_"].this.name
    if reg not in regs:
        return None
    names = {n.lower(): n for n in regs[reg].column_names}
    alias = src.alias.lower()
    cols = []
    for e in tree.expressions:
        col, out = (e.this, e.alias) if isinstance(e, exp.Alias) else (e, None)
        if not isinstance(col, exp.Column) or not isinstance(col.this, exp.Identifier) or \
                (col.table and col.table.lower() != alias) or col.name.lower() not in names:
            return None
        cols.append((names[col.name.lower()], out or col.name))
    lim = tree.args.get("limit")
    n = lim.expression if isinstance(lim, exp.Limit) else None
    if n is not None and not (isinstance(n, exp.Literal) and not n.is_string):
        return None
    return reg, cols, int(n.this) if n is not None else None


def _plan_xmatch(select, refs, planner, wants, regs, notes) -> None:
    """A JOIN whose ON holds CONTAINS/DISTANCE between a lake table and an upload (or another lake
    table, inner joins): the lake side becomes the crossmatch pairs (keyed to the upload's rows),
    not a cross join."""
    scope = _scope_tables(select, refs)
    where = select.args.get("where")
    for join in select.args.get("joins") or []:
        on = join.args.get("on")
        comma = on is None and not join.args.get("using") and not join.args.get("side") and \
            str(join.args.get("kind") or "CROSS").upper() == "CROSS"
        # FROM lake, upload WHERE 1 = CONTAINS(...) is the same join as JOIN ... ON
        for cond in _conjuncts(on if not comma else (where.this if where else None)):
            hit = geo.pair_within(cond)
            if hit is None:
                continue
            (p1, p2), radius = hit
            t1, t2 = _owner(p1[0], scope, refs, False), _owner(p2[0], scope, refs, False)
            if t1 is None or t2 is None or t1 is t2:
                continue
            if refs[t2].catalog is not None and refs[t1].upload is not None:
                t1, t2, p1, p2 = t2, t1, p2, p1
            if _owner(p1[1], scope, refs, False) is not t1 or _owner(p2[1], scope, refs, False) is not t2:
                continue
            if refs[t1].catalog is not None and refs[t2].catalog is not None:
                if join.args.get("side") or str(join.args.get("kind") or "INNER").upper() not in ("INNER", "CROSS"):
                    continue   # an outer join between catalogs keeps unmatched rows: not a crossmatch
                _lake_pairs(select, join, t1, t2, p1, p2, radius, refs, planner, wants, regs, notes)
                return
            if refs[t1].catalog is None or refs[t2].upload is None:
                continue
            up_alias = t2.alias or t2.name
            sql, new = planner.xmatch_source(refs[t1], refs[t2], (p1[0].name, p1[1].name),
                                             (p2[0].name, p2[1].name), radius, wants)
            regs.update(new)
            notes.append(f"crossmatch of {t1.name} with upload {t2.name} within {radius * 3600:g} arcsec")
            lake_alias = t1.alias or t1.name
            _replace_table(t1, _subquery(sql), lake_alias)
            refs.pop(t1)
            key = exp.condition(f'"{lake_alias}".__xm_uid_l = "{up_alias}".__xm_uid_u', dialect="duckdb")
            _add_key(join, key)
            _exclude_keys(select, lake_alias, up_alias)
            return


def _lake_pairs(select, join, t1, t2, p1, p2, radius, refs, planner, wants, regs, notes) -> None:
    """An inner JOIN of two lake catalogs on CONTAINS/DISTANCE: both sides become the two halves of
    the crossmatch pairs (``t2`` streamed against ``t1``), joined on the pair number."""
    a1, a2 = t1.alias or t1.name, t2.alias or t2.name
    sql1, sql2, new = planner.pair_source(refs[t1], refs[t2], (p1[0].name, p1[1].name),
                                          (p2[0].name, p2[1].name), radius, wants)
    regs.update(new)
    notes.append(f"crossmatch of {t1.name} with {t2.name} within {radius * 3600:g} arcsec")
    _replace_table(t1, _subquery(sql1), a1)
    _replace_table(t2, _subquery(sql2), a2)
    refs.pop(t1)
    refs.pop(t2)
    key = exp.condition(f'"{a1}".__xm_uid_l = "{a2}".__xm_uid_u', dialect="duckdb")
    _add_key(join, key)
    _exclude_keys(select, a1, a2)


def _add_key(join: exp.Join, key: exp.Expression) -> None:
    """AND the pair-number equality into the join's ON (a comma or CROSS join becomes an inner join)."""
    join.set("on", exp.and_(join.args["on"], key) if join.args.get("on") else key)
    if str(join.args.get("kind") or "").upper() == "CROSS":
        join.set("kind", None)


def _exclude_keys(select: exp.Select, lake_alias: str, up_alias: str) -> None:
    """Hide the crossmatch key columns from ``*``, ``lake.*`` and ``upload.*``."""
    for star in list(select.expressions):
        if isinstance(star, exp.Star):
            star.set("except_", [exp.column("__xm_uid_l"), exp.column("__xm_uid_u")])
        elif isinstance(star, exp.Column) and isinstance(star.this, exp.Star):
            key = "__xm_uid_l" if star.table.lower() == lake_alias.lower() else "__xm_uid_u"
            star.this.set("except_", [exp.column(key)])


def _subquery(sql) -> exp.Expression:
    """A planner's source query as a syntax tree (given as one, or as DuckDB SQL text to parse)."""
    return sql if isinstance(sql, exp.Expression) else sqlglot.parse_one(sql, read="duckdb")


def _replace_table(node: exp.Table, new: exp.Expression, alias: str | None) -> None:
    """Put ``new`` (a table or a query) where ``node`` is, keeping the name it is referred by."""
    if isinstance(new, exp.Query):
        new = exp.Subquery(this=new, alias=exp.TableAlias(this=exp.to_identifier(alias)))
    elif alias:
        new.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    new._planned = True
    node.replace(new)


def _limit(tree: exp.Query, n: int) -> exp.Query:
    """``tree`` returning at most ``n`` rows (keeps a smaller TOP/LIMIT)."""
    if isinstance(tree, exp.Select):
        lim = tree.args.get("limit")
        cur = lim.expression if isinstance(lim, exp.Limit) else None
        if isinstance(cur, exp.Literal) and not cur.is_string and int(cur.this) <= n:
            return tree
        return tree.limit(n, copy=False)
    return exp.select("*").from_(tree.subquery("__q")).limit(n)
