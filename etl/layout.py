"""Where a lake's files are: one place for the layout of a catalog (a HATS collection).

::

    LAKE/NAME/collection.properties        the pointer: hats_primary_table_url, all_margins,
                                           default_margin of the current snapshot (replaced
                                           atomically: this rename is the commit)
    LAKE/NAME/snapshots/v000007/NAME/        an immutable HATS catalog (hats.properties,
                                           partition_info.csv, point_map.fits, dataset/...)
    LAKE/NAME/snapshots/v000007/NAME_10arcs/ its margin catalog (rows within 10" of each
                                           partition, from the neighbouring partitions)
    LAKE/NAME/snapshots/v000007/manifest.json  what the snapshot holds (inputs, partitions,
                                           the commit and its history)
    LAKE/NAME/legacylake/lock              the writer lock (flock; holder in lock.json)
    LAKE/NAME/legacylake/staging/          the build in progress (never read by readers)

Snapshots share unchanged leaves by hard links. Readers resolve the pointer once
(:func:`resolve`) and read only that snapshot. This module imports nothing heavy: the query
side uses it to resolve catalogs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

COLLECTION_FILE = "collection.properties"
SNAPSHOTS = "snapshots"
STATE = "legacylake"
#: Snapshot folder names: v + six digits (lexical order is version order).
_VERSION = re.compile(r"^v(\d{6,})$")


def read_properties(path: str | os.PathLike) -> dict[str, str]:
    """``key=value`` lines of a Java-style properties file (HATS ``*.properties``)."""
    out: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def version_name(version: int) -> str:
    return f"v{version:06d}"


def parse_version(name: str) -> int | None:
    m = _VERSION.match(name)
    return int(m.group(1)) if m else None


def margin_name(catalog: str, arcsec: float) -> str:
    """Folder name of a margin catalog, as hats-import names them (``dr9_10arcs``)."""
    return f"{catalog}_{arcsec:g}arcs"


def state_dir(catalog_dir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(catalog_dir), STATE)


def staging_root(catalog_dir: str | os.PathLike) -> str:
    return os.path.join(state_dir(catalog_dir), "staging")


def snapshots_dir(catalog_dir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(catalog_dir), SNAPSHOTS)


def snapshot_dir(catalog_dir: str | os.PathLike, version: int) -> str:
    return os.path.join(snapshots_dir(catalog_dir), version_name(version))


def leaf_relpath(order: int, npix: int) -> str:
    """A leaf's path inside a HATS catalog folder."""
    d = (npix // 10_000) * 10_000
    return os.path.join("dataset", f"Norder={order}", f"Dir={d}", f"Npix={npix}.parquet")


@dataclass(frozen=True)
class Snapshot:
    """One published (or staged) snapshot of a catalog."""

    catalog_dir: str     # LAKE/NAME
    version: int
    primary: str         # the HATS catalog folder
    margin: str | None   # its margin catalog folder (None if the snapshot has none)

    @property
    def root(self) -> str:
        """The snapshot folder (``snapshots/v000007``)."""
        return os.path.dirname(self.primary)

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.root, "manifest.json")

    def leaf(self, order: int, npix: int) -> str:
        return os.path.join(self.primary, leaf_relpath(order, npix))

    def margin_leaf(self, order: int, npix: int) -> str | None:
        return os.path.join(self.margin, leaf_relpath(order, npix)) if self.margin else None


def is_collection(catalog_dir: str | os.PathLike) -> bool:
    return os.path.isfile(os.path.join(os.fspath(catalog_dir), COLLECTION_FILE))


def resolve(catalog_dir: str | os.PathLike) -> Snapshot | None:
    """The snapshot ``collection.properties`` points at now (read once; None if the folder is
    not a legacylake collection). Raises ValueError naming the file if the pointer is broken."""
    cat = os.path.abspath(os.fspath(catalog_dir))
    path = os.path.join(cat, COLLECTION_FILE)
    try:
        props = read_properties(path)
    except FileNotFoundError:
        return None
    url = props.get("hats_primary_table_url")
    if not url:
        raise ValueError(f"{path}: no hats_primary_table_url")
    primary = url if os.path.isabs(url) else os.path.normpath(os.path.join(cat, url))
    margin = props.get("default_margin")
    if margin:
        margin = margin if os.path.isabs(margin) else os.path.normpath(os.path.join(cat, margin))
    parts = os.path.relpath(primary, cat).split(os.sep)
    version = parse_version(parts[1]) if len(parts) == 3 and parts[0] == SNAPSHOTS else None
    return Snapshot(cat, -1 if version is None else version, primary, margin or None)


def hats_dir(path: str | os.PathLike) -> str | None:
    """The HATS catalog folder to read at ``path``: the current snapshot of a collection, the
    folder itself if it is a plain HATS catalog, else None."""
    p = os.fspath(path)
    if os.path.isfile(os.path.join(p, COLLECTION_FILE)):
        snap = resolve(p)
        if snap is not None and os.path.isdir(snap.primary):
            return snap.primary
        return None
    if os.path.isfile(os.path.join(p, "hats.properties")) or os.path.isfile(os.path.join(p, "properties")):
        return p
    return None


def snapshot_versions(catalog_dir: str | os.PathLike) -> list[int]:
    """Versions of the snapshot folders present, ascending."""
    try:
        names = os.listdir(snapshots_dir(catalog_dir))
    except FileNotFoundError:
        return []
    return sorted(v for v in (parse_version(n) for n in names) if v is not None)
