"""numba kernels for rendering Gaussian mixtures on pixel patches, each with a numpy twin.

Conventions (reference 3.2): models are *sampled* at pixel centres; pixel (i, j) of a
patch with origin (x0, y0) is at x = x0 + j, y = y0 + i (0-based). Mixture components are
given by amplitude, centre (cx, cy) in pixels and covariance (vxx, vxy, vyy) in pixels^2;
the amplitude is the component's total flux. Components with vxx*vyy-vxy^2 <= 0 are
deltas: they add their amplitude to the nearest pixel (only used without a PSF).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Exponents below this are skipped (exp(-40) ~ 4e-18 of the peak).
_CUT = -40.0


@njit(cache=True, fastmath=True)
def mog_patch(amp, cx, cy, vxx, vxy, vyy, x0, y0, out):
    """Add a Gaussian mixture sampled at pixel centres to ``out`` (h, w), in place."""
    h, w = out.shape
    for k in range(amp.shape[0]):
        det = vxx[k] * vyy[k] - vxy[k] * vxy[k]
        if det <= 0.0:
            j = int(np.floor(cx[k] - x0 + 0.5))
            i = int(np.floor(cy[k] - y0 + 0.5))
            if 0 <= i < h and 0 <= j < w:
                out[i, j] += amp[k]
            continue
        ixx = vyy[k] / det
        ixy = -vxy[k] / det
        iyy = vxx[k] / det
        norm = amp[k] / (2.0 * np.pi * np.sqrt(det))
        for i in range(h):
            dy = y0 + i - cy[k]
            qy = -0.5 * iyy * dy * dy
            if qy < _CUT:
                continue
            for j in range(w):
                dx = x0 + j - cx[k]
                q = qy - 0.5 * ixx * dx * dx - ixy * dx * dy
                if q > _CUT:
                    out[i, j] += norm * np.exp(q)


def mog_patch_np(amp, cx, cy, vxx, vxy, vyy, x0, y0, out):
    """numpy twin of :func:`mog_patch`."""
    h, w = out.shape
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(len(amp)):
        det = vxx[k] * vyy[k] - vxy[k] ** 2
        if det <= 0:
            j, i = int(np.floor(cx[k] - x0 + 0.5)), int(np.floor(cy[k] - y0 + 0.5))
            if 0 <= i < h and 0 <= j < w:
                out[i, j] += amp[k]
            continue
        dx, dy = x0 + xx - cx[k], y0 + yy - cy[k]
        q = -0.5 * (vyy[k] * dx * dx - 2 * vxy[k] * dx * dy + vxx[k] * dy * dy) / det
        out += np.where(q > _CUT, amp[k] / (2 * np.pi * np.sqrt(det)) * np.exp(q), 0.0)


@njit(cache=True, fastmath=True)
def mog_patch_deriv(amp, cx, cy, vxx, vxy, vyy, x0, y0, out, dx_out, dy_out):
    """Like :func:`mog_patch`, also adding d(model)/d(cx), d(model)/d(cy) of a shift of all
    components together (the source position) to ``dx_out``, ``dy_out``. Deltas are skipped."""
    h, w = out.shape
    for k in range(amp.shape[0]):
        det = vxx[k] * vyy[k] - vxy[k] * vxy[k]
        if det <= 0.0:
            continue
        ixx = vyy[k] / det
        ixy = -vxy[k] / det
        iyy = vxx[k] / det
        norm = amp[k] / (2.0 * np.pi * np.sqrt(det))
        for i in range(h):
            dy = y0 + i - cy[k]
            qy = -0.5 * iyy * dy * dy
            if qy < _CUT:
                continue
            for j in range(w):
                dx = x0 + j - cx[k]
                q = qy - 0.5 * ixx * dx * dx - ixy * dx * dy
                if q > _CUT:
                    g = norm * np.exp(q)
                    out[i, j] += g
                    dx_out[i, j] += g * (ixx * dx + ixy * dy)
                    dy_out[i, j] += g * (ixy * dx + iyy * dy)


def mog_patch_deriv_np(amp, cx, cy, vxx, vxy, vyy, x0, y0, out, dx_out, dy_out):
    """numpy twin of :func:`mog_patch_deriv`."""
    h, w = out.shape
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(len(amp)):
        det = vxx[k] * vyy[k] - vxy[k] ** 2
        if det <= 0:
            continue
        ixx, ixy, iyy = vyy[k] / det, -vxy[k] / det, vxx[k] / det
        dx, dy = x0 + xx - cx[k], y0 + yy - cy[k]
        q = -0.5 * (ixx * dx * dx + 2 * ixy * dx * dy + iyy * dy * dy)
        g = np.where(q > _CUT, amp[k] / (2 * np.pi * np.sqrt(det)) * np.exp(q), 0.0)
        out += g
        dx_out += g * (ixx * dx + ixy * dy)
        dy_out += g * (ixy * dx + iyy * dy)


@njit(cache=True, fastmath=True)
def mog_fourier(amp, vxx, vxy, vyy, fx, fy, out):
    """Set ``out`` (ny, nx) complex to the Fourier transform of a zero-mean mixture,
    sum_k a_k exp(-2 pi^2 (vxx u^2 + 2 vxy u v + vyy v^2)), u = fx[j], v = fy[i] (cycles/pixel)."""
    ny, nx = out.shape
    c = 2.0 * np.pi * np.pi
    for i in range(ny):
        v = fy[i]
        for j in range(nx):
            u = fx[j]
            s = 0.0
            for k in range(amp.shape[0]):
                s += amp[k] * np.exp(-c * (vxx[k] * u * u + 2.0 * vxy[k] * u * v + vyy[k] * v * v))
            out[i, j] = s


def mog_fourier_np(amp, vxx, vxy, vyy, fx, fy, out):
    """numpy twin of :func:`mog_fourier`."""
    u, v = fx[None, :, None], fy[:, None, None]
    e = vxx * u * u + 2 * vxy * u * v + vyy * v * v
    out[...] = np.sum(amp * np.exp(-2 * np.pi ** 2 * e), axis=-1)


@njit(cache=True, fastmath=True)
def weighted_dots(cols, ivar, resid, ata, atr):
    """Accumulate ata[a, b] += sum cols[a]*cols[b]*ivar and atr[a] += sum cols[a]*ivar*resid
    over pixels; cols is (ncol, npix) of model derivatives, ivar and resid are (npix,)."""
    n, npix = cols.shape
    for p in range(npix):
        w = ivar[p]
        if w == 0.0:
            continue
        wr = w * resid[p]
        for a in range(n):
            ca = cols[a, p] * w
            if ca == 0.0:
                continue
            atr[a] += cols[a, p] * wr
            for b in range(a, n):
                ata[a, b] += ca * cols[b, p]
    for a in range(n):
        for b in range(a + 1, n):
            ata[b, a] = ata[a, b]


def weighted_dots_np(cols, ivar, resid, ata, atr):
    """numpy twin of :func:`weighted_dots` (ata is kept symmetric)."""
    cw = cols * ivar
    upper = np.triu(cw @ cols.T)
    ata += upper + np.triu(upper, 1).T
    atr += cw @ resid
