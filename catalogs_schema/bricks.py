"""The Legacy Surveys brick grid: 662,174 bricks of about 0.25 x 0.25 deg.

Rows of constant Dec centred on -90, -89.75, ..., +90; each row has the smallest even number
of equal RA columns that keeps a brick at most 0.25 deg wide at its edge nearest the
equator (polar caps: one brick). Bricks are numbered from 1, row by row from the south pole,
by increasing RA. All angles in degrees.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from legacylake.catalogs_schema.constants import PIXSCALE_ARCSEC

if TYPE_CHECKING:  # annotations only: not imported at run time
    import astropy.wcs

BRICK_SIZE_DEG: float = 0.25
NROWS: int = 721
#: Width and height of a brick image in pixels (at PIXSCALE_ARCSEC).
BRICK_IMAGE_SIZE: int = 3600


@functools.cache
def _rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dec centre, ncol, first brickid - 1) per row."""
    row = np.arange(NROWS)
    dec_c = -90.0 + BRICK_SIZE_DEG * row
    d_in = np.abs(dec_c) - BRICK_SIZE_DEG / 2
    ncol = 2 * np.ceil((360.0 / BRICK_SIZE_DEG) * np.cos(np.deg2rad(d_in)) / 2).astype(np.int64)
    ncol[0] = ncol[-1] = 1
    offset = np.concatenate([[0], np.cumsum(ncol)[:-1]])
    return dec_c, ncol, offset


def nbricks() -> int:
    """Number of bricks in the grid (662,174)."""
    _, ncol, _ = _rows()
    return int(ncol.sum())


def _names(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    rr = np.char.zfill(np.round(ra * 1e4).astype(np.int64).astype(str), 7)
    dd = np.char.zfill(np.round(np.abs(dec) * 1e4).astype(np.int64).astype(str), 6)
    sign = np.where(dec >= 0, "p", "m")
    return np.char.add(np.char.add(np.char.ljust(rr, 7).astype("U4"), sign), dd.astype("U3"))


@functools.cache
def grid() -> dict[str, np.ndarray]:
    """All bricks as column arrays: brickname, brickid, brickq, brickrow, brickcol,
    ra, dec, ra1, ra2, dec1, dec2 (the survey-bricks columns)."""
    dec_c, ncol, offset = _rows()
    brickrow = np.repeat(np.arange(NROWS), ncol)
    brickcol = np.arange(ncol.sum()) - np.repeat(offset, ncol)
    n = ncol[brickrow]
    width = 360.0 / n
    ra1 = brickcol * width
    ra2 = (brickcol + 1) * width
    ra = (ra1 + ra2) / 2
    dec = dec_c[brickrow]
    # the polar caps' edges run to -90.125 / +90.125, as in the survey's file
    dec1 = dec - BRICK_SIZE_DEG / 2
    dec2 = dec + BRICK_SIZE_DEG / 2
    out = {
        "brickname": _names(ra, dec),
        "brickid": (np.arange(ncol.sum()) + 1).astype(np.int32),
        "brickq": ((brickcol % 2) + 2 * (brickrow % 2)).astype(np.int16),
        "brickrow": brickrow.astype(np.int32),
        "brickcol": brickcol.astype(np.int32),
        "ra": ra, "dec": dec, "ra1": ra1, "ra2": ra2, "dec1": dec1, "dec2": dec2,
    }
    for v in out.values():
        v.setflags(write=False)
    return out


@functools.cache
def _name_index() -> dict[str, int]:
    return {str(n): i for i, n in enumerate(grid()["brickname"])}


def brickid_of(ra, dec) -> np.ndarray:
    """Brick id containing each (ra, dec); vectorised (ra wrapped into [0, 360)).

    Uses the half-open primary box ra1 <= ra < ra2, dec1 <= dec < dec2.
    """
    ra = np.mod(np.asarray(ra, dtype=np.float64), 360.0)
    dec = np.asarray(dec, dtype=np.float64)
    if np.any(~np.isfinite(dec)) or np.any((dec < -90) | (dec > 90)):
        raise ValueError("dec must be finite and within [-90, 90]")
    dec_c, ncol, offset = _rows()
    row = np.clip(np.floor((dec + 90.0 + BRICK_SIZE_DEG / 2) / BRICK_SIZE_DEG).astype(np.int64), 0, NROWS - 1)
    # fix float noise at row edges
    lo = dec_c[row] - BRICK_SIZE_DEG / 2
    row = np.where((dec < lo) & (row > 0), row - 1, row)
    hi = dec_c[row] + BRICK_SIZE_DEG / 2
    row = np.where((dec >= hi) & (row < NROWS - 1), row + 1, row)
    n = ncol[row]
    col = np.minimum((ra / 360.0 * n).astype(np.int64), n - 1)
    width = 360.0 / n
    col = np.where((ra < col * width) & (col > 0), col - 1, col)
    col = np.where((ra >= (col + 1) * width) & (col < n - 1), col + 1, col)
    return (offset[row] + col + 1).astype(np.int32)


def brickname_of(ra, dec) -> np.ndarray:
    """Brick name containing each (ra, dec)."""
    return grid()["brickname"][brickid_of(ra, dec) - 1]


def brick(name_or_id: str | int) -> dict:
    """One brick's row (all grid columns) by name (``1126p222``) or id (1-based)."""
    if isinstance(name_or_id, str) and not name_or_id.strip().isdigit():
        key = name_or_id.strip().lower()
        if key not in _name_index():
            raise KeyError(f"unknown brick name {name_or_id!r} (expected RRRR{{p|m}}DDD, e.g. 1126p222)")
        i = _name_index()[key]
    else:
        i = int(name_or_id) - 1
        if not 0 <= i < nbricks():
            raise KeyError(f"brickid {name_or_id} out of range 1..{nbricks()}")
    return {k: v[i].item() if hasattr(v[i], "item") else v[i] for k, v in grid().items()}


def brickname_to_id(name: str) -> int:
    return int(brick(name)["brickid"])


def brickid_to_name(brickid: int) -> str:
    return str(brick(int(brickid))["brickname"])


def is_primary(ra, dec, brickid) -> np.ndarray:
    """brick_primary test: (ra, dec) inside the half-open RA/Dec box of ``brickid``."""
    g = grid()
    i = np.asarray(brickid, dtype=np.int64) - 1
    ra = np.mod(np.asarray(ra, dtype=np.float64), 360.0)
    dec = np.asarray(dec, dtype=np.float64)
    in_dec = (dec >= g["dec1"][i]) & (dec < g["dec2"][i])
    return in_dec & (ra >= g["ra1"][i]) & (ra < g["ra2"][i])


def brick_wcs(name_or_id: str | int) -> "astropy.wcs.WCS":
    """TAN WCS of the brick image: 3600 x 3600 px at 0.262"/px centred on the brick, North up, East left."""
    from astropy.wcs import WCS

    b = brick(name_or_id)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [b["ra"], b["dec"]]
    w.wcs.crpix = [BRICK_IMAGE_SIZE / 2 + 0.5, BRICK_IMAGE_SIZE / 2 + 0.5]
    scale = PIXSCALE_ARCSEC / 3600.0
    w.wcs.cd = [[-scale, 0.0], [0.0, scale]]
    w.pixel_shape = (BRICK_IMAGE_SIZE, BRICK_IMAGE_SIZE)
    return w


def bricks_in_box(ra1: float, ra2: float, dec1: float, dec2: float) -> np.ndarray:
    """Brick ids whose box overlaps [ra1, ra2] x [dec1, dec2] (ra1 > ra2 wraps through 0)."""
    g = grid()
    dec_ok = (g["dec2"] > dec1) & (g["dec1"] < dec2)
    if ra1 <= ra2:
        ra_ok = (g["ra2"] > ra1) & (g["ra1"] < ra2)
    else:
        ra_ok = (g["ra2"] > ra1) | (g["ra1"] < ra2)
    return g["brickid"][dec_ok & ra_ok]


def area_deg2(brickid=None) -> np.ndarray:
    """Area of bricks in deg^2 (all bricks if ``brickid`` is None)."""
    g = grid()
    i = slice(None) if brickid is None else np.asarray(brickid) - 1
    dec1 = np.clip(g["dec1"][i], -90.0, 90.0)
    dec2 = np.clip(g["dec2"][i], -90.0, 90.0)
    return (g["ra2"][i] - g["ra1"][i]) * (np.sin(np.deg2rad(dec2)) - np.sin(np.deg2rad(dec1))) * 180.0 / np.pi
