"""Benchmark: what an incremental build writes (publish cost of a snapshot).

    python bench/etl_publish.py --bricks 500 --rows 4000 --add 0.01 --thresholds 20000,1000000

Builds a lake from the first (1 - add) of ``--bricks`` adjacent simulated DR9 bricks (all 181
columns, nearest-first around (150, 10), so the rest lie on the edge of the footprint; the
inputs of ``bench/etl_vs_hats_import.py``, cached in its work folder), then
publishes a second snapshot adding the remaining bricks (``edge``), and, on a copy of the
first lake, one adding as many bricks in an empty part of the sky (``far``). Reports for
each: rows added, bytes the build wrote (new leaves, margins it rebuilt, metadata,
manifest: everything not hard-linked from the previous snapshot), the snapshot's bytes, the
ratio, partitions rewritten and time. Inputs are cached in ``--workdir``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bricks", type=int, default=500)
    ap.add_argument("--rows", type=int, default=4000, help="rows per brick")
    ap.add_argument("--add", type=float, default=0.01, help="fraction of the rows added by the second build")
    ap.add_argument("--thresholds", default="20000,1000000", help="rows per partition (--threshold) to try")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/legacylake_bench_publish")
    ap.add_argument("--inputs", default="/tmp/legacylake_bench_etl/sim", help="simulated bricks (cached)")
    a = ap.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from etl_vs_hats_import import make_sim_inputs

    from legacylake.catalogs_schema.random_table import write_random_bricks
    from legacylake.etl import build, history
    from legacylake.etl.testdata import patch_bricks

    t = time.time()
    pr = make_sim_inputs(a.inputs, a.bricks, a.rows, workers=a.workers)
    paths, counts = [p for p, _ in pr], [n for _, n in pr]
    n_add = max(1, int(round(a.add * len(paths))))
    per = int(round(sum(counts[-n_add:]) / n_add))
    far = write_random_bricks(os.path.join(a.workdir, "far"), patch_bricks(n_add, 230.0, -20.0), per, seed=11)
    print(f"inputs: {len(paths)} simulated bricks, {sum(counts):,} rows x 181 columns (ready in {time.time() - t:.0f} s); "
          f"base {len(paths) - n_add} bricks; increments of {n_add} bricks: the last {n_add} of the patch "
          f"({sum(counts[-n_add:]):,} rows, 'edge') or {n_add} random bricks at (230, -20) ({n_add * per:,} rows, 'far')\n")
    print("| threshold | partitions | base rows | increment | rows added | bytes written | snapshot bytes | "
          "written / lake | leaves rewritten | margin leaves rewritten | time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for thr in [int(x) for x in a.thresholds.split(",")]:
        lake = os.path.join(a.workdir, f"lake_{thr}")
        shutil.rmtree(lake, ignore_errors=True)
        base = paths[:-n_add]
        s0 = build(base, lake, "dr9", threshold=thr, workers=a.workers)
        copy = lake + "_far"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(lake, copy)
        for name, lk, inputs in (("edge", lake, paths), ("far", copy, base + far)):
            t0 = time.perf_counter()
            s = build(inputs, lk, "dr9", workers=a.workers)
            dt = time.perf_counter() - t0
            h = history(os.path.join(lk, "dr9"))[-1]
            print(f"| {thr:,} | {s.partitions} | {s0.rows:,} | {name} | {s.rows:,} | {h.bytes_written / 2**20:,.1f} MiB | "
                  f"{h.bytes / 2**20:,.1f} MiB | {h.bytes_written / h.bytes:.2%} | {s.partitions_written} | "
                  f"{s.margins_written} | {dt:.1f} s |")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.rmtree(lake, ignore_errors=True)


if __name__ == "__main__":
    main()
