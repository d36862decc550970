"""The catalog's manifest (what was ingested) and its commit journal, both JSON, atomic.

Layout inside a catalog directory ``LAKE/NAME``::

    legacylake/manifest.json   committed state: inputs (path, size, mtime, hash, rows, data
                               model, status, per-brick rows) and partitions (rows, row counts
                               per cell at the plan order)
    legacylake/journal.json    present only while a commit is being applied (roll forward)
    legacylake/staging/        leaf files of the build in progress (flat names)
"""

from __future__ import annotations

import json
import os
import shutil

FORMAT = 1


def state_dir(catalog_dir: str) -> str:
    return os.path.join(catalog_dir, "legacylake")


def manifest_path(catalog_dir: str) -> str:
    return os.path.join(state_dir(catalog_dir), "manifest.json")


def journal_path(catalog_dir: str) -> str:
    return os.path.join(state_dir(catalog_dir), "journal.json")


def staging_dir(catalog_dir: str) -> str:
    return os.path.join(state_dir(catalog_dir), "staging")


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
            "highest_order": None, "files": {}, "partitions": {}}


def load(catalog_dir: str) -> dict | None:
    """The committed manifest, or None when the catalog has none yet."""
    p = manifest_path(catalog_dir)
    if not os.path.exists(p):
        return None
    with open(p) as fh:
        return json.load(fh)


def pixel_key(order: int, npix: int) -> str:
    return f"{order}/{npix}"


def parse_key(key: str) -> tuple[int, int]:
    k, n = key.split("/")
    return int(k), int(n)


def leaf_path(catalog_dir: str, order: int, npix: int) -> str:
    """Final path of a leaf file in the HATS layout."""
    d = (npix // 10_000) * 10_000
    return os.path.join(catalog_dir, "dataset", f"Norder={order}", f"Dir={d}", f"Npix={npix}.parquet")


def clear_staging(catalog_dir: str) -> None:
    shutil.rmtree(staging_dir(catalog_dir), ignore_errors=True)
