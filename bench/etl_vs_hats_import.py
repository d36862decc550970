"""Benchmark: ``legacylake etl build`` vs hats-import on the same DR9 Tractor FITS files.

    python bench/etl_vs_hats_import.py --bricks 500 --rows 4000 [--sizes 0.25,1] [--workers 2]
        [--input sim|random] [--peer collection|catalog] [--peer-codecs default,lz4] [--baseline-python PY]

Writes DR9 tractor files (all 181 columns) for a compact block of bricks near (150, 10):
by default simulated bricks (``legacylake.photometry.sim.catalog.write_bricks``, a realistic
sky; ``--rows`` sets the mean rows per brick through the source density), or with
``--input random`` schema-valid random tables (positions, brick ids and object ids
consistent with the brick grid, exactly ``--rows`` rows per brick). Then runs each
tool in its own child process, one after the other, sampling the resident memory of the
whole process tree (the child and all its workers) every 0.1 s. Prints rows/s of each, the
ratio, peak RSS, CPU seconds of the process tree and output bytes, for each input size
(``--sizes`` are fractions of ``--bricks``).

Every run starts with its inputs in the page cache (read once just before). Both tools
make the same product: a HATS collection with a 10-arcsec margin catalog
(``--peer collection``: hats-import's ``CollectionArguments`` with ``add_margin``; ``--peer
catalog`` runs hats-import without the margin, as earlier rounds did). Ours writes LZ4 leaves;
hats-import runs once per ``--peer-codecs`` entry: ``default`` (its own defaults: zstd level 15,
byte-stream-split floats) and ``lz4`` (its ``write_table_kwargs={"compression": "lz4"}``, the
codec ours writes), each reported with wall seconds, CPU seconds of the process tree and output
bytes, and the ratios against ours from the same run. ``--baseline-python``
runs ``legacylake etl build`` a second time in the same run with another interpreter (e.g. a
venv holding an older checkout), for an A/B of our own code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np


def patch_bricks(nbricks: int) -> np.ndarray:
    """Grid indices of the ``nbricks`` DR9 bricks nearest (150, 10), nearest first (so any
    prefix is a compact patch)."""
    from legacylake.catalogs_schema import bricks

    g = bricks.grid()
    sel = np.where((np.abs(g["dec"] - 10.0) < 4.0) & (g["ra"] > 145.0) & (g["ra"] < 155.0))[0]
    d2 = (g["ra"][sel] - 150.0) ** 2 + (g["dec"][sel] - 10.0) ** 2
    return sel[np.argsort(d2)][:nbricks]


def make_sim_inputs(outdir: str, nbricks: int, rows: int, seed: int = 1, workers: int = 2) -> list[tuple[str, int]]:
    """Simulated DR9 bricks (``legacylake.photometry.sim.catalog``) of about ``rows`` rows each
    (cached on disk); returns [(path, rows)] nearest-first."""
    import fitsio
    from legacylake.catalogs_schema import bricks
    from legacylake.photometry.sim.catalog import brick_path, write_bricks

    g = bricks.grid()
    names = [str(g["brickname"][i]) for i in patch_bricks(nbricks)]
    todo = [n for n in names if not os.path.exists(brick_path(outdir, n))]
    if todo:
        # calibrate the source density (sources per deg^2) on the first brick: the
        # simulator's detection and selection keep a fraction of the truth sources
        from legacylake.photometry.sim.catalog import simulate_brick
        d0 = 80_000.0
        got = len(simulate_brick(names[0], "dr9", seed=seed, density=d0))
        density = d0 * rows / max(1, got)
        write_bricks(outdir, todo, "dr9", seed=seed, density=density, workers=workers)
    out = []
    for n in names:
        p = brick_path(outdir, n)
        out.append((p, int(fitsio.read_header(p, 1)["NAXIS2"])))
    return out


def make_inputs(outdir: str, nbricks: int, rows: int, seed: int = 1) -> list[str]:
    """``nbricks`` adjacent DR9 bricks near (150, 10) of ``rows`` random rows each (cached on disk)."""
    import fitsio
    from legacylake.catalogs_schema import bricks
    from legacylake.catalogs_schema.random_table import random_brick_table

    g = bricks.grid()
    sel = patch_bricks(nbricks)
    template = random_brick_table(str(g["brickname"][sel[0]]), rows, "dr9-tractor", seed)
    rng = np.random.default_rng(seed)
    udtype = np.dtype([(n.upper(), template.dtype.fields[n][0]) for n in template.dtype.names])
    paths = []
    for i in sel:
        name = str(g["brickname"][i])
        p = os.path.join(outdir, "tractor", name[:3], f"tractor-{name}.fits")
        paths.append(p)
        if os.path.exists(p):
            continue
        arr = template[rng.permutation(rows)]
        half = 0.131
        dec = np.clip(g["dec"][i] + rng.uniform(-half, half, rows), -90, 90)
        ra = np.mod(g["ra"][i] + rng.uniform(-half, half, rows) / np.cos(np.deg2rad(dec)), 360)
        o = np.argsort(ra)
        arr["ra"], arr["dec"] = ra[o], dec[o]
        arr["brickid"] = g["brickid"][i]
        arr["brickname"] = name
        arr["objid"] = np.arange(rows)
        arr["brick_primary"] = bricks.is_primary(arr["ra"], arr["dec"], g["brickid"][i])
        arr = arr.view(udtype)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        fitsio.write(p + ".tmp", arr, clobber=True)
        os.replace(p + ".tmp", p)
    return paths


def run_ours(paths, out, workers, threshold, order):
    from legacylake.etl import build
    s = build(paths, out, "ours", threshold=threshold, highest_order=order, workers=workers)
    return {"rows": s.rows, "partitions": s.partitions, "file_reads": s.file_reads,
            "bytes": s.bytes_written, "rejects": len(s.rejects), "spilled": s.spilled_rows,
            "seam_files": s.seam_files, "peak_held": s.peak_pending_rows}


def run_hats_import(paths, out, workers, threshold, order, margin: bool = True, codec: str = "default"):
    from dask.distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.collection.arguments import CollectionArguments
    from hats_import.pipeline import pipeline_with_client

    kw = dict(input_file_list=paths, file_reader="fits", ra_column="RA", dec_column="DEC",
              pixel_threshold=threshold, highest_healpix_order=order)
    # "default": hats' own writer settings (zstd 15); "lz4": the same codec as ours (level unset)
    writer = {} if codec == "default" else {"write_table_kwargs": {"compression": codec}}
    if margin:
        args = (CollectionArguments(output_artifact_name="hats_import", output_path=out, progress_bar=False,
                                    resume=False, tmp_dir=os.path.join(out, "tmp"), **writer)
                .catalog(**kw).add_margin(margin_threshold=10.0, is_default=True))
    else:
        args = ImportArguments(output_artifact_name="hats_import", output_path=out, progress_bar=False,
                               resume=False, tmp_dir=os.path.join(out, "tmp"), **writer, **kw)
    with Client(n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None) as client:
        pipeline_with_client(args, client)
    return {"rows": None}


def child(tool: str, paths_file: str, out: str, workers: int, threshold: int, order: int,
          codec: str = "default") -> None:
    with open(paths_file) as fh:
        paths = json.load(fh)
    t0 = time.time()
    if tool == "ours":
        res = run_ours(paths, out, workers, threshold, order)
    else:
        res = run_hats_import(paths, out, workers, threshold, order, margin=tool == "hats_import", codec=codec)
    res["seconds"] = time.time() - t0
    print("RESULT " + json.dumps(res), flush=True)


def tree_rss(pid: int, per_proc: dict | None = None) -> int:
    """RSS of a process and all its descendants, bytes; ``per_proc`` keeps each one's peak."""
    import psutil
    try:
        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for q in procs:
        try:
            r = q.memory_info().rss
        except psutil.NoSuchProcess:
            continue
        total += r
        if per_proc is not None:
            per_proc[q.pid] = max(per_proc.get(q.pid, 0), r)
    return total


def tree_bytes(path: str) -> int:
    """Bytes of the distinct files under ``path`` (hard links counted once)."""
    seen, total = set(), 0
    for r, _, names in os.walk(path):
        for n in names:
            st = os.lstat(os.path.join(r, n))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


def warm(paths) -> None:
    """Read every input once, so each tool starts with its inputs in the page cache (the
    inputs fit in RAM; without this the tool run after a memory-hungry one reads from disk)."""
    for p in paths:
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass


def stage_run(paths, workdir: str, name: str) -> tuple[str, str]:
    """Warm the inputs, make an empty output folder ``workdir/out_<name>`` and write the input
    list to ``workdir/<name>_paths.json``, for a child process; returns (output folder, list file)."""
    warm(paths)
    out = os.path.join(workdir, f"out_{name}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    pf = os.path.join(workdir, f"{name}_paths.json")
    with open(pf, "w") as fh:
        json.dump(paths, fh)
    return out, pf


def measure(tool, paths, workdir, workers, threshold, order, python=None, codec: str = "default"):
    out, pf = stage_run(paths, workdir, tool)
    cmd = [python or sys.executable, os.path.abspath(__file__), "--child", tool, "--paths-file", pf, "--out", out,
           "--workers", str(workers), "--threshold", str(threshold), "--order", str(order), "--codec", codec]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0
    per_proc: dict = {}
    rusage = None
    while rusage is None:
        peak = max(peak, tree_rss(proc.pid, per_proc))
        time.sleep(0.1)
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            rusage, proc.returncode = ru, os.waitstatus_to_exitcode(status)
    outtxt = proc.stdout.read()
    line = [l for l in outtxt.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise SystemExit(f"{tool} failed (exit {proc.returncode}): {outtxt[-2000:]}")
    res = json.loads(line[-1][7:])
    res["peak_rss_mib"] = peak / 2**20
    res["main_mib"] = per_proc.get(proc.pid, 0) / 2**20
    others = sorted((v for k, v in per_proc.items() if k != proc.pid), reverse=True)
    res["largest_child_mib"] = others[0] / 2**20 if others else 0.0
    res["cpu_s"] = rusage.ru_utime + rusage.ru_stime   # the child and the workers it reaped
    res["out_bytes"] = tree_bytes(out)
    shutil.rmtree(out, ignore_errors=True)
    return res


def _median_run(runs: list) -> dict:
    """The run with the median time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bricks", type=int, default=500)
    ap.add_argument("--rows", type=int, default=4000, help="rows per brick (mean, for --input sim)")
    ap.add_argument("--input", choices=["sim", "random"], default="sim",
                    help="simulated bricks (legacylake.photometry.sim.catalog) or random schema-valid tables")
    ap.add_argument("--sizes", default="0.25,1", help="fractions of --bricks to run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threshold", type=int, default=1_000_000)
    ap.add_argument("--order", type=int, default=10, help="highest HEALPix order")
    ap.add_argument("--workdir", default="/tmp/legacylake_bench_etl")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--peer", choices=["collection", "catalog"], default="collection",
                    help="hats-import with a 10-arcsec margin (collection, as ours) or the catalog alone")
    ap.add_argument("--baseline-python", default=None, metavar="PY",
                    help="also run ours with this interpreter (an older checkout), same run")
    ap.add_argument("--ab-repeat", type=int, default=2,
                    help="with --baseline-python: pairs of runs, alternating which goes first (A B B A ...)")
    ap.add_argument("--peer-codecs", default="default,lz4",
                    help="hats-import runs: 'default' (its zstd 15) and/or 'lz4' (ours' codec), comma-separated")
    ap.add_argument("--child", choices=["ours", "hats_import", "hats_import_catalog"])
    ap.add_argument("--codec", default="default", help=argparse.SUPPRESS)
    ap.add_argument("--paths-file")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.paths_file, a.out, a.workers, a.threshold, a.order, a.codec)
        return
    os.makedirs(a.workdir, exist_ok=True)
    t = time.time()
    if a.input == "sim":
        pr = make_sim_inputs(os.path.join(a.workdir, "sim"), a.bricks, a.rows, workers=a.workers)
        paths, counts = [p for p, _ in pr], [n for _, n in pr]
        kind = "simulated"
    else:
        paths = make_inputs(os.path.join(a.workdir, "in"), a.bricks, a.rows)
        counts, kind = [a.rows] * len(paths), "random"
    print(f"inputs: {len(paths)} {kind} DR9 tractor files, {sum(counts):,} rows x 181 columns "
          f"({sum(os.path.getsize(p) for p in paths) / 2**30:.2f} GiB), ready in {time.time() - t:.0f} s")
    for frac in [float(x) for x in a.sizes.split(",")]:
        sub = paths[: max(1, int(round(frac * len(paths))))]
        nrows = sum(counts[: len(sub)])
        print(f"\n== {len(sub)} bricks, {nrows:,} rows ==")
        # with a baseline: ours and the baseline alternate, A B B A ... (``--ab-repeat`` pairs), so
        # that neither always runs first; each is reported as its median
        order = ["ours"] if not a.baseline_python else \
            [x for i in range(a.ab_repeat) for x in (("ours", "base") if i % 2 == 0 else ("base", "ours"))]
        runs: dict = {"ours": [], "base": []}
        for who in order:
            runs[who].append(measure("ours", sub, a.workdir, a.workers, a.threshold, a.order,
                                     python=a.baseline_python if who == "base" else None))
        ours = _median_run(runs["ours"])
        r_ours = nrows / ours["seconds"]
        print(f"legacylake etl : {ours['seconds']:7.1f} s  {r_ours:9,.0f} rows/s  peak RSS {ours['peak_rss_mib']:7.0f} MiB"
              f"  CPU {ours['cpu_s']:7.1f} s  output {ours['out_bytes'] / 2**20:8.1f} MiB"
              f"  ({ours['partitions']} partitions, {ours['file_reads']} file reads of {len(sub)} files, "
              f"{ours['seam_files']} seam files, peak {ours['peak_held']:,} rows held, {ours['spilled']:,} rows spilled)")
        print(f"                 peak RSS of the build process {ours['main_mib']:.0f} MiB, "
              f"of the largest worker {ours['largest_child_mib']:.0f} MiB")
        if a.baseline_python:
            base = _median_run(runs["base"])
            r_base = nrows / base["seconds"]
            print(f"baseline (ours, {a.baseline_python}): {base['seconds']:7.1f} s  {r_base:9,.0f} rows/s  "
                  f"peak RSS {base['peak_rss_mib']:7.0f} MiB  CPU {base['cpu_s']:7.1f} s  "
                  f"output {base['out_bytes'] / 2**20:8.1f} MiB")
            print(f"  runs (s), in order {' '.join(order)}: ours {[round(r['seconds'], 1) for r in runs['ours']]}, "
                  f"baseline {[round(r['seconds'], 1) for r in runs['base']]}")
            print(f"ratio (ours/baseline rows/s, medians): {r_ours / r_base:.3f}x; CPU ratio {ours['cpu_s'] / base['cpu_s']:.3f}")
        if a.skip_peer:
            continue
        tool = "hats_import" if a.peer == "collection" else "hats_import_catalog"
        for codec in a.peer_codecs.split(","):
            peer = measure(tool, sub, a.workdir, a.workers, a.threshold, a.order, codec=codec)
            r_peer = nrows / peer["seconds"]
            label = "zstd 15, its default" if codec == "default" else codec
            print(f"hats-import ({a.peer}, {label}): {peer['seconds']:7.1f} s  {r_peer:9,.0f} rows/s  peak RSS "
                  f"{peer['peak_rss_mib']:7.0f} MiB  CPU {peer['cpu_s']:7.1f} s  "
                  f"output {peer['out_bytes'] / 2**20:8.1f} MiB")
            print(f"  same-run ratios, ours vs hats-import ({label}): wall {peer['seconds'] / ours['seconds']:.2f}x "
                  f"faster, CPU {peer['cpu_s'] / ours['cpu_s']:.2f}x less, output "
                  f"{ours['out_bytes'] / peer['out_bytes']:.2f}x the bytes")


if __name__ == "__main__":
    main()
