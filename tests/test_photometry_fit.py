"""Photometry fitter on GalSim truth images, and the ``photometry fit`` command."""

from __future__ import annotations

import subprocess
import sys

import fitsio
import numpy as np
import pytest

from legacylake.photometry.model.fitter import Fitter, Source, marginal_sigmas
from legacylake.photometry.sim.galsim_truth import render_scene
from legacylake.photometry.model.image import read_image, write_image

RA, DEC = 150.0, 2.0


@pytest.mark.parametrize("kind,r_e,e1,e2,n", [("PSF", 0, 0, 0, None), ("EXP", 1.0, 0.3, -0.1, None),
                                               ("DEV", 0.8, -0.2, 0.25, None), ("SER", 1.0, 0.1, 0.1, 2.5)])
def test_noiseless_galsim_recovers_truth(kind, r_e, e1, e2, n):
    truth = (kind, RA + 0.3 / 3600, DEC - 0.2 / 3600, 10.0, r_e, e1, e2, n)
    im, _ = render_scene([truth], "gaussian", 1.3, sig1=0.002, noise=False)
    f = Fitter([im], [Source(kind, RA, DEC, {"r": 8.0}, 0.6, 0.0, 0.0, 3.0)]).fit()
    r = f.results()[0]
    s = r.source
    assert abs(s.flux["r"] / 10.0 - 1) < 0.006
    assert abs((s.ra - truth[1]) * 3600 * np.cos(np.deg2rad(DEC))) < 2e-3
    assert abs((s.dec - truth[2]) * 3600) < 2e-3
    if kind != "PSF":
        assert abs(s.r_e / r_e - 1) < 0.01
        assert abs(s.e1 - e1) < 0.005 and abs(s.e2 - e2) < 0.005  # catalog e = -GalSim g
        # marginalised errors exceed the diagonal-Fisher ones (correlated parameters)
        assert r.sigma_marg["flux_r"] > 1.05 / np.sqrt(r.ivar["flux_r"])
    if kind == "SER":
        assert abs(s.n - n) < 0.1


def test_frozen_position_is_kept_and_flux_fitted():
    """A reference star (frozen_pos) keeps its given position exactly, even 0.1" off the truth;
    its flux is still fitted, and its position ivars/sigmas are reported as 0."""
    truth = ("PSF", RA, DEC, 10.0, 0, 0, 0, None)
    im, _ = render_scene([truth], "gaussian", 1.3, sig1=0.002, noise=False)
    start = Source("PSF", RA + 0.1 / 3600, DEC, {"r": 5.0})
    r = Fitter([im], [start], frozen_pos=[True]).fit().results()[0]
    assert r.source.ra == start.ra and r.source.dec == start.dec
    assert abs(r.source.flux["r"] / 10.0 - 1) < 0.05
    assert r.ivar["ra"] == 0 and r.sigma_marg["dec"] == 0 and r.ivar["flux_r"] > 0
    free = Fitter([im], [start]).fit().results()[0].source
    assert abs((free.ra - RA) * 3600 * np.cos(np.deg2rad(DEC))) < 2e-3


def test_marginal_sigmas_scale_invariant_and_floored():
    """Parameters on scales 1e-8..1e8 (a bright star's flux beside a faint neighbour's shape):
    the sigmas equal the exact inverse's; a degenerate pair keeps at least 1/sqrt(F_ii)."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(40, 8))
    corr = np.corrcoef(a.T)                      # well-conditioned, correlated
    scales = 10.0 ** np.linspace(-8, 8, 8)
    F = corr * scales[:, None] * scales[None, :]
    truth = np.sqrt(np.diag(np.linalg.inv(corr))) / scales
    sig = marginal_sigmas(F, np.ones(8, bool))
    np.testing.assert_allclose(sig, truth, rtol=1e-8)
    # the unscaled pseudo-inverse (the former method) is far off on the same matrix
    old = np.sqrt(np.clip(np.diag(np.linalg.pinv(F, rcond=1e-13, hermitian=True)), 0, None))
    assert np.max(np.abs(old / truth - 1)) > 0.1
    # a frozen (not live) parameter gets 0; an exactly degenerate pair is floored
    G = np.array([[4.0, 4.0, 0.0], [4.0, 4.0, 0.0], [0.0, 0.0, 9.0]])
    s2 = marginal_sigmas(G, np.array([True, True, False]))
    assert s2[2] == 0.0 and np.all(s2[:2] >= 0.5 - 1e-12)


def test_log_radius_capped_by_region_size():
    """Reference 3.4: r_e <= 0.8 x the region's larger side, on a 64 x 64 px (16.8") image a
    flat-ish blob cannot grow past 13.4"; the start value is clipped into the bound too."""
    truth = ("EXP", RA, DEC, 10.0, 30.0, 0.0, 0.0, None)
    im, _ = render_scene([truth], "gaussian", 1.3, sig1=0.002, noise=False)
    cap = 0.8 * 64 * im.pixscale
    f = Fitter([im], [Source("EXP", RA, DEC, {"r": 8.0}, 25.0, 0.0, 0.0, 1.0)])
    assert np.exp(f.p[f.layout[0]["logr"]]) == pytest.approx(cap)
    s = f.fit().results()[0].source
    assert s.r_e <= cap * (1 + 1e-9)


def test_pulls_small_sample_and_blend():
    """Blended pair on a Moffat (pixelized) PSF and a Gaussian one; flux pulls with sigma_marg."""
    pulls = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        truth = [("EXP", RA, DEC, 3.0, 0.8, 0.2, 0.0, None),
                 ("PSF", RA + 1.5 / 3600, DEC + 0.5 / 3600, 2.0, 0, 0, 0, None)]
        psfk = "moffat" if seed % 2 else "gaussian"
        im, _ = render_scene(truth, psfk, 1.2, shape=(48, 48), sig1=0.01, seed=seed)
        init = [Source(t[0], t[1] + rng.normal(0, 0.05) / 3600, t[2], {"r": t[3] * 0.9}, 0.6)
                for t in truth]
        f = Fitter([im], init).fit()
        for t, r in zip(truth, f.results()):
            pulls.append((r.source.flux["r"] - t[3]) / r.sigma_marg["flux_r"])
    pulls = np.array(pulls)
    assert abs(np.median(pulls)) < 0.6
    assert 0.5 < np.std(pulls) < 1.6


def test_cli_fit_and_select(tmp_path):
    truth = [("DEV", RA, DEC, 20.0, 1.2, 0.3, 0.1, None), ("PSF", RA + 3 / 3600, DEC, 5.0, 0, 0, 0, None)]
    im, _ = render_scene(truth, "gaussian", 1.3, shape=(56, 56), sig1=0.01, seed=5)
    img = tmp_path / "img.fits"
    write_image(str(img), im.data, im.ivar, im.wcs, "r", psf_fwhm=1.3)
    back = read_image(str(img))
    assert back.band == "r" and abs(back.psf.sigma - im.psf.sigma) < 1e-6
    src = np.zeros(2, dtype=[("RA", "f8"), ("DEC", "f8"), ("TYPE", "U3")])
    src["RA"], src["DEC"] = [RA + 0.1 / 3600, RA + 3 / 3600], [DEC, DEC]
    src["TYPE"] = ["EXP", "PSF"]
    sp = tmp_path / "src.fits"
    fitsio.write(str(sp), src, clobber=True)
    out = tmp_path / "out.fits"
    cmd = [sys.executable, "-m", "legacylake", "photometry", "fit", "--image", str(img),
           "--sources", str(sp), "--out", str(out), "--select"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    t = fitsio.read(str(out))
    assert [x.strip() for x in t["TYPE"]] == ["DEV", "PSF"]
    assert abs(t["FLUX_R"][0] / 20 - 1) < 0.05 and abs(t["FLUX_R"][1] / 5 - 1) < 0.05
    assert t["DCHISQ"].shape == (2, 5) and t["DCHISQ"][0, 2] > t["DCHISQ"][0, 3]
    assert np.all(t["FLUX_SIGMA_MARG_R"] > 0) and np.all(t["FLUX_IVAR_R"] > 0)
    bad = subprocess.run(cmd[:6] + [str(tmp_path / "missing.fits"), "--sources", str(sp), "--out", str(out)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.fits" in bad.stderr
