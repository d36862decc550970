"""Reliability: SIGKILL ``legacylake etl build`` at random moments and read before rerunning.

    python bench/etl_reliability.py --random 30 --commit 30 [--workers 1] [--seed 0]

Each trial (``legacylake.fault_trials``) copies a base lake, starts a build adding
files, kills it with SIGKILL at a random time over the build (``--random``) or at a random
time in the first ``--window`` seconds after its commit began (``--commit``), then reads the catalog
before any rerun (DuckDB count, lsdb count, hats strict validation) and requires the old or the new row
count; then reruns the build and requires the lake a clean build makes (leaf and margin
tables equal, verify OK). Prints one line per trial and a summary table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--random", type=int, default=30, help="kills at random times over the build")
    ap.add_argument("--commit", type=int, default=30, help="kills at random times inside the commit")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--bricks", type=int, default=14)
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--window", type=float, default=None,
                    help="seconds after the commit began to kill in (default: the commit's length in a clean run)")
    a = ap.parse_args()

    from legacylake.catalogs_schema.random_table import write_random_bricks
    from legacylake.etl import build
    from legacylake.fault_trials import run_trials
    from legacylake.etl.testdata import patch_bricks

    work = tempfile.mkdtemp(prefix="legacylake_reliability_")
    t0 = time.time()
    try:
        paths = write_random_bricks(os.path.join(work, "in"), patch_bricks(a.bricks, 35.0, 2.0), a.rows, seed=3)
        base = os.path.join(work, "base")
        n0 = a.bricks * 2 // 3
        build(paths[:n0], base, "c", threshold=4 * a.rows // 3, highest_order=9, workers=a.workers)
        trials = run_trials(base, os.path.join(work, "trials"), "c", paths, a.random, a.commit, seed=a.seed,
                            workers=a.workers, progress=True, commit_window=a.window)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nbase {n0} bricks, each build adds {a.bricks - n0} bricks x {a.rows} rows; workers {a.workers}; "
          f"{time.time() - t0:.0f} s\n")
    print("| kills | trials | SIGKILL delivered | reader saw old | reader saw new | reader saw other | "
          "hats strict-valid | rerun == clean build | rows lost |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in ("random", "commit"):
        ts = [t for t in trials if t.mode == mode]
        if not ts:
            continue
        print(f"| {'random time' if mode == 'random' else 'inside the commit'} | {len(ts)} | "
              f"{sum(t.killed for t in ts)} | {sum(t.state == 'old' for t in ts)} | {sum(t.state == 'new' for t in ts)} | "
              f"{sum(t.state == 'WRONG' for t in ts)} | {sum(t.hats_valid for t in ts)} | "
              f"{sum(t.equal_after_rerun for t in ts)} | {sum(t.rows_lost for t in ts)} |")


if __name__ == "__main__":
    main()
