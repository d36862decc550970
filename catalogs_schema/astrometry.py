"""Astrometric epochs: proper-motion propagation and MJD <-> Julian year (degrees, mas/yr, years)."""

from __future__ import annotations

import math

import numpy as np

#: MJD of J2000.0 (2000-01-01 12:00 TT).
MJD_J2000 = 51544.5
#: Days per Julian year.
JULIAN_YEAR_DAYS = 365.25


def mjd_to_year(mjd) -> np.ndarray:
    """Julian epoch (years, e.g. 2015.5) of a Modified Julian Date (days)."""
    return 2000.0 + (np.asarray(mjd, np.float64) - MJD_J2000) / JULIAN_YEAR_DAYS


def propagate(ra_deg, dec_deg, pmra_masyr, pmdec_masyr, dt_yr) -> tuple[np.ndarray, np.ndarray]:
    """Move positions (deg) by proper motion (mas/yr; pmra includes cos(dec)) over ``dt_yr``
    years, on the sphere (linear in the tangent plane, renormalised; parallax neglected).

    NaN proper motions or times leave the position unchanged. Returns (ra, dec) in degrees,
    ra in [0, 360)."""
    ra = np.radians(np.asarray(ra_deg, np.float64))
    dec = np.radians(np.asarray(dec_deg, np.float64))
    mas = math.radians(1.0 / 3.6e6)
    pmra = np.nan_to_num(np.asarray(pmra_masyr, np.float64)) * mas
    pmdec = np.nan_to_num(np.asarray(pmdec_masyr, np.float64)) * mas
    dt = np.nan_to_num(np.broadcast_to(np.asarray(dt_yr, np.float64), ra.shape))
    sa, ca, sd, cd = np.sin(ra), np.cos(ra), np.sin(dec), np.cos(dec)
    x, y, z = cd * ca, cd * sa, sd
    # unit vectors towards +RA and +Dec
    px, py = -sa, ca
    qx, qy, qz = -sd * ca, -sd * sa, cd
    x = x + (px * pmra + qx * pmdec) * dt
    y = y + (py * pmra + qy * pmdec) * dt
    z = z + (qz * pmdec) * dt
    norm = np.sqrt(x * x + y * y + z * z)
    return np.degrees(np.arctan2(y, x)) % 360.0, np.degrees(np.arcsin(np.clip(z / norm, -1, 1)))
