"""Snapshots of a catalog: assemble in staging, publish with one rename, list, vacuum.

Publishing a snapshot (the writer holds :class:`~legacylake.etl.lock.CatalogLock`):

1. the snapshot folder is assembled in ``legacylake/staging/`` (new leaves renamed into
   place, unchanged ones hard-linked from the current snapshot, metadata, manifest);
2. it is renamed to ``snapshots/vNNNNNN`` (invisible: nothing points at it yet);
3. a new ``collection.properties`` is renamed over the old one: this is the commit.

A SIGKILL before 3 leaves the old pointer, so every reader sees the old snapshot; after 3,
the new one. The next writer removes staging and any snapshot newer than the pointer
(:func:`recover`). Readers resolve the pointer once and read only that folder; a snapshot
is removed only by :func:`vacuum`.
"""

from __future__ import annotations

import datetime
import errno
import os
import shutil
from dataclasses import dataclass

from legacylake.etl import layout
from legacylake.etl import manifest as mf


def recover(catalog_dir: str) -> list[str]:
    """Remove what a killed writer left: staging, and snapshot folders newer than the
    published one (renamed into place but never published). Returns the removed paths."""
    removed = []
    st = layout.staging_root(catalog_dir)
    if os.path.exists(st):
        if os.listdir(st):
            removed.append(st)
        shutil.rmtree(st, ignore_errors=True)
    cur = layout.resolve(catalog_dir) if layout.is_collection(catalog_dir) else None
    for v in layout.snapshot_versions(catalog_dir):
        if cur is None or v > cur.version:
            p = layout.snapshot_dir(catalog_dir, v)
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def link_or_copy(src: str, dst: str) -> bool:
    """Hard-link ``src`` at ``dst`` (True), or copy it where the filesystem has no hard links
    between the two paths (False)."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.link(src, dst)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    shutil.copyfile(src, dst)
    return False


def start_writeback(path: str) -> None:
    """Ask the kernel to start writing ``path`` to disk now, without waiting (Linux
    ``sync_file_range``), so that the fsync before the publish finds little left to do.
    A no-op where the call is missing."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            libc.sync_file_range(fd, ctypes.c_longlong(0), ctypes.c_longlong(0), 2)  # SYNC_FILE_RANGE_WRITE
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass


def fsync_tree(root: str) -> None:
    """fsync the files written for a snapshot (hard-linked ones are on disk already) and
    every folder of it, so that a power cut after the publish cannot leave a pointer to
    files the disk never received."""
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if os.lstat(p).st_nlink == 1:
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(d)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_collection(catalog_dir: str, name: str, version: int, margin: str | None,
                     crash=lambda point: None) -> None:
    """Point ``collection.properties`` at snapshot ``version`` (atomic rename: the commit)."""
    rel = f"{layout.SNAPSHOTS}/{layout.version_name(version)}"
    lines = ["#HATS Collection (legacylake: the current snapshot; see snapshots/)",
             f"obs_collection={name}",
             f"hats_primary_table_url={rel}/{name}"]
    if margin:
        lines += [f"all_margins={rel}/{margin}", f"default_margin={rel}/{margin}"]
    lines.append(f"legacylake_snapshot={layout.version_name(version)}")
    path = os.path.join(catalog_dir, layout.COLLECTION_FILE)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    crash("pointer-written")
    os.replace(tmp, path)
    _fsync_dir(catalog_dir)


def publish(catalog_dir: str, staged_root: str, name: str, version: int, margin: str | None,
            crash=lambda point: None) -> str:
    """Move the assembled snapshot folder ``staged_root`` to ``snapshots/vNNNNNN`` and point
    the collection at it. Returns the snapshot folder."""
    final = layout.snapshot_dir(catalog_dir, version)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    fsync_tree(staged_root)  # the snapshot's files reach the disk before anything points at them
    os.rename(staged_root, final)
    _fsync_dir(os.path.dirname(final))
    crash("renamed")
    write_collection(catalog_dir, name, version, margin, crash)
    crash("published")
    return final


def finish(root: str, new_man: dict, old_man: dict, commit: dict) -> int:
    """Record the commit in the manifest of the snapshot assembled at ``root`` (its bytes, and
    the bytes written for it: all but the files hard-linked from the previous snapshot), with
    the commits before it, and write the manifest. Returns the bytes written."""
    total = tree_bytes(root)
    shared = 0
    for d, _, names in os.walk(root):
        for n in names:
            st = os.lstat(os.path.join(d, n))
            if st.st_nlink > 1:
                shared += st.st_size
    commit["bytes"] = total
    commit["bytes_written"] = total - shared
    new_man["history"] = list(old_man.get("history", [])) + ([old_man["commit"]] if old_man.get("commit") else [])
    new_man["commit"] = commit
    new_man["format"] = mf.FORMAT
    mf.write_json_atomic(os.path.join(root, "manifest.json"), new_man)
    return commit["bytes_written"]


def tree_bytes(path: str) -> int:
    total = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
            except OSError:
                pass
    return total


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class SnapshotInfo:
    version: int
    created: str
    files_added: int
    files_replaced: int
    rows_added: int
    rows: int
    bytes: int
    bytes_written: int
    present: bool
    current: bool
    note: str = ""


def history(catalog_dir: str) -> list[SnapshotInfo]:
    """Every commit of the catalog, oldest first (from the current manifest's history, so
    vacuumed snapshots are listed too, as not present)."""
    cat = os.path.abspath(catalog_dir)
    cur = layout.resolve(cat)
    if cur is None:
        return []
    man = mf.read(cur.manifest_path)
    present = set(layout.snapshot_versions(cat))
    out = []
    for c in man.get("history", []) + [man["commit"]]:
        out.append(SnapshotInfo(c["version"], c["created"], c["files_added"], c["files_replaced"],
                                c["rows_added"], c["rows"], c["bytes"], c["bytes_written"],
                                c["version"] in present, c["version"] == cur.version, c.get("note", "")))
    return out


def vacuum(catalog_dir: str, keep: int = 2, wait: bool = False) -> tuple[list[int], int]:
    """Remove all but the newest ``keep`` snapshots (the current one always stays), holding
    the catalog's writer lock. Returns (removed versions, bytes freed: files whose last link
    went with them). A reader still open on a removed snapshot fails."""
    from legacylake.errors import UserError

    from legacylake.etl.lock import CatalogLock

    if keep < 1:
        raise UserError(f"--keep must be at least 1 (got {keep})")
    with CatalogLock(os.path.abspath(catalog_dir), wait=wait, command="etl vacuum"):
        return remove_old(catalog_dir, keep)


def remove_old(catalog_dir: str, keep: int) -> tuple[list[int], int]:
    """:func:`vacuum` for a caller that holds the writer lock."""
    cat = os.path.abspath(catalog_dir)
    cur = layout.resolve(cat)
    versions = [v for v in layout.snapshot_versions(cat) if cur is None or v <= cur.version]
    drop = [v for v in versions[:-keep] if cur is None or v != cur.version]
    freed = 0
    for v in drop:
        d = layout.snapshot_dir(cat, v)
        for root, _, names in os.walk(d):
            for n in names:
                try:
                    st = os.lstat(os.path.join(root, n))
                except OSError:
                    continue
                if st.st_nlink <= 1:
                    freed += st.st_size
        # rename first: a partly removed snapshot is never seen under its own name
        trash = os.path.join(layout.staging_root(cat), f"vacuum-{layout.version_name(v)}")
        os.makedirs(os.path.dirname(trash), exist_ok=True)
        os.rename(d, trash)
        shutil.rmtree(trash)
    return drop, freed


def clear_staging(staging: str) -> None:
    """Remove a build's staging folder, and the staging root once it is empty."""
    import shutil

    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(staging))
    except OSError:
        pass
