"""``legacylake etl build``: plan, write in parallel, publish one new snapshot.

A build holds the catalog's writer lock (:mod:`legacylake.etl.lock`) from start to end.
Leaves it rewrites, and the margins they change, are written to ``legacylake/staging``;
the new snapshot is assembled there (unchanged leaves hard-linked from the current one) and
published by one atomic rename of ``collection.properties``
(:mod:`legacylake.etl.snapshot`). A SIGKILL at any point leaves every reader on the old
snapshot or on the new one, never between; the next build discards what was left and
redoes the work.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from legacylake.catalogs_schema.sweeps import disjoint
from legacylake.errors import UserError
from legacylake.etl import layout, snapshot
from legacylake.etl import manifest as mf
from legacylake.etl.commit import commit_build
from legacylake.etl.dispatch import same_content, write_tasks
from legacylake.etl.healpix import FOOTPRINT_ORDER
from legacylake.etl.lock import CatalogLock
from legacylake.etl.mapping import MAPPINGS, can_map, target_model
from legacylake.etl.mapping import describe as describe_mappings
from legacylake.etl.margin import DEFAULT_MARGIN_ARCSEC, check_margin
from legacylake.etl.plan import (
    InputFile,
    Reject,
    discover,
    exact_footprint,
    inspect_all,
)
from legacylake.etl.runner import Runner
from legacylake.etl.task import ROW_GROUP_ROWS, FootprintError
from legacylake.etl.write import ReadError

#: errno values that mean the disk (or quota) is full.
_FULL = {28, 122}  # ENOSPC, EDQUOT

DEFAULT_THRESHOLD = 1_000_000
DEFAULT_HIGHEST_ORDER = 10


@dataclass
class Summary:
    """What a build did. ``rejects`` are (path, one-line reason)."""

    catalog_dir: str
    files: int = 0
    ingested: list = field(default_factory=list)
    unchanged: int = 0
    replaced: list = field(default_factory=list)
    rejects: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    rows: int = 0
    bad_position_rows: int = 0
    total_rows: int = 0
    partitions: int = 0
    partitions_written: int = 0
    partitions_deleted: int = 0
    bytes_written: int = 0
    file_reads: int = 0
    peak_pending_rows: int = 0          # most rows a write task held waiting for their turn
    spilled_rows: int = 0               # rows a task spilled to a shard (held above its cap)
    seam_files: int = 0                 # files feeding several tasks (read once, handed as shards)
    seconds: float = 0.0
    nothing_to_do: bool = False
    snapshot: int | None = None         # version published by this build (None: nothing published)
    leaves_linked: int = 0              # unchanged leaves shared with the previous snapshot
    margin_rows: int = 0                # rows of the margin catalog
    margins_written: int = 0            # margin leaves written (the others are shared)
    recovered: list = field(default_factory=list)   # leftovers of a killed writer removed
    write_passes: int = 0               # write phases run (more than 1 only to drop a bad replacement)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.rejects

    def lines(self) -> list[str]:
        out = [f"catalog {self.catalog_dir}"]
        if self.nothing_to_do:
            out.append("nothing to do: every input is already in the catalog, unchanged "
                       "(no partition rewritten)")
        out += [
            f"files: {self.files} seen, {len(self.ingested)} ingested, {len(self.replaced)} replaced, "
            f"{self.unchanged} unchanged, {len(self.rejects)} rejected, {len(self.skipped)} skipped (not *.fits)",
            f"rows: {self.rows:,} ingested this run ({self.bad_position_rows:,} rows with bad ra/dec not ingested); "
            f"catalog total {self.total_rows:,}",
            f"partitions: {self.partitions} in catalog, {self.partitions_written} written, "
            f"{self.partitions_deleted} removed (split)",
            f"bytes written: {self.bytes_written:,}; input file reads: {self.file_reads}; "
            f"peak rows held by a task: {self.peak_pending_rows:,}; rows spilled: {self.spilled_rows:,}; "
            f"seam files: {self.seam_files}",
            f"time: {self.seconds:.1f} s, {self.rows_per_s:,.0f} rows/s",
        ]
        if self.snapshot is not None:
            out.insert(-1, f"snapshot v{self.snapshot:06d} published: {self.leaves_linked} unchanged leaves "
                           f"shared; margin {self.margin_rows:,} rows, {self.margins_written} margin leaves written")
        if self.recovered:
            out.insert(1, f"removed what a killed build left: {', '.join(self.recovered)}")
        for p, r in self.rejects:
            out.append(f"rejected: {r}")
        return out


# ------------------------------------------------------------------ test hook


# ------------------------------------------------------------------ planning helpers


# ------------------------------------------------------------------ the build

def build(sources, lake: str, catalog: str, threshold: int | None = None,
          highest_order: int | None = None, workers: int | None = None,
          scheduler: str | None = None, row_group_rows: int = ROW_GROUP_ROWS,
          progress: bool = False, map_to: str | None = None,
          margin_arcsec: float | None = None, wait: bool = False) -> Summary:
    """Ingest FITS catalogs (files or directory trees) into the HATS collection ``lake/catalog``.

    Exactly once: files already ingested and unchanged are skipped; changed files replace
    their rows; new files are added by rewriting only the partitions they touch, and the
    margins (``margin_arcsec``, default 10, fixed by the first build) of the partitions
    around them. The result is published as one new snapshot.
    Returns a :class:`Summary`; bad inputs are in ``summary.rejects`` (never raised).
    Raises :class:`UserError` for mistakes that stop the whole build (mixed data models,
    options that contradict the catalog, a full disk) and
    :class:`~legacylake.etl.lock.CatalogLocked` when another writer holds the catalog
    (``wait=True`` waits for it). ``map_to`` (a model or release, e.g. ``"dr9"``)
    converts inputs of other data models to it by a documented mapping
    (:mod:`legacylake.etl.mapping`); without it, mixed models are refused."""
    t0 = time.time()
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    cat_dir = os.path.abspath(os.path.join(os.fspath(lake), catalog))
    workers = workers or os.cpu_count() or 1
    with CatalogLock(cat_dir, wait=wait, command="etl build") as lock:
        try:
            summary = _build_locked(sources, cat_dir, catalog, threshold, highest_order, workers,
                                    scheduler, row_group_rows, progress, map_to, margin_arcsec, t0)
        finally:
            if layout.resolve(cat_dir) is None and not layout.snapshot_versions(cat_dir):
                _remove_unused(cat_dir, lock)
    return summary


def _remove_unused(cat_dir: str, lock: CatalogLock) -> None:
    """Remove a catalog folder that holds nothing but this build's state (nothing published:
    a build with no valid input leaves no empty catalog behind)."""
    import shutil

    try:
        names = set(os.listdir(cat_dir))
    except FileNotFoundError:
        return
    if names <= {layout.STATE}:
        lock.release_and_remove()
        shutil.rmtree(cat_dir, ignore_errors=True)


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and (getattr(exc, "errno", None) in _FULL
                                         or "No space left on device" in str(exc)
                                         or "Disk quota exceeded" in str(exc))


def _build_locked(sources, cat_dir, catalog, threshold, highest_order, workers, scheduler,
                  row_group_rows, progress, map_to, margin_arcsec, t0) -> Summary:
    from tqdm import tqdm

    from legacylake.etl.upgrade import needs_upgrade, upgrade_locked

    summary = Summary(cat_dir)
    summary.recovered = snapshot.recover(cat_dir)
    if needs_upgrade(cat_dir):
        print(f"upgrading {cat_dir} to a snapshot collection (legacylake etl upgrade)", file=sys.stderr)
        upgrade_locked(cat_dir, workers=workers, progress=progress, margin_arcsec=margin_arcsec)
    cur = layout.resolve(cat_dir)
    man = mf.read(cur.manifest_path) if cur else mf.empty_manifest(catalog)
    if man["threshold"] is not None:
        for name, given, have in (("threshold", threshold, man["threshold"]),
                                  ("highest-order", highest_order, man["highest_order"]),
                                  ("margin-arcsec", margin_arcsec, man.get("margin_arcsec"))):
            if given is not None and have is not None and float(given) != float(have):
                raise UserError(f"{cat_dir}: catalog was built with --{name} {have:g}; cannot change it to {given:g}")
        threshold, highest_order = int(man["threshold"]), int(man["highest_order"])
        margin_arcsec = man.get("margin_arcsec") or margin_arcsec
    threshold = int(threshold or DEFAULT_THRESHOLD)
    highest_order = int(DEFAULT_HIGHEST_ORDER if highest_order is None else highest_order)
    margin_arcsec = float(DEFAULT_MARGIN_ARCSEC if margin_arcsec is None else margin_arcsec)
    if not 0 <= highest_order <= FOOTPRINT_ORDER:
        raise UserError(f"--highest-order must be between 0 and {FOOTPRINT_ORDER} (got {highest_order})")
    if threshold < 1:
        raise UserError(f"--threshold must be positive (got {threshold})")
    m = check_margin(margin_arcsec, highest_order)
    plan_order = highest_order

    paths, summary.skipped = discover(sources)
    missing = [p for p in paths if not os.path.exists(p)]
    summary.files = len(paths)
    ingested = {p: e for p, e in man["files"].items() if e.get("status") == "ingested"}
    to_inspect = []
    retimed: dict[str, int] = {}
    for p in paths:
        if p in missing:
            continue
        old = ingested.get(p)
        st = os.stat(p)
        if old and old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns:
            summary.unchanged += 1   # same size and modification time: not read again
        elif old and old.get("size") == st.st_size and old.get("hash") and same_content(p, old["hash"]):
            # touched (new mtime) but byte-identical: unchanged; remember the new mtime
            summary.unchanged += 1
            retimed[p] = st.st_mtime_ns
        else:
            to_inspect.append(p)
    bar = tqdm(total=len(to_inspect), desc="inspect inputs", unit="file", disable=not progress, file=sys.stderr)
    new, rejects = inspect_all(to_inspect, plan_order, ingested, workers=max(2, workers), progress=bar)
    bar.close()
    rejects += [(p, f"{p}: no such file") for p in missing]
    for f in new:
        summary.notes += f.notes

    # one data model per catalog (inputs of another model only through a documented mapping)
    target = None
    if map_to:
        target = target_model(map_to, {f.model for f in new} | ({man["model"]} if man["model"] else set()))
        if man["model"] and man["model"] != target:
            raise UserError(f"{cat_dir}: the catalog holds {man['model']}; cannot map inputs to {target}")
        for f in new:
            if not can_map(f.model, target):
                raise UserError(f"{f.path}: no mapping from {f.model} to {target} "
                                f"(mappings: {describe_mappings()})")
    models = {target} if target else {f.model for f in new} | ({man["model"]} if man["model"] else set())
    if len(models) > 1:
        counts = {m_: sum(f.model == m_ for f in new) for m_ in models}
        desc = ", ".join(f"{m_} ({counts[m_]} new file(s){', the catalog' if m_ == man['model'] else ''})"
                         for m_ in sorted(models))
        hint = ""
        for a in models:
            for b in models:
                if (a, b) in MAPPINGS:
                    hint = f", or convert {a} to {b} with --map-to {b.split('-')[0]} (see legacylake.etl.mapping)"
        raise UserError(f"{cat_dir}: inputs of more than one data model: {desc}; "
                        f"a catalog holds one data model: build them into separate catalogs{hint}")

    # one file per brick, except sweep files of disjoint boxes (the survey splits a brick on a
    # box edge between two sweeps; no object can be in both)
    owners: dict[int, list[tuple[str, tuple | None]]] = {}
    replacing = {f.path for f in new}
    for p, e in ingested.items():
        if p in replacing:
            continue   # being replaced: its new version is checked below
        for b in e.get("bricks", {}):
            owners.setdefault(int(b), []).append((p, tuple(e["box"]) if e.get("box") else None))
    accepted: list[InputFile] = []
    for f in sorted(new, key=lambda f: f.path):
        clash = sorted({q for b in f.bricks for q, qbox in owners.get(b, []) if not disjoint(f.box, qbox)})
        if clash:
            rejects.append((f.path, f"{f.path}: brick(s) already ingested from {clash[0]} "
                                    f"(the same brick under two paths; only sweep files of disjoint "
                                    f"boxes may share a brick)"))
            continue
        for b in f.bricks:
            owners.setdefault(b, []).append((f.path, f.box))
        accepted.append(f)
    new = accepted
    summary.rejects = rejects

    if retimed and cur is not None:
        # only the manifest's record of modification times changes (legacylake's own
        # bookkeeping beside the HATS folders: no partition, no metadata)
        for p, t in retimed.items():
            man["files"][p] = {**man["files"][p], "mtime_ns": t}
        mf.write_json_atomic(cur.manifest_path, man)
    summary.total_rows = sum(v["rows"] for v in man["partitions"].values())
    summary.partitions = len(man["partitions"])
    if not new:
        summary.nothing_to_do = bool(man["partitions"]) or not paths
        summary.seconds = time.time() - t0
        return summary

    model = target or man["model"] or new[0].model
    settings = {"model": model, "threshold": threshold, "highest_order": highest_order,
                "margin_arcsec": margin_arcsec, "margin_order": m}
    staging = os.path.join(layout.staging_root(cat_dir), f"{os.getpid()}-{time.time_ns()}")
    try:
        with Runner(workers, scheduler, progress) as runner:
            while True:
                summary.write_passes += 1
                try:
                    results, plan = write_tasks(cur, man, new, settings, workers, scheduler,
                                           row_group_rows, staging, runner)
                    rejects += sorted(plan["failed"].items())
                    new = [f for f in new if f.path not in plan["failed"]]
                    break
                except FootprintError as exc:
                    snapshot.clear_staging(staging)
                    f = next(f for f in new if f.path == exc.path)
                    try:
                        exact_footprint(f, plan_order)
                    except Reject as r:
                        rejects.append((f.path, str(r)))
                        new.remove(f)
                except ReadError as exc:
                    snapshot.clear_staging(staging)
                    rejects.append((exc.path, str(exc)))
                    new = [f for f in new if f.path != exc.path]
                if not new:
                    break
            if not new:
                snapshot.clear_staging(staging)
                summary.seconds = time.time() - t0
                return summary
            commit_build(cat_dir, catalog, cur, man, new, settings, results, plan, summary, rejects,
                    staging, runner, row_group_rows)
    except BaseException as exc:
        snapshot.clear_staging(staging)
        if _disk_full(exc):
            raise UserError(f"{cat_dir}: no space left on the device while writing the new snapshot "
                            f"({exc.__class__.__name__}: {str(exc).splitlines()[0]}); staging removed, "
                            f"the catalog is unchanged") from None
        raise
    summary.seconds = time.time() - t0
    return summary
