"""Photometry accuracy on GalSim truth images: pulls and model selection.

Usage: python bench/photometry_accuracy.py [--n-pulls 1000] [--n-select 150] [--seed 1]  (about 2 minutes)

Truth images are rendered by GalSim (``legacylake.photometry.galsim_truth``): Sersic
profiles (n = 1 for EXP/REX, 4 for DEV, 1.5-5 in steps of 0.25 for SER, a delta for PSF) convolved with a
Gaussian PSF (our model: the same Gaussian) or a Moffat beta=3.5 PSF (our model: the Moffat
drawn as a pixelized stamp, i.e. the hybrid FFT renderer), 0.262"/pixel, FWHM 1.0-1.6",
Gaussian noise of known sigma. S/N log-uniform in [5, 500], r_e log-uniform in [0.3, 3]",
|e| up to 0.5 (REX round). Isolated sources, and blends with a neighbour (star or EXP) 1.5-3"
away with 0.3-1x the flux, fitted jointly.

Truth flux: the survey's EXP and DEV (and our SER) are *tapered* profiles, so the truth is
the flux of the survey's model: GalSim draws a Sersic hard-truncated where the taper ends
(4 r_e for EXP/REX, 8 r_e otherwise) whose amplitude is matched to our mixture over
0.05-3 r_e (``galsim_truth.flux_correction``), and the catalogued truth flux is the model's.
S/N is the optimal (matched-filter) S/N of the noiseless truth: flux / (sig1 / sqrt(sum p^2))
with p the unit-flux truth image.

Pulls (fit - truth) / sigma use the marginalised sigma (sqrt diag of the inverted Fisher
matrix, ``*_SIGMA_MARG``); the diagonal-Fisher sigma the survey reports is shown for flux
for comparison. Model selection runs the DR9 sequence (PSF, REX, DEV/EXP, SER) of
``photometry fit --select`` on isolated sources at S/N > 50.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

RA, DEC = 150.0, 2.0
PIX = 0.262
TYPES = ("PSF", "REX", "EXP", "DEV", "SER")


def draw_truth(rng, kind: str, sn_range=(5.0, 500.0)):
    """One random truth source (kind, S/N, r_e, e1, e2, n) with r_e, |e| and n as documented."""
    sn = float(np.exp(rng.uniform(*np.log(sn_range))))
    if kind == "PSF":
        return dict(kind=kind, sn=sn, r_e=0.0, e1=0.0, e2=0.0, n=None)
    r_e = float(np.exp(rng.uniform(np.log(0.3), np.log(3.0))))
    e, phi = (0.0, 0.0) if kind == "REX" else (rng.uniform(0.05, 0.5), rng.uniform(0, np.pi))
    # SER n on a 0.25 grid so GalSim's per-(n, truncation) Sersic tables are reused
    n = float(rng.integers(6, 21) / 4.0) if kind == "SER" else None
    return dict(kind=kind, sn=sn, r_e=r_e, e1=e * np.cos(2 * phi), e2=e * np.sin(2 * phi), n=n)


def scene(rng, t, blended: bool, psf_kind: str, fwhm: float, sig1: float = 0.01, seed: int = 0):
    """GalSim image of the truth t (+ a neighbour); fluxes set from the optimal S/N.
    Each source is drawn once at unit flux; the image is the flux-weighted sum plus noise."""
    from legacylake.photometry.galsim_truth import render_scene
    ext = 8.0 if t["kind"] in ("DEV", "SER") else 4.0
    half = int(np.clip((ext * t["r_e"] + 3 * fwhm) / PIX, 20, 90))
    shape = (2 * half, 2 * half)
    off = rng.uniform(-0.5, 0.5, 2) * PIX
    src = (t["kind"], RA + off[0] / 3600 / np.cos(np.deg2rad(DEC)), DEC + off[1] / 3600,
           1.0, t["r_e"], t["e1"], t["e2"], t["n"])
    im, unit = render_scene([src], psf_kind, fwhm, shape=shape, sig1=sig1, noise=False)
    flux = t["sn"] * sig1 / np.sqrt(np.sum(unit ** 2))
    srcs = [src[:3] + (flux,) + src[4:]]
    clean = flux * unit
    if blended:
        sep, ang = rng.uniform(1.5, 3.0), rng.uniform(0, 2 * np.pi)
        nk = "PSF" if rng.uniform() < 0.5 else "EXP"
        nb = (nk, src[1] + sep * np.cos(ang) / 3600 / np.cos(np.deg2rad(DEC)),
              src[2] + sep * np.sin(ang) / 3600, flux * rng.uniform(0.3, 1.0),
              0.0 if nk == "PSF" else 0.5, 0.0, 0.0, None)
        srcs.append(nb)
        clean = clean + render_scene([nb], psf_kind, fwhm, shape=shape, sig1=sig1, noise=False)[1]
    im.data = clean + np.random.default_rng(seed).normal(0, sig1, shape)
    return im, srcs


def fit_pulls(rng, t, blended, psf_kind, seed):
    """Fit the truth type(s) started near the truth; pulls of the primary source."""
    from legacylake.photometry.fitter import Fitter, Source
    fwhm = rng.uniform(1.0, 1.6)
    im, srcs = scene(rng, t, blended, psf_kind, fwhm, seed=seed)
    init = []
    for s in srcs:
        init.append(Source(s[0], s[1] + rng.normal(0, 0.1) / 3600, s[2] + rng.normal(0, 0.1) / 3600,
                           {"r": s[3] * 0.8}, max(s[4], 0.3) * 0.7 if s[0] != "PSF" else 0.45, 0.0, 0.0,
                           2.5 if s[0] == "SER" else 4.0))
    f = Fitter([im], init).fit()
    r = f.results()[0]
    s, tr = r.source, srcs[0]
    cosd = np.cos(np.deg2rad(DEC))
    out = dict(kind=t["kind"], sn=t["sn"], psf=psf_kind, blended=blended, r_e=t["r_e"],
               flux=(s.flux["r"] - tr[3]) / r.sigma_marg["flux_r"],
               flux_diag=(s.flux["r"] - tr[3]) * np.sqrt(r.ivar["flux_r"]),
               ra=(s.ra - tr[1]) / r.sigma_marg["ra"] if r.sigma_marg["ra"] > 0 else np.nan,
               dec=(s.dec - tr[2]) / r.sigma_marg["dec"] if r.sigma_marg["dec"] > 0 else np.nan,
               shape_r=((s.r_e - tr[4]) / r.sigma_marg["shape_r"]
                        if t["kind"] != "PSF" and r.sigma_marg["shape_r"] > 0 else np.nan),
               dpos_arcsec=np.hypot((s.ra - tr[1]) * cosd, s.dec - tr[2]) * 3600, niter=f.niter)
    return out


def select_one(rng, t, psf_kind, seed):
    """DR9 model choice for an isolated truth source (fit_cli._select)."""
    from legacylake.photometry.fit_cli import _fit_group, _select
    from legacylake.photometry.fitter import Source
    im, srcs = scene(rng, t, False, psf_kind, rng.uniform(1.0, 1.6), seed=seed)
    s = srcs[0]
    res = _fit_group([im], [Source("PSF", s[1], s[2], {"r": s[3]})], forced=False)
    pick, dchisq, _ = _select([im], res)[0]
    return pick


def _stats(x):
    """median, std, robust std (1.4826 MAD), N and number of |pull| > 5 outliers."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 3:
        return f"{'-':>26s}"
    med = np.median(x)
    return (f"{med:+5.2f} {min(np.std(x), 99.99):5.2f} {1.4826 * np.median(np.abs(x - med)):4.2f} "
            f"{len(x):3d} {int(np.sum(np.abs(x) > 5)):2d}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-pulls", type=int, default=1000, help="pull fits (types x PSFs x isolated/blended)")
    ap.add_argument("--n-select", type=int, default=150, help="model-selection runs at S/N > 50")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    t0 = time.time()
    rows = []
    combos = [(k, p, b) for k in TYPES for p in ("gaussian", "moffat") for b in (False, True)]
    for i in range(a.n_pulls):
        k, p, b = combos[i % len(combos)]
        t = draw_truth(rng, k, (20.0, 500.0) if i % 4 else (5.0, 500.0))
        rows.append(fit_pulls(rng, t, b, p, seed=a.seed * 100000 + i))
    t_pull = time.time() - t0
    print(f"pulls: {len(rows)} fits in {t_pull:.0f} s; per column: median, std, robust std (1.4826 MAD), N, "
          f"outliers |pull| > 5 of (fit - truth) / sigma_marg")
    hdr = "".join(f"{c:>27s}" for c in ("flux", "flux (diag ivar)", "ra", "dec", "r_e"))
    print(f"S/N > 20        type psf      blend |{hdr}")
    for k in TYPES:
        for p in ("gaussian", "moffat"):
            for b in (False, True):
                sel = [r for r in rows if r["kind"] == k and r["psf"] == p and r["blended"] == b and r["sn"] > 20]
                print(f"{'':15s} {k:4s} {p:8s} {'yes' if b else 'no':5s} | "
                      + " ".join(f"{_stats([r[c] for r in sel]):>26s}" for c in ("flux", "flux_diag", "ra", "dec", "shape_r")))
    for k in TYPES:
        sel = [r for r in rows if r["kind"] == k and r["sn"] > 20]
        print(f"all S/N > 20    {k:4s} {'both':8s} {'both':5s} | "
              + " ".join(f"{_stats([r[c] for r in sel]):>26s}" for c in ("flux", "flux_diag", "ra", "dec", "shape_r")))
    for k in TYPES:
        parts = []
        for lo, hi in ((20, 100), (100, 501)):
            sel = [r["flux"] for r in rows if r["kind"] == k and lo < r["sn"] <= hi]
            parts.append(f"S/N {lo}-{min(hi, 500)}: {_stats(sel)}")
        print(f"flux pulls by S/N {k:4s}  " + "   ".join(parts))
    low = [r for r in rows if r["sn"] <= 20]
    print(f"S/N <= 20 (all types): flux {_stats([r['flux'] for r in low])}")
    t1 = time.time()
    picks = {k: [] for k in TYPES}
    for i in range(a.n_select):
        k = TYPES[i % len(TYPES)]
        t = draw_truth(rng, k, (50.0, 500.0))
        picks[k].append((select_one(rng, t, ("gaussian", "moffat")[(i // len(TYPES)) % 2], 7 + i), t))
    print(f"\nmodel selection (DR9 rules), isolated, S/N 50-500: {a.n_select} sources in {time.time() - t1:.0f} s")
    tot = ok = 0
    for k in TYPES:
        got = [p for p, _ in picks[k]]
        good = sum(g == k for g in got)
        tot += len(got)
        ok += good
        conf = {g: got.count(g) for g in sorted(set(got))}
        big = [p for p, t in picks[k] if t["r_e"] > 1.0]
        print(f"  true {k:4s}: {good}/{len(got)} correct  picks {conf}; r_e > 1\": "
              f"{sum(g == k for g in big)}/{len(big)}")
    fam = sum(p in ("REX", "EXP") for p, _ in picks["EXP"]) + sum(p == "REX" for p, _ in picks["REX"])
    print(f"  overall {ok}/{tot} = {100 * ok / max(tot, 1):.0f}%; counting REX for EXP (REX is a round EXP): "
          f"{ok - sum(p == 'EXP' for p, _ in picks['EXP']) - sum(p == 'REX' for p, _ in picks['REX']) + fam}/{tot}"
          f"  (total wall time {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
