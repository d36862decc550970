"""The lake's SQL function library in Spark SQL: ``register(spark)``.

Arithmetic functions become Spark SQL functions (``CREATE TEMPORARY FUNCTION ... RETURN expr``)
translated from the DuckDB macro text of :mod:`legacylake.query.sql.macros`, so both engines run
the same formulas. Bit-name and band-name lookups are SQL (map / CASE) that raise an error
naming the bad name; :func:`fold_names` rewrites ``has_maskbits(col, 'BRIGHT,GALAXY')`` into
``((col & 4098) != 0)`` before Spark sees the query (Spark does not fold functions that can
raise), and :func:`sql` applies it. ``healpix_of``, ``nest_to_ring`` and ``htm9`` are Arrow
(pandas) UDFs; ``q3c_poly_query`` is DuckDB only (list lambdas). ``register_lake(spark, lake)``
adds a temporary view per catalog.
"""


import os
import re

from legacylake.catalogs_schema import BITMASKS
from legacylake.catalogs_schema.constants import EXTINCTION_R, WISE_VEGA_TO_AB
from legacylake.query.sql import macros
from legacylake.query.sql import hosted

_INT_PARAMS = {"r", "n", "c", "face"}
_BIGINT_PARAMS = {"col", "release", "brickid", "objid", "ix"}
_STRING_PARAMS = {"names", "band"}
_DEC_PARAMS = {"k", "h"}
_RETURNS = {
    "_brick_ncol": "INT", "_brick_offset": "INT", "_brick_row0": "INT", "_brick_row1": "INT",
    "_brick_row2": "INT", "_brick_row": "INT", "_brick_col0": "INT", "_brick_col1": "INT",
    "_brick_col2": "INT", "_brick_col": "INT", "_brickid_rc": "INT", "brickid_of": "INT",
    "_brick_name_rc": "STRING", "brickname_of": "STRING", "_rid_key": "DECIMAL(38,0)",
    "_rid_h1": "DECIMAL(38,0)", "_rid_h2": "DECIMAL(38,0)", "ls_id": "BIGINT", "_q3c_ok": "BOOLEAN",
    "_q3c_eqf": "INT", "_q3c_face": "INT", "_q3c_cell": "BIGINT", "_q3c_spread": "BIGINT", "_q3c_pix": "BIGINT",
    "_q3c_ipix": "BIGINT", "q3c_ang2ipix": "BIGINT", "_q3c_within": "BOOLEAN", "q3c_radial_query": "BOOLEAN",
    "q3c_join": "BOOLEAN", "_q3c_in_ellipse": "BOOLEAN", "q3c_ellipse_query": "BOOLEAN",
}
_TYPES = {"DOUBLE": "DOUBLE", "INTEGER": "INT", "BIGINT": "BIGINT", "VARCHAR": "STRING", "HUGEINT": "DECIMAL(38,0)"}


def _param_type(p: str) -> str:
    if p in _INT_PARAMS:
        return "INT"
    if p in _BIGINT_PARAMS:
        return "BIGINT"
    if p in _STRING_PARAMS:
        return "STRING"
    if p in _DEC_PARAMS:
        return "DECIMAL(38,0)"
    return "DOUBLE"


def _operand_start(s: str, end: int) -> int:
    """Start index of the operand that ends just before ``end`` (identifier, call or parenthesis)."""
    i = end - 1
    if s[i] == ")":
        depth = 0
        while i >= 0:
            if s[i] == ")":
                depth += 1
            elif s[i] == "(":
                depth -= 1
                if depth == 0:
                    break
            i -= 1
        j = i
        while j > 0 and (s[j - 1].isalnum() or s[j - 1] == "_"):
            j -= 1
        return j
    while i >= 0 and (s[i].isalnum() or s[i] in "_."):
        i -= 1
    return i + 1


def _casts(s: str) -> str:
    """DuckDB ``expr::TYPE`` -> ``CAST(expr AS TYPE)`` (innermost first)."""
    pat = re.compile(r"::(DOUBLE|INTEGER|BIGINT|VARCHAR|HUGEINT)")
    while True:
        m = pat.search(s)
        if not m:
            return s
        start = _operand_start(s, m.start())
        s = s[:start] + f"CAST({s[start:m.start()]} AS {_TYPES[m.group(1)]})" + s[m.end():]


def _lists(s: str) -> str:
    """``[a, b, ...][i]`` -> ``element_at(array(a, b, ...), i)`` (1-based in both)."""
    return re.sub(r"\[([^\[\]]*)\]\[([^\[\]]+)\]", r"element_at(array(\1), \2)", s)


def to_spark(body: str) -> str:
    """Translate one DuckDB macro body to Spark SQL."""
    s = _lists(_casts(body))
    s = s.replace(" // ", " div ")
    return s


def _mask_fn(family: str) -> str:
    m = BITMASKS[family]
    kv = ", ".join(f"'{n}', {1 << b}L" for n, b in m.bits.items())
    valid = ", ".join(m.names)
    return (f"aggregate(transform(filter(split(upper(names), '[,| ]+'), x -> x <> ''), x -> "
            f"coalesce(try_element_at(map({kv}), x), raise_error(concat('unknown {family} bit ''', x, "
            f"'''; valid names: {valid}')))), 0L, (a, b) -> a | b)")


def _case(name: str, table: dict[str, float], what: str) -> str:
    whens = " ".join(f"WHEN '{k}' THEN {float(v)!r}" for k, v in table.items())
    return (f"CASE lower(trim({name})) {whens} ELSE CAST(raise_error(concat('unknown {what} ''', {name}, "
            f"'''; valid bands: {', '.join(table)}')) AS DOUBLE) END")


def spark_functions() -> list[tuple[str, str, str, str]]:
    """(name, typed parameters, return type, body) of every Spark SQL function, in dependency order."""
    out = [
        ("_extinction_coeff", "band STRING", "DOUBLE", _case("band", EXTINCTION_R, "band")),
        ("_wise_ab_offset", "band STRING", "DOUBLE", _case("band", WISE_VEGA_TO_AB, "WISE band")),
    ]
    for fam in macros.BIT_FAMILIES:
        out.append((f"_{fam}_mask", "names STRING", "BIGINT", _mask_fn(fam)))
    for name, params, body in macros.duckdb_macros():
        ps = [p.strip() for p in params.split(",")]
        typed = ", ".join(f"{p} {_param_type(p)}" for p in ps)
        ret = _RETURNS.get(name, "DOUBLE")
        fam = next((f for f in macros.BIT_FAMILIES if name in (f"{f}_value", f"has_{f}", f"no_{f}",
                                                                macros.BIT_FAMILIES[f])), None)
        if fam is not None:
            if name == f"{fam}_value":
                body, ret = f"_{fam}_mask(names)", "BIGINT"
            elif name in (f"has_{fam}", f"no_{fam}"):
                op = "!=" if name.startswith("has_") else "="
                body, ret = f"(col & _{fam}_mask(names)) {op} 0", "BOOLEAN"
            else:
                nbits, names = macros._bit_names_list(fam)
                body = (f"transform(filter(sequence(0, {nbits - 1}), b -> (shiftright(col, b) & 1) = 1), "
                        f"b -> element_at(array({names[1:-1]}), b + 1))")
                ret = "ARRAY<STRING>"
            out.append((name, typed, ret, body))
            continue
        out.append((name, typed, ret, to_spark(body)))
    for name, params, body in hosted.duckdb_macros():  # ls_id, elon/elat, the q3c_* functions
        if "poly" in name:
            continue  # q3c_poly_query: DuckDB only (list lambdas)
        ps = [p.strip() for p in params.split(",")]
        typed = ", ".join(f"{p} {_param_type(p)}" for p in ps)
        out.append((name, typed, _RETURNS.get(name, "DOUBLE"), to_spark(body)))
    return out


_BITCALL = re.compile(r"\b(has|no)_(maskbits|fitbits|anymask|allmask|wisemask)\s*\(\s*([A-Za-z_][\w.]*)\s*,\s*'([^']*)'\s*\)",
                      re.IGNORECASE)


def fold_names(sql: str) -> str:
    """Rewrite ``has_X(col, 'A,B')`` / ``no_X(col, 'A,B')`` with literal names into integer ANDs.

    Unknown names raise :class:`legacylake.catalogs_schema.UnknownBitError` (naming the valid ones).
    """

    def repl(m: re.Match) -> str:
        kind, fam, col, names = m.group(1).lower(), m.group(2).lower(), m.group(3), m.group(4)
        value = BITMASKS[fam].mask(names)
        return f"(({col} & {value}) {'!=' if kind == 'has' else '='} 0)"

    return _BITCALL.sub(repl, sql)


def _register_udfs(spark) -> None:
    import numpy as np
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("long")
    def healpix_of(ra: pd.Series, dec: pd.Series, order: pd.Series) -> pd.Series:
        import pyarrow as pa

        out = macros._healpix_of(pa.array(ra.to_numpy(float)), pa.array(dec.to_numpy(float)),
                                 pa.array(order.to_numpy(np.int64)))
        return pd.Series(out.to_numpy(zero_copy_only=False))

    @pandas_udf("long")
    def nest_to_ring(ipix: pd.Series, order: pd.Series) -> pd.Series:
        import pyarrow as pa

        out = macros._nest_to_ring(pa.array(ipix.to_numpy(np.int64)), pa.array(order.to_numpy(np.int64)))
        return pd.Series(out.to_numpy())

    @pandas_udf("long")
    def htm9(ra: pd.Series, dec: pd.Series) -> pd.Series:
        ids = hosted.htm_id(ra.to_numpy(float), dec.to_numpy(float), hosted.HTM_DEPTH)
        return pd.Series(ids, dtype="Int64").mask(ids < 0)  # NULL for a non-finite position, as in DuckDB

    spark.udf.register("htm9", htm9)
    spark.udf.register("healpix_of", healpix_of)
    spark.udf.register("nest_to_ring", nest_to_ring)


def register(spark) -> list[str]:
    """Create the function library as temporary functions of ``spark``; returns their names."""
    names = []
    for name, typed, ret, body in spark_functions():
        spark.sql(f"CREATE OR REPLACE TEMPORARY FUNCTION {name}({typed}) RETURNS {ret} RETURN {body}")
        names.append(name)
    _register_udfs(spark)
    return names + ["healpix_of", "nest_to_ring", "htm9"]


#: Spark's split size floor for the lake's leaves (see :func:`read_options`).
MIN_PARTITION_BYTES = 2 << 30


def read_options(lake) -> dict[str, str]:
    """Spark SQL settings the lake's layout needs: each leaf read as one split.

    A leaf is up to ~1 GB of Parquet in row groups of a few MB (small, so that cone searches
    decode little); Spark's default 128 MB splits make every task of a leaf parse the leaf's
    whole footer and read a slice of it, which made a full count ~20x slower than DuckDB's on
    the 11.8M-row benchmark lake (bench/RESULTS.md, "Layout sizing"). So the split size is at
    least the biggest leaf (``spark.sql.files.maxPartitionBytes``), and ``minPartitionNum`` = 1
    keeps Spark from shrinking it to total bytes / cores on a many-core cluster."""
    from legacylake.query.lake import catalogs

    biggest = 0
    for cat in catalogs(lake).values():
        for f in cat.files:
            try:
                biggest = max(biggest, os.path.getsize(f))
            except OSError:
                pass
    return {"spark.sql.files.maxPartitionBytes": str(max(MIN_PARTITION_BYTES, biggest)),
            "spark.sql.files.minPartitionNum": "1"}


def register_lake(spark, lake) -> list[str]:
    """A temporary view per catalog of ``lake`` (and ``<catalog>_derived``); returns the view names.

    Sets the session's :func:`read_options` first (Spark reads these settings when a query is
    planned, so they apply to every file read of the session)."""
    from legacylake.query.lake import catalogs

    for key, value in read_options(lake).items():
        spark.conf.set(key, value)
    views = []
    for name, cat in catalogs(lake).items():
        df = spark.read.option("mergeSchema", "false").parquet(*cat.files)
        df.createOrReplaceTempView(name)
        cols = df.columns
        derived = [(n, fold_names(e)) for n, e in macros.derived_columns(cols) if n not in cols]
        extra = ", ".join(f"{e} AS {n}" for n, e in derived)
        spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {name}_derived AS SELECT *{', ' + extra if extra else ''} FROM {name}")
        views += [name, f"{name}_derived"]
    return views


def sql(spark, text: str):
    """``spark.sql`` after folding bit names into integer constants."""
    return spark.sql(fold_names(text))
