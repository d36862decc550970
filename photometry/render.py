"""Render unit-flux source models (PSF, REX, EXP, DEV, SER) on image patches.

Gaussian-mixture PSF: galaxy mixture x PSF mixture analytically (reference 3.5), sampled at
pixel centres by :func:`render_kernels.mog_patch`. Pixelized PSF: the galaxy mixture's
analytic Fourier transform times the stamp's FFT, with the sub-pixel offset applied as a
Fourier phase (instead of the Tractor's Lanczos-3 shift); position derivatives are exact
(multiplication by -2 pi i u). Patches extend until every component has lost < 1e-5 of
the source flux (so no profile flux is cut), clipped to the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import render_kernels as rk
from .ellipse import pixel_covariance
from .mixtures import mixture
from .psf import GaussianMixturePSF, PixelizedPSF

GALAXY_TYPES = ("REX", "EXP", "DEV", "SER")
_LOSS = 1e-5


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


def galaxy_components(kind: str, r_e: float, e1: float, e2: float, cd_inv: np.ndarray,
                      n: float | None = None):
    """Galaxy mixture in pixels: (amp, vxx, vxy, vyy); r_e in arcsec, cd_inv pixel/deg."""
    amp, var = mixture(kind, n)
    if kind == "REX":
        e1 = e2 = 0.0
    c = pixel_covariance(r_e, e1, e2, cd_inv)
    return amp, var * c[0, 0], var * c[0, 1], var * c[1, 1]


def _halfsize(amp, vxx, vyy) -> int:
    s = np.sqrt(np.maximum(vxx, vyy))
    k = np.sqrt(2.0 * np.log(np.maximum(amp / _LOSS, 1.0)))
    return int(np.ceil(np.max(s * k))) + 1


def _clip(x0, y0, x1, y1, shape):
    h, w = shape
    return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)


def render_mog(gal, psf: GaussianMixturePSF, px: float, py: float, shape, derivs: bool,
               numba: bool = True) -> Patch | None:
    """Galaxy (or point, gal=None) convolved with a mixture PSF at pixel (px, py)."""
    if gal is None:
        ga, gxx, gxy, gyy = np.ones(1), np.zeros(1), np.zeros(1), np.zeros(1)
    else:
        ga, gxx, gxy, gyy = gal
    amp = np.outer(ga, psf.amp).ravel()
    vxx = np.add.outer(gxx, psf.vxx).ravel()
    vxy = np.add.outer(gxy, psf.vxy).ravel()
    vyy = np.add.outer(gyy, psf.vyy).ravel()
    cx = (px + np.zeros_like(gxx)[:, None] + psf.mx[None, :]).ravel()
    cy = (py + np.zeros_like(gxx)[:, None] + psf.my[None, :]).ravel()
    hs = _halfsize(amp, vxx, vyy) + int(np.ceil(np.max(np.hypot(psf.mx, psf.my))))
    ix, iy = int(round(px)), int(round(py))
    x0, y0, x1, y1 = _clip(ix - hs, iy - hs, ix + hs + 1, iy + hs + 1, shape)
    if x1 <= x0 or y1 <= y0:
        return None
    out = np.zeros((y1 - y0, x1 - x0))
    if derivs:
        dx, dy = np.zeros_like(out), np.zeros_like(out)
        (rk.mog_patch_deriv if numba else rk.mog_patch_deriv_np)(
            amp, cx, cy, vxx, vxy, vyy, float(x0), float(y0), out, dx, dy)
        return Patch(x0, y0, out, dx, dy)
    (rk.mog_patch if numba else rk.mog_patch_np)(amp, cx, cy, vxx, vxy, vyy, float(x0), float(y0), out)
    return Patch(x0, y0, out)


def fft_size(halfsize: int) -> int:
    """Next power of two >= 2 * halfsize + 1 (at least 32)."""
    n = 32
    while n < 2 * halfsize + 1:
        n *= 2
    return n


def render_fft(gal, psf: PixelizedPSF, px: float, py: float, shape, derivs: bool,
               numba: bool = True) -> Patch | None:
    """Galaxy (or point, gal=None) convolved with a pixelized PSF by FFT at pixel (px, py)."""
    hs = int(psf.radius) + 1
    if gal is not None:
        hs += _halfsize(*[gal[0], gal[1], gal[3]])
    n = fft_size(hs)
    fx = np.fft.rfftfreq(n)
    fy = np.fft.fftfreq(n)
    pf = psf.fourier(n)
    if gal is None:
        spec = pf.copy()
    else:
        g = np.empty(pf.shape, dtype=np.float64)
        (rk.mog_fourier if numba else rk.mog_fourier_np)(gal[0], gal[1], gal[2], gal[3], fx, fy, g)
        spec = pf * g
    ix, iy = int(round(px)), int(round(py))
    ddx, ddy = px - ix, py - iy
    phase = np.exp(-2j * np.pi * (fx[None, :] * ddx + fy[:, None] * ddy))
    spec *= phase
    h = n // 2
    x0, y0 = ix - h, iy - h
    cx0, cy0, cx1, cy1 = _clip(x0, y0, x0 + n, y0 + n, shape)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    sl = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))

    def back(s):
        return np.fft.fftshift(np.fft.irfft2(s, s=(n, n)))[sl]

    model = back(spec)
    if not derivs:
        return Patch(cx0, cy0, model)
    # d/d(px): shifting the source by +dpx multiplies the spectrum by exp(-2 pi i u dpx)
    dx = back(spec * (-2j * np.pi * fx[None, :]))
    dy = back(spec * (-2j * np.pi * fy[:, None]))
    return Patch(cx0, cy0, model, dx, dy)


def render(kind: str, psf, px: float, py: float, shape, cd_inv: np.ndarray | None = None,
           r_e: float = 0.0, e1: float = 0.0, e2: float = 0.0, n: float | None = None,
           derivs: bool = False, numba: bool = True) -> Patch | None:
    """Unit-flux patch of a source of ``kind`` at 0-based pixel (px, py) on an image of ``shape``.

    r_e in arcsec, cd_inv (pixel/deg) the local inverse CD matrix (needed for galaxies).
    """
    gal = None
    if kind in GALAXY_TYPES:
        gal = galaxy_components(kind, r_e, e1, e2, cd_inv, n)
    elif kind != "PSF":
        raise ValueError(f"unknown source type {kind!r}")
    if isinstance(psf, GaussianMixturePSF):
        return render_mog(gal, psf, px, py, shape, derivs, numba)
    if isinstance(psf, PixelizedPSF):
        return render_fft(gal, psf, px, py, shape, derivs, numba)
    raise TypeError(f"unsupported PSF {type(psf).__name__}")
