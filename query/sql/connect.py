"""``connect(LAKE)``: a DuckDB connection with a view per catalog of a HATS lake and the SQL functions.

A lake is a folder of catalogs: HATS collections written by ``legacylake etl``
(``LAKE/NAME/collection.properties`` pointing at the current snapshot) or plain HATS
catalogs (``LAKE/NAME/hats.properties``). Each catalog ``NAME`` becomes a view ``NAME`` over
the leaf files of the snapshot current when the connection is opened (resolved once: a
build that publishes a new snapshot later does not change what this connection reads),
without the hive partition columns, and a view ``NAME_derived`` that adds Astro Data Lab's
derived columns (``mag_g``, ``dered_mag_r``, ``snr_z``, ``g_r``, ``nest4096``, ...).
A single catalog folder may be passed too. The connection only reads the lake
(:class:`LakeConnection`, :func:`lock_to_lake`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from legacylake.errors import UserError
from legacylake.query.lake import (
    Catalog,
    file_list,
    mtime,
    open_cached,
    sql_name,
    catalogs,
    parquet_scan,
)
from legacylake.query.sql import macros


def connect(lake: str | os.PathLike, threads: int | None = None, read_only: bool = True,
            progress_bar: bool = False) -> "LakeConnection | duckdb.DuckDBPyConnection":
    """A DuckDB connection with a view per catalog of ``lake``, ``<catalog>_derived`` views and
    the SQL function library (:mod:`legacylake.query.sql.macros`).

    Each catalog's current snapshot is resolved once, here: the views read that snapshot's
    leaves for the life of the connection, whatever builds publish meanwhile (open a new
    connection to see them; ``etl vacuum`` must keep the snapshot while the connection is
    used). The lake's path and the snapshots are kept in the connection (see :func:`lake_of`).
    The crossmatch table macros ``xmatch_nearest(ext, catalog, radius_arcsec)`` and
    ``xmatch_all(...)`` are registered too.

    ``read_only`` (default): a :class:`LakeConnection`, which refuses statements that write
    files or change the sandbox (COPY, EXPORT, ATTACH, DETACH, INSTALL, LOAD) by their DuckDB
    statement type, and relation methods that write files (``to_parquet``, ``to_csv``, ...).
    DuckDB's external access is disabled with the leaf files as its only ``allowed_paths`` and
    the configuration is locked (``lock_configuration``), so no ``SET`` can lift the sandbox
    (nor change any other setting: pass ``threads`` and ``progress_bar`` here). In-memory
    tables, macros and ``con.register(name, arrow_table_or_dataframe)`` stay allowed.
    ``read_only=False`` gives a plain, unlocked ``duckdb.DuckDBPyConnection``.

    Parquet footers are cached on the connection (``parquet_metadata_cache``).
    """
    root = Path(lake).resolve()  # absolute leaf paths: views and the allowed paths match exactly
    cats = catalogs(root)
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if progress_bar:
        con.execute("SET enable_progress_bar = true")  # DuckDB's bar on stderr for queries > 2 s
    # keep parsed Parquet footers between queries (a leaf's footer is 182 columns x ~300 row
    # groups): a 1-arcmin SQL cone() on the 11.8M-row lake drops from 572 to 345 ms CPU.
    con.execute("SET parquet_metadata_cache = true")
    macros.install(con)
    for name, cat in cats.items():
        if not cat.files:
            continue
        con.execute(f"CREATE VIEW {sql_name(name)} AS SELECT * FROM {parquet_scan(cat.files)}")
        cols = [f.name for f in cat.schema]
        derived = macros.derived_columns(cols)
        extra = ", ".join(f"{expr} AS {n}" for n, expr in derived if n not in cols)
        con.execute(f"CREATE VIEW {sql_name(name + '_derived')} AS SELECT *{', ' + extra if extra else ''} "
                    f"FROM {sql_name(name)}")
        if re.fullmatch(r"dr\d+", name):  # Astro Data Lab's name for the same table: ls_dr9.tractor
            con.execute(f"CREATE SCHEMA IF NOT EXISTS ls_{name}")
            con.execute(f"CREATE VIEW ls_{name}.tractor AS SELECT * FROM {sql_name(name + '_derived')}")
    con.execute("SET VARIABLE legacylake_lake = ?", [str(root)])
    con.execute("SET VARIABLE legacylake_catalogs = ?",
                [json.dumps({n: [str(c.path), c.snapshot, str(c.margin) if c.margin else None]
                             for n, c in cats.items()})])
    from legacylake.query.crossmatch.sqlfuncs import register_xmatch  # xmatch_all / xmatch_nearest

    register_xmatch(con)
    if not read_only:
        return con
    lock_to_lake(con, cats)
    return LakeConnection(con)


def lock_to_lake(con: duckdb.DuckDBPyConnection, cats: dict[str, Catalog]) -> None:
    """Disable DuckDB's external access on ``con`` except reading the catalogs' leaf files, and
    lock its configuration (no ``SET`` can undo this on the connection).

    After this no SQL on ``con`` can create, replace or delete a file other than the leaves
    (COPY TO, EXPORT, ATTACH, temp-directory changes, extension installs) nor read files
    outside the lake. ``allowed_paths`` is one list for reading and writing (a DuckDB
    limitation), so writing over a leaf itself is refused by :class:`LakeConnection`.
    """
    files = [f for cat in cats.values() for f in cat.files]
    if files:
        con.execute(f"SET allowed_paths = {file_list(files)}")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


#: Statement types a lake connection refuses (they write files or open other databases).
REFUSED_STATEMENTS = frozenset({"COPY", "EXPORT", "ATTACH", "DETACH", "LOAD", "COPY_DATABASE", "EXTENSION"})
#: Methods of connections and relations that write files or change the sandbox.
_REFUSED_METHODS = frozenset({"to_parquet", "write_parquet", "to_csv", "write_csv", "install_extension",
                              "load_extension", "register_filesystem", "unregister_filesystem"})


def refuse_writes(sql: str) -> None:
    """UserError if any statement of ``sql`` writes files or changes the sandbox (by DuckDB's
    statement types; the text is parsed by DuckDB, never matched with patterns)."""
    try:
        stmts = duckdb.extract_statements(sql)
    except duckdb.Error:
        return  # DuckDB reports the syntax error itself when the text runs
    for st in stmts:
        kind = str(st.type).split(".")[-1].upper()
        if kind in REFUSED_STATEMENTS:
            what = "INSTALL/LOAD" if kind == "LOAD" else kind
            raise UserError(f"{what} statements are refused on a lake connection (it only reads the lake; "
                            "bring other data in with con.register(name, arrow_table))")


class _Guarded:
    """Forwards attributes to a DuckDB object, refusing the methods that write files and
    wrapping the connections and relations it returns."""

    def __init__(self, obj):
        object.__setattr__(self, "_obj", obj)

    def __getattr__(self, name):
        if name in _REFUSED_METHODS:
            raise UserError(f"{name}() is refused on a lake connection (it would write files); "
                            "fetch the result (e.g. .to_arrow_table()) and write it yourself")
        attr = getattr(self._obj, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            return _wrap(attr(*args, **kwargs))

        return call

    def __setattr__(self, name, value):
        setattr(self._obj, name, value)

    def __repr__(self) -> str:
        return repr(self._obj)


def _wrap(x):
    if isinstance(x, duckdb.DuckDBPyConnection):
        return LakeConnection(x)
    if isinstance(x, duckdb.DuckDBPyRelation):
        return LakeRelation(x)
    return x


class LakeRelation(_Guarded):
    """A DuckDB relation from a :class:`LakeConnection` (file-writing methods refused)."""

    def __iter__(self):
        return iter(self._obj.fetchall())

    def __len__(self) -> int:
        return len(self._obj)

    def __getitem__(self, key):
        return _wrap(self._obj[key])


class LakeConnection(_Guarded):
    """A read-only DuckDB connection to a lake, as :func:`connect` returns it.

    It behaves as a ``duckdb.DuckDBPyConnection`` (``sql``, ``execute``, ``register``,
    ``fetchall``, ...; relations come back as :class:`LakeRelation`), but statements that
    write files or change the sandbox are refused before DuckDB sees them
    (:data:`REFUSED_STATEMENTS`). ``raw`` is the underlying DuckDB connection, for APIs that
    insist on one (``duckdb.sql(..., connection=con.raw)``); it is locked by DuckDB itself
    (external access, configuration) but does not refuse COPY over a leaf file.
    """

    @property
    def raw(self) -> duckdb.DuckDBPyConnection:
        return self._obj

    def _checked(self, name):
        fn = getattr(self._obj, name)

        def call(query, *args, **kwargs):
            if isinstance(query, str):
                refuse_writes(query)
            return _wrap(fn(query, *args, **kwargs))

        return call

    def __getattr__(self, name):
        if name in ("sql", "query", "execute", "executemany", "from_query"):
            return self._checked(name)
        return super().__getattr__(name)

    def execute(self, query, parameters=None):
        refuse_writes(query) if isinstance(query, str) else None
        self._obj.execute(query, parameters)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._obj.close()


def lake_of(con) -> tuple[Path, dict[str, Catalog]]:
    """(lake path, catalogs) of a connection made by :func:`connect`: the snapshots it was
    opened on (kept in the connection as DuckDB variables), not the ones current now."""
    try:
        path, pinned = con.sql("SELECT getvariable('legacylake_lake'), getvariable('legacylake_catalogs')"
                               ).fetchall()[0]
    except duckdb.Error:
        path = pinned = None
    if not path:
        raise UserError("this DuckDB connection was not made by legacylake.query.sql.connect")
    if not pinned:
        return Path(path), catalogs(path)
    cats = {}
    for name, (hats_dir, version, margin) in json.loads(pinned).items():
        p = Path(hats_dir)
        st = p.stat()
        mt = ((float(st.st_ino), float(st.st_mtime_ns)) if version is not None
              else (mtime(p / "hats.properties"), mtime(p / "partition_info.csv")))
        cats[name] = open_cached(str(p), *mt, name, version, margin)
    return Path(path), cats


def units_for(names, cats: dict[str, Catalog]) -> dict[str, str]:
    """Units of result columns that carry a lake column's name (first catalog that has it)."""
    out: dict[str, str] = {}
    all_units = {}
    for cat in cats.values():
        for k, v in cat.units().items():
            all_units.setdefault(k, v)
    for n in names:
        if n in all_units:
            out[n] = all_units[n]
        elif n.startswith(("mag_", "dered_mag_")) or n in ("g_r", "r_z", "z_w1", "w1_w2"):
            out[n] = "mag"
        elif n.startswith("dered_flux_"):
            out[n] = "nanomaggy"
        elif n in ("glon", "glat"):
            out[n] = "deg"
        elif macros.hosted.DERIVED_INFO.get(n, ("",))[0]:
            out[n] = macros.hosted.DERIVED_INFO[n][0]
    return out


def to_astropy(table: pa.Table, units: dict[str, str] | None = None):
    """An astropy Table from an Arrow table, with units from ``units`` or the field metadata."""
    import astropy.units as u
    from astropy.table import Table

    out = Table()
    for f, col in zip(table.schema, table.columns):
        if pa.types.is_fixed_size_list(f.type):
            flat = col.combine_chunks().flatten().to_numpy(zero_copy_only=False)
            values = flat.reshape(len(col), f.type.list_size)
        elif pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
            values = np.array(col.to_pylist(), dtype=object)
        else:
            values = col.to_numpy() if col.null_count == 0 else np.ma.masked_invalid(
                col.to_pandas().to_numpy(dtype=float, na_value=np.nan)) if pa.types.is_floating(f.type) \
                else np.ma.array(col.to_pandas().to_numpy(), mask=col.is_null().to_numpy(zero_copy_only=False))
        unit = (units or {}).get(f.name)
        if unit is None and f.metadata and b"unit" in f.metadata:
            unit = f.metadata[b"unit"].decode()
        out[f.name] = values
        if unit:
            try:
                out[f.name].unit = u.Unit(unit)
            except ValueError:
                out[f.name].unit = u.Unit(unit, parse_strict="silent")
        if f.metadata and b"description" in f.metadata:
            out[f.name].description = f.metadata[b"description"].decode()
    return out
