"""Reference stars of a simulated brick: Gaia-like astrometry and photometry of the truth stars
(with proper motion to an epoch), the Tycho-2 stars and the bright-star mask magnitude
(reference section 4)."""

from __future__ import annotations

import numpy as np

from legacylake.photometry.sim.kernels.healpix import healpix_nest_kernel
from legacylake.photometry.sim.rng import normals, seed_key, uniforms
from legacylake.photometry.sim.sky import BRIGHT_SUB, GAIA_BPRP_RANGE, GAIA_TO_DECAM


# ---------------------------------------------------------------- Gaia measurement
def gaia_measure(t: np.ndarray, seed: int, salt: int, epoch: float, err_scale: float = 1.0) -> dict:
    """Gaia-like measurements of truth sources: mags, errors, astrometry at ``epoch``."""
    key = seed_key(seed, salt)
    z = normals(t["uid"], key, 0, 10)
    G = t["gaia_g"].astype(np.float64)
    sig_g = 0.0003 + 0.02 * 10 ** (0.4 * (G - 21.0))
    sig_pm = err_scale * (0.03 + 0.05 * 10 ** (0.3 * (G - 15.0)))
    sig_plx = 0.7 * sig_pm
    sig_pos = 0.5 * sig_pm  # mas
    dt = epoch - t["epoch"]
    pmra = t["pmra"] + sig_pm * z[:, 0]
    pmdec = t["pmdec"] + sig_pm * z[:, 1]
    cosd = np.cos(np.deg2rad(t["dec"]))
    dec = t["dec"] + (t["pmdec"] * dt + sig_pos * z[:, 3]) / 3.6e6
    ra = t["ra"] + (t["pmra"] * dt + sig_pos * z[:, 4]) / 3.6e6 / np.maximum(cosd, 1e-6)
    out = {
        "ra": np.mod(ra, 360.0), "dec": dec, "pos_err_mas": sig_pos,
        "pmra": pmra, "pmdec": pmdec, "pm_err": sig_pm,
        "parallax": t["parallax"] + sig_plx * z[:, 2], "parallax_err": sig_plx,
        "g": G + sig_g * z[:, 5], "bp": t["gaia_bp"] + 2.5 * sig_g * z[:, 6],
        "rp": t["gaia_rp"] + 2.0 * sig_g * z[:, 7],
        "g_foe": 1.0857 / sig_g, "bp_foe": 1.0857 / (2.5 * sig_g), "rp_foe": 1.0857 / (2.0 * sig_g),
        "aen": np.where(t["kind"] == 0, 0.05 + 0.1 * np.abs(z[:, 8]), 0.3 + 0.2 * np.abs(z[:, 8])),
        "sigma5d": 1.2 * sig_pm,
    }
    return out


_GAIA_KEYS = ("ra", "dec", "pos_err_mas", "pmra", "pmdec", "pm_err", "parallax", "parallax_err", "g", "bp", "rp",
              "g_foe", "bp_foe", "rp_foe", "aen", "sigma5d")


# ---------------------------------------------------------------- Tycho-2
TYCHO_G_MAX = 12.0  # bright stars with observed G below this are in Tycho-2


TYCHO_ONLY_G = 7.0  # brighter than this Gaia DR2 is taken as incomplete: the star is a T2 row


TYCHO_ONLY_FRAC = 0.1  # fraction of the other Tycho-2 stars with no Gaia match (T2 rows)


TYCHO_EPOCH = 1991.25  # Tycho-2 mean epoch given to every T2 row (reference section 4)


def tycho_only(t: np.ndarray, seed: int) -> np.ndarray:
    """Tycho-2 stars without a Gaia match: catalog rows with ref_cat 'T2', absent from Gaia
    (the tractor's G2 rows and `simulate external --kind gaia`). Bright truth stars with observed
    G < TYCHO_G_MAX, all of those brighter than TYCHO_ONLY_G and a uid-keyed TYCHO_ONLY_FRAC
    of the rest."""
    out = (((t["uid"] >> 16) & 0xFF) == BRIGHT_SUB) & (t["kind"] == 0) & (t["gaia_g"] < TYCHO_G_MAX)
    i = np.flatnonzero(out)
    if len(i):
        u = uniforms(t["uid"][i], seed_key(seed, 13), 0)
        out[i] = (t["gaia_g"][i] < TYCHO_ONLY_G) | (u < TYCHO_ONLY_FRAC)
    return out


def tycho_measure(t: np.ndarray, seed: int) -> dict:
    """Tycho-2-like astrometry of truth stars (keys as :func:`gaia_measure`'s astrometry):
    position at TYCHO_EPOCH (deg; ~25-60 mas errors), proper motions (mas/yr, ~2.5 mas/yr
    errors), no parallax (0, error inf), and the Tycho id tyc1 * 10^6 + tyc2 * 10 + tyc3."""
    if len(t) == 0:  # the usual case in a brick: no T2 rows (skip ~20 numpy calls)
        e = np.zeros(0)
        return {"ra": e, "dec": e.copy(), "pos_err_mas": e.copy(), "pmra": e.copy(), "pmdec": e.copy(),
                "pm_err": e.copy(), "parallax": e.copy(), "parallax_err": e.copy(), "tyc_id": np.zeros(0, np.int64)}
    key = seed_key(seed, 14)
    z = normals(t["uid"], key, 0, 4)
    u = uniforms(t["uid"], key, 8, 2)
    G = t["gaia_g"].astype(np.float64)
    sig_pos = 25.0 + 35.0 * np.clip((G - 6.0) / 6.0, 0.0, 1.0)  # mas
    sig_pm = 1.0 + 1.5 * np.clip((G - 6.0) / 6.0, 0.0, 1.0)
    dt = TYCHO_EPOCH - t["epoch"]
    cosd = np.maximum(np.cos(np.deg2rad(t["dec"])), 1e-6)
    tyc1 = 1 + (u[:, 0] * 9537).astype(np.int64)
    tyc2 = 1 + (u[:, 1] * 12000).astype(np.int64)
    return {"ra": np.mod(t["ra"] + (t["pmra"] * dt + sig_pos * z[:, 0]) / 3.6e6 / cosd, 360.0),
            "dec": t["dec"] + (t["pmdec"] * dt + sig_pos * z[:, 1]) / 3.6e6, "pos_err_mas": sig_pos,
            "pmra": t["pmra"] + sig_pm * z[:, 2], "pmdec": t["pmdec"] + sig_pm * z[:, 3], "pm_err": sig_pm,
            "parallax": np.zeros(len(t)), "parallax_err": np.full(len(t), np.inf),
            "tyc_id": tyc1 * 1_000_000 + tyc2 * 10 + 1}


def mask_mag(t: np.ndarray) -> np.ndarray:
    """mask_mag = min(G, z_guess + 1) of Gaia stars (z_guess from the G, BP-RP polynomial)."""
    x = np.clip(t["gaia_bp"] - t["gaia_rp"], *GAIA_BPRP_RANGE)
    zg = t["gaia_g"] + np.polynomial.polynomial.polyval(x, GAIA_TO_DECAM["z"])
    return np.minimum(t["gaia_g"], zg + 1.0)


def gaia_source_id(uid, ra, dec) -> np.ndarray:
    """A Gaia-like source_id: HEALPix order-12 nested index * 2^35 + low bits of the uid."""
    n = len(uid)
    ipix = np.empty(n, np.int64)
    if n:
        healpix_nest_kernel(np.ascontiguousarray(ra, np.float64), np.ascontiguousarray(dec, np.float64), 12, ipix)
    return ipix * (1 << 35) + (np.asarray(uid, np.int64) & ((1 << 35) - 1))
