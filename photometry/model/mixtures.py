"""Galaxy profiles as mixtures of concentric isotropic Gaussians (units where r_e = 1).

EXP and DEV are the Tractor's Hogg & Lang (2013) fits (reference section 3.3); SER
interpolates our own per-index fits (``data/sersic_mog.csv``, made by
``legacylake.photometry.model.sersic_fit``) in n over [0.5, 6]: amplitudes and log-variances
are interpolated with a cubic spline in n, amplitudes renormalised to sum 1.

Every mixture is returned as ``(amps, variances)``: float64 arrays, amplitudes summing
to 1 (unit total flux), variances in r_e^2. A zero variance is a delta-function core.
The exact target profiles (surface brightness, unnormalised, as functions of r / r_e)
live here too so tests can compare a mixture with what it approximates.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.special import gammaincinv

_EXP_RAW_AMPS = np.array([2.34853813e-03, 3.07995260e-02, 2.23364214e-01,
                          1.17949102e+00, 4.33873750e+00, 5.99820770e+00])
_EXP_VARS = np.array([1.20078965e-03, 8.84526493e-03, 3.91463084e-02,
                      1.39976817e-01, 4.60962500e-01, 1.50159566e+00])
_DEV_RAW_AMPS = np.array([4.26347652e-02, 2.40127183e-01, 6.85907632e-01, 1.51937350e+00,
                          2.83627243e+00, 4.46467501e+00, 5.72440830e+00, 5.60989349e+00])
_DEV_VARS = np.array([2.23759216e-04, 1.00220099e-03, 4.18731126e-03, 1.69432589e-02,
                      6.84850479e-02, 2.87207080e-01, 1.33320254e+00, 8.40215071e+00])
#: Weight of the DEV zero-variance core (reference 3.3).
DEV_CORE = 0.010233

#: Sersic index bounds used when fitting (legacypipe LegacySersicIndex).
SERSIC_MIN, SERSIC_MAX = 0.5, 6.0
#: Half-size of model patches in r_e (reference 3.3: nre).
NRE = {"EXP": 4.0, "REX": 4.0, "DEV": 8.0, "SER": 8.0}


def exp_mixture() -> tuple[np.ndarray, np.ndarray]:
    """EXP mixture: 6 Gaussians, amplitudes summing to 1, variances in r_e^2."""
    return _EXP_RAW_AMPS / _EXP_RAW_AMPS.sum(), _EXP_VARS.copy()


def dev_mixture() -> tuple[np.ndarray, np.ndarray]:
    """DEV mixture: 8 Gaussians scaled to 1 - DEV_CORE plus a zero-variance core."""
    a = _DEV_RAW_AMPS / _DEV_RAW_AMPS.sum() * (1.0 - DEV_CORE)
    return np.append(a, DEV_CORE), np.append(_DEV_VARS, 0.0)


def sersic_b(n: float) -> float:
    """b_n such that r_e encloses half the light of an untruncated Sersic profile."""
    return float(gammaincinv(2.0 * n, 0.5))


def taper(r: np.ndarray, r0: float) -> np.ndarray:
    """SDSS-photo taper: 1 inside r0, (1-(r-r0)^2)^2 on (r0, r0+1), 0 beyond."""
    r = np.asarray(r, dtype=np.float64)
    t = np.where(r < r0, 1.0, (1.0 - (r - r0) ** 2) ** 2)
    return np.where(r >= r0 + 1.0, 0.0, t)


def exp_profile(r: np.ndarray) -> np.ndarray:
    """Tapered exponential target profile (reference 3.3), r in units of r_e."""
    r = np.asarray(r, dtype=np.float64)
    return np.exp(-1.67835 * (r - 1.0)) * taper(r, 3.0)


def dev_profile(r: np.ndarray) -> np.ndarray:
    """Tapered, softened de Vaucouleurs target profile (reference 3.3)."""
    r = np.asarray(r, dtype=np.float64)
    return np.exp(-7.66925 * ((r * r + 0.0004) ** 0.125 - 1.0)) * taper(r, 7.0)


def sersic_profile(r: np.ndarray, n: float, tapered: bool = True) -> np.ndarray:
    """Sersic profile exp(-b_n ((r^2+0.0004)^(1/2n) - 1)).

    Softened at 0.02 r_e like DEV (reference 3.3); our SER target also tapers it at
    7-8 r_e (the DEV rule) for every n. ``tapered=False`` gives the softened, untruncated profile.
    """
    r = np.asarray(r, dtype=np.float64)
    f = np.exp(-sersic_b(n) * ((r * r + 0.0004) ** (0.5 / n) - 1.0))
    return f * taper(r, 7.0) if tapered else f


def profile(kind: str, n: float | None = None):
    """The exact target profile function r -> I(r) for EXP/REX, DEV or SER(n)."""
    if kind in ("EXP", "REX"):
        return exp_profile
    if kind == "DEV":
        return dev_profile
    if kind == "SER":
        return lambda r: sersic_profile(r, float(n))
    raise ValueError(f"no profile for type {kind!r}")


@functools.lru_cache(maxsize=1)
def _sersic_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    text = resources.files("legacylake.photometry").joinpath("data/sersic_mog.csv").read_text()
    rows = np.array([[float(v) for v in line.split(",")]
                     for line in text.splitlines() if line and not line.startswith("#")])
    k = (rows.shape[1] - 1) // 2
    return rows[:, 0], rows[:, 1:1 + k], rows[:, 1 + k:]


@functools.lru_cache(maxsize=1)
def _sersic_splines():
    n, amps, var = _sersic_table()
    return CubicSpline(n, np.log(amps), axis=0), CubicSpline(n, np.log(var), axis=0)


def sersic_mixture(n: float) -> tuple[np.ndarray, np.ndarray]:
    """SER mixture at index n (clamped to [0.5, 6]): spline-interpolated table."""
    n = float(min(max(n, SERSIC_MIN), SERSIC_MAX))
    sa, sv = _sersic_splines()
    a = np.exp(sa(n))
    return a / a.sum(), np.exp(sv(n))


def sersic_mixture_derivs(n: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(amps, variances, d amps/dn, d variances/dn) of the SER mixture at n (clamped to
    [0.5, 6]; the derivatives are the spline's, also at the clamp)."""
    n = float(min(max(n, SERSIC_MIN), SERSIC_MAX))
    sa, sv = _sersic_splines()
    la, lv = sa(n), sv(n)
    dla, dlv = sa(n, 1), sv(n, 1)
    e = np.exp(la)
    a = e / e.sum()
    var = np.exp(lv)
    return a, var, a * (dla - np.sum(a * dla)), var * dlv


def mixture(kind: str, n: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unit-flux mixture for a galaxy type (EXP, REX, DEV, SER with index n)."""
    if kind in ("EXP", "REX"):
        return exp_mixture()
    if kind == "DEV":
        return dev_mixture()
    if kind == "SER":
        return sersic_mixture(4.0 if n is None else n)
    raise ValueError(f"no mixture for type {kind!r}")


def profile_flux(fn, rmax: float = 9.0, npts: int = 20000) -> float:
    """2-D integral of a radial profile, 2 pi int I(r) r dr (log-spaced quadrature)."""
    r = np.concatenate([[0.0], np.geomspace(1e-7, rmax, npts)])
    f = fn(r) * r
    return float(2.0 * np.pi * np.trapezoid(f, r))


def mixture_radial(amps: np.ndarray, var: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Surface brightness of a unit-flux isotropic mixture at radii r (zero-var cores skipped)."""
    r = np.asarray(r, dtype=np.float64)[..., None]
    ok = var > 0
    a, v = amps[ok], var[ok]
    return np.sum(a / (2 * np.pi * v) * np.exp(-0.5 * r * r / v), axis=-1)
