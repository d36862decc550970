"""Benchmark: simulate a brick's CCD images with GalSim, run `photometry run-brick`, validate.

    python bench/runbrick.py [--brick 1501p020 | --crowded] [--size PIX] [--workers 2] [--run-workers 2]
                             [--reuse] [--validate-only] [--out bench/_work/runbrick-<brick>]

Reports seconds per brick (per stage; wall and CPU incl. child processes) and per 1,000
catalog sources, completeness at S/N 8, purity, star/galaxy accuracy at S/N > 50, and flux
pulls against the truth per truth type and band (``photometry.brick.validate.flux_pulls``: isolated
matched sources at S/N > 20, marginalised sigma). ``--crowded`` is brick 0926m020 at
Galactic (l, b) = (210, -10) deg, where the simulator's star counts are 2.9x those of the
default high-latitude brick 1501p020 (b = +42). ``--validate-only`` validates an existing
run in --out without simulating or fitting. The Tractor is not installable here; for scale the
per-source figure of its joint fit with a pixelized PSF from the image-model issue
(25 ms/source, bench/RESULTS.md "photometry speed"; another run on another machine, so not a
same-run ratio) is printed next to ours, labelled so. Note that
run-brick fits every source several times (stage-1 fit, 2-5 candidate models, final fit).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

TRACTOR_MS_PER_SOURCE_FIT = 25.0
CROWDED_BRICK = "0926m020"  # (l, b) = (210, -10) deg


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (forked blob fitters)."""
    import resource
    return sum(resource.getrusage(w).ru_utime + resource.getrusage(w).ru_stime
               for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--brick", default="1501p020")
    ap.add_argument("--crowded", action="store_true", help=f"the low-latitude brick {CROWDED_BRICK} (b = -10 deg)")
    ap.add_argument("--size", type=int, default=None, help="central PIX x PIX region (default: full brick)")
    ap.add_argument("--workers", type=int, default=2, help="processes for the GalSim rendering")
    ap.add_argument("--out", default=None, help="default bench/_work/runbrick-<brick>")
    ap.add_argument("--run-workers", type=int, default=1, help="processes fitting blobs in run-brick")
    ap.add_argument("--reuse", action="store_true", help="reuse images already simulated in --out")
    ap.add_argument("--validate-only", action="store_true", help="only validate the run already in --out")
    a = ap.parse_args()
    if a.crowded:
        a.brick = CROWDED_BRICK
    a.out = a.out or os.path.join(os.path.dirname(__file__), "_work", f"runbrick-{a.brick}")
    from legacylake.photometry.brick.validate import flux_pulls, format_pulls, validate
    from legacylake.photometry.brick.run import run_brick
    from legacylake.photometry.sim.images import simulate_images
    img, out = os.path.join(a.out, "images"), os.path.join(a.out, "out")
    if (a.reuse or a.validate_only) and os.path.exists(os.path.join(img, f"gaia-{a.brick}.fits")):
        import fitsio
        h = fitsio.read_header(os.path.join(img, f"truth-{a.brick}.fits"), 1)
        s = {"region": (h["RX0"], h["RX1"], h["RY0"], h["RY1"])}
        print("simulate images: reused")
    elif a.validate_only:
        raise SystemExit(f"--validate-only: no simulated images of {a.brick} in {img}")
    else:
        shutil.rmtree(a.out, ignore_errors=True)
        t, c0 = time.time(), _cpu()
        s = simulate_images(a.brick, img, size=a.size, workers=a.workers)
        t_sim = time.time() - t
        print(f"simulate images: {len(s['exposures'])} exposures, {s['truth_rows']} truth sources, {t_sim:.1f} s wall, "
              f"{_cpu() - c0:.1f} s CPU")
    if not a.validate_only:
        c0 = _cpu()
        r = run_brick(a.brick, img, out, progress=False, workers=a.run_workers)
        cpu = _cpu() - c0
        n = max(r["rows"], 1)
        print(f"run-brick {a.brick} region {s['region']}: {r['rows']} sources, {r['peaks']} peaks, {r['blobs']} blobs, "
              f"{r['refs']} Gaia refs, {r['iterative_kept']} iterative")
        print("stages: " + ", ".join(f"{k} {x:.1f} s" for k, x in r["stages"].items()))
        print(f"seconds per brick(region): {r['seconds']:.1f} wall, {cpu:.1f} CPU; per 1000 sources: "
              f"{1000 * r['seconds'] / n:.1f} s wall, {1000 * cpu / n:.1f} s CPU "
              f"({cpu / n * 1000:.0f} CPU ms/source all stages; Tractor single joint fit, other run (published "
              f"figure, not same-run) {TRACTOR_MS_PER_SOURCE_FIT:.0f} ms/source for scale, ratio ours/Tractor "
              f"{cpu / n * 1000 / TRACTOR_MS_PER_SOURCE_FIT:.1f}x, not same-run)")
        print(f"types: {r['types']}")
    v = validate(img, out, a.brick)
    print(f"validation: completeness(S/N>8) {v['completeness_sn8']:.3f} of {v['n_truth_sn8']}, purity "
          f"{v['purity']:.3f} of {v['n_catalog']}, star/galaxy(S/N>50) {v['star_galaxy_sn50']:.3f} of {v['n_sn50']}")
    print(format_pulls(flux_pulls(img, out, a.brick)))


if __name__ == "__main__":
    main()
