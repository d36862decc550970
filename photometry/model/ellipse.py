"""Ellipse parameterisations (reference section 3.4).

Catalog: (r_e [arcsec, major-axis half-light radius], e1, e2), |e| = (a-b)/(a+b),
position angle theta = atan2(e2, e1) / 2. Fitting ("EllipseESoft"): (log r_e, ee1, ee2)
with |e| = 1 - exp(-|ee|), same angle.
"""

from __future__ import annotations

import numpy as np

#: Gaussian prior sigma on each of ee1, ee2 (legacypipe EllipseWithPriors).
EE_PRIOR_SIGMA = 0.25
#: Bounds on log r_e (arcsec) per type, and per-iteration max steps.
LOGR_MIN = float(np.log(0.01))
LOGR_MAX = {"EXP": float(np.log(30.0)), "DEV": float(np.log(30.0)),
            "SER": float(np.log(30.0)), "REX": float(np.log(10.0))}
MAX_STEP_LOGR = 1.0
MAX_STEP_EE = 0.1
E_MAX = 0.999999


def soft_to_e(ee1: float, ee2: float) -> tuple[float, float]:
    """(ee1, ee2) -> (e1, e2) with |e| = 1 - exp(-|ee|)."""
    ee = np.hypot(ee1, ee2)
    if ee == 0.0:
        return 0.0, 0.0
    s = -np.expm1(-ee) / ee
    return float(ee1 * s), float(ee2 * s)


def e_to_soft(e1: float, e2: float) -> tuple[float, float]:
    """(e1, e2) -> (ee1, ee2) with |ee| = -ln(1 - |e|), |e| capped at 0.999999."""
    e = np.hypot(e1, e2)
    if e == 0.0:
        return 0.0, 0.0
    ee = -np.log1p(-min(e, E_MAX))
    return float(e1 / e * ee), float(e2 / e * ee)


def shape_matrix(r_e: float, e1: float, e2: float) -> np.ndarray:
    """G: unit circle -> intermediate world coords in degrees (reference 3.4).

    G = (r_e/3600) [[cos t / ab, sin t], [-sin t / ab, cos t]], ab = (1+|e|)/(1-|e|) <= 1000.
    """
    e = min(np.hypot(e1, e2), E_MAX)
    ab = min((1.0 + e) / (1.0 - e), 1000.0)
    t = 0.5 * np.arctan2(e2, e1)
    c, s = np.cos(t), np.sin(t)
    return (r_e / 3600.0) * np.array([[c / ab, s], [-s / ab, c]])


def pixel_covariance(r_e: float, e1: float, e2: float, cd_inv: np.ndarray) -> np.ndarray:
    """Unit (r_e^2 = 1) covariance in pixels: T T^T with T = CD^-1 G; cd_inv in pixel/deg."""
    t = cd_inv @ shape_matrix(r_e, e1, e2)
    return t @ t.T


def soft_jacobian(logr: float, ee1: float, ee2: float, h: float = 1e-6) -> np.ndarray:
    """d(r, e1, e2)/d(log r, ee1, ee2), 3x3, by central differences."""
    def f(p):
        e1, e2 = soft_to_e(p[1], p[2])
        return np.array([np.exp(p[0]), e1, e2])
    p = np.array([logr, ee1, ee2], dtype=np.float64)
    j = np.empty((3, 3))
    for k in range(3):
        d = np.zeros(3)
        d[k] = h
        j[:, k] = (f(p + d) - f(p - d)) / (2 * h)
    return j
