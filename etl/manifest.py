"""A snapshot's manifest (what the catalog ingested), JSON, written atomically.

``snapshots/vNNNNNN/manifest.json`` (see :mod:`legacylake.etl.layout`) holds the inputs
(path, size, mtime, hash, rows, data model, status, per-brick rows), the partitions (rows,
row counts per cell at the plan order), the build settings, the commit that made the
snapshot (``commit``) and the commits before it (``history``).
"""

from __future__ import annotations

import json
import os

from legacylake.etl import layout

FORMAT = 2


def write_json_atomic(path: str, obj) -> None:
    """Write JSON under a temporary name, fsync, then rename over ``path``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def empty_manifest(catalog: str) -> dict:
    return {"format": FORMAT, "catalog": catalog, "model": None, "threshold": None,
            "highest_order": None, "margin_arcsec": None, "files": {}, "partitions": {},
            "history": []}


def read(path: str) -> dict:
    with open(path) as fh:
        return json.load(fh)


def load(catalog_dir: str) -> dict | None:
    """The manifest of the catalog's current snapshot, or None when nothing is published."""
    snap = layout.resolve(catalog_dir)
    if snap is None or not os.path.exists(snap.manifest_path):
        return None
    return read(snap.manifest_path)


def pixel_key(order: int, npix: int) -> str:
    return f"{order}/{npix}"


def parse_key(key: str) -> tuple[int, int]:
    k, n = key.split("/")
    return int(k), int(n)
