"""numba kernels rendering whole sources (galaxy mixture x PSF) and their analytic
derivatives, in pixel space and in Fourier space; each with a plain-numpy twin.

Conventions (reference 3.2): models are *sampled* at pixel centres; pixel (i, j) of a
patch with origin (x0, y0) is at x = x0 + j, y = y0 + i (0-based).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Exponents below this are skipped (exp(-40) ~ 4e-18 of the peak).
_CUT = -40.0


# ---- whole-source kernels ------------------------------------------------------------
# A source is a galaxy mixture (amplitudes gamp summing to its flux share, variances gvar in
# units of the unit covariance C = (cxx, cxy, cyy), pixels^2) convolved with a PSF mixture
# (pamp, pmx, pmy, pvxx, pvxy, pvyy), centred at pixel (px, py). Component (k, j) is a
# Gaussian of amplitude gamp[k] pamp[j], mean (px + pmx[j], py + pmy[j]) and covariance
# gvar[k] C + P_j. ``out`` is (nout, h, w): plane 0 the model; 1, 2 d/d(px), d/d(py);
# 3, 4, 5 d/d(cxx), d/d(cxy), d/d(cyy) (cxy one symmetric parameter); 6 d/dn given
# gdamp = d(gamp)/dn, gdvar = d(gvar)/dn. nout is 1, 3, 6 or 7.
# Derivatives of a Gaussian G wrt its covariance V: dG/dV_ab = G (u_a u_b - V^-1_ab) / 2 with
# u = V^-1 (x - mean) (the off-diagonal counted twice).


@njit(cache=True, fastmath=True)
def mog_source(gamp, gvar, gdamp, gdvar, cxx, cxy, cyy, pamp, pmx, pmy, pvxx, pvxy, pvyy,
               px, py, x0, y0, out):
    """Add a whole source (galaxy x PSF mixture) and its derivatives to ``out`` in place.

    Each row is evaluated only where the exponent is above the cut, by the exact recurrence
    g(x+1) = g(x) r, r <- r exp(-ixx), so a row costs two exp().
    """
    nout, h, w = out.shape
    for k in range(gamp.shape[0]):
        if gamp[k] == 0.0:
            continue
        dlog_a = gdamp[k] / gamp[k]
        for jp in range(pamp.shape[0]):
            vxx = gvar[k] * cxx + pvxx[jp]
            vxy = gvar[k] * cxy + pvxy[jp]
            vyy = gvar[k] * cyy + pvyy[jp]
            det = vxx * vyy - vxy * vxy
            if det <= 0.0:
                continue
            ixx = vyy / det
            ixy = -vxy / det
            iyy = vxx / det
            norm = gamp[k] * pamp[jp] / (2.0 * np.pi * np.sqrt(det))
            ccx = px + pmx[jp]
            ccy = py + pmy[jp]
            cstep = np.exp(-ixx)
            for i in range(h):
                dy = y0 + i - ccy
                qmax = -0.5 * dy * dy / vyy
                if qmax < _CUT:
                    continue
                # pixels with q >= _CUT: |x - xpk| <= hw around the row's peak xpk
                xpk = ccx - ixy * dy / ixx - x0
                hw = np.sqrt(2.0 * (qmax - _CUT) / ixx)
                jlo = max(int(np.ceil(xpk - hw)), 0)
                jhi = min(int(np.floor(xpk + hw)), w - 1)
                if jhi < jlo:
                    continue
                dx = x0 + jlo - ccx
                g = norm * np.exp(-0.5 * (ixx * dx * dx + 2.0 * ixy * dx * dy + iyy * dy * dy))
                r = np.exp(-0.5 * ixx * (2.0 * dx + 1.0) - ixy * dy)
                if nout == 1:
                    # two interleaved chains (even / odd pixels) for instruction-level parallelism
                    ga_, gb_ = g, g * r
                    ra_ = r * r * cstep
                    rb_ = ra_ * cstep * cstep
                    c4 = cstep * cstep * cstep * cstep
                    for j in range(jlo, jhi, 2):
                        out[0, i, j] += ga_
                        out[0, i, j + 1] += gb_
                        ga_ *= ra_
                        gb_ *= rb_
                        ra_ *= c4
                        rb_ *= c4
                    if (jhi - jlo) % 2 == 0:
                        out[0, i, jhi] += ga_
                    continue
                for j in range(jlo, jhi + 1):
                    ux = ixx * dx + ixy * dy
                    uy = ixy * dx + iyy * dy
                    out[0, i, j] += g
                    out[1, i, j] += g * ux
                    out[2, i, j] += g * uy
                    if nout >= 6:
                        hxx = 0.5 * (ux * ux - ixx)
                        hxy = ux * uy - ixy
                        hyy = 0.5 * (uy * uy - iyy)
                        gv = g * gvar[k]
                        out[3, i, j] += gv * hxx
                        out[4, i, j] += gv * hxy
                        out[5, i, j] += gv * hyy
                        if nout >= 7:
                            out[6, i, j] += g * (dlog_a + gdvar[k] * (hxx * cxx + hxy * cxy + hyy * cyy))
                    g *= r
                    r *= cstep
                    dx += 1.0


def mog_source_np(gamp, gvar, gdamp, gdvar, cxx, cxy, cyy, pamp, pmx, pmy, pvxx, pvxy, pvyy,
                  px, py, x0, y0, out):
    """numpy twin of :func:`mog_source` (direct evaluation of every pixel)."""
    nout, h, w = out.shape
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(len(gamp)):
        for jp in range(len(pamp)):
            vxx = gvar[k] * cxx + pvxx[jp]
            vxy = gvar[k] * cxy + pvxy[jp]
            vyy = gvar[k] * cyy + pvyy[jp]
            det = vxx * vyy - vxy * vxy
            if det <= 0:
                continue
            ixx, ixy, iyy = vyy / det, -vxy / det, vxx / det
            dx, dy = x0 + xx - (px + pmx[jp]), y0 + yy - (py + pmy[jp])
            q = -0.5 * (ixx * dx * dx + 2 * ixy * dx * dy + iyy * dy * dy)
            e = np.where(q > _CUT, np.exp(q), 0.0) / (2 * np.pi * np.sqrt(det))
            g = gamp[k] * pamp[jp] * e
            ux, uy = ixx * dx + ixy * dy, ixy * dx + iyy * dy
            out[0] += g
            if nout >= 3:
                out[1] += g * ux
                out[2] += g * uy
            if nout >= 6:
                hxx, hxy, hyy = 0.5 * (ux * ux - ixx), ux * uy - ixy, 0.5 * (uy * uy - iyy)
                out[3] += g * gvar[k] * hxx
                out[4] += g * gvar[k] * hxy
                out[5] += g * gvar[k] * hyy
                if nout >= 7:
                    out[6] += gdamp[k] * pamp[jp] * e + g * gdvar[k] * (hxx * cxx + hxy * cxy + hyy * cyy)


@njit(cache=True, fastmath=True)
def fourier_source(gamp, gvar, gdamp, gdvar, cxx, cxy, cyy, pft, sx, sy, out):
    """Spectra (rfft layout, n x m, m = n/2+1) of a galaxy mixture times the PSF transform
    ``pft`` times the phase exp(-2 pi i (u sx + v sy)) that puts the source at pixel (sx, sy)
    of the box, and of its derivatives, planes as in :func:`mog_source`.
    Frequencies: u = j/n, v = fftfreq(n)[i].

    Each galaxy component's transform exp(-2 pi^2 gvar Q(u, v)), Q = cxx u^2 + 2 cxy u v +
    cyy v^2, is evaluated along rows by recurrence from the row's peak and cut below exp(-40).
    """
    nout, n, m = out.shape
    du = 1.0 / n
    c2 = 2.0 * np.pi * np.pi
    phx = np.empty(m, dtype=np.complex128)
    phy = np.empty(n, dtype=np.complex128)
    for j in range(m):
        phx[j] = np.exp(-2j * np.pi * (j * du) * sx)
    for i in range(n):
        phy[i] = np.exp(-2j * np.pi * ((i if i < (n + 1) // 2 else i - n) * du) * sy)
    sa = np.zeros((n, m))
    sv = np.zeros((n, m) if nout >= 6 else (1, 1))
    sd = np.zeros((n, m) if nout >= 7 else (1, 1))
    sw = np.zeros((n, m) if nout >= 7 else (1, 1))
    for k in range(gamp.shape[0]):
        s = c2 * gvar[k]
        for i in range(n):
            v = (i if i < (n + 1) // 2 else i - n) * du
            if s == 0.0:
                for j in range(m):
                    sa[i, j] += gamp[k]
                    if nout >= 7:
                        sd[i, j] += gdamp[k]
                continue
            # exponent -s (cxx u^2 + 2 cxy u v + cyy v^2); row maximum at u* = -cxy v / cxx
            if -s * v * v * (cyy - cxy * cxy / cxx) < _CUT:
                continue
            js = int(np.floor(-cxy * v / cxx / du + 0.5))
            if js < 0:
                js = 0
            elif js > m - 1:
                js = m - 1
            us = js * du
            e0 = np.exp(-s * (cxx * us * us + 2.0 * cxy * us * v + cyy * v * v))
            cstep = np.exp(-2.0 * s * cxx * du * du)
            for side in range(2):
                if side == 0:
                    j, e = js, e0
                    r = np.exp(-s * (cxx * (2.0 * us * du + du * du) + 2.0 * cxy * v * du))
                    step = 1
                else:
                    j = js - 1
                    if j < 0:
                        break
                    l0 = np.exp(-s * (cxx * (du * du - 2.0 * us * du) - 2.0 * cxy * v * du))
                    e = e0 * l0
                    r = l0 * cstep
                    step = -1
                while 0 <= j < m:
                    if e < 4.25e-18:
                        break
                    sa[i, j] += gamp[k] * e
                    if nout >= 6:
                        sv[i, j] += gamp[k] * gvar[k] * e
                        if nout >= 7:
                            sd[i, j] += gdamp[k] * e
                            sw[i, j] += gamp[k] * gdvar[k] * e
                    j += step
                    if 0 <= j < m:
                        e *= r
                        r *= cstep
    for i in range(n):
        v = (i if i < (n + 1) // 2 else i - n) * du
        for j in range(m):
            u = j * du
            b = pft[i, j] * phy[i] * phx[j]
            out[0, i, j] = b * sa[i, j]
            if nout >= 3:
                out[1, i, j] = b * sa[i, j] * (-2j * np.pi * u)
                out[2, i, j] = b * sa[i, j] * (-2j * np.pi * v)
            if nout >= 6:
                out[3, i, j] = b * sv[i, j] * (-c2 * u * u)
                out[4, i, j] = b * sv[i, j] * (-2.0 * c2 * u * v)
                out[5, i, j] = b * sv[i, j] * (-c2 * v * v)
            if nout >= 7:
                q = cxx * u * u + 2.0 * cxy * u * v + cyy * v * v
                out[6, i, j] = b * (sd[i, j] - c2 * q * sw[i, j])


def fourier_source_np(gamp, gvar, gdamp, gdvar, cxx, cxy, cyy, pft, sx, sy, out):
    """numpy twin of :func:`fourier_source` (direct evaluation)."""
    nout, n, m = out.shape
    phx = np.exp(-2j * np.pi * np.fft.rfftfreq(n) * sx)
    phy = np.exp(-2j * np.pi * np.fft.fftfreq(n) * sy)
    u = (np.arange(m) / n)[None, :, None]
    v = np.fft.fftfreq(n)[:, None, None]
    c2 = 2 * np.pi ** 2
    q = cxx * u * u + 2 * cxy * u * v + cyy * v * v
    x = -c2 * gvar * q
    e = np.where(x > _CUT, np.exp(x), 0.0)
    b = pft * phy[:, None] * phx[None, :]
    sa, sv = np.sum(gamp * e, -1), np.sum(gamp * gvar * e, -1)
    u, v, q = u[..., 0], v[..., 0], q[..., 0]
    out[0] = b * sa
    if nout >= 3:
        out[1] = b * sa * (-2j * np.pi * u)
        out[2] = b * sa * (-2j * np.pi * v)
    if nout >= 6:
        out[3] = b * sv * (-c2 * u * u)
        out[4] = b * sv * (-2 * c2 * u * v)
        out[5] = b * sv * (-c2 * v * v)
    if nout >= 7:
        out[6] = b * (np.sum(gdamp * e, -1) - c2 * q * np.sum(gamp * gdvar * e, -1))


@njit(cache=True)
def mog_halfsize(gamp, gvar, cxx, cyy, pamp, pmx, pmy, pvxx, pvyy, loss):
    """Half-size (pixels) of a box holding all but ``loss`` of each product component."""
    hs = 0.0
    for k in range(gamp.shape[0]):
        for jp in range(pamp.shape[0]):
            a = abs(gamp[k] * pamp[jp])
            if a <= loss:
                continue
            s = np.sqrt(max(gvar[k] * cxx + pvxx[jp], gvar[k] * cyy + pvyy[jp]))
            e = s * np.sqrt(2.0 * np.log(a / loss)) + np.sqrt(pmx[jp] ** 2 + pmy[jp] ** 2)
            if e > hs:
                hs = e
    return int(np.ceil(hs)) + 1


def mog_halfsize_np(gamp, gvar, cxx, cyy, pamp, pmx, pmy, pvxx, pvyy, loss):
    """numpy twin of :func:`mog_halfsize`."""
    a = np.abs(np.outer(gamp, pamp))
    s = np.sqrt(np.maximum(np.add.outer(gvar * cxx, pvxx), np.add.outer(gvar * cyy, pvyy)))
    e = s * np.sqrt(2 * np.log(np.maximum(a / loss, 1.0))) + np.hypot(pmx, pmy)
    e = np.where(a > loss, e, 0.0)
    return int(np.ceil(e.max())) + 1


@njit(cache=True)
def fft_weights(gamp, gvar, cmax, room, loss, w):
    """Share w[k] of each galaxy component rendered by FFT in the hybrid: 1 if its extent
    (sqrt(gvar cmax) times the radius losing ``loss`` of the flux) is <= 0.75 room, 0 if
    >= room, linear in between."""
    for k in range(gamp.shape[0]):
        a = abs(gamp[k])
        ext = np.sqrt(gvar[k] * cmax) * np.sqrt(2.0 * np.log(a / loss)) if a > loss else 0.0
        w[k] = min(max((room - ext) / (0.25 * room), 0.0), 1.0)


def fft_weights_np(gamp, gvar, cmax, room, loss, w):
    """numpy twin of :func:`fft_weights`."""
    ext = np.sqrt(gvar * cmax) * np.sqrt(2.0 * np.log(np.maximum(np.abs(gamp) / loss, 1.0)))
    w[:] = np.clip((room - ext) / (0.25 * room), 0.0, 1.0)


@njit(cache=True)
def hybrid_split(gamp, gvar, gdamp, cmax, cyy_unused, room, loss, pamp, pmx, pmy, pvxx, pvyy):
    """Hybrid split of a galaxy mixture: (amp_fft, damp_fft, amp_mog, damp_mog, hs_fft, hs_mog)
    with :func:`fft_weights` shares; hs_fft is the FFT part's own half-size (no PSF; -1 if
    empty), hs_mog the mixture part's half-size with the PSF mixture (-1 if empty)."""
    k = gamp.shape[0]
    w = np.empty(k)
    fft_weights(gamp, gvar, cmax, room, loss, w)
    af, df, am, dm = gamp * w, gdamp * w, gamp * (1.0 - w), gdamp * (1.0 - w)
    one = np.ones(1)
    zero = np.zeros(1)
    hs_f, hs_m = -1, -1
    if w.max() > 0.0:
        hs_f = mog_halfsize(af, gvar, cmax, cmax, one, zero, zero, zero, zero, loss)
    if w.min() < 1.0:
        hs_m = mog_halfsize(am, gvar, cmax, cmax, pamp, pmx, pmy, pvxx, pvyy, loss)
    return af, df, am, dm, hs_f, hs_m


def hybrid_split_np(gamp, gvar, gdamp, cmax, cyy_unused, room, loss, pamp, pmx, pmy, pvxx, pvyy):
    """numpy twin of :func:`hybrid_split`."""
    w = np.empty(len(gamp))
    fft_weights_np(gamp, gvar, cmax, room, loss, w)
    af, df, am, dm = gamp * w, gdamp * w, gamp * (1 - w), gdamp * (1 - w)
    one, zero = np.ones(1), np.zeros(1)
    hs_f = mog_halfsize_np(af, gvar, cmax, cmax, one, zero, zero, zero, zero, loss) if w.max() > 0 else -1
    hs_m = mog_halfsize_np(am, gvar, cmax, cmax, pamp, pmx, pmy, pvxx, pvyy, loss) if w.min() < 1 else -1
    return af, df, am, dm, hs_f, hs_m
