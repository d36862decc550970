"""Benchmark: run-brick on the survey's real test bricks (../shared/data), as the survey's own
pipeline tests call them, and the checks that need no truth table.

    python bench/runbrick_survey.py [--data ../shared/data] [--out bench/_work/survey] [--only testcase9]

Per brick: sources (types), seconds (wall, CPU), exposures per camera; Gaia stars (G < 20) in
the box and found; per camera the median offset to Gaia at the exposures' epochs (stars fitted
freely on that camera's exposures); where a folder has no usable Gaia star, the offsets of
the point sources between cameras (each camera's fit against the catalog's joint position)
and, for testcase9, the SGA galaxy's fitted centre against its Gaia nucleus; chi2/dof of the
per-exposure forced fluxes of point sources outside bright-star / galaxy masks, pooled per
S/N bin (with and without a fitted constant background per exposure).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

#: folder, target arguments (the survey's runbrick_test.py calls), brick name of the output
BRICKS = [
    ("legacypipe-testcase3", ["--brick", "2447p120", "--zoom", "1020", "1070", "2775", "2815"], "2447p120"),
    ("legacypipe-testcase6", ["--brick", "1102p240", "--zoom", "500", "600", "650", "750"], "1102p240"),
    ("legacypipe-testcase9", ["--radec", "9.1228", "3.3975", "--width", "100", "--height", "100"], "custom-009122p03397"),
    ("legacypipe-testcase9", ["--brick", "0091p035", "--zoom", "1950", "2050", "340", "440"], "0091p035"),
    ("legacypipe-mzlsbass3", ["--brick", "2173p350", "--zoom", "100", "200", "100", "200"], "2173p350"),
]


def _cpu() -> float:
    return sum(resource.getrusage(w).ru_utime + resource.getrusage(w).ru_stime
               for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def main() -> None:
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data", default=os.environ.get("LEGACYLAKE_SHARED_DATA",
                                                     os.path.join(here, "..", "..", "shared", "data")))
    ap.add_argument("--out", default=os.path.join(here, "_work", "survey"))
    ap.add_argument("--only", default=None, help="run only folders whose name contains this")
    a = ap.parse_args()
    import fitsio
    import numpy as np

    from legacylake.main import main as cli
    from legacylake.photometry.brick import validate_real as v
    # warm the numba kernels so that the first brick's time is not the compilation's
    t = time.time()
    cli(["photometry", "run-brick", *BRICKS[0][1], "--images", os.path.join(a.data, BRICKS[0][0]),
         "--out", os.path.join(a.out, "warmup")])
    print(f"warm-up (numba compilation, first brick): {time.time() - t:.1f} s\n")
    for folder, args, name in BRICKS:
        if a.only and a.only not in folder:
            continue
        d = os.path.join(a.data, folder)
        out = os.path.join(a.out, folder + "-" + name)
        t, c0 = time.time(), _cpu()
        assert cli(["photometry", "run-brick", *args, "--images", d, "--out", out]) == 0
        wall, cpu = time.time() - t, _cpu() - c0
        c = fitsio.read(os.path.join(out, "tractor", name[:3], f"tractor-{name}.fits"))
        types = {str(k): int(n) for k, n in zip(*np.unique(np.char.strip(c["TYPE"].astype(str)), return_counts=True))}
        data = v.load(d, out, name)
        cams = {}
        for e in data[2]:
            cams.setdefault(e.camera, []).append(e)
        print(f"== {folder}: legacylake photometry run-brick {' '.join(args)} --images {os.path.relpath(d)}")
        print(f"   {len(c)} sources {types}; {wall:.1f} s wall, {cpu:.1f} s CPU; exposures: " +
              ", ".join(f"{k} {len(x)} ({''.join(sorted({e.band for e in x}))}, {np.mean([e.image.pixscale for e in x]):.3f}\"/px)"
                        for k, x in cams.items()))
        rec = v.gaia_recovery(d, out, name, data=data)
        print(f"   Gaia G < 20 in the box: {rec['n_gaia']}, found {rec['n_found']}: {rec['stars']}")
        for cam, o in v.gaia_offsets(d, out, name, data=data).items():
            if o["n"]:
                print(f"   offset to Gaia, {cam}: median {o['median_mas']:.1f} mas over {o['n']} star(s) "
                      f"(east, north, S/N: {[(round(x[1]), round(x[2]), round(x[3])) for x in o['offsets_mas']]})")
        if len(cams) > 1:
            for cam, o in v.gaia_offsets(d, out, name, data=data, gaia_only=False, min_sn=5).items():
                print(f"   point sources vs the catalog (all cameras), {cam}: "
                      f"{[(x[0], round(x[1]), round(x[2]), round(x[3], 1)) for x in o['offsets_mas']]} (objid, east, north mas, S/N)")
        rc = np.char.strip(c["REF_CAT"].astype(str))
        t_ = np.char.strip(c["TYPE"].astype(str))
        gal, dup = np.flatnonzero(rc == "L3"), np.flatnonzero(t_ == "DUP")
        if len(gal) and len(dup):
            g, u = gal[0], dup[0]
            off = np.hypot((c["RA"][g] - c["RA"][u]) * np.cos(np.deg2rad(c["DEC"][u])), c["DEC"][g] - c["DEC"][u]) * 3.6e6
            print(f"   SGA {c['REF_ID'][g]} fitted {t_[g]} r_e {c['SHAPE_R'][g]:.2f}\" n {c['SERSIC'][g]:.2f}: centre "
                  f"{off:.1f} mas from its Gaia nucleus (DUP {c['REF_ID'][u]})")
        for bg in (False, True):
            fc = v.flux_consistency(d, out, name, data=data, background=bg)
            print(f"   per-exposure forced fluxes of point sources{' (+ background)' if bg else ''}: "
                  f"{len(fc['rows'])} source-bands, {fc['excluded']} masked sources left out; chi2/dof pooled " +
                  ", ".join(f"S/N {k}: {x['chi2_dof']:.2f} (n {x['n']})" for k, x in fc["pooled"].items()))
        print()


if __name__ == "__main__":
    main()
