"""Photometry speed: JIT warm-up, 50x50 EXP patch render, joint fit of 20 sources.

Usage: python bench/photometry_speed.py
The Tractor is not installable here (not on PyPI; no internet), so its figures are NOT same-run:
they are constants measured in another run on another machine of this kind (9.5 / 25 ms per
source, 113 us per EXP patch, quoted by the issue that set the targets), printed with the label
"Tractor, other run" and their ratio marked "not same-run".
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

#: The Tractor's figures from another run on another machine (published constants, not measured here).
TRACTOR = {"fit_gauss_ms": 9.5, "fit_pix_ms": 25.0, "patch_us": 113.0}


def warmup_seconds() -> tuple[float, float]:
    """(imports, first calls: numba start-up, loading every cached kernel, two tiny fits per PSF kind)."""
    code = ("import time;t=time.time();import numpy as np;"
            "import numba, scipy.fft, astropy.wcs;"
            "from legacylake.photometry.model.fitter import Fitter, Source;t1=time.time();"
            "from legacylake.photometry.model.image import Image, tan_wcs;"
            "from legacylake.photometry.model.psf import GaussianMixturePSF, PixelizedPSF;"
            "y,x=np.mgrid[-7:8,-7:8];st=np.exp(-(x*x+y*y)/8.);"
            "w=tan_wcs(150.,2.,(40,40),0.262);"
            "ims=[Image(np.zeros((40,40)),np.ones((40,40)),w,'r',p) for p in "
            "(GaussianMixturePSF.gaussian(2.),PixelizedPSF(st))];"
            "[Fitter([im],[Source(k,150.,2.,{'r':1.}),Source('PSF',150.0005,2.,{'r':1.})]).fit(2)"
            " for im in ims for k in ('PSF','EXP','SER')];print(t1-t, time.time()-t1)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    from legacylake.photometry.model.fitter import Fitter, Source
    from legacylake.photometry.sim.galsim_truth import render_scene
    from legacylake.photometry.model.psf import GaussianMixturePSF
    from legacylake.photometry.model import render_kernels as rk
    from legacylake.photometry.model.render import galaxy_mixture, render, unit_covariance
    imp, jit = warmup_seconds()
    print(f"JIT warm-up (fresh process, cached kernels): {jit:.2f} s for numba start-up + loading kernels + "
          f"first fits; imports (numpy, numba, scipy, astropy) {imp:.2f} s")
    cd_inv = np.diag([-3600 / 0.262, 3600 / 0.262])
    psf = GaussianMixturePSF.from_fwhm(1.3, 0.262)
    render("EXP", psf, 25.2, 24.7, (50, 50), cd_inv, 0.9, 0.2, 0.1)
    n = 2000
    wall, cpu = [], []
    for _ in range(5):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            render("EXP", psf, 25.2, 24.7, (50, 50), cd_inv, 0.9, 0.2, 0.1)
        wall.append((time.perf_counter() - t) / n * 1e6)
        cpu.append((time.process_time() - c) / n * 1e6)
    us = min(wall)
    print(f"render 50x50 EXP patch (Gaussian PSF, incl. Python setup): {us:.1f} us wall (best of 5), "
          f"{min(cpu):.1f} us CPU  (Tractor, other run: {TRACTOR['patch_us']} us; ratio {TRACTOR['patch_us'] / us:.1f}x, not same-run)")
    ga, gv, gda, gdv = galaxy_mixture("EXP")
    c3 = unit_covariance(0.9, 0.2, 0.1, cd_inv)
    out = np.zeros((1, 47, 47))
    t = time.perf_counter()
    for _ in range(n):
        rk.mog_source(ga, gv, gda, gdv, *c3, psf.amp, psf.mx, psf.my, psf.vxx, psf.vxy, psf.vyy,
                      25.2, 24.7, 2.0, 2.0, out)
    print(f"  of which the numba kernel (47x47 patch, 6 components): "
          f"{(time.perf_counter() - t) / n * 1e6:.1f} us")
    rng = np.random.default_rng(1)
    ra0, dec0 = 150.0, 2.0
    truth = []
    kinds = ["PSF", "EXP", "DEV", "REX"]
    for i in range(20):
        k = kinds[i % 4]
        truth.append((k, ra0 + rng.uniform(-25, 25) / 3600, dec0 + rng.uniform(-25, 25) / 3600,
                      rng.uniform(2, 20), 0 if k == "PSF" else rng.uniform(0.4, 1.5),
                      0.0 if k in ("PSF", "REX") else rng.uniform(-0.3, 0.3),
                      0.0 if k in ("PSF", "REX") else rng.uniform(-0.3, 0.3), None))
    for psfk, key in (("gaussian", "fit_gauss_ms"), ("moffat", "fit_pix_ms")):
        im, _ = render_scene(truth, psfk, 1.3, shape=(220, 220), sig1=0.02, seed=2)
        init = [Source(t[0], t[1], t[2], {"r": t[3] * 0.9}, 0.6) for t in truth]
        Fitter([im], init[:2]).fit()  # warm
        wall, cpu = [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            f = Fitter([im], init).fit()
            wall.append((time.perf_counter() - t0) / len(init) * 1e3)
            cpu.append((time.process_time() - c0) / len(init) * 1e3)
        ms = min(wall)
        print(f"joint fit 20 sources, {psfk} PSF, 220x220 image: {ms:.2f} ms/source wall (best of 3), "
              f"{min(cpu):.2f} ms CPU ({f.niter} iterations)  (Tractor, other run: {TRACTOR[key]} ms; ratio {TRACTOR[key] / ms:.2f}x, not same-run)")


if __name__ == "__main__":
    main()
