"""Benchmark: rows/s of `legacylake simulate catalogs` (simulate + write) on one core, and the
FITS writing alone against astropy ``Table.write`` of the same rows.

    python bench/simulate_speed.py [--bricks 60] [--out /tmp/simbench] [--peer-bricks 10] [--keep]

Bricks are a contiguous block at high Galactic latitude (default density, ~4,500 rows each),
one process (workers=1). Files are deleted after each brick so the run needs little disk
(``--keep`` leaves them: 2.1 kB a row). CPU time is the process's user + system time (the
file write is mostly kernel time), the honest per-core figure on a shared machine. The
astropy comparison runs on the first ``--peer-bricks`` bricks only (it is ~7x slower).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bricks", type=int, default=60)
    ap.add_argument("--out", default=None)
    ap.add_argument("--release", default="dr9")
    ap.add_argument("--peer-bricks", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="keep the files written (needs disk: 2.1 kB/row)")
    args = ap.parse_args()
    from astropy.table import Table

    from legacylake.catalogs_schema import model
    from legacylake.photometry.sim import catalog as sim
    from legacylake.photometry.sim.fitswriter import write_table

    out = args.out or tempfile.mkdtemp(prefix="simbench")
    names = sim.bricks_for_box(150.0, 200.0, 2.0, 12.0)[: args.bricks]
    dm = model(f"{args.release}-tractor")
    # warm-up, reported separately: brick grid, data model, numba kernels (compiled on the first
    # run ever, loaded from numba's on-disk cache afterwards)
    w0 = time.perf_counter()
    sim.write_brick(out, names[0], args.release)
    t_warm = time.perf_counter() - w0
    os.remove(sim.brick_path(out, names[0]))
    t_sim = t_ours = t_peer = 0.0
    c_sim = 0.0
    rows = peer_rows = 0
    nbytes = 0
    for i, name in enumerate(names):
        c0, w0 = time.process_time(), time.perf_counter()
        path, n = sim.write_brick(out, name, args.release)
        c_sim += time.process_time() - c0
        t_sim += time.perf_counter() - w0
        rows += n
        nbytes += os.path.getsize(path)
        if not args.keep:
            os.remove(path)
        if i >= args.peer_bricks:
            continue
        peer_rows += n
        path = os.path.join(out, "peer.fits")
        arr = sim.simulate_brick(name, args.release)
        w0 = time.perf_counter()
        write_table(path, arr, dm)
        t_ours += time.perf_counter() - w0
        os.remove(path)
        up = arr.copy()
        up.dtype.names = [n.upper() for n in up.dtype.names]
        w0 = time.perf_counter()
        Table(up, copy=False).write(path, overwrite=True)
        t_peer += time.perf_counter() - w0
        os.remove(path)
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)
    print(f"warm-up (first brick, incl. numba JIT/cache load): {t_warm:.2f} s")
    print(f"bricks {len(names)}, rows {rows:,} ({rows / len(names):,.0f}/brick), {nbytes / rows:,.0f} bytes/row, "
          f"{nbytes / 1e9:.2f} GB")
    print(f"simulate+write (ours): {t_sim:.2f} s wall, {c_sim:.2f} s CPU -> {rows / t_sim:,.0f} rows/s wall, "
          f"{rows / c_sim:,.0f} rows/s CPU ({1e3 * c_sim / len(names):.1f} ms CPU/brick; 10 M rows: "
          f"{1e7 / rows * c_sim:.0f} s CPU)")
    if peer_rows:
        print(f"FITS write only ({min(args.peer_bricks, len(names))} bricks, from the native array): ours "
              f"{t_ours:.2f} s ({peer_rows / t_ours:,.0f} rows/s); astropy Table.write {t_peer:.2f} s "
              f"({peer_rows / t_peer:,.0f} rows/s); ratio {t_peer / t_ours:.1f}x")


if __name__ == "__main__":
    main()
