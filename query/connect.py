"""``connect(LAKE)``: a DuckDB connection with a view per catalog of a HATS lake and the SQL functions.

A lake is a folder of HATS catalogs (``LAKE/NAME/hats.properties``). Each catalog ``NAME``
becomes a view ``NAME`` over its leaf files (``dataset/Norder=*/Dir=*/Npix=*.parquet``,
without the hive partition columns) and a view ``NAME_derived`` that adds Astro Data Lab's
derived columns (``mag_g``, ``dered_mag_r``, ``snr_z``, ``g_r``, ``nest4096``, ...).
A single catalog folder may be passed too. The connection is locked to reading the lake's
leaf files (:func:`lock_to_lake`).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UserError
from . import macros


@dataclass(frozen=True)
class Catalog:
    """One HATS catalog of a lake: name, folder, partitions (order, pixel) and leaf paths."""

    name: str
    path: Path
    orders: np.ndarray  # int64, per partition
    pixels: np.ndarray  # int64, per partition
    files: tuple[str, ...]
    properties: dict[str, str]

    @property
    def schema(self) -> pa.Schema:
        """Arrow schema (with unit/description field metadata) of the catalog's leaves."""
        return _schema(str(self.path), self.files[0] if self.files else "")

    def units(self) -> dict[str, str]:
        """Column name -> unit string, from the Parquet field metadata."""
        out = {}
        for f in self.schema:
            if f.metadata and b"unit" in f.metadata:
                out[f.name] = f.metadata[b"unit"].decode()
        return out


@functools.lru_cache(maxsize=64)
def _schema(path: str, first_file: str) -> pa.Schema:
    common = Path(path) / "dataset" / "_common_metadata"
    if common.exists():
        return pq.read_schema(common)
    if not first_file:
        raise UserError(f"{path}: catalog has no leaf files")
    return pq.read_schema(first_file)


def _read_properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _leaf(root: Path, order: int, pix: int) -> Path:
    return root / "dataset" / f"Norder={order}" / f"Dir={(pix // 10000) * 10000}" / f"Npix={pix}.parquet"


def open_catalog(path: str | os.PathLike) -> Catalog:
    """Read a catalog's properties and partition list (partition_info.csv, else the leaf files)."""
    root = Path(path)
    props_file = root / "hats.properties"
    if not props_file.is_file():
        props_file = root / "properties"
    if not props_file.is_file():
        raise UserError(f"{root}: not a HATS catalog (no hats.properties)")
    props = _read_properties(props_file)
    info = root / "partition_info.csv"
    if info.is_file():
        import csv

        with open(info) as fh:
            rows = list(csv.DictReader(fh))
        try:
            orders = np.array([int(r["Norder"]) for r in rows], dtype=np.int64)
            pixels = np.array([int(r["Npix"]) for r in rows], dtype=np.int64)
        except (KeyError, ValueError):
            raise UserError(f"{info}: malformed partition_info.csv (need Norder, Npix columns)") from None
    else:
        leaves = sorted((root / "dataset").glob("Norder=*/Dir=*/Npix=*.parquet"))
        orders = np.array([int(p.parent.parent.name.split("=")[1]) for p in leaves], dtype=np.int64)
        pixels = np.array([int(p.stem.split("=")[1]) for p in leaves], dtype=np.int64)
    files = tuple(str(_leaf(root, int(o), int(p))) for o, p in zip(orders, pixels))
    return Catalog(root.name, root, orders, pixels, files, props)


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


@functools.lru_cache(maxsize=256)
def _open_cached(path: str, props_mtime: float, info_mtime: float) -> Catalog:
    return open_catalog(path)


def _open(root: Path) -> Catalog:
    """open_catalog, cached until hats.properties or partition_info.csv change."""
    return _open_cached(str(root), _mtime(root / "hats.properties"), _mtime(root / "partition_info.csv"))


def catalogs(lake: str | os.PathLike) -> dict[str, Catalog]:
    """Catalogs of a lake by name (a catalog folder itself counts as a one-catalog lake)."""
    root = Path(lake)
    if not root.is_dir():
        raise UserError(f"{root}: no such lake folder")
    if (root / "hats.properties").is_file():
        cat = _open(root)
        return {cat.name: cat}
    out = {}
    for sub in sorted(root.iterdir()):
        if sub.is_dir() and (sub / "hats.properties").is_file():
            out[sub.name] = _open(sub)
    if not out:
        raise UserError(f"{root}: not a lake (no folder with hats.properties; "
                        "expected LAKE/<catalog>/hats.properties, as legacylake etl writes)")
    return out


def _sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _file_list(files) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def parquet_scan(files) -> str:
    """A DuckDB ``read_parquet`` call over explicit leaf files (no hive partition columns)."""
    return f"read_parquet({_file_list(files)}, hive_partitioning = false, union_by_name = false)"


def connect(lake: str | os.PathLike, threads: int | None = None, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per catalog of ``lake``, ``<catalog>_derived`` views and
    the SQL function library (:mod:`legacylake.query.macros`).

    The lake's path is kept in the connection (DuckDB variable ``legacylake_lake``, see
    :func:`lake_of`); use :func:`catalogs` for the partition lists. The crossmatch table macros
    ``xmatch_nearest(ext, catalog, radius_arcsec)`` and ``xmatch_all(...)`` are registered too.

    ``read_only`` (default): the connection is locked to the lake's leaf files. DuckDB's external
    access is disabled with the leaf files as its only ``allowed_paths``, so ``COPY ... TO``,
    ``EXPORT DATABASE``, ``ATTACH`` and reading or writing any other file fail with DuckDB's
    "Permission Error: Cannot access file ...", and the lock cannot be lifted on this
    connection. Bring other data in with ``con.register(name, arrow_table_or_dataframe)``.
    ``read_only=False`` gives an unlocked connection (the lake is then read-only by convention).

    Parquet footers are cached on the connection (``parquet_metadata_cache``): open a new
    connection after an ``etl build`` that rewrote the lake.
    """
    root = Path(lake).resolve()  # absolute leaf paths: views and the allowed paths match exactly
    cats = catalogs(root)
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    # keep parsed Parquet footers between queries (a leaf's footer is 182 columns x ~300 row
    # groups): a 1-arcmin SQL cone() on the 11.8M-row lake drops from 572 to 345 ms CPU.
    # DuckDB re-reads a footer when the file's mtime is not older than the cached read.
    con.execute("SET parquet_metadata_cache = true")
    macros.install(con)
    for name, cat in cats.items():
        if not cat.files:
            continue
        con.execute(f"CREATE VIEW {_sql_name(name)} AS SELECT * FROM {parquet_scan(cat.files)}")
        cols = [f.name for f in cat.schema]
        derived = macros.derived_columns(cols)
        extra = ", ".join(f"{expr} AS {n}" for n, expr in derived if n not in cols)
        con.execute(f"CREATE VIEW {_sql_name(name + '_derived')} AS SELECT *{', ' + extra if extra else ''} "
                    f"FROM {_sql_name(name)}")
        if re.fullmatch(r"dr\d+", name):  # Astro Data Lab's name for the same table: ls_dr9.tractor
            con.execute(f"CREATE SCHEMA IF NOT EXISTS ls_{name}")
            con.execute(f"CREATE VIEW ls_{name}.tractor AS SELECT * FROM {_sql_name(name + '_derived')}")
    path = str(root).replace("'", "''")
    con.execute(f"SET VARIABLE legacylake_lake = '{path}'")
    from .xmatch import register_xmatch  # xmatch_all / xmatch_nearest table macros

    register_xmatch(con)
    if read_only:
        lock_to_lake(con, cats)
    return con


def lock_to_lake(con: duckdb.DuckDBPyConnection, cats: dict[str, Catalog]) -> None:
    """Disable DuckDB's external access on ``con`` except reading the catalogs' leaf files.

    After this no SQL on ``con`` can create, replace or delete a file (COPY TO, EXPORT, ATTACH,
    temp-directory changes, extension installs) nor read files outside the lake; it cannot be
    undone on the connection. One gap remains, a DuckDB limitation: ``allowed_paths`` is one list
    for reading and writing, so ``COPY ... TO '<an existing leaf file>' (USE_TMP_FILE false)``
    is not refused by DuckDB (``legacylake sql`` refuses every statement but SELECT/EXPLAIN).
    """
    files = [f for cat in cats.values() for f in cat.files]
    if files:
        con.execute(f"SET allowed_paths = {_file_list(files)}")
    con.execute("SET enable_external_access = false")


def lake_of(con) -> tuple[Path, dict[str, Catalog]]:
    """(lake path, catalogs) of a connection made by :func:`connect` (the path is kept in the
    connection as the DuckDB variable ``legacylake_lake``)."""
    try:
        path = con.sql("SELECT getvariable('legacylake_lake')").fetchall()[0][0]
    except duckdb.Error:
        path = None
    if not path:
        raise UserError("this DuckDB connection was not made by legacylake.query.connect")
    return Path(path), catalogs(path)


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
