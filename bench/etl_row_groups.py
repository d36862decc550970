"""Benchmark: the ETL's Parquet row-group size against footer size, lake size, build speed,
1-arcmin cone latency with all 181 columns, and a one-column full scan.

    python bench/etl_row_groups.py [--bricks 250] [--rows 4000] [--sizes 2048,4096,8192,16384]

Uses the input files of ``bench/etl_vs_hats_import.py`` (schema-valid random DR9 Tractor
bricks, all 181 columns, written there if missing) and builds one lake per row-group size
with ``legacylake.etl.build(..., row_group_rows=N, workers=2)``. Cone times are the median
over ``--cones`` positions inside the patch (each cone run once to warm the page cache and
the catalog cache, then timed), through ``legacylake.query.cone_search``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bricks", type=int, default=250)
    ap.add_argument("--rows", type=int, default=4000, help="rows per brick")
    ap.add_argument("--sizes", default="2048,4096,8192,16384")
    ap.add_argument("--cones", type=int, default=25)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/legacylake_bench_etl")
    a = ap.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from etl_vs_hats_import import make_inputs
    import pyarrow.parquet as pq

    from legacylake.etl import build, layout
    from legacylake.query import cone_search
    from legacylake.query import connect

    paths = make_inputs(os.path.join(a.workdir, "in"), max(a.bricks, 500), a.rows)[: a.bricks]
    rng = np.random.default_rng(3)
    # cone centres near the middle of the patch (the bricks nearest (150, 10))
    cones = [(150.0 + rng.uniform(-1.0, 1.0), 10.0 + rng.uniform(-1.0, 1.0)) for _ in range(a.cones)]
    print(f"{len(paths)} bricks x {a.rows} rows x 181 columns; {a.cones} cones of 1 arcmin (all columns)\n")
    print("| rows/row group | build | rows/s | row groups | footer bytes (sum) | lake bytes | "
          "cone 1' all columns (median) | cone 1' 7 columns | sum(flux_r) full scan |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rg in [int(x) for x in a.sizes.split(",")]:
        lake = os.path.join(a.workdir, f"rg_{rg}")
        shutil.rmtree(lake, ignore_errors=True)
        t0 = time.perf_counter()
        s = build(paths, lake, "dr9", workers=a.workers, row_group_rows=rg)
        t_build = time.perf_counter() - t0
        files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(layout.hats_dir(os.path.join(lake, "dr9")), "dataset"))
                 for f in fs if f.startswith("Npix=")]
        footer = sum(pq.ParquetFile(f).metadata.serialized_size for f in files)
        ngroups = sum(pq.ParquetFile(f).metadata.num_row_groups for f in files)
        nbytes = sum(os.path.getsize(f) for f in files)

        def cone_times(cols):
            out = []
            for ra, dec in cones:
                cone_search(lake, ra, dec, 1 / 60, "dr9", columns=cols)
                t = time.perf_counter()
                cone_search(lake, ra, dec, 1 / 60, "dr9", columns=cols)
                out.append(time.perf_counter() - t)
            return statistics.median(out)

        t_all = cone_times(None)
        t_few = cone_times(["ra", "dec", "flux_g", "flux_r", "flux_z", "type", "maskbits"])
        con = connect(lake)
        con.sql("SELECT sum(flux_r) FROM dr9").fetchall()
        t = time.perf_counter()
        con.sql("SELECT sum(flux_r) FROM dr9").fetchall()
        t_scan = time.perf_counter() - t
        con.close()
        print(f"| {rg:,} | {t_build:.1f} s | {s.rows / t_build:,.0f} | {ngroups:,} | {footer:,} | {nbytes:,} | "
              f"{t_all * 1e3:.1f} ms | {t_few * 1e3:.1f} ms | {t_scan * 1e3:.0f} ms |", flush=True)
        shutil.rmtree(lake, ignore_errors=True)


if __name__ == "__main__":
    main()
