"""HEALPix helpers (nested scheme): ``_healpix_29`` of positions, pixel ranges, brick footprints.

All angles in degrees. A pixel (order k, index n) covers the order-29 index range
``[n << 2(29-k), (n+1) << 2(29-k))``.
"""

from __future__ import annotations

import numpy as np
import astropy.units as u
from astropy.coordinates import Latitude, Longitude
import cdshealpix.nested as chp

#: Order of the per-row index column.
ORDER29 = 29
#: Order of the cells recording each input file's footprint (about 3.4 arcmin).
FOOTPRINT_ORDER = 10
#: Brick image half-width used for footprints (the image is 3600 px x 0.262"), deg, plus a margin.
BRICK_HALF_DEG = 0.131 + 0.01


def healpix29(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Nested order-29 index of each (ra, dec) in deg (must be finite, dec in [-90, 90])."""
    if len(ra) == 0:
        return np.zeros(0, dtype=np.int64)
    ipix = chp.lonlat_to_healpix(Longitude(np.asarray(ra, dtype=np.float64) % 360.0, u.deg),
                                 Latitude(np.asarray(dec, dtype=np.float64), u.deg), ORDER29)
    return np.asarray(ipix, dtype=np.int64)


def shift(order: int) -> int:
    """Bit shift between an order and order 29."""
    return 2 * (ORDER29 - order)


def pixel_range(order: int, npix: int) -> tuple[int, int]:
    """Half-open order-29 index range of pixel (order, npix)."""
    s = shift(order)
    return int(npix) << s, (int(npix) + 1) << s


def cone_cells(ra: float, dec: float, radius_deg: float, order: int) -> np.ndarray:
    """Sorted nested indices at ``order`` of the cells touching a cone (may over-cover)."""
    ipix, _, _ = chp.cone_search(Longitude(ra % 360.0, u.deg), Latitude(dec, u.deg),
                                 radius_deg * u.deg, order, flat=True)
    return np.unique(np.asarray(ipix, dtype=np.int64))


def good_positions(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """True where (ra, dec) is finite with 0 <= ra <= 360 and -90 <= dec <= 90."""
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra <= 360) & (dec >= -90) & (dec <= 90)


def brick_samples(brick: dict, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """An n x n grid of sample positions inside a brick's primary box (for row-count estimates)."""
    fr = (np.arange(n) + 0.5) / n
    ra = brick["ra1"] + (brick["ra2"] - brick["ra1"]) * fr
    dec = np.clip(brick["dec1"] + (brick["dec2"] - brick["dec1"]) * fr, -90, 90)
    rr, dd = np.meshgrid(ra, dec)
    return rr.ravel(), dd.ravel()


def brick_footprint(brick: dict) -> np.ndarray:
    """Cells at FOOTPRINT_ORDER that can hold rows of a brick's Tractor catalog (its image
    and a margin), as a sorted int64 array."""
    radius = BRICK_HALF_DEG * np.sqrt(2.0)
    return cone_cells(float(brick["ra"]), float(brick["dec"]), radius, FOOTPRINT_ORDER)


def brick_histogram(brick: dict, rows: int, order: int) -> dict[int, float]:
    """Estimated rows per cell at ``order`` for a brick of ``rows`` rows (uniform over its box)."""
    ra, dec = brick_samples(brick)
    cells = healpix29(ra, dec) >> shift(order)
    uniq, cnt = np.unique(cells, return_counts=True)
    return {int(c): rows * float(k) / len(cells) for c, k in zip(uniq, cnt)}


def brick_from_name(name: str) -> dict | None:
    """Box of the brick named ``name`` (``RRRR{p|m}DDD``) without building the whole grid
    (which costs ~200 MB): ra, dec (centre), ra1, ra2, dec1, dec2 in deg, brickid, brickname.
    None if the name is not a brick of the grid."""
    import re

    from legacylake.catalogs_schema import bricks

    m = re.fullmatch(r"(\d{4})([pm])(\d{3})", name.strip().lower())
    if not m:
        return None
    ra = int(m.group(1)) / 10.0
    dec = int(m.group(3)) / 10.0 * (1 if m.group(2) == "p" else -1)
    dec_c, ncol, offset = bricks._rows()
    row = int(np.argmin(np.abs(np.abs(dec_c) - (abs(dec) + 0.05)) + 1e3 * (np.sign(dec_c) * (1 if m.group(2) == "p" else -1) < 0)))
    n = int(ncol[row])
    width = 360.0 / n
    col = int(np.argmin(np.abs((np.arange(n) + 0.5) * width - (ra + 0.05))))
    ra_c = (col + 0.5) * width
    dc = float(dec_c[row])
    # the grid's names truncate ra*10 and |dec|*10 (after rounding to 1e-4 deg)
    got = f"{int(round(ra_c * 1e4)) // 1000:04d}{'p' if dc >= 0 else 'm'}{int(round(abs(dc) * 1e4)) // 1000:03d}"
    if got != name.strip().lower():
        return None
    half = bricks.BRICK_SIZE_DEG / 2
    return {"brickid": int(offset[row] + col + 1), "brickname": got, "ra": ra_c, "dec": dc,
            "ra1": col * width, "ra2": (col + 1) * width, "dec1": dc - half, "dec2": dc + half}
