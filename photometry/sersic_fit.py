"""Fit the per-index SER Gaussian mixtures stored in ``data/sersic_mog.csv``.

Run ``python -m legacylake.photometry.sersic_fit`` to regenerate the table. At each n of
the grid, K = 8 positive Gaussians (log-amplitude, log-variance) are fitted by least
squares to the unit-flux tapered Sersic profile (``mixtures.sersic_profile``), with
residuals weighted by sqrt(2 pi r dr), i.e. the 2-D L2 norm of the surface-brightness
difference. Fits run by continuation from n = 4 (started from the DEV mixture) upwards
and downwards, so components change smoothly with n and the spline over n is well behaved.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from .mixtures import dev_mixture, profile_flux, sersic_profile

K = 8
GRID = np.round(np.concatenate([np.arange(0.45, 1.0, 0.025), np.arange(1.0, 2.0, 0.05),
                                np.arange(2.0, 6.3001, 0.1)]), 4)


def _radii() -> tuple[np.ndarray, np.ndarray]:
    edges = np.concatenate([[0.0], np.geomspace(1e-4, 8.2, 800)])
    r = 0.5 * (edges[1:] + edges[:-1])
    return r, np.sqrt(2 * np.pi * r * np.diff(edges))


def fit_one(n: float, p0: np.ndarray) -> tuple[np.ndarray, float]:
    """Fit K Gaussians to the unit-flux tapered Sersic(n); returns params and L1 error."""
    r, w = _radii()
    target = sersic_profile(r, n) / profile_flux(lambda x: sersic_profile(x, n))

    def model(p):
        a, v = np.exp(p[:K]), np.exp(p[K:])
        return np.sum(a / (2 * np.pi * v) * np.exp(-0.5 * r[:, None] ** 2 / v), axis=1)

    def resid(p):
        return (model(p) - target) * w

    lo = np.concatenate([np.full(K, -30.0), np.full(K, np.log(1e-8))])
    hi = np.concatenate([np.full(K, 3.0), np.full(K, np.log(200.0))])
    sol = least_squares(resid, np.clip(p0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi),
                        x_scale=1.0, xtol=1e-11, ftol=1e-11, gtol=1e-11, max_nfev=3000)
    l1 = float(np.sum(np.abs(model(sol.x) - target) * w * w))
    return sol.x, l1


def fit_table() -> np.ndarray:
    """Rows (n, amps[K], vars[K]) over GRID, amplitudes normalised to sum 1."""
    a, v = dev_mixture()
    start = np.concatenate([np.log(a[:K] / a[:K].sum()), np.log(v[:K])])
    i4 = int(np.argmin(np.abs(GRID - 4.0)))
    out = {}
    p = start
    for n in GRID[i4:]:
        p, l1 = fit_one(float(n), p)
        out[float(n)] = (p, l1)
    p = out[float(GRID[i4])][0]
    for n in GRID[i4 - 1::-1]:
        p, l1 = fit_one(float(n), p)
        out[float(n)] = (p, l1)
    rows = []
    for n in GRID:
        p, l1 = out[float(n)]
        amps, var = np.exp(p[:K]), np.exp(p[K:])
        order = np.argsort(var)
        rows.append(np.concatenate([[n], amps[order] / amps.sum(), var[order]]))
        print(f"n={n:5.3f}  L1 residual / flux = {l1:.2e}")
    return np.array(rows)


def main() -> None:
    rows = fit_table()
    path = Path(__file__).with_name("data") / "sersic_mog.csv"
    path.parent.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write("# n, amp_0..amp_7 (sum 1), var_0..var_7 (r_e^2); tapered Sersic, "
                "made by legacylake.photometry.sersic_fit\n")
        for row in rows:
            f.write(",".join(f"{x:.10g}" for x in row) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
