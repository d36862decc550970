"""The write phase of a build: the plan's leaves grouped into tasks of similar size, run on
the build's runner, and their results (new leaves, rejected inputs) collected."""

from __future__ import annotations

import os

import numpy as np

from legacylake.etl import manifest as mf
from legacylake.etl.crash import crash_point
from legacylake.etl.healpix import FOOTPRINT_ORDER, pixel_range, shift
from legacylake.etl.plan import InputFile, plan_leaves
from legacylake.etl.task import FootprintError, Source, Task
from legacylake.etl.write import ReadError, SeamJob, _lower_bound, run_task, split_seam_files

#: A footprint cell with no sampled rows still gets this many rows in the plan, so the
#: partitions cover every place a file's rows can be.
_EPSILON = 1e-3


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


def same_content(path: str, recorded: str) -> bool:
    """True if the file's content hash equals the one the manifest recorded."""
    from legacylake.etl.fitstable import FitsLayoutError
    from legacylake.etl.write import content_hash
    try:
        return content_hash(path, like=recorded) == recorded
    except (FitsLayoutError, OSError):
        return False


def _seam_jobs(files: list, n_jobs: int, staging: str) -> list[SeamJob]:
    """Split seam files (path, hash_it, dests) into at most n_jobs jobs of similar size."""
    n_jobs = max(1, min(n_jobs, len(files)))
    return [SeamJob(j, files[j::n_jobs], staging) for j in range(n_jobs) if files[j::n_jobs]]


def write_tasks(cur, man, new, settings, workers, scheduler, row_group_rows, staging, runner):
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

    # the old rows of a replaced file are left out of the rewritten leaves: its bricks, or for a
    # sweep file (whose bricks other sweeps may share) its bricks inside its box
    replaced_bricks: set[int] = set()
    replaced_boxes: list[tuple[tuple, list[int]]] = []
    for f in new:
        old = old_files.get(f.path, {})
        if old.get("status") != "ingested":
            continue
        bricks = sorted(int(b) for b in old.get("bricks", {}))
        if old.get("box"):
            replaced_boxes.append((tuple(old["box"]), bricks))
        else:
            replaced_bricks.update(bricks)
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
            srcs.append(Source("parquet", cur.leaf(*par), exclude_bricks=sorted(replaced_bricks),
                               exclude_boxes=replaced_boxes))
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
