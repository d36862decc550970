"""Fibre fluxes and blending fractions from neighbour pairs: a numba kernel and its numpy twin.

Optical band b: fiberflux = flux * fib_frac where the flux is good (> 0 with ivar > 0), else 0;
fibertotflux adds every good neighbour's fibre flux times exp(-d^2 / (2 (fib_s2_i + fib_s2_j)));
fracflux = sum over neighbours |flux_j| exp(-d^2 / (2 (s2_i + s2_j))) / max(|flux_i|, 1e-3).
WISE bands: fracflux with exp(-d^2 / (4 sw2)). d^2 (arcsec^2) of the pairs (pi, pj); sums
in pair order, first over pi then over pj (as ``np.add.at``). Fluxes in nanomaggies.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def blend_kernel(flux, good, fib_frac, fib_s2, s2b, sw2, pi, pj, d2, fiber, fibertot, fracflux):
    """flux (7, n) g r z w1..w4; good (3, n); s2b (3, n); sw2 (4,). Outputs fiber, fibertot (3, n)
    and fracflux (7, n)."""
    n, npair = flux.shape[1], pi.shape[0]
    w = np.empty(npair)
    other = np.empty(n)
    for b in range(7):
        opt = b < 3
        if opt:
            for i in range(n):
                fiber[b, i] = flux[b, i] * fib_frac[i] if good[b, i] else 0.0
                fibertot[b, i] = fiber[b, i]
            for p in range(npair):
                w[p] = math.exp(-d2[p] / (2 * (fib_s2[pi[p]] + fib_s2[pj[p]])))
            for p in range(npair):
                j = pj[p]
                fibertot[b, pi[p]] += flux[b, j] * fib_frac[j] * w[p] if good[b, j] else 0.0
            for p in range(npair):
                j = pi[p]
                fibertot[b, pj[p]] += flux[b, j] * fib_frac[j] * w[p] if good[b, j] else 0.0
            for p in range(npair):
                w[p] = math.exp(-d2[p] / (2 * (s2b[b, pi[p]] + s2b[b, pj[p]])))
        else:
            for p in range(npair):
                w[p] = math.exp(-d2[p] / (4 * sw2[b - 3]))
        for i in range(n):
            other[i] = 0.0
        for p in range(npair):
            other[pi[p]] += abs(flux[b, pj[p]]) * w[p]
        for p in range(npair):
            other[pj[p]] += abs(flux[b, pi[p]]) * w[p]
        for i in range(n):
            fracflux[b, i] = other[i] / max(abs(flux[b, i]), 1e-3)


def blend_np(flux, good, fib_frac, fib_s2, s2b, sw2, pi, pj, d2):
    """numpy twin of :func:`blend_kernel`: (fiber, fibertot, fracflux)."""
    n = flux.shape[1]
    fiber, fibertot, fracflux = np.zeros((3, n)), np.zeros((3, n)), np.zeros((7, n))
    for b in range(7):
        f = flux[b]
        af = np.abs(f)
        if b < 3:
            fib = np.where(good[b], f * fib_frac, 0.0)
            fiber[b] = fib
            w_ij = np.exp(-d2 / (2 * (fib_s2[pi] + fib_s2[pj])))
            tot = fib.copy()
            np.add.at(tot, pi, np.where(good[b][pj], f[pj] * fib_frac[pj] * w_ij, 0.0))
            np.add.at(tot, pj, np.where(good[b][pi], f[pi] * fib_frac[pi] * w_ij, 0.0))
            fibertot[b] = tot
            ov = np.exp(-d2 / (2 * (s2b[b][pi] + s2b[b][pj])))
        else:
            ov = np.exp(-d2 / (4 * sw2[b - 3]))
        other = np.zeros(n)
        np.add.at(other, pi, af[pj] * ov)
        np.add.at(other, pj, af[pi] * ov)
        fracflux[b] = other / np.maximum(af, 1e-3)
    return fiber, fibertot, fracflux
