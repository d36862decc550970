"""Kill ``legacylake etl build`` with SIGKILL at random moments and check what readers see.

Used by the test suite and ``bench/etl_reliability.py``. One trial: copy a base lake, start
a build that adds files to it, SIGKILL it (at a random time, or at a random time after the
commit has started: the snapshot folder exists in staging), then, *before any rerun*, read
the catalog as users do (DuckDB count, HATS strict validation, the manifest's total) and
require the old or the new row count; then rerun the build and require the lake a clean
build makes (same partitions, same leaf and margin tables, ``verify`` OK).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from legacylake.etl import layout


@dataclass
class Trial:
    mode: str            # "random" or "commit"
    delay: float         # seconds after start (random) or after the commit began (commit)
    killed: bool         # the process died of SIGKILL (False: it finished first)
    seen: int            # rows a reader counted before the rerun (DuckDB)
    state: str           # "old", "new" or "WRONG" (DuckDB and lsdb agreeing)
    hats_valid: bool
    equal_after_rerun: bool
    rows_lost: int       # rows of the clean build missing after the rerun


def cli_build(paths: list[str], lake: str, catalog: str, workers: int = 1, env: dict | None = None,
              extra: list[str] | None = None) -> subprocess.Popen:
    """Start ``legacylake etl build`` as its own process."""
    return subprocess.Popen([sys.executable, "-m", "legacylake", "etl", "build", *paths, "--lake", lake,
                             "--catalog", catalog, "--workers", str(workers), "--quiet", *(extra or [])],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def count_rows(lake: str, catalog: str) -> int:
    """Rows a reader sees now (a fresh DuckDB connection on the current snapshot)."""
    from legacylake.query import connect

    con = connect(lake)
    try:
        return int(con.sql(f'SELECT count(*) FROM "{catalog}"').fetchall()[0][0])
    finally:
        con.close()


def lsdb_rows(cat_dir: str) -> int:
    """Rows lsdb reads from the collection (its current snapshot, with the margin attached)."""
    import contextlib
    import io

    import lsdb

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return len(lsdb.open_catalog(cat_dir, columns=["ra", "dec"]).compute())


def hats_valid(cat_dir: str) -> bool:
    import logging

    from hats.io.validation import is_valid_catalog

    logging.getLogger().setLevel(logging.ERROR)
    return bool(is_valid_catalog(cat_dir, strict=True))


def lake_state(cat_dir: str) -> dict:
    """Every leaf and margin leaf of the current snapshot as Arrow tables, by relative path."""
    snap = layout.resolve(cat_dir)
    out = {}
    for base, tag in ((snap.primary, "primary"), (snap.margin, "margin")):
        if base is None:
            continue
        for f in sorted(glob.glob(os.path.join(base, "dataset", "Norder=*", "Dir=*", "*.parquet"))):
            out[f"{tag}/{os.path.relpath(f, base)}"] = pq.read_table(f)
    return out


def same_state(a: dict, b: dict) -> tuple[bool, int]:
    """(equal, rows of ``b``'s primary leaves missing from ``a``)."""
    rows_a = sum(t.num_rows for k, t in a.items() if k.startswith("primary/"))
    rows_b = sum(t.num_rows for k, t in b.items() if k.startswith("primary/"))
    equal = a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)
    return equal, max(0, rows_b - rows_a)


def _commit_started(cat_dir: str) -> bool:
    return bool(glob.glob(os.path.join(layout.staging_root(cat_dir), "*", "snapshot", "*", "hats.properties"))
                or len(layout.snapshot_versions(cat_dir)) > 1)


def run_trial(base_lake: str, work: str, catalog: str, paths: list[str], old_rows: int, new_rows: int,
              clean: dict, mode: str, delay: float, workers: int = 1) -> Trial:
    """One SIGKILL trial on a copy of ``base_lake`` (see the module docstring)."""
    from legacylake.etl.build import build
    from legacylake.etl.verify import verify

    lake = os.path.join(work, "lake")
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(base_lake, lake)
    cat_dir = os.path.join(lake, catalog)
    p = cli_build(paths, lake, catalog, workers)
    t0 = time.monotonic()
    if mode == "commit":
        while p.poll() is None and not _commit_started(cat_dir) and time.monotonic() - t0 < 120:
            time.sleep(0.002)
    time.sleep(delay)
    p.kill()
    p.communicate(timeout=300)
    killed = p.returncode == -9
    seen = count_rows(lake, catalog)
    state = "old" if seen == old_rows else "new" if seen == new_rows else "WRONG"
    if lsdb_rows(cat_dir) != seen:
        state = "WRONG"
    valid = hats_valid(cat_dir)
    s = build(paths, lake, catalog, workers=workers)
    equal, lost = same_state(lake_state(cat_dir), clean)
    equal = equal and s.ok and verify(lake, catalog).ok
    return Trial(mode, delay, killed, seen, state, valid, equal, lost)


def run_trials(base_lake: str, work: str, catalog: str, paths: list[str], n_random: int, n_commit: int,
               seed: int = 0, workers: int = 1, progress: bool = False,
               commit_window: float | None = None) -> list[Trial]:
    """``n_random`` kills at uniform random times over a build and ``n_commit`` kills at
    random times up to ``commit_window`` seconds (default: as long as the commit of a clean
    run took, to the end of the process) after its commit began (the primary catalog's
    metadata is written; margins, manifest, fsync, rename and pointer follow), each on a
    fresh copy of ``base_lake``."""
    from legacylake.etl.build import build

    rng = np.random.default_rng(seed)
    old_rows = count_rows(base_lake, catalog)
    ref = os.path.join(work, "clean")
    shutil.rmtree(ref, ignore_errors=True)
    shutil.copytree(base_lake, ref)
    t0 = time.monotonic()
    p = cli_build(paths, ref, catalog, workers)
    t_commit = None
    while p.poll() is None:
        if t_commit is None and _commit_started(os.path.join(ref, catalog)):
            t_commit = time.monotonic()
        time.sleep(0.002)
    out, err = p.communicate(timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"clean build failed: {err}")
    duration = time.monotonic() - t0
    if commit_window is None:
        commit_window = time.monotonic() - (t_commit or t0)
    s = build(paths, ref, catalog, workers=workers)
    assert s.nothing_to_do
    clean = lake_state(os.path.join(ref, catalog))
    new_rows = count_rows(ref, catalog)
    plan = [("random", float(rng.uniform(0.2, duration))) for _ in range(n_random)]
    plan += [("commit", float(rng.uniform(0.0, commit_window))) for _ in range(n_commit)]
    out = []
    for i, (mode, delay) in enumerate(plan):
        out.append(run_trial(base_lake, work, catalog, paths, old_rows, new_rows, clean, mode, delay, workers))
        if progress:
            t = out[-1]
            print(f"trial {i + 1}/{len(plan)}: {mode} +{delay:.2f}s killed={t.killed} saw {t.state} "
                  f"({t.seen} rows) valid={t.hats_valid} rerun==clean {t.equal_after_rerun}", file=sys.stderr)
    return out
