"""``legacylake etl upgrade``: turn a catalog of the single-folder layout (legacylake <= 0.1:
``LAKE/NAME/hats.properties``, ``dataset/``, ``legacylake/manifest.json``) into a snapshot
collection, losing nothing.

The old leaves become snapshot ``v000001`` by hard links (their rows are not rewritten), the
margin catalog is computed from their edge row groups, and the collection is published; only
then are the old top-level files removed (``hats.properties`` first, so that HATS readers
switch to the collection). A SIGKILL at any point leaves a readable catalog: the old layout
until the publish, the collection after it; running the upgrade (or a build) again finishes.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from legacylake.etl import layout
from legacylake.etl import manifest as mf
from legacylake.etl import snapshot

#: Files of the old layout at the top of a catalog folder (properties files first).
_OLD_FILES = ("hats.properties", "properties", "partition_info.csv", "point_map.fits")


def _old_manifest(cat_dir: str) -> str:
    return os.path.join(layout.state_dir(cat_dir), "manifest.json")


def needs_upgrade(cat_dir: str) -> bool:
    """True for a catalog in the old single-folder layout (or one whose upgrade was cut short)."""
    if layout.is_collection(cat_dir):
        return any(os.path.exists(os.path.join(cat_dir, n)) for n in _OLD_FILES + ("dataset",)) \
            or os.path.exists(_old_manifest(cat_dir))
    return os.path.exists(_old_manifest(cat_dir))


def _old_leaf(cat_dir: str, order: int, npix: int) -> str:
    return os.path.join(cat_dir, layout.leaf_relpath(order, npix))


def _replay_journal(cat_dir: str) -> None:
    """Finish a commit of the old layout whose journal exists (moves, deletes, manifest)."""
    jp = os.path.join(layout.state_dir(cat_dir), "journal.json")
    if not os.path.exists(jp):
        return
    with open(jp) as fh:
        j = json.load(fh)
    for staged, final in j["moves"]:
        if os.path.exists(staged):
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(staged, final)
    for p in j["deletes"]:
        if os.path.exists(p):
            os.remove(p)
    mf.write_json_atomic(_old_manifest(cat_dir), j["manifest"])
    os.remove(jp)


def _remove_old_files(cat_dir: str) -> None:
    for n in _OLD_FILES:
        p = os.path.join(cat_dir, n)
        if os.path.exists(p):
            os.remove(p)
    shutil.rmtree(os.path.join(cat_dir, "dataset"), ignore_errors=True)
    for n in ("manifest.json", "journal.json"):
        p = os.path.join(layout.state_dir(cat_dir), n)
        if os.path.exists(p):
            os.remove(p)


def upgrade_locked(cat_dir: str, workers: int = 1, progress: bool = False,
                   margin_arcsec: float | None = None) -> int | None:
    """Upgrade ``cat_dir`` (the caller holds its writer lock). Returns the published version,
    or None if it only finished removing the old files of an earlier upgrade."""
    from legacylake.etl.runner import Runner
    from legacylake.etl.margin_write import write_margins
    from legacylake.etl.hats_meta import write_metadata
    from legacylake.etl.margin import DEFAULT_MARGIN_ARCSEC, check_margin
    from legacylake.etl.read import lake_schema
    from legacylake.etl.task import ROW_GROUP_ROWS

    if layout.is_collection(cat_dir):
        _remove_old_files(cat_dir)
        return None
    _replay_journal(cat_dir)
    snapshot.recover(cat_dir)
    man = mf.read(_old_manifest(cat_dir))
    catalog = os.path.basename(cat_dir)
    arcsec = float(DEFAULT_MARGIN_ARCSEC if margin_arcsec is None else margin_arcsec)
    m = check_margin(arcsec, int(man["highest_order"]))
    settings = {"model": man["model"], "threshold": man["threshold"],
                "highest_order": man["highest_order"], "margin_arcsec": arcsec, "margin_order": m}
    new_man = {**mf.empty_manifest(catalog), **man, "margin_arcsec": arcsec, "format": mf.FORMAT}
    new_man.pop("commit", None)
    staging = os.path.join(layout.staging_root(cat_dir), f"{os.getpid()}-{time.time_ns()}")
    root = os.path.join(staging, "snapshot")
    primary = os.path.join(root, catalog)
    final = sorted(mf.parse_key(k) for k in man["partitions"])
    for leaf in final:
        snapshot.link_or_copy(_old_leaf(cat_dir, *leaf), os.path.join(primary, layout.leaf_relpath(*leaf)))
    write_metadata(primary, new_man, lake_schema(man["model"]))
    with Runner(workers, None, progress) as runner:
        mname, _ = write_margins(root, catalog, None, {}, new_man, settings, final, set(), [], [],
                                 runner, ROW_GROUP_ROWS)   # no current snapshot: every margin is built
    rows = sum(v["rows"] for v in man["partitions"].values())
    commit = {"version": 1, "created": snapshot.now_utc(), "parent": None, "files_added": 0,
              "files_replaced": 0, "files_rejected": 0, "rows_added": 0, "rows": rows,
              "partitions": len(final), "partitions_written": 0, "leaves_linked": len(final),
              "margin_rows": sum(new_man["margin_partitions"].values()),
              "note": "upgraded from the single-folder layout"}
    snapshot.finish(root, new_man, {}, commit)
    snapshot.publish(cat_dir, root, catalog, 1, mname)
    shutil.rmtree(staging, ignore_errors=True)
    _remove_old_files(cat_dir)
    return 1


def upgrade(lake: str, catalog: str, workers: int = 1, progress: bool = False, wait: bool = False) -> int | None:
    """Upgrade ``lake/catalog`` to a snapshot collection (no-op if it is one already).
    Returns the version published, or None if nothing had to be done."""
    from legacylake.errors import UserError

    from legacylake.etl.lock import CatalogLock

    cat_dir = os.path.abspath(os.path.join(os.fspath(lake), catalog))
    if not os.path.isdir(cat_dir):
        raise UserError(f"{cat_dir}: no such catalog")
    with CatalogLock(cat_dir, wait=wait, command="etl upgrade"):
        if not needs_upgrade(cat_dir):
            if not layout.is_collection(cat_dir):
                raise UserError(f"{cat_dir}: not a legacylake catalog (no legacylake/manifest.json)")
            return None
        return upgrade_locked(cat_dir, workers=workers, progress=progress)
