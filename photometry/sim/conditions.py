"""Observing conditions that vary smoothly over the sky, evaluated at source positions.

Per band: number of exposures, PSF FWHM (arcsec), point-source depth (psfdepth, 1/nanomaggy^2)
for DR9 South (DECam), DR9 North (BASS/MzLS) and DR4; unWISE coverage and depths; the
epochs. Values depend only on position and seed, so a source gets the same conditions in
every brick that contains it.
"""

from __future__ import annotations

import numpy as np

from legacylake.catalogs_schema.constants import NANOMAGGY_ZEROPOINT

from legacylake.photometry.sim.rng import eval_fields

OPT = ("g", "r", "z")
WISE = ("w1", "w2", "w3", "w4")
#: 5-sigma point-source depth (AB mag) at 3 exposures and nominal seeing, and nominal FWHM (arcsec).
DEPTH5 = {
    "south": {"g": 24.7, "r": 24.2, "z": 23.3},
    "north": {"g": 24.0, "r": 23.6, "z": 23.0},
    "dr4": {"g": 23.65, "r": 23.2, "z": 22.7},
}
FWHM = {
    "south": {"g": 1.45, "r": 1.3, "z": 1.2},
    "north": {"g": 1.8, "r": 1.6, "z": 1.3},
    "dr4": {"g": 1.8, "r": 1.6, "z": 1.3},
}
#: unWISE 5-sigma depth (AB mag) at 25 exposures; PSF FWHM (arcsec).
WISE_DEPTH5 = {"w1": 20.4, "w2": 19.8, "w3": 16.8, "w4": 14.6}
WISE_FWHM = {"w1": 6.1, "w2": 6.4, "w3": 6.5, "w4": 12.0}
#: North/South split of DR9 (DESI's resolve): north if dec >= 32.375 and b > 0.
NORTH_DEC = 32.375


def depth_to_ivar(mag5):
    """psfdepth (1/nmgy^2) of a 5-sigma depth in AB mag."""
    f5 = 10 ** (-0.4 * (np.asarray(mag5) - NANOMAGGY_ZEROPOINT))
    return 25.0 / f5**2


def conditions(ra: np.ndarray, dec: np.ndarray, sinb: np.ndarray, seed: int, survey: str) -> dict:
    """Conditions at (ra, dec) deg (``sinb``: sin of the Galactic latitude). ``survey``: "dr9" (north/south by position) or "dr4".

    Returns nobs_b (int), psfsize_b (arcsec FWHM), psfdepth_b (1/nmgy^2) for g, r, z and
    w1..w4 (nobs, psfdepth), mjd_min/mjd_max, lc_nep (WISE epochs), north (bool).
    """
    n = len(ra)
    out: dict[str, np.ndarray] = {}
    north = (dec >= NORTH_DEC) & (sinb > 0) if survey == "dr9" else np.ones(n, bool)
    out["north"] = north
    specs = [(210, 0.3, 4.0), (220, 0.2, 3.0), (221, 0.2, 3.0), (222, 0.2, 3.0), (230, 0.3, 5.0),
             (231, 0.3, 5.0), (232, 0.3, 5.0), (240, 2.0, 20.0), (250, 0.5, 5.0), (251, 0.5, 5.0)]
    F = eval_fields(ra, dec, seed, specs)
    fsky = F[:, 0]
    for j, b in enumerate(OPT):
        f_n = F[:, 1 + j]
        f_s = F[:, 4 + j]
        nobs = np.clip(np.round(3.3 + 1.3 * f_n), 1, 12).astype(np.int16)
        if survey == "dr4":
            fwhm0, div = FWHM["dr4"][b], depth_to_ivar(DEPTH5["dr4"][b])
        else:  # the two depths' ivars as scalars, then picked per source (no array power)
            fwhm0 = np.where(north, FWHM["north"][b], FWHM["south"][b])
            div = np.where(north, depth_to_ivar(DEPTH5["north"][b]), depth_to_ivar(DEPTH5["south"][b]))
        psfsize = fwhm0 * np.exp(0.1 * f_s)
        depth = div * (nobs / 3.0) * (fwhm0 / psfsize) ** 2 * np.exp(0.25 * fsky)
        out[f"nobs_{b}"], out[f"psfsize_{b}"], out[f"psfdepth_{b}"] = nobs, psfsize, depth
    fw = F[:, 7]
    wn = np.clip(np.round(25 * np.exp(0.35 * fw)), 8, 400).astype(np.int16)
    for b in WISE:
        out[f"nobs_{b}"] = wn
        out[f"psfdepth_{b}"] = depth_to_ivar(WISE_DEPTH5[b]) * (wn / 25.0)
    fm1, fm2 = F[:, 8], F[:, 9]
    out["mjd_min"] = 56500.0 + 350.0 * (1.0 + np.tanh(fm1))
    out["mjd_max"] = out["mjd_min"] + 400.0 + 500.0 * (1.0 + np.tanh(fm2))
    out["lc_nep"] = np.clip(np.round(11 + 1.5 * fw), 6, 15).astype(np.int16)
    return out
