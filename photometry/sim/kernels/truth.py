"""Per-source truth properties (colours, shapes, astrometry, fluxes) from the source's
population, drawn magnitude and random numbers: a numba kernel and its numpy twin.

Inputs per source: ``pop`` (0 star, 1 galaxy, 2 quasar), ``m`` (Gaia G for stars, r otherwise,
AB mag before extinction), ``u`` (n, 6) uniforms (column 0 already used for m), ``z`` (n, 8)
normals, ``ebv`` (mag). Constants: ``poly`` (3, k) Gaia G, BP-RP -> DECam g, r, z polynomial
coefficients (increasing powers), ``bprp`` (lo, hi) range of validity, ``vega`` W1..W4 Vega to
AB offsets (mag), ``ext`` extinction coefficients of g r i z w1 w2 w3 w4 (DECam/WISE bands
in this order), ``zp`` the
nanomaggy zero point, ``gext`` Gaia G, BP, RP extinction coefficients (A / E(B-V)). Output
(n, NOUT) float64, columns :data:`COLUMNS`, and the morphology code (0 PSF, 1 DEV, 2 EXP,
3 SER). Fluxes in nanomaggies and Gaia magnitudes are both observed (extinction applied); a
star's observed g, r, z are the Gaia-to-DECam polynomials of its observed G and BP-RP, so the
reference's transformation of the Gaia magnitudes predicts them exactly (up to noise), pm in
mas/yr, parallax in mas, sizes in arcsec. The kernel leaves the fluxes as
ln(flux) (:data:`FLUX_COLS`); :func:`truth_columns` exponentiates them with numpy's vectorised
exp.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

COLUMNS = ("sersic", "shape_r", "shape_e1", "shape_e2", "flux_g", "flux_r", "flux_i", "flux_z",
           "flux_w1", "flux_w2", "flux_w3", "flux_w4", "pmra", "pmdec", "parallax", "in_gaia",
           "gaia_g", "gaia_bp", "gaia_rp", "redshift")
NOUT = len(COLUMNS)
FLUX_COLS = slice(4, 12)
MORPHS = ("PSF", "DEV", "EXP", "SER")
_LN18 = math.log(1.8)
_LNF = -0.4 * math.log(10.0)  # ln(flux) per magnitude


@njit(cache=True, inline="always")
def _horner(c, x):
    y = c[c.shape[0] - 1]
    for i in range(c.shape[0] - 2, -1, -1):
        y = c[i] + y * x
    return y


@njit(cache=True)
def truth_kernel(pop, m, u, z, ebv, poly, bprp, vega, ext, zp, gext, out, morph):
    """Fill ``out`` (n, NOUT; fluxes as ln(flux)) and ``morph`` (n,) int8 for every source."""
    mags = np.empty(8)
    for i in range(pop.shape[0]):
        for c in range(NOUT):
            out[i, c] = 0.0
        morph[i] = 0
        p = pop[i]
        if p == 0:
            G = m[i]
            x = min(max(0.75 + 0.2 * z[i, 0] - 0.45 * math.log(u[i, 1]), -0.5), 4.0)
            # observed Gaia G, BP-RP; DECam g, r, z from them (less the DECam reddening added below)
            Go = G + gext[0] * ebv[i]
            xc = min(max(x + (gext[1] - gext[2]) * ebv[i], bprp[0]), bprp[1])
            g_ = Go + _horner(poly[0], xc) - ext[0] * ebv[i]
            r_ = Go + _horner(poly[1], xc) - ext[1] * ebv[i]
            z_ = Go + _horner(poly[2], xc) - ext[3] * ebv[i]
            rz = r_ - z_
            w1 = z_ - (0.8 * rz - 1.5 + 0.08 * z[i, 1])
            w1w2 = 0.1 * max(rz - 1.0, 0.0) + 0.03 * z[i, 2]
            w2 = w1 - (w1w2 + vega[0] - vega[1])
            w3 = w2 - (0.05 + vega[1] - vega[2])
            w4 = w3 - (0.0 + vega[2] - vega[3])
            mags[0], mags[1], mags[2], mags[3] = g_, r_, r_ - 0.45 * rz, z_
            mags[4], mags[5], mags[6], mags[7] = w1, w2, w3, w4
            f = 10.0 ** (-0.2 * (G - 14.0))
            sig_pm = 4.0 + 25.0 * f
            out[i, 12] = sig_pm * z[i, 3]
            out[i, 13] = sig_pm * z[i, 4] - 0.3 * sig_pm
            out[i, 14] = f * math.exp(0.4 * z[i, 5])
            rp = G - (0.1 + 0.45 * x)
            out[i, 16], out[i, 17], out[i, 18] = Go, rp + x + gext[1] * ebv[i], rp + gext[2] * ebv[i]
            out[i, 15] = 1.0 if Go < 20.7 else 0.0
        elif p == 1:
            r_ = m[i]
            um = u[i, 1]
            if um < 0.2:
                mo, nser = 1, 4.0
            elif um < 0.75:
                mo, nser = 2, 1.0
            else:
                mo, nser = 3, min(max(math.exp(_LN18 + 0.5 * z[i, 0]), 0.5), 6.0)
            red = mo == 1 or nser > 2.5
            zr = min(max(0.05 + 0.085 * (r_ - 16.0) + 0.12 * z[i, 1], 0.01), 1.6)
            re = 0.9 * 10.0 ** (-0.11 * (r_ - 20.0) + 0.2 * z[i, 2]) * (0.7 if red else 1.0)
            e = min(0.25 * math.sqrt(-2 * math.log(u[i, 3])), 0.85)
            ang = 2 * math.pi * u[i, 2]
            gr = (0.75 + 0.9 * zr if red else 0.35 + 0.5 * zr) + 0.08 * z[i, 3]
            rz = (0.45 + 1.6 * zr if red else 0.3 + 0.7 * zr) + 0.08 * z[i, 4]
            z_ = r_ - rz
            w1 = z_ - ((0.2 + 1.0 * zr if red else -0.1 + 0.6 * zr) + 0.1 * z[i, 5])
            w2 = w1 - (-0.6 + 0.4 * zr + 0.08 * z[i, 6])
            w3 = w2 - (-0.8 if red else 1.2)
            w4 = w3 - 0.55
            mags[0], mags[1], mags[2], mags[3] = r_ + gr, r_, r_ - 0.45 * rz, z_
            mags[4], mags[5], mags[6], mags[7] = w1, w2, w3, w4
            morph[i] = mo
            out[i, 0], out[i, 1] = nser, re
            out[i, 2], out[i, 3] = e * math.cos(ang), e * math.sin(ang)
            out[i, 19] = zr
        else:
            r_ = m[i]
            gr = 0.15 + 0.15 * z[i, 0]
            rz = 0.25 + 0.2 * z[i, 1]
            z_ = r_ - rz
            w1 = z_ - (1.0 + 0.35 * z[i, 2])
            w2 = w1 - (0.35 + 0.15 * z[i, 3])
            mags[0], mags[1], mags[2], mags[3] = r_ + gr, r_, r_ - 0.45 * rz, z_
            mags[4], mags[5], mags[6], mags[7] = w1, w2, w2 - 1.8, w2 - 2.6
            out[i, 19] = 0.5 + 2.5 * u[i, 1]
            G = r_ + 0.1
            x = 0.6 + 0.15 * z[i, 4]
            rp = G - (0.1 + 0.45 * x)
            Go = G + gext[0] * ebv[i]
            out[i, 16], out[i, 17], out[i, 18] = Go, rp + x + gext[1] * ebv[i], rp + gext[2] * ebv[i]
            out[i, 15] = 1.0 if Go < 20.5 else 0.0
        for j in range(8):
            out[i, 4 + j] = _LNF * (mags[j] + ext[j] * ebv[i] - zp)


def truth_columns(pop, m, u, z, ebv, poly, bprp, vega, ext, zp, gext):
    """(out, morph) of :func:`truth_kernel` with the fluxes exponentiated."""
    out = np.empty((len(pop), NOUT))
    morph = np.empty(len(pop), np.int8)
    truth_kernel(pop, m, u, z, ebv, poly, bprp, vega, ext, zp, gext, out, morph)
    np.exp(out[:, FLUX_COLS], out=out[:, FLUX_COLS])
    return out, morph


def truth_np(pop, m, u, z, ebv, poly, bprp, vega, ext, zp, gext):
    """numpy twin of :func:`truth_kernel`: (out, morph)."""
    n = len(pop)
    out = np.zeros((n, NOUT))
    morph = np.zeros(n, np.int8)
    mags = np.zeros((n, 8))
    star, gal, qso = pop == 0, pop == 1, pop == 2
    P = lambda c, x: np.polynomial.polynomial.polyval(x, c)  # noqa: E731
    G = m[star]
    x = np.clip(0.75 + 0.2 * z[star, 0] - 0.45 * np.log(u[star, 1]), -0.5, 4.0)
    e = ebv[star]
    Go = G + gext[0] * e
    xc = np.clip(x + (gext[1] - gext[2]) * e, bprp[0], bprp[1])
    g_, r_, z_ = (Go + P(poly[0], xc) - ext[0] * e, Go + P(poly[1], xc) - ext[1] * e,
                  Go + P(poly[2], xc) - ext[3] * e)
    rz = r_ - z_
    w1 = z_ - (0.8 * rz - 1.5 + 0.08 * z[star, 1])
    w2 = w1 - (0.1 * np.maximum(rz - 1.0, 0) + 0.03 * z[star, 2] + vega[0] - vega[1])
    w3 = w2 - (0.05 + vega[1] - vega[2])
    w4 = w3 - (0.0 + vega[2] - vega[3])
    mags[star] = np.stack([g_, r_, r_ - 0.45 * rz, z_, w1, w2, w3, w4], axis=1)
    f = 10 ** (-0.2 * (G - 14.0))
    sig_pm = 4.0 + 25.0 * f
    out[star, 12], out[star, 13] = sig_pm * z[star, 3], sig_pm * z[star, 4] - 0.3 * sig_pm
    out[star, 14] = f * np.exp(0.4 * z[star, 5])
    rp = G - (0.1 + 0.45 * x)
    out[star, 16], out[star, 17], out[star, 18], out[star, 15] = Go, rp + x + gext[1] * e, rp + gext[2] * e, Go < 20.7
    r_ = m[gal]
    um = u[gal, 1]
    mo = np.where(um < 0.2, 1, np.where(um < 0.75, 2, 3))
    nser = np.where(mo == 1, 4.0, np.where(mo == 2, 1.0, np.clip(np.exp(_LN18 + 0.5 * z[gal, 0]), 0.5, 6.0)))
    red = (mo == 1) | (nser > 2.5)
    zr = np.clip(0.05 + 0.085 * (r_ - 16.0) + 0.12 * z[gal, 1], 0.01, 1.6)
    re = 0.9 * 10 ** (-0.11 * (r_ - 20.0) + 0.2 * z[gal, 2]) * np.where(red, 0.7, 1.0)
    e = np.minimum(0.25 * np.sqrt(-2 * np.log(u[gal, 3])), 0.85)
    ang = 2 * np.pi * u[gal, 2]
    gr = np.where(red, 0.75 + 0.9 * zr, 0.35 + 0.5 * zr) + 0.08 * z[gal, 3]
    rz = np.where(red, 0.45 + 1.6 * zr, 0.3 + 0.7 * zr) + 0.08 * z[gal, 4]
    z_ = r_ - rz
    w1 = z_ - (np.where(red, 0.2 + 1.0 * zr, -0.1 + 0.6 * zr) + 0.1 * z[gal, 5])
    w2 = w1 - (-0.6 + 0.4 * zr + 0.08 * z[gal, 6])
    w3 = w2 - np.where(red, -0.8, 1.2)
    mags[gal] = np.stack([r_ + gr, r_, r_ - 0.45 * rz, z_, w1, w2, w3, w3 - 0.55], axis=1)
    morph[gal] = mo
    out[gal, 0], out[gal, 1], out[gal, 19] = nser, re, zr
    out[gal, 2], out[gal, 3] = e * np.cos(ang), e * np.sin(ang)
    r_ = m[qso]
    gr, rz = 0.15 + 0.15 * z[qso, 0], 0.25 + 0.2 * z[qso, 1]
    z_ = r_ - rz
    w1 = z_ - (1.0 + 0.35 * z[qso, 2])
    w2 = w1 - (0.35 + 0.15 * z[qso, 3])
    mags[qso] = np.stack([r_ + gr, r_, r_ - 0.45 * rz, z_, w1, w2, w2 - 1.8, w2 - 2.6], axis=1)
    out[qso, 19] = 0.5 + 2.5 * u[qso, 1]
    G = r_ + 0.1
    x = 0.6 + 0.15 * z[qso, 4]
    rp = G - (0.1 + 0.45 * x)
    e = ebv[qso]
    Go = G + gext[0] * e
    out[qso, 16], out[qso, 17], out[qso, 18], out[qso, 15] = Go, rp + x + gext[1] * e, rp + gext[2] * e, Go < 20.5
    out[:, FLUX_COLS] = np.exp(_LNF * (mags + np.asarray(ext)[None, :] * ebv[:, None] - zp))
    return out, morph
