"""``legacylake etl build``: plan, write in parallel, commit exactly once.

Commit protocol (a SIGKILL at any point leaves the lake equal to before the build or after
it, and the next build finishes or redoes the work):

1. leaf files are written to ``legacylake/staging`` (flat names, outside the HATS layout);
2. a journal (new manifest, staged -> final moves, files to delete) is written atomically;
3. staged leaves are renamed into ``dataset/Norder=k/Dir=d/Npix=n.parquet``, the metadata
   files are rewritten (properties last), leaves of split partitions are deleted, the
   manifest is replaced and the journal removed. A build that finds a journal replays it
   first (every step is idempotent); staging without a journal is discarded.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from legacylake.errors import UserError

from . import manifest as mf
from .hats_meta import write_metadata
from .mapping import MAPPINGS, can_map, target_model
from .mapping import describe as describe_mappings
from .healpix import FOOTPRINT_ORDER, pixel_range, shift
from .plan import InputFile, Reject, discover, exact_footprint, inspect_all, plan_leaves
from .read import lake_schema
from .write import (ROW_GROUP_ROWS, FootprintError, ReadError, SeamJob, Source, Task,
                    _lower_bound, run_task, split_seam_files)

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
        for p, r in self.rejects:
            out.append(f"rejected: {r}")
        return out


# ------------------------------------------------------------------ commit / recovery

def crash_point(name: str) -> None:
    """Test hook: SIGKILL this process at the named point when $LEGACYLAKE_ETL_CRASH_AT says so
    (points: leaf, tasks-done, journal, move, metadata, deletes)."""
    if os.environ.get("LEGACYLAKE_ETL_CRASH_AT") == name:
        import signal
        os.kill(os.getpid(), signal.SIGKILL)


def apply_journal(catalog_dir: str) -> bool:
    """Finish a commit whose journal exists (idempotent). Returns True if there was one."""
    jp = mf.journal_path(catalog_dir)
    if not os.path.exists(jp):
        return False
    import json
    with open(jp) as fh:
        j = json.load(fh)
    crash_point("journal")
    for staged, final in j["moves"]:
        if os.path.exists(staged):
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(staged, final)
            crash_point("move")
    man = j["manifest"]
    write_metadata(catalog_dir, man, lake_schema(man["model"]))
    crash_point("metadata")
    for p in j["deletes"]:
        if os.path.exists(p):
            os.remove(p)
            crash_point("deletes")
    mf.write_json_atomic(mf.manifest_path(catalog_dir), man)
    os.remove(jp)
    mf.clear_staging(catalog_dir)
    return True


def recover(catalog_dir: str) -> None:
    """Roll a committed-but-unfinished build forward; discard an uncommitted one."""
    if not apply_journal(catalog_dir):
        mf.clear_staging(catalog_dir)


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
    from .fitstable import FitsLayoutError
    from .write import content_hash
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
          progress: bool = False, map_to: str | None = None) -> Summary:
    """Ingest FITS catalogs (files or directory trees) into the HATS catalog ``lake/catalog``.

    Exactly once: files already ingested and unchanged are skipped; changed files replace
    their rows; new files are added by rewriting only the partitions they touch.
    Returns a :class:`Summary`; bad inputs are in ``summary.rejects`` (never raised).
    Raises :class:`UserError` for mistakes that stop the whole build (mixed data models,
    options that contradict the catalog). ``map_to`` (a model or release, e.g. ``"dr9"``)
    converts inputs of other data models to it by a documented mapping
    (:mod:`legacylake.etl.mapping`); without it, mixed models are refused."""
    from tqdm import tqdm

    t0 = time.time()
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    cat_dir = os.path.abspath(os.path.join(os.fspath(lake), catalog))
    workers = workers or os.cpu_count() or 1
    os.makedirs(cat_dir, exist_ok=True)
    recover(cat_dir)
    man = mf.load(cat_dir) or mf.empty_manifest(catalog)
    if man["threshold"] is not None:
        for name, given, have in (("threshold", threshold, man["threshold"]),
                                  ("highest-order", highest_order, man["highest_order"])):
            if given is not None and int(given) != int(have):
                raise UserError(f"{cat_dir}: catalog was built with --{name} {have}; cannot change it to {given}")
        threshold, highest_order = int(man["threshold"]), int(man["highest_order"])
    threshold = int(threshold or DEFAULT_THRESHOLD)
    highest_order = int(DEFAULT_HIGHEST_ORDER if highest_order is None else highest_order)
    if not 0 <= highest_order <= FOOTPRINT_ORDER:
        raise UserError(f"--highest-order must be between 0 and {FOOTPRINT_ORDER} (got {highest_order})")
    if threshold < 1:
        raise UserError(f"--threshold must be positive (got {threshold})")
    plan_order = highest_order

    summary = Summary(cat_dir)
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
    good, rejects = inspect_all(to_inspect, plan_order, ingested, workers=max(2, workers), progress=bar)
    bar.close()
    rejects += [(p, f"{p}: no such file") for p in missing]
    for f in good:
        summary.notes += f.notes

    # unchanged / changed / new
    new: list[InputFile] = []
    for f in good:
        new.append(f)

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
        counts = {m: sum(f.model == m for f in new) for m in models}
        desc = ", ".join(f"{m} ({counts[m]} new file(s){', the catalog' if m == man['model'] else ''})"
                         for m in sorted(models))
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

    for p, t in retimed.items():
        man["files"][p] = {**man["files"][p], "mtime_ns": t}
    if not new:
        if retimed:   # only the manifest's modification times change (no partition, no metadata)
            mf.write_json_atomic(mf.manifest_path(cat_dir), man)
        summary.nothing_to_do = bool(man["partitions"]) or not paths
        summary.total_rows = sum(v["rows"] for v in man["partitions"].values())
        summary.partitions = len(man["partitions"])
        summary.seconds = time.time() - t0
        if rejects and man["model"] is None and not man["partitions"]:
            pass
        return summary

    model = target or man["model"] or new[0].model
    while True:
        try:
            results, plan = _write(cat_dir, man, new, model, threshold, highest_order, plan_order,
                                   workers, scheduler, row_group_rows, progress)
            break
        except FootprintError as exc:
            mf.clear_staging(cat_dir)
            f = next(f for f in new if f.path == exc.path)
            try:
                exact_footprint(f, plan_order)
            except Reject as r:
                rejects.append((f.path, str(r)))
                new.remove(f)
        except ReadError as exc:
            mf.clear_staging(cat_dir)
            rejects.append((exc.path, str(exc)))
            new = [f for f in new if f.path != exc.path]
        if not new:
            summary.seconds = time.time() - t0
            return summary

    _commit(cat_dir, man, new, model, threshold, highest_order, results, plan, summary, rejects)
    summary.seconds = time.time() - t0
    return summary


def _write(cat_dir, man, new, model, threshold, highest_order, plan_order, workers, scheduler,
           row_group_rows, progress):
    """Plan partitions and run the write tasks. Returns (task results, plan dict)."""
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
    staging = os.path.join(mf.staging_dir(cat_dir), f"{os.getpid()}-{time.time_ns()}")
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
            srcs.append(Source("parquet", mf.leaf_path(cat_dir, *par), exclude_bricks=replaced_bricks))
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
    with _Runner(workers, scheduler, progress) as runner:
        seam_results = []
        if seam:
            jobs = _seam_jobs(seam, 2 * workers if not scheduler else 4 * workers, staging)
            seam_results = runner.run(split_seam_files, jobs, "split seam files")
            for r in seam_results:
                for tid, lo, path, _ in r["shards"]:
                    group_srcs[tid].append(Source("shard", path, lower=lo))
        mapped = {f.path: f.model for f in new if f.model != model}
        tasks = [Task(i, list(g), group_srcs[i], model, staging, row_group_rows, plan_order,
                      source_models=mapped)
                 for i, g in enumerate(groups)]
        results = seam_results + runner.run(run_task, tasks, "write partitions")
    crash_point("tasks-done")

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
    return results, {"leaves": leaves, "touched": touched, "existing": existing, "acc": acc,
                     "parent_of": parent_of}


def _commit(cat_dir, man, new, model, threshold, highest_order, results, plan, summary, rejects):
    leaf_res = {}
    for r in results:
        leaf_res.update(r.get("leaves", {}))
    existing, touched, acc = plan["existing"], plan["touched"], plan["acc"]
    new_man = {**man, "model": model, "threshold": threshold, "highest_order": highest_order,
               "files": dict(man["files"]), "partitions": dict(man["partitions"])}
    moves, deletes = [], []
    for leaf in touched:
        key = mf.pixel_key(*leaf)
        res = leaf_res.get(leaf)
        if res is None:  # leaf ended up empty
            new_man["partitions"].pop(key, None)
            if leaf in existing:
                deletes.append(mf.leaf_path(cat_dir, *leaf))
            continue
        moves.append([res["file"], mf.leaf_path(cat_dir, *leaf)])
        new_man["partitions"][key] = {"rows": res["rows"], "cells": res["cells"]}
        summary.bytes_written += os.path.getsize(res["file"])
    leaves_now = set(plan["leaves"])
    for leaf in existing:
        if leaf not in leaves_now:
            new_man["partitions"].pop(mf.pixel_key(*leaf), None)
            deletes.append(mf.leaf_path(cat_dir, *leaf))
            summary.partitions_deleted += 1
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
    summary.partitions_written = len(moves)
    summary.peak_pending_rows = max((r.get("peak_pending_rows", 0) for r in results), default=0)
    summary.spilled_rows = sum(r.get("spilled_rows", 0) for r in results)
    summary.seam_files = sum(len(r["files"]) for r in results if "shards" in r)
    summary.partitions = len(new_man["partitions"])
    summary.total_rows = sum(v["rows"] for v in new_man["partitions"].values())
    mf.write_json_atomic(mf.journal_path(cat_dir), {"moves": moves, "deletes": deletes, "manifest": new_man})
    apply_journal(cat_dir)
