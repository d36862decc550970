"""How well can ANY mixture of concentric Gaussians match a tapered profile after a PSF?

The issue asks for summed |mixture - exact profile| <= 1e-3 of the flux after the PSF. For
the survey's *tapered* targets (``photometry.model.mixtures.profile``: EXP tapered 3-4 r_e, DEV and our SER
7-8 r_e) this module computes a lower bound on that residual over every mixture with
amplitudes >= 0 (any number of components: a dense grid of variances, solved exactly as a
linear program for the L1 norm), and optionally over signed mixtures with sum |a| <= max_abs.
Reason the bound is not zero: a positive mixture of centred Gaussians is completely monotone
in r^2, hence log-convex in r^2, while a taper is log-concave; after a PSF narrower than ~r_e
the taper's edge is still sharp and carries ~1-4% of the flux.

Everything here works in units of r_e with a round Gaussian PSF of sigma ``s`` (r_e); for a
PSF of FWHM F arcsec and a galaxy of r_e arcsec, s = F / 2.3548 / r_e. Run
``python -m legacylake.photometry.model.mixture_bounds`` for the table in bench/RESULTS.md.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog
from scipy.special import i0e

#: Radial bins (edges, r_e) on which residuals are summed: 2-D L1 = sum |d| * area.
EDGES = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, 120)[:-1], np.linspace(1.0, 16.0, 600)])
R = 0.5 * (EDGES[1:] + EDGES[:-1])
AREA = np.pi * np.diff(EDGES ** 2)


def convolved_profile(fn, s: float, rmax: float = 8.0, r: np.ndarray = R) -> np.ndarray:
    """Unit-flux radial profile fn (r in r_e, zero beyond rmax) convolved with a round Gaussian
    of sigma s (r_e), at radii r: exact radial convolution with the Bessel-I0 kernel
    (no FFT / Hankel grid, so no aliasing or end-point offsets)."""
    e = np.concatenate([[0.0], np.geomspace(1e-7, 0.5, 1500)[:-1], np.linspace(0.5, rmax, 3000)])
    rp = 0.5 * (e[1:] + e[:-1])
    w = fn(rp) * rp * np.diff(e)
    w = w / w.sum() / (2.0 * np.pi)
    k = np.exp(-(r[:, None] - rp[None, :]) ** 2 / (2 * s * s)) * i0e(np.outer(r, rp) / s ** 2) / s ** 2
    return k @ w


def mixture_convolved(amps: np.ndarray, var: np.ndarray, s: float, r: np.ndarray = R) -> np.ndarray:
    """Isotropic mixture (variances r_e^2; zero-variance cores allowed) convolved with sigma s."""
    vv = np.asarray(var)[None, :] + s * s
    return np.sum(np.asarray(amps)[None, :] / (2 * np.pi * vv) * np.exp(-0.5 * r[:, None] ** 2 / vv), axis=1)


def mixture_l1(amps: np.ndarray, var: np.ndarray, fn, s: float) -> float:
    """Summed |mixture - profile| after the PSF, per unit flux (both normalised to unit flux)."""
    return float(np.sum(np.abs(mixture_convolved(amps, var, s) - convolved_profile(fn, s)) * AREA))


def l1_lower_bound(fn, s: float, signed: bool = False, max_abs: float = 3.0, nvar: int = 160) -> float:
    """min over mixtures of concentric Gaussians (variances on a log grid 1e-6..40 r_e^2 of
    ``nvar`` points, unit total flux; amplitudes >= 0, or signed with sum |a| <= max_abs) of
    the summed |mixture - profile| after a Gaussian PSF of sigma s (r_e). Exact LP (HiGHS)."""
    c_t = convolved_profile(fn, s)
    v = np.geomspace(1e-6, 40.0, nvar)
    g = (np.asarray(1.0 / (2 * np.pi * (v + s * s)))[None, :]
         * np.exp(-0.5 * R[:, None] ** 2 / (v[None, :] + s * s)))
    nr = len(R)
    eye = np.eye(nr)
    if signed:
        cost = np.concatenate([np.zeros(2 * nvar), AREA])
        a_ub = np.block([[g, -g, -eye], [-g, g, -eye],
                         [np.ones((1, 2 * nvar)), np.zeros((1, nr))]])
        b_ub = np.concatenate([c_t, -c_t, [max_abs]])
        a_eq = np.concatenate([np.ones(nvar), -np.ones(nvar), np.zeros(nr)])[None]
    else:
        cost = np.concatenate([np.zeros(nvar), AREA])
        a_ub = np.block([[g, -eye], [-g, -eye]])
        b_ub = np.concatenate([c_t, -c_t])
        a_eq = np.concatenate([np.ones(nvar), np.zeros(nr)])[None]
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.0], bounds=(0, None), method="highs")
    if not res.success:
        if nvar > 100:  # HiGHS occasionally stalls on near-degenerate grids: retry on a coarser one
            return l1_lower_bound(fn, s, signed, max_abs, nvar - 40)
        raise RuntimeError(f"LP failed: {res.message}")
    return float(res.fun)


def main() -> None:
    from legacylake.photometry.model.mixtures import mixture, profile
    fwhm = 1.3
    res = (3.0, 1.0, 0.5, 0.3)
    print(f"summed |mixture - tapered profile| after a {fwhm}\" Gaussian PSF, per unit flux; "
          f"columns r_e = {', '.join(map(str, res))} arcsec")
    rows = [("EXP", None), ("DEV", None)] + [("SER", n) for n in (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)]
    for kind, n in rows:
        fn = profile(kind, n)
        ss = [fwhm / 2.3548 / r for r in res]
        lb = [l1_lower_bound(fn, s) for s in ss]
        sg = [l1_lower_bound(fn, s, signed=True) for s in ss[:2]]
        cur = [mixture_l1(*mixture(kind, n), fn, s) for s in ss]
        name = kind if n is None else f"SER n={n}"
        print(f"{name:10s} bound a>=0: {' '.join(f'{x:.1e}' for x in lb)} | signed sum|a|<=3 "
              f"(r_e 3, 1): {' '.join(f'{x:.1e}' for x in sg)} | our mixture now: "
              f"{' '.join(f'{x:.1e}' for x in cur)}", flush=True)


if __name__ == "__main__":
    main()
