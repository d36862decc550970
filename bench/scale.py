"""Build and query at growing size: time and peak memory per stage (issue 19, items 3 and 4).

    python bench/scale.py [--bricks 1250,2500,4500] [--work /tmp/legacylake_scale]
                          [--dask 1,2] [--spark] [--keep]

For each brick count ``N`` (ascending), the ~N simulated DR9 bricks of the box RA 150..150+s,
Dec 0..s (s = 0.25 sqrt(N) deg; ~4,700 rows per brick, all 181 DR9 columns) go through:

* **simulate**: ``legacylake simulate catalogs --workers 2`` (Tractor FITS files);
* **build**: ``legacylake etl build --workers 2`` (HATS collection with its 10" margin);
* **query**: in one fresh process, the 1-arcmin cone (all columns, warm: median of 5 at each
  of 3 centres after one untimed call), the full-scan aggregate below through
  ``legacylake.query.query`` (DuckDB; first run = cold process, then the median of 3), and
  ``count(*)``;
* **spark** (``--spark``): the same aggregate and count in Spark SQL (local[2]) over the
  views of ``legacylake.query.spark.register_lake`` with the function library registered
  (session start-up excluded; first run and median of 3).

Each stage is a child process; its wall time, CPU (user + system of it and every process it
waited for) and peak RSS (the largest of those processes, ``ru_maxrss`` from ``wait4``) are
printed as a table row. The FITS are deleted after the build, the lake after the queries
(unless ``--keep``), so the disk holds one size at a time.

``--dask 1,2`` builds the smallest size's FITS again on a Dask ``LocalCluster`` of 1 and 2
worker processes (one thread each; cluster start-up excluded) and prints the speed-up, next to
the same build on our own process pool (``--workers 2``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

AGG = """
SELECT type, count(*) AS n, avg(dered_mag(flux_r, mw_transmission_r)) AS mean_mag_r
FROM dr9
WHERE no_maskbits(maskbits, 'BRIGHT,GALAXY,CLUSTER') AND snr(flux_r, flux_ivar_r) > 5
GROUP BY type ORDER BY type
"""


def sim_box(nbricks: int) -> tuple[float, float, float, float]:
    """RA/Dec box (deg) holding ~``nbricks`` bricks."""
    side = 0.25 * math.sqrt(nbricks)
    return 150.0, 150.0 + side, 0.0, side


def run_stage(cmd: list[str]) -> dict:
    """Run ``cmd``; its wall s, CPU s (it and its waited-for descendants), peak RSS (MiB) and
    the JSON its last ``RESULT`` line carries (if any)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({' '.join(cmd[:6])} ...): {out[-2000:]}")
    res = [json.loads(ln[7:]) for ln in out.splitlines() if ln.startswith("RESULT ")]
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss": ru.ru_maxrss / 1024, **(res[-1] if res else {})}


def child_query(lake: str) -> dict:
    """Cone and aggregate timings on ``lake`` (DuckDB, this process)."""
    from legacylake.query import query
    from legacylake.query.lake import catalogs
    from legacylake.query.spatial.search import cone_search

    cat = catalogs(lake)["dr9"]
    t0 = time.perf_counter()
    agg = query(lake, AGG).to_pylist()
    first = time.perf_counter() - t0
    aggs = []
    for _ in range(3):
        t0 = time.perf_counter()
        query(lake, AGG)
        aggs.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = query(lake, "SELECT count(*) AS n FROM dr9").to_pylist()[0]["n"]
    count = time.perf_counter() - t0
    ra1, ra2, d1, d2 = (float(x) for x in os.environ["SCALE_BOX"].split(","))
    cones = []
    for f in (0.3, 0.5, 0.7):
        ra0, dec0 = ra1 + f * (ra2 - ra1), d1 + f * (d2 - d1)
        cone_search(cat, ra0, dec0, 1 / 60)
        for _ in range(5):
            t0 = time.perf_counter()
            cone_search(cat, ra0, dec0, 1 / 60)
            cones.append(time.perf_counter() - t0)
    return {"rows": n, "agg": agg, "agg_first_s": first, "agg_s": statistics.median(aggs), "count_s": count,
            "cone_ms": 1e3 * statistics.median(cones)}


def child_spark(lake: str) -> dict:
    """The aggregate and count in Spark SQL over ``register_lake``'s views."""
    from pyspark.sql import SparkSession

    from legacylake.query import spark as lspark

    spark = (SparkSession.builder.master("local[2]").appName("legacylake-scale")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
             .config("spark.driver.memory", "4g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    lspark.register(spark)
    lspark.register_lake(spark, lake)
    t0 = time.perf_counter()
    agg = [r.asDict() for r in lspark.sql(spark, AGG).collect()]
    first = time.perf_counter() - t0
    aggs = []
    for _ in range(3):
        t0 = time.perf_counter()
        lspark.sql(spark, AGG).collect()
        aggs.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = spark.sql("SELECT count(*) AS n FROM dr9").collect()[0]["n"]
    count = time.perf_counter() - t0
    spark.stop()
    return {"rows": n, "agg": agg, "agg_first_s": first, "agg_s": statistics.median(aggs), "count_s": count}


def child_dask(fits: str, lake: str, workers: int) -> dict:
    """``etl.build`` on a Dask LocalCluster of ``workers`` processes (start-up not timed)."""
    from distributed import LocalCluster

    from legacylake.etl import build

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        t0 = time.perf_counter()
        s = build(fits, lake, "dr9", scheduler=cl.scheduler_address)
        wall = time.perf_counter() - t0
    assert s.ok, s.rejects
    return {"rows": s.rows, "build_s": wall}


def _same_agg(a: list, b: list) -> bool:
    """The DuckDB and Spark aggregates agree (counts exactly, means to 1e-9)."""
    if [(r["type"], r["n"]) for r in a] != [(r["type"], r["n"]) for r in b]:
        return False
    return all(math.isclose(x["mean_mag_r"], y["mean_mag_r"], rel_tol=1e-9) for x, y in zip(a, b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bricks", default="1250,2500,4500", help="brick counts, comma-separated")
    ap.add_argument("--work", default="/tmp/legacylake_scale")
    ap.add_argument("--dask", default="", help="Dask worker counts for the smallest size (e.g. 1,2)")
    ap.add_argument("--spark", action="store_true", help="also time Spark SQL on each lake")
    ap.add_argument("--keep", action="store_true", help="keep each lake")
    ap.add_argument("--child", choices=["query", "spark", "dask"], help=argparse.SUPPRESS)
    ap.add_argument("--lake", help=argparse.SUPPRESS)
    ap.add_argument("--fits", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        res = {"query": lambda: child_query(a.lake), "spark": lambda: child_spark(a.lake),
               "dask": lambda: child_dask(a.fits, a.lake, a.workers)}[a.child]()
        print("RESULT " + json.dumps(res), flush=True)
        return

    py = sys.executable
    me = os.path.abspath(__file__)
    print(f"machine: 2 cores, 24 GiB; load average at start {open('/proc/loadavg').read().split()[0]}")
    print("| bricks | rows | simulate s (peak RSS) | build wall s, CPU s, us CPU/row (peak RSS) | lake GB | "
          "1' cone all cols, warm ms | aggregate DuckDB first / warm s | count DuckDB s | "
          "Spark aggregate first / warm s, count s | query process peak RSS |\n|---|---|---|---|---|---|---|---|---|---|",
          flush=True)
    sizes = [int(x) for x in a.bricks.split(",")]
    for i, n in enumerate(sizes):
        work = os.path.join(a.work, f"b{n}")
        shutil.rmtree(work, ignore_errors=True)
        box = sim_box(n)
        fits, lake = os.path.join(work, "sim"), os.path.join(work, "lake")
        sim = run_stage([py, "-m", "legacylake", "simulate", "catalogs", "--out", fits, "--box",
                         *[str(x) for x in box], "--workers", "2"])
        tractor = os.path.join(fits, "tractor")
        bld = run_stage([py, "-m", "legacylake", "etl", "build", "--lake", lake, "--catalog", "dr9",
                         "--workers", "2", "--quiet", tractor])
        if i == 0 and a.dask:
            own = bld["wall"]
            print(f"\nDask LocalCluster builds of the same {n} bricks' FITS (our process pool, --workers 2: "
                  f"{own:.1f} s):", flush=True)
            walls = {}
            for w in (int(x) for x in a.dask.split(",")):
                dl = os.path.join(work, f"lake_dask{w}")
                r = run_stage([py, me, "--child", "dask", "--fits", tractor, "--lake", dl, "--workers", str(w)])
                walls[w] = r["build_s"]
                shutil.rmtree(dl, ignore_errors=True)
                print(f"  {w} Dask worker(s): {r['rows']:,} rows, build {r['build_s']:.1f} s "
                      f"({r['rows'] / r['build_s']:,.0f} rows/s), speed-up vs 1 worker "
                      f"{walls[min(walls)] / r['build_s']:.2f}x; peak RSS of the client process {r['rss']:.0f} MiB (workers not counted)",
                      flush=True)
            print(flush=True)
        shutil.rmtree(fits, ignore_errors=True)
        gb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(lake) for f in fs) / 1e9
        os.environ["SCALE_BOX"] = ",".join(str(x) for x in box)
        q = run_stage([py, me, "--child", "query", "--lake", lake])
        sp = ""
        if a.spark:
            s = run_stage([py, me, "--child", "spark", "--lake", lake])
            assert s["rows"] == q["rows"] and _same_agg(q["agg"], s["agg"]), "Spark and DuckDB disagree"
            sp = f"{s['agg_first_s']:.1f} / {s['agg_s']:.1f}, {s['count_s']:.2f}"
        rows = q["rows"]
        print(f"| {n} | {rows:,} | {sim['wall']:.0f} ({sim['rss']:.0f} MiB) | {bld['wall']:.0f}, {bld['cpu']:.0f}, "
              f"{1e6 * bld['cpu'] / rows:.1f} ({bld['rss']:.0f} MiB) | {gb:.1f} | {q['cone_ms']:.1f} | "
              f"{q['agg_first_s']:.2f} / {q['agg_s']:.2f} | {q['count_s']:.3f} | {sp} | {q['rss']:.0f} MiB |",
              flush=True)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"(load average at end {open('/proc/loadavg').read().split()[0]})")


if __name__ == "__main__":
    main()
