"""Export benchmark: ``legacylake export sweeps`` against the floor, a plain read-and-write of
the same rows and columns (the leaves' brick_primary rows read with pyarrow and written with
the same FITS writer to three files: the sweep columns, the light curves, the other Tractor
columns; no boxes), in the same run, each in its own subprocess (wall time, rows/s, peak RSS).

    python bench/export.py --bricks 24 --rows 5000

The lake is built once by ``legacylake etl build`` from simulated full-width DR9 Tractor
bricks (``legacylake.query.synthlake.write_fits_bricks``) around RA 0, Dec 0, so the export
crosses four sweep boxes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def setup(work: Path, nbricks: int, rows: int) -> Path:
    lake = work / "lake"
    if (work / "done").exists():
        return lake

    from legacylake.catalogs_schema import bricks
    from legacylake.etl import build
    from legacylake.query.synthlake import write_fits_bricks

    g = bricks.grid()
    ids = bricks.bricks_in_box(359.0, 1.0, -0.6, 0.6) - 1
    names = [str(n) for n in g["brickname"][ids][:nbricks]]
    write_fits_bricks(work / "fits", names, rows, seed=1)
    s = build(str(work / "fits"), str(lake), "dr9", workers=2)
    assert s.ok, s.rejects
    (work / "done").write_text("ok")
    return lake


def run_export(lake: str, out: str) -> dict:
    from legacylake.query.export.sweeps import export_sweeps

    t0 = time.perf_counter()
    s = export_sweeps(lake, "dr9", out)
    return {"seconds": time.perf_counter() - t0, "rows": s.rows, "files": len(s.files)}


def run_floor(lake: str, out: str) -> dict:
    import pyarrow.parquet as pq

    from legacylake.query.export.fitswrite import FitsAppender
    from legacylake.query.export.sweeps import _models
    from legacylake.query.lake import catalogs

    t0 = time.perf_counter()
    cat = catalogs(lake)["dr9"]
    _, main, lc, ex, _ = _models(cat)
    sets = {"all.fits": main, "all-lc.fits": lc, "all-ex.fits": ex}
    writers = {n: FitsAppender(os.path.join(out, n), cols, "SWEEP") for n, cols in sets.items() if cols}
    want = list(dict.fromkeys([c.name for cols in sets.values() for c in cols] + ["brick_primary"]))
    for f in cat.files:
        t = pq.read_table(f, columns=want)
        t = t.filter(t["brick_primary"])
        for w in writers.values():
            w.append(t, f)
    rows = [w.close() for w in writers.values()][0]
    return {"seconds": time.perf_counter() - t0, "rows": rows, "files": len(writers)}


def child(kind: str, lake: str, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    res = (run_export if kind == "export" else run_floor)(lake, out)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bricks", type=int, default=24)
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--work", default=str(Path(__file__).parent / "_work" / "export"))
    ap.add_argument("--child", nargs=3, metavar=("KIND", "LAKE", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    lake = setup(work, a.bricks, a.rows)
    for kind in ("floor", "export", "floor", "export"):
        out = work / f"out_{kind}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        r = subprocess.run([sys.executable, __file__, "--child", kind, str(lake), str(out)],
                           capture_output=True, text=True, check=True)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{kind:7s} {res['rows']:>9,} rows {res['files']:>3} files {res['seconds']:7.2f} s "
              f"{res['rows'] / res['seconds']:>12,.0f} rows/s  peak RSS {res['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
