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

import numpy as np

from legacylake.errors import UserError

from legacylake.etl import layout
from legacylake.etl import manifest as mf
from legacylake.etl import snapshot
from legacylake.etl.hats_meta import write_metadata
from legacylake.etl.lock import CatalogLock
from legacylake.etl.margin import DEFAULT_MARGIN_ARCSEC, check_margin
from legacylake.etl.margin_write import write_margins
from legacylake.etl.mapping import MAPPINGS, can_map, target_model
from legacylake.etl.mapping import describe as describe_mappings
from legacylake.etl.healpix import FOOTPRINT_ORDER, pixel_range, shift
from legacylake.etl.plan import InputFile, Reject, discover, exact_footprint, inspect_all, plan_leaves
from legacylake.etl.read import lake_schema
from legacylake.etl.write import (ROW_GROUP_ROWS, FootprintError, ReadError, SeamJob, Source, Task,
                    _lower_bound, run_task, split_seam_files)

#: errno values that mean the disk (or quota) is full.
_FULL = {28, 122}  # ENOSPC, EDQUOT

DEFAULT_THRESHOLD = 1_000_000
DEFAULT_HIGHEST_ORDER = 10
#: A footprint cell with no sampled rows still gets this many rows in the plan, so the
#: partitions cover every place a file's rows can be.
_EPSILON = 1e-3


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

#: Named points where a test may SIGKILL ($LEGACYLAKE_ETL_CRASH_AT=name) or pause
#: ($LEGACYLAKE_ETL_PAUSE_AT=name:seconds) a build.
CRASH_POINTS = ("leaf", "tasks-done", "margins", "snapshot", "renamed", "pointer-written", "published")


def crash_point(name: str) -> None:
    """Test hook: SIGKILL this process at the named point when $LEGACYLAKE_ETL_CRASH_AT says so,
    or sleep there when $LEGACYLAKE_ETL_PAUSE_AT does (see :data:`CRASH_POINTS`)."""
    if os.environ.get("LEGACYLAKE_ETL_CRASH_AT") == name:
        import signal
        os.kill(os.getpid(), signal.SIGKILL)
    pause = os.environ.get("LEGACYLAKE_ETL_PAUSE_AT", "")
    if pause.split(":")[0] == name:
        time.sleep(float(pause.split(":")[1]))


# ------------------------------------------------------------------ planning helpers

def _hist_of(files: list[InputFile]) -> dict[int, float]:
    h: dict[int, float] = {}
    for f in files:
        for c, v in f.histogram.items():
            h[c] = h.get(c, 0.0) + v
    return h


def _add_footprints(h: dict[int, float], cells: np.ndarray, plan_order: int) -> None:
    for c in np.unique(np.asarray(cells, np.int64) >> (2 * (FOOTPRINT_ORDER - plan_order))).tolist():
        h[c] = h.get(c, 0.0) + _EPSILON


def _overlaps(cells: np.ndarray, lo: int, hi: int) -> bool:
    s = shift(FOOTPRINT_ORDER)
    i = np.searchsorted(cells, lo >> s)
    # a cell overlaps [lo, hi) if its range meets it
    if i > 0 and ((cells[i - 1] + 1) << s) > lo:
        return True
    return i < len(cells) and (int(cells[i]) << s) < hi


def _group(leaves: list, est: dict, n_tasks: int) -> list[list]:
    """Split leaves (in nested order) into at most n_tasks runs of similar estimated rows."""
    total = sum(est.get(l, 0.0) for l in leaves) or 1.0
    target = total / max(1, n_tasks)
    groups, cur, acc = [], [], 0.0
    for l in leaves:
        cur.append(l)
        acc += est.get(l, 0.0)
        if acc >= target and len(groups) < n_tasks - 1:
            groups.append(cur)
            cur, acc = [], 0.0
    if cur:
        groups.append(cur)
    return groups


def _same_content(path: str, recorded: str) -> bool:
    """True if the file's content hash equals the one the manifest recorded."""
    from legacylake.etl.fitstable import FitsLayoutError
    from legacylake.etl.write import content_hash
    try:
        return content_hash(path) == recorded
    except (FitsLayoutError, OSError):
        return False


def _die_with_parent(parent: int | None = None) -> None:
    """Worker initializer: on Linux, ask for SIGKILL when the parent process dies, and exit
    at once if it already died while this worker was starting (the signal would never come)."""
    try:
        import ctypes
        import signal
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


class _Runner:
    """Runs batches of picklable jobs in worker processes (one pool for all phases of a
    build), on a Dask scheduler, or in this process (``workers`` <= 1)."""

    def __init__(self, workers: int, scheduler: str | None, progress: bool):
        self.workers, self.scheduler, self.progress = workers, scheduler, progress
        self._pool = self._client = None

    def __enter__(self) -> "_Runner":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def run(self, fn, jobs: list, desc: str) -> list[dict]:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=desc, unit="task", disable=not self.progress, file=sys.stderr)
        results = []
        try:
            if self.scheduler:
                from distributed import Client, as_completed
                if self._client is None:
                    self._client = Client(self.scheduler)
                for fut in as_completed(self._client.map(fn, jobs, pure=False)):
                    results.append(fut.result())
                    bar.update(1)
            # with workers > 1 even a single task runs in a worker process: the same path,
            # and the same per-process memory, whatever the size of the input
            elif self.workers <= 1:
                for t in jobs:
                    results.append(fn(t))
                    bar.update(1)
            else:
                import multiprocessing as mp
                from concurrent.futures import ProcessPoolExecutor, as_completed as done
                if self._pool is None:
                    self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                                     mp_context=mp.get_context("spawn"),
                                                     initializer=_die_with_parent,
                                                     initargs=(os.getpid(),))
                futs = [self._pool.submit(fn, t) for t in jobs]
                try:
                    for fut in done(futs):
                        results.append(fut.result())
                        bar.update(1)
                except BaseException:
                    for f in futs:
                        f.cancel()
                    raise
        finally:
            bar.close()
        return results


def _seam_jobs(files: list, n_jobs: int, staging: str) -> list[SeamJob]:
    """Split seam files (path, hash_it, dests) into at most n_jobs jobs of similar size."""
    n_jobs = max(1, min(n_jobs, len(files)))
    return [SeamJob(j, files[j::n_jobs], staging) for j in range(n_jobs) if files[j::n_jobs]]


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
        elif old and old.get("size") == st.st_size and old.get("hash") and _same_content(p, old["hash"]):
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

    # one file per brick
    owner: dict[int, str] = {}
    for p, e in ingested.items():
        for b in e.get("bricks", {}):
            owner[int(b)] = p
    accepted: list[InputFile] = []
    for f in sorted(new, key=lambda f: f.path):
        clash = sorted({owner[b] for b in f.bricks if b in owner and owner[b] != f.path})
        if clash:
            rejects.append((f.path, f"{f.path}: brick(s) already ingested from {clash[0]} "
                                    f"(the same brick under two paths)"))
            continue
        for b in f.bricks:
            owner[b] = f.path
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
        with _Runner(workers, scheduler, progress) as runner:
            while True:
                summary.write_passes += 1
                try:
                    results, plan = _write(cur, man, new, settings, workers, scheduler,
                                           row_group_rows, staging, runner)
                    rejects += sorted(plan["failed"].items())
                    new = [f for f in new if f.path not in plan["failed"]]
                    break
                except FootprintError as exc:
                    _clear(staging)
                    f = next(f for f in new if f.path == exc.path)
                    try:
                        exact_footprint(f, plan_order)
                    except Reject as r:
                        rejects.append((f.path, str(r)))
                        new.remove(f)
                except ReadError as exc:
                    _clear(staging)
                    rejects.append((exc.path, str(exc)))
                    new = [f for f in new if f.path != exc.path]
                if not new:
                    break
            if not new:
                _clear(staging)
                summary.seconds = time.time() - t0
                return summary
            _commit(cat_dir, catalog, cur, man, new, settings, results, plan, summary, rejects,
                    staging, runner, row_group_rows)
    except BaseException as exc:
        _clear(staging)
        if _disk_full(exc):
            raise UserError(f"{cat_dir}: no space left on the device while writing the new snapshot "
                            f"({exc.__class__.__name__}: {str(exc).splitlines()[0]}); staging removed, "
                            f"the catalog is unchanged") from None
        raise
    summary.seconds = time.time() - t0
    return summary


def _clear(staging: str) -> None:
    """Remove a build's staging folder, and the staging root once it is empty."""
    import shutil

    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(staging))
    except OSError:
        pass


def _write(cur, man, new, settings, workers, scheduler, row_group_rows, staging, runner):
    """Plan partitions and run the write tasks (leaves and margin shards into ``staging``).
    Returns (task results, plan dict)."""
    model, threshold = settings["model"], settings["threshold"]
    highest_order = plan_order = settings["highest_order"]
    existing = {mf.parse_key(k) for k in man["partitions"]}
    hist: dict[int, float] = {}
    for v in man["partitions"].values():
        for c, n in v["cells"].items():
            hist[int(c)] = hist.get(int(c), 0.0) + n
    for c, v in _hist_of(new).items():
        hist[c] = hist.get(c, 0.0) + v
    for f in new:
        _add_footprints(hist, f.footprint, plan_order)
    leaves = plan_leaves(hist, plan_order, threshold, highest_order, existing)

    # which leaves are touched: new ones, split ones, and old ones a new/changed file meets
    old_files = man["files"]
    footprints = [np.asarray(f.footprint, np.int64) for f in new]
    for f in new:
        old = old_files.get(f.path)
        if old and old.get("status") == "ingested" and old.get("footprint"):
            footprints.append(np.asarray(old["footprint"], np.int64))
    ex_sorted = sorted(existing, key=lambda p: pixel_range(*p)[0])
    ex_lo = np.array([pixel_range(*p)[0] for p in ex_sorted], dtype=np.int64)

    def parent_of(leaf):
        lo, _ = pixel_range(*leaf)
        i = int(np.searchsorted(ex_lo, lo, side="right")) - 1
        if i >= 0 and pixel_range(*ex_sorted[i])[1] > lo:
            return ex_sorted[i]
        return None

    touched = []
    for leaf in leaves:
        lo, hi = pixel_range(*leaf)
        par = parent_of(leaf)
        if leaf not in existing and par is not None:
            touched.append(leaf)  # child of a split leaf
        elif leaf not in existing:
            touched.append(leaf)
        elif any(_overlaps(fp, lo, hi) for fp in footprints):
            touched.append(leaf)

    est = {}
    for leaf in touched:
        k, n = leaf
        s = 2 * (plan_order - k)
        est[leaf] = sum(v for c, v in hist.items() if (c >> s) == n)
    n_tasks = max(1, min(len(touched), 2 * workers if not scheduler else 4 * workers))
    groups = _group(touched, est, n_tasks)

    replaced_bricks = sorted({int(b) for f in new for b in old_files.get(f.path, {}).get("bricks", {})
                              if old_files.get(f.path, {}).get("status") == "ingested"})
    # a directory of this build's own: a worker orphaned by a killed build cannot write into
    # the staging of the next one
    os.makedirs(staging, exist_ok=True)
    # a file whose footprint meets the leaves of one task is read by that task; a file
    # feeding several (a brick on the seam between two tasks' runs) is read once by a seam
    # job that hands each task its rows as an hp-sorted shard
    runs = []
    for g in groups:
        rl = np.array([pixel_range(*leaf)[0] for leaf in g], dtype=np.int64)
        rh = np.array([pixel_range(*leaf)[1] for leaf in g], dtype=np.int64)
        runs.append((rl, rh))
    group_srcs: list[list] = []
    for g in groups:
        srcs, olds = [], []
        for leaf in g:
            par = leaf if leaf in existing else parent_of(leaf)
            if par is not None and par not in olds:
                olds.append(par)
        for par in olds:
            srcs.append(Source("parquet", cur.leaf(*par), exclude_bricks=replaced_bricks))
        group_srcs.append(srcs)
    seam = []
    for f in new:
        fp = np.asarray(f.footprint, np.int64)
        gs = [i for i, g in enumerate(groups) if any(_overlaps(fp, *pixel_range(*leaf)) for leaf in g)]
        if len(gs) == 1:
            group_srcs[gs[0]].append(Source("fits", f.path, footprint=fp, hash_it=True))
        elif gs:
            dests = []
            for i in gs:
                rl, rh = runs[i]
                lb = _lower_bound(fp, int(rl[0]), int(rh[-1]))
                dests.append((i, rl, rh, int(rl[0]) if lb is None else lb))
            seam.append((f.path, True, dests))
    seam_results = []
    if seam:
        jobs = _seam_jobs(seam, 2 * workers if not scheduler else 4 * workers, staging)
        seam_results = runner.run(split_seam_files, jobs, "split seam files")
        for r in seam_results:
            for tid, lo, path, _ in r["shards"]:
                group_srcs[tid].append(Source("shard", path, lower=lo))
    mapped = {f.path: f.model for f in new if f.model != model}
    tasks = [Task(i, list(g), group_srcs[i], model, staging, row_group_rows, plan_order,
                  source_models=mapped, margin_order=settings["margin_order"], partitions=leaves)
             for i, g in enumerate(groups)]
    results = seam_results + runner.run(run_task, tasks, "write partitions")
    crash_point("tasks-done")

    # files that could not be read to their end landed nowhere: the build rejects them, in this
    # pass, unless one replaces an ingested file (its old rows were left out of the rewritten
    # leaves, so the write phase is run again without it)
    failed = {p: m for r in results for p, m in r.get("failed", {}).items()}
    for p, m in failed.items():
        if old_files.get(p, {}).get("status") == "ingested":
            raise ReadError(p, m)
    # every good row of every new file must have landed in a partition
    acc: dict[str, dict] = {}
    for r in results:
        for p, a in r["files"].items():
            e = acc.setdefault(p, {"rows": a["rows"], "bad": a["bad"], "written": 0, "bricks": {}, "reads": 0})
            e["written"] += a["written"]
            e["reads"] += 1
            if a.get("hash"):
                e["hash"] = a["hash"]
            for b, c in a["bricks"].items():
                e["bricks"][b] = e["bricks"].get(b, 0) + c
    for f in new:
        if f.path in failed:
            continue
        a = acc.get(f.path)
        if a is None:
            if f.rows:
                raise FootprintError(f.path, f"{f.path}: not read by any partition task")
            acc[f.path] = {"rows": 0, "bad": 0, "written": 0, "bricks": {}, "reads": 0}
            continue
        if a["written"] + a["bad"] != a["rows"]:
            if f.exact:
                raise RuntimeError(f"{f.path}: {a['rows'] - a['bad'] - a['written']} rows not placed")
            raise FootprintError(f.path, f"{f.path}: rows outside the planned sky area")
    changed = np.unique(np.concatenate(footprints)) if footprints else np.zeros(0, np.int64)
    return results, {"leaves": leaves, "touched": touched, "existing": existing, "acc": acc,
                     "parent_of": parent_of, "failed": failed, "changed_cells": changed}


def _commit(cat_dir, catalog, cur, man, new, settings, results, plan, summary, rejects, staging,
            runner, row_group_rows):
    """Assemble the new snapshot in ``staging`` and publish it."""
    leaf_res = {}
    for r in results:
        leaf_res.update(r.get("leaves", {}))
    existing, touched, acc = plan["existing"], plan["touched"], plan["acc"]
    new_man = {**man, **{k: settings[k] for k in ("model", "threshold", "highest_order", "margin_arcsec")},
               "files": dict(man["files"]), "partitions": dict(man["partitions"])}
    version = max([cur.version if cur else 0] + layout.snapshot_versions(cat_dir)) + 1
    root = os.path.join(staging, "snapshot")
    primary = os.path.join(root, catalog)
    touched_set = set(touched)
    for leaf in touched:
        key = mf.pixel_key(*leaf)
        res = leaf_res.get(leaf)
        if res is None:  # leaf ended up empty
            new_man["partitions"].pop(key, None)
            continue
        dst = os.path.join(primary, layout.leaf_relpath(*leaf))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(res["file"], dst)
        new_man["partitions"][key] = {"rows": res["rows"], "cells": res["cells"]}
    leaves_now = set(plan["leaves"])
    for leaf in existing:
        if leaf not in leaves_now:
            new_man["partitions"].pop(mf.pixel_key(*leaf), None)
            summary.partitions_deleted += 1
    final = sorted(mf.parse_key(k) for k in new_man["partitions"])
    for leaf in final:
        if leaf not in touched_set:
            snapshot.link_or_copy(cur.leaf(*leaf), os.path.join(primary, layout.leaf_relpath(*leaf)))
            summary.leaves_linked += 1
    for f in new:
        a = acc[f.path]
        f.hash = a.get("hash") or f.hash
        if f.path in man["files"] and man["files"][f.path].get("status") == "ingested":
            summary.replaced.append(f.path)
        else:
            summary.ingested.append(f.path)
        new_man["files"][f.path] = {
            "size": f.size, "mtime_ns": f.mtime_ns, "hash": f.hash, "rows": f.rows,
            "rows_ingested": a["written"], "bad_positions": a["bad"], "model": f.model,
            "status": "ingested", "bricks": {str(b): c for b, c in a["bricks"].items()},
            "footprint": np.asarray(f.footprint).tolist() if f.exact else None,
        }
        summary.rows += a["written"]
        summary.bad_position_rows += a["bad"]
        summary.file_reads += a["reads"]
        if a["bad"]:
            rejects.append((f.path, f"{f.path}: {a['bad']} row(s) with non-finite or out-of-range "
                                    f"ra/dec not ingested (the other {a['written']} rows are)"))
    for p, reason in rejects:
        if p not in new_man["files"] or new_man["files"][p].get("status") != "ingested":
            new_man["files"][p] = {"status": "rejected", "reason": reason}
    summary.partitions_written = len([l for l in touched if l in leaf_res])
    summary.peak_pending_rows = max((r.get("peak_pending_rows", 0) for r in results), default=0)
    summary.spilled_rows = sum(r.get("spilled_rows", 0) for r in results)
    summary.seam_files = sum(len(r["files"]) for r in results if "shards" in r)
    summary.partitions = len(new_man["partitions"])
    summary.total_rows = sum(v["rows"] for v in new_man["partitions"].values())

    write_metadata(primary, new_man, lake_schema(settings["model"]))
    mname, summary.margins_written = write_margins(root, catalog, cur, man, new_man, settings, final,
                                                   {l for l in touched if l in leaf_res}, plan["changed_cells"],
                                                   results, runner, row_group_rows)
    summary.margin_rows = sum(new_man["margin_partitions"].values())
    crash_point("margins")
    commit = {"version": version, "created": snapshot.now_utc(), "parent": cur.version if cur else None,
              "files_added": len(summary.ingested), "files_replaced": len(summary.replaced),
              "files_rejected": len(rejects), "rows_added": summary.rows, "rows": summary.total_rows,
              "partitions": summary.partitions, "partitions_written": summary.partitions_written,
              "leaves_linked": summary.leaves_linked, "margin_rows": summary.margin_rows}
    summary.bytes_written = snapshot.finish(root, new_man, man, commit)
    crash_point("snapshot")
    snapshot.publish(cat_dir, root, catalog, version, mname, crash_point)
    summary.snapshot = version
    _clear(staging)
