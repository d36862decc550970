"""ETL CPU per row against the read/write floor, same files, same run (issue 19, item 1).

    python bench/etl_floor.py [--sizes 125,1250] [--rows 4000] [--workdir /tmp/legacylake_bench_etl]

The inputs are simulated DR9 Tractor bricks (all 181 columns, ``--rows`` rows per brick on
average; the same cached files as ``bench/etl_vs_hats_import.py``), the ``N`` bricks nearest
(150, 10) for each ``N`` of ``--sizes``. For each size, two child processes run one after the
other, each with its inputs in the page cache:

* **floor**: one process reads every file with ``fitsio.read`` and writes the same rows with
  one ``pyarrow.parquet.ParquetWriter`` using the lake's writer settings (codec, row-group
  size, statistics, dictionary encoding of the string columns only) (the cheapest
  correct conversion: numpy columns to Arrow arrays, multi-dimensional columns as fixed-size
  lists, FITS strings as Arrow strings); no partitioning, no sorting, no metadata.
* **ours**: ``legacylake.etl.build`` with one worker (in-process): planning, HEALPix
  partitioning and sorting, leaves, margins, ``_metadata``, the snapshot and its publish.

CPU seconds are the child's ``time.process_time`` around the work (imports excluded: each
child first runs its side on one file, so modules imported on first use and numba's cached
kernels load outside the timing; all threads counted); peak RSS is the child's own ``VmHWM``. Prints microseconds of CPU per row for
both, their ratio (the issue's target: ours <= 1.3x the floor) and the peak RSS of each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def vm_hwm_mib() -> float:
    """This process's peak resident memory (VmHWM), MiB: unlike ``ru_maxrss`` it is not inherited
    from the parent at fork, so a small child of a big parent reports its own peak."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def floor(paths: list[str], out: str) -> dict:
    """Read every file with fitsio and write its rows with one pyarrow writer (lake codec)."""
    import fitsio
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from legacylake.etl.task import COMPRESSION, ROW_GROUP_ROWS, dictionary_columns

    def arrow(col: np.ndarray) -> pa.Array:
        if col.dtype.byteorder not in ("=", "|"):   # FITS is big-endian: one byte swap to native
            col = col.astype(col.dtype.newbyteorder("="))
        if col.dtype.kind == "S":
            return pa.array(col).cast(pa.string())
        if col.ndim > 1:
            width = int(np.prod(col.shape[1:]))
            return pa.FixedSizeListArray.from_arrays(pa.array(col.reshape(-1)), width)
        return pa.array(col)

    # warm-up on one file (first-use costs of fitsio and the Parquet writer, as for ours)
    a = fitsio.read(paths[0], ext=1)
    pq.write_table(pa.table([arrow(a[n]) for n in a.dtype.names], names=list(a.dtype.names)), out + "_warmup",
                   compression=COMPRESSION[0], compression_level=COMPRESSION[1])
    os.remove(out + "_warmup")
    c0, t0 = time.process_time(), time.perf_counter()
    writer, rows = None, 0
    for p in paths:
        a = fitsio.read(p, ext=1)
        t = pa.table([arrow(a[n]) for n in a.dtype.names], names=[n.lower() for n in a.dtype.names])
        if writer is None:
            writer = pq.ParquetWriter(out, t.schema, compression=COMPRESSION[0], compression_level=COMPRESSION[1],
                                      write_statistics=True, use_dictionary=dictionary_columns(t.schema))
        writer.write_table(t, row_group_size=ROW_GROUP_ROWS)
        rows += t.num_rows
    writer.close()
    return {"rows": rows, "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0,
            "out_bytes": os.path.getsize(out)}


def ours(paths: list[str], out: str) -> dict:
    """``legacylake etl build`` with one worker (in this process)."""
    from legacylake.etl import build

    # warm-up on one file into a throwaway lake: the modules the build imports on first use
    # (hats for the properties file, ...) and numba's cached kernels load outside the timing
    build(paths[:1], out + "_warmup", "floor", workers=1)
    shutil.rmtree(out + "_warmup")
    c0, t0 = time.process_time(), time.perf_counter()
    s = build(paths, out, "floor", workers=1)
    return {"rows": s.rows, "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0,
            "out_bytes": s.bytes_written}


def run_child(kind: str, paths: list[str], workdir: str) -> dict:
    """Run ``kind`` in a child process (inputs warmed first); its result plus peak RSS (MiB)."""
    from etl_vs_hats_import import stage_run

    out, pf = stage_run(paths, workdir, f"floor_{kind}")
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", kind, "--paths-file", pf,
                             "--out", out], stdout=subprocess.PIPE, text=True)
    _, status, _ = os.wait4(proc.pid, 0)
    text = proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} failed: {text[-2000:]}")
    res = json.loads([ln for ln in text.splitlines() if ln.startswith("RESULT ")][-1][7:])
    shutil.rmtree(out, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="125,1250", help="brick counts to run (comma-separated)")
    ap.add_argument("--rows", type=int, default=4000, help="mean rows per simulated brick")
    ap.add_argument("--workdir", default="/tmp/legacylake_bench_etl")
    ap.add_argument("--child", choices=["floor", "ours"], help=argparse.SUPPRESS)
    ap.add_argument("--paths-file", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        with open(a.paths_file) as fh:
            paths = json.load(fh)
        fn = floor if a.child == "floor" else ours
        out = os.path.join(a.out, "floor.parquet") if a.child == "floor" else a.out
        res = fn(paths, out)
        res["peak_rss_mib"] = vm_hwm_mib()
        print("RESULT " + json.dumps(res), flush=True)
        return
    from etl_vs_hats_import import make_sim_inputs

    sizes = [int(x) for x in a.sizes.split(",")]
    pr = make_sim_inputs(os.path.join(a.workdir, "sim"), max(sizes), a.rows)
    print(f"machine: 2 cores, 24 GiB; load average at start {open('/proc/loadavg').read().split()[0]}")
    print("| bricks | rows | floor CPU us/row (wall s, peak RSS) | ours, 1 worker, CPU us/row (wall s, peak RSS) "
          "| ours / floor (CPU) |\n|---|---|---|---|---|")
    for n in sizes:
        paths = [p for p, _ in pr[:n]]
        f = run_child("floor", paths, a.workdir)
        o = run_child("ours", paths, a.workdir)
        assert f["rows"] == o["rows"], (f["rows"], o["rows"])
        us_f, us_o = 1e6 * f["cpu_s"] / f["rows"], 1e6 * o["cpu_s"] / o["rows"]
        print(f"| {n} | {f['rows']:,} | {us_f:.1f} ({f['wall_s']:.1f} s, {f['peak_rss_mib']:.0f} MiB) | "
              f"{us_o:.1f} ({o['wall_s']:.1f} s, {o['peak_rss_mib']:.0f} MiB) | {us_o / us_f:.2f}x |", flush=True)
    print(f"(load average at end {open('/proc/loadavg').read().split()[0]})")


if __name__ == "__main__":
    main()
