"""Render unit-flux source models (PSF, REX, EXP, DEV, SER) and their derivatives on patches.

Gaussian-mixture PSF: galaxy mixture x PSF mixture analytically (reference 3.5), the whole
source in one call of :func:`render_kernels.mog_source`, sampled at pixel centres.

Pixelized PSF: the hybrid split of reference 3.5. The FFT box is N x N with N the smallest
power of two >= 2 * PSF radius + 17 (at least 32), fixed per PSF, with the stamp's rfft
cached. Galaxy components whose extent (1e-5 of the source flux lost) fits in the room the
PSF leaves in the box go through the FFT (:func:`render_kernels.fourier_source`: analytic
transform x PSF transform x a Fourier phase for the sub-pixel placement, instead of the
Tractor's Lanczos-3 shift), broader ones as mixtures convolved with a Gaussian of the stamp's
second moments, with a linear ramp between (weights sum to 1, so no flux is lost).

Raw derivative planes (see :mod:`render_kernels`): model, d/d(px), d/d(py), d/d(cxx, cxy,
cyy) of the unit covariance C (pixels^2 per r_e^2 of the mixture), d/dn. Patches extend
until every component has lost < 1e-5 of the source flux, clipped to the image.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from legacylake.photometry.model import render_kernels as rk
from legacylake.photometry.model.mixtures import mixture, sersic_mixture_derivs
from legacylake.photometry.model.psf import GaussianMixturePSF, PixelizedPSF

GALAXY_TYPES = ("REX", "EXP", "DEV", "SER")
#: Raw planes needed per type for fitting: PSF position; + covariance; + Sersic n.
NRAW = {"PSF": 3, "REX": 6, "EXP": 6, "DEV": 6, "SER": 7}
_LOSS = 1e-5
_ONE, _ZERO = np.ones(1), np.zeros(1)


@dataclass
class Patch:
    """Unit-flux model on image pixels [y0:y0+h, x0:x0+w]; dx, dy = d(model)/d(pixel centre)."""

    x0: int
    y0: int
    model: np.ndarray
    dx: np.ndarray | None = None
    dy: np.ndarray | None = None

    @property
    def slices(self) -> tuple[slice, slice]:
        h, w = self.model.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)


@functools.lru_cache(maxsize=8)
def _fixed_mixture(kind: str):
    a, v = mixture(kind)
    z = np.zeros_like(a)
    return a, v, z, z.copy()


def galaxy_mixture(kind: str, n: float | None = None):
    """(amp, var, d amp/dn, d var/dn) of the unit-flux mixture; variances in r_e^2."""
    if kind == "SER":
        return sersic_mixture_derivs(4.0 if n is None else float(n))
    return _fixed_mixture(kind)


def unit_covariance(r_e: float, e1: float, e2: float, jac: np.ndarray) -> tuple[float, float, float]:
    """(cxx, cxy, cyy) in pixels^2 of the r_e-scaled ellipse: C = T T^T, T = jac G (ref. 3.4),
    r_e major-axis arcsec, jac = d(x, y)/d(xi, eta) in pixel/deg."""
    e = min(math.hypot(e1, e2), 0.999999)
    ab = min((1.0 + e) / (1.0 - e), 1000.0)
    t = 0.5 * math.atan2(e2, e1)
    c, s = math.cos(t), math.sin(t)
    k = r_e / 3600.0
    g00, g01, g10, g11 = k * c / ab, k * s, -k * s / ab, k * c
    t00 = jac[0, 0] * g00 + jac[0, 1] * g10
    t01 = jac[0, 0] * g01 + jac[0, 1] * g11
    t10 = jac[1, 0] * g00 + jac[1, 1] * g10
    t11 = jac[1, 0] * g01 + jac[1, 1] * g11
    return t00 * t00 + t01 * t01, t00 * t10 + t01 * t11, t10 * t10 + t11 * t11


def _clip(x0, y0, x1, y1, shape):
    h, w = shape
    return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)


def _kernels(numba: bool):
    if numba:
        return rk.mog_source, rk.fourier_source
    return rk.mog_source_np, rk.fourier_source_np


def render_raw(gal, psf, px: float, py: float, shape, nout: int, numba: bool = True):
    """(x0, y0, raw[nout, h, w]) of a unit-flux source at 0-based pixel (px, py), or None if
    off the image. gal = None (point source) or (amp, var, damp, dvar, cxx, cxy, cyy)."""
    if gal is None:
        gal = (_ONE, _ZERO, _ZERO, _ZERO, 0.0, 0.0, 0.0)
    if isinstance(psf, GaussianMixturePSF):
        return _raw_mog(gal, psf, px, py, shape, nout, numba)
    if isinstance(psf, PixelizedPSF):
        return _raw_hybrid(gal, psf, px, py, shape, nout, numba)
    raise TypeError(f"unsupported PSF {type(psf).__name__}")


def _raw_mog(gal, psf, px, py, shape, nout, numba):
    ga, gv, gda, gdv, cxx, cxy, cyy = gal
    hs = rk.mog_halfsize(ga, gv, cxx, cyy, psf.amp, psf.mx, psf.my, psf.vxx, psf.vyy, _LOSS)
    ix, iy = int(round(px)), int(round(py))
    x0, y0, x1, y1 = _clip(ix - hs, iy - hs, ix + hs + 1, iy + hs + 1, shape)
    if x1 <= x0 or y1 <= y0:
        return None
    raw = np.zeros((nout, y1 - y0, x1 - x0))
    _kernels(numba)[0](ga, gv, gda, gdv, cxx, cxy, cyy, psf.amp, psf.mx, psf.my, psf.vxx,
                       psf.vxy, psf.vyy, float(px), float(py), float(x0), float(y0), raw)
    return x0, y0, raw


def _raw_hybrid(gal, psf, px, py, shape, nout, numba):
    ga, gv, gda, gdv, cxx, cxy, cyy = gal
    g = psf.gauss
    n = psf.fft_n
    cmax = max(cxx, cyy)
    af, df, am, dm, hs_f, hs_m = (rk.hybrid_split if numba else rk.hybrid_split_np)(
        ga, gv, gda, cmax, cyy, n // 2 - 1 - psf.radius, _LOSS, g.amp, g.mx, g.my, g.vxx, g.vyy)
    ix, iy = int(round(px)), int(round(py))
    fx0, fy0 = ix - n // 2, iy - n // 2
    r = -1
    if hs_f >= 0:
        # crop the FFT box to the stamp radius plus the FFT-rendered components' extent
        r = min(int(psf.radius) + hs_f, n // 2 - 1)
    h = max(r, hs_m)
    x0, y0, x1, y1 = _clip(ix - h, iy - h, ix + h + 1, iy + h + 1, shape)
    if x1 <= x0 or y1 <= y0:
        return None
    raw = np.zeros((nout, y1 - y0, x1 - x0))
    kmog, kfour = _kernels(numba)
    if hs_f >= 0:
        cx0, cy0, cx1, cy1 = _clip(ix - r, iy - r, ix + r + 1, iy + r + 1, shape)
        if cx1 > cx0 and cy1 > cy0:
            spec = np.empty((nout, n, n // 2 + 1), dtype=np.complex128)
            kfour(af, gv, df, gdv, cxx, cxy, cyy, psf.fourier(n), px - fx0, py - fy0, spec)
            img = scipy.fft.irfft2(spec, s=(n, n), axes=(-2, -1), workers=1)
            raw[:, cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] += img[:, cy0 - fy0:cy1 - fy0, cx0 - fx0:cx1 - fx0]
    if hs_m >= 0:
        kmog(am, gv, dm, gdv, cxx, cxy, cyy, g.amp, g.mx, g.my, g.vxx, g.vxy, g.vyy,
             float(px), float(py), float(x0), float(y0), raw)
    return x0, y0, raw


def galaxy_components(kind: str, r_e: float, e1: float, e2: float, cd_inv: np.ndarray,
                      n: float | None = None):
    """Galaxy mixture in pixels: (amp, var, damp, dvar, cxx, cxy, cyy); r_e arcsec, cd_inv pixel/deg."""
    if kind == "REX":
        e1 = e2 = 0.0
    return (*galaxy_mixture(kind, n), *unit_covariance(r_e, e1, e2, cd_inv))


def render(kind: str, psf, px: float, py: float, shape, cd_inv: np.ndarray | None = None,
           r_e: float = 0.0, e1: float = 0.0, e2: float = 0.0, n: float | None = None,
           derivs: bool = False, numba: bool = True) -> Patch | None:
    """Unit-flux patch of a source of ``kind`` at 0-based pixel (px, py) on an image of ``shape``.

    r_e in arcsec, cd_inv (pixel/deg) the local inverse CD matrix (needed for galaxies).
    With ``derivs`` the patch also carries d(model)/d(px), d(model)/d(py).
    """
    gal = None
    if kind in GALAXY_TYPES:
        gal = galaxy_components(kind, r_e, e1, e2, cd_inv, n)
    elif kind != "PSF":
        raise ValueError(f"unknown source type {kind!r}")
    r = render_raw(gal, psf, px, py, shape, 3 if derivs else 1, numba)
    if r is None:
        return None
    x0, y0, raw = r
    if derivs:
        return Patch(x0, y0, raw[0], raw[1], raw[2])
    return Patch(x0, y0, raw[0])
