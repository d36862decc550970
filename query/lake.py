"""A lake's catalogs as readers see them: each catalog's current snapshot resolved once
(:class:`Catalog`: HATS properties, partitions, leaf files, Arrow schema), cached by the
snapshot's identity, and the Parquet-scan expression of a set of leaf files."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from legacylake.errors import UserError
from legacylake.etl import layout


@dataclass(frozen=True)
class Catalog:
    """One HATS catalog of a lake: name, folder (the snapshot's HATS catalog for a
    collection), partitions (order, pixel) and leaf paths."""

    name: str
    path: Path
    orders: np.ndarray  # int64, per partition
    pixels: np.ndarray  # int64, per partition
    files: tuple[str, ...]
    properties: dict[str, str]
    snapshot: int | None = None      # version of the collection's snapshot (None: plain HATS)
    margin: Path | None = None       # its margin catalog folder, if any

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


def _leaf(root: Path, order: int, pix: int) -> Path:
    return root / "dataset" / f"Norder={order}" / f"Dir={(pix // 10000) * 10000}" / f"Npix={pix}.parquet"


def open_catalog(path: str | os.PathLike) -> Catalog:
    """Read a catalog's properties and partition list (partition_info.csv, else the leaf files).

    ``path`` is a collection (its current snapshot is resolved, once) or a HATS catalog."""
    return _open(Path(path))


def _open_hats(root: Path, name: str | None = None, snapshot: int | None = None,
               margin: str | None = None) -> Catalog:
    props_file = root / "hats.properties"
    if not props_file.is_file():
        props_file = root / "properties"
    if not props_file.is_file():
        raise UserError(f"{root}: not a HATS catalog (no hats.properties)")
    props = layout.read_properties(props_file)
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
    return Catalog(name or root.name, root, orders, pixels, files, props, snapshot,
                   Path(margin) if margin else None)


def mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


@functools.lru_cache(maxsize=256)
def open_cached(path: str, props_mtime: float, info_mtime: float, name: str | None = None,
                 snapshot: int | None = None, margin: str | None = None) -> Catalog:
    return _open_hats(Path(path), name, snapshot, margin)


def _open(root: Path) -> Catalog:
    """The catalog at ``root``: a collection's current snapshot (resolved now; a snapshot
    never changes, so its partition list is cached), or a plain HATS catalog (cached until
    hats.properties or partition_info.csv change)."""
    if (root / layout.COLLECTION_FILE).is_file():
        try:
            snap = layout.resolve(root)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if not os.path.isdir(snap.primary):
            raise UserError(f"{root}: collection.properties points at {snap.primary}, which is missing")
        st = os.stat(snap.primary)   # a snapshot never changes; a catalog folder rebuilt from scratch does
        return open_cached(snap.primary, float(st.st_ino), float(st.st_mtime_ns), root.name, snap.version,
                            snap.margin)
    return open_cached(str(root), mtime(root / "hats.properties"), mtime(root / "partition_info.csv"))


def _is_catalog(path: Path) -> bool:
    return (path / layout.COLLECTION_FILE).is_file() or (path / "hats.properties").is_file()


def catalogs(lake: str | os.PathLike) -> dict[str, Catalog]:
    """Catalogs of a lake by name (a catalog folder itself counts as a one-catalog lake)."""
    root = Path(lake)
    if not root.is_dir():
        raise UserError(f"{root}: no such lake folder")
    if _is_catalog(root):
        cat = _open(root)
        return {cat.name: cat}
    out = {}
    for sub in sorted(root.iterdir()):
        if sub.is_dir() and _is_catalog(sub):
            out[sub.name] = _open(sub)
    if not out:
        raise UserError(f"{root}: not a lake (no catalog folder: expected LAKE/<catalog>/collection.properties "
                        "as legacylake etl writes, or LAKE/<catalog>/hats.properties)")
    return out


def sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def file_list(files) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def parquet_scan(files) -> str:
    """A DuckDB ``read_parquet`` call over explicit leaf files (no hive partition columns)."""
    return f"read_parquet({file_list(files)}, hive_partitioning = false, union_by_name = false)"
