"""dchisq of the five candidate models (PSF, REX/SIMP, DEV, EXP, SER/COMP) of every source from
its S/N per band and profile: a numba kernel and its numpy twin.

Per optical band with PSF sigma sp and source sigmas (sa, sb) (arcsec), a model's captured
fraction of the true profile's chi^2 is rho^2 q_b (q_b = sign(f) f^2 ivar): PSF overlap
ov(sp, A) ov(sp, B) (A, B = sqrt(sp^2 + sa^2), sqrt(sp^2 + sb^2)); REX the round Gaussian of
the same area (DR4 SIMP: fixed 0.45" exponential, sigma2 ``simp_s2``) times the EXP profile
term; EXP and DEV exp(-K ln(n_model / n)^2 r) with r = sg^2 / (sg^2 + sp^2); SER 1. Each model
then gains a fit-freedom term xi and a noise term eps from the normals ``zc`` (n, 9).
Values exactly 0 become 1e-6 (0 means "not computed").
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _ov(s1, s2):
    return math.sqrt(2.0 * s1 * s2 / (s1 * s1 + s2 * s2))


@njit(cache=True)
def dchisq_kernel(sig_p, sa, sb, sg, nser, qb, qtot, zc, dr9, simp_s2, profile_k, out):
    """out (n, 5) dchisq; sig_p, qb (3, n)."""
    rho = np.empty(5)
    for i in range(sa.shape[0]):
        for m in range(5):
            rho[m] = 0.0
        res = sg[i] * sg[i]
        l1 = math.log(1.0 / nser[i])
        l4 = math.log(4.0 / nser[i])
        for b in range(3):
            sp = sig_p[b, i]
            sp2 = sp * sp
            A = math.sqrt(sp2 + sa[i] * sa[i])
            B = math.sqrt(sp2 + sb[i] * sb[i])
            r_ = res / (res + sp2)
            # exp(0) = 1 exactly: skip it for the model matching the truth profile (and for points)
            x1 = -profile_k * (l1 * l1) * r_
            x4 = -profile_k * (l4 * l4) * r_
            prof1 = 1.0 if x1 == 0.0 else math.exp(x1)
            prof4 = 1.0 if x4 == 0.0 else math.exp(x4)
            r_psf = _ov(sp, A) * _ov(sp, B)
            if dr9:
                C = math.sqrt(A * B)
                r_rex = _ov(A, C) * _ov(B, C) * prof1
            else:
                S = math.sqrt(sp2 + simp_s2)
                r_rex = _ov(S, A) * _ov(S, B) * prof1
            q = qb[b, i]
            rho[0] += r_psf * r_psf * q
            rho[1] += r_rex * r_rex * q
            rho[2] += prof4 * prof4 * q
            rho[3] += prof1 * prof1 * q
            rho[4] += q
        qpos = max(qtot[i], 0.0)
        z0, z1, z2, z3 = zc[i, 0], zc[i, 1], zc[i, 2], zc[i, 3]
        if dr9:
            xr = max(z0, 0.0) * max(z0, 0.0)
            x_exp, x_dev = xr + z1 * z1, xr + z2 * z2
            xi = (0.0, xr, x_dev, x_exp, max(x_exp, x_dev) + max(z3, 0.0) * max(z3, 0.0))
        else:
            x_exp, x_dev = z1 * z1, z2 * z2
            xi = (0.0, 0.0, x_dev, x_exp, max(x_exp, x_dev) + z3 * z3)
        for m in range(5):
            eps = 2.0 * math.sqrt(max(qpos - rho[m], 0.0) + 1e-3) * zc[i, 4 + m] * 0.5
            v = rho[m] + xi[m] + eps
            out[i, m] = 1e-6 if v == 0 else v


def dchisq_np(sig_p, sa, sb, sg, nser, qb, qtot, zc, dr9, simp_s2, profile_k):
    """numpy twin of :func:`dchisq_kernel`."""
    rho = [np.zeros(len(sa)) for _ in range(5)]
    res = sg**2
    l1, l4 = np.log(1.0 / nser), np.log(4.0 / nser)

    def ov(s1, s2):
        return np.sqrt(2.0 * s1 * s2 / (s1 * s1 + s2 * s2))

    for b in range(3):
        sp = sig_p[b]
        A, B = np.sqrt(sp**2 + sa**2), np.sqrt(sp**2 + sb**2)
        r_ = res / (res + sp**2)
        prof1 = np.exp(-profile_k * l1**2 * r_)
        prof4 = np.exp(-profile_k * l4**2 * r_)
        r_psf = ov(sp, A) * ov(sp, B)
        if dr9:
            C = np.sqrt(A * B)
            r_rex = ov(A, C) * ov(B, C) * prof1
        else:
            S = np.sqrt(sp**2 + simp_s2)
            r_rex = ov(S, A) * ov(S, B) * prof1
        for m, r in enumerate((r_psf, r_rex, prof4, prof1, 1.0)):
            rho[m] = rho[m] + np.asarray(r) ** 2 * qb[b]
    qpos = np.maximum(qtot, 0.0)
    if dr9:
        xr = np.maximum(zc[:, 0], 0) ** 2
        x_exp, x_dev = xr + zc[:, 1] ** 2, xr + zc[:, 2] ** 2
        xi = (0.0, xr, x_dev, x_exp, np.maximum(x_exp, x_dev) + np.maximum(zc[:, 3], 0) ** 2)
    else:
        x_exp, x_dev = zc[:, 1] ** 2, zc[:, 2] ** 2
        xi = (0.0, 0.0, x_dev, x_exp, np.maximum(x_exp, x_dev) + zc[:, 3] ** 2)
    out = np.stack([rho[m] + xi[m] + 2.0 * np.sqrt(np.maximum(qpos - rho[m], 0.0) + 1e-3) * zc[:, 4 + m] * 0.5
                    for m in range(5)], axis=1)
    out[out == 0] = 1e-6
    return out
