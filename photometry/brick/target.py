"""The region ``run-brick`` measures: a brick of the survey grid, optionally zoomed to a pixel
box (``--brick NAME --zoom X0 X1 Y0 Y1``), or a custom brick centred on a position
(``--radec RA DEC --width W --height H``), as the survey's ``runbrick`` chooses them.

A :class:`Target` carries the target image's TAN WCS (0.262 arcsec/px, North up, East left,
reference pixel at the centre: reference 1.1/1.3), its size, the RA/Dec box that decides
``brick_primary`` and the pixel box to process (``zoom``; the whole image if None). Pixel
coordinates (``bx``, ``by``) are always those of the whole target image, 0-based.

Custom bricks are named as the survey names them, ``custom-<RRRRRR><p|m><DDDDD>`` (RA and
|Dec| in millidegrees), with brickid -1 and the RA/Dec box of their own image (edges at the
image's sides through its centre), and write to ``tractor/cus/``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from legacylake.catalogs_schema import bricks
from legacylake.catalogs_schema.constants import PIXSCALE_ARCSEC

from legacylake.errors import UserError

#: largest custom brick side (pixels): the survey's brick image
MAX_CUSTOM_SIZE = 3 * bricks.BRICK_IMAGE_SIZE


@dataclass(frozen=True)
class Target:
    """A target image: name, brickid (-1 custom), centre (deg), size (px), primary RA/Dec box
    (deg, half-open) and the processed pixel box ``zoom`` (x0, x1, y0, y1) or None."""

    name: str
    brickid: int
    ra: float
    dec: float
    width: int
    height: int
    ra1: float
    ra2: float
    dec1: float
    dec2: float
    zoom: tuple[int, int, int, int] | None = None

    @property
    def custom(self) -> bool:
        return self.brickid < 0

    @functools.cached_property
    def wcs(self):
        """TAN WCS of the whole target image (astropy, 0.262 arcsec/px)."""
        from astropy.wcs import WCS
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [self.ra, self.dec]
        w.wcs.crpix = [self.width / 2 + 0.5, self.height / 2 + 0.5]
        s = PIXSCALE_ARCSEC / 3600.0
        w.wcs.cd = [[-s, 0.0], [0.0, s]]
        w.pixel_shape = (self.width, self.height)
        return w

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, x1, y0, y1) half-open pixel box processed: the zoom, else the whole image."""
        return self.zoom if self.zoom is not None else (0, self.width, 0, self.height)

    def is_primary(self, ra, dec) -> np.ndarray:
        """brick_primary: inside the half-open RA/Dec box (the brick's own for grid bricks)."""
        if not self.custom:
            ra = np.asarray(ra, np.float64)
            return bricks.is_primary(ra, dec, np.full(ra.shape, self.brickid))
        ra = np.mod(np.asarray(ra, np.float64), 360.0)
        dec = np.asarray(dec, np.float64)
        if self.ra1 <= self.ra2:
            in_ra = (ra >= self.ra1) & (ra < self.ra2)
        else:  # the box straddles RA = 0
            in_ra = (ra >= self.ra1) | (ra < self.ra2)
        return in_ra & (dec >= self.dec1) & (dec < self.dec2)


def brick_target(name: str, zoom=None) -> Target:
    """A brick of the grid, optionally zoomed to pixel box (x0, x1, y0, y1)."""
    try:
        b = bricks.brick(name)
    except KeyError as exc:
        raise UserError(f"brick {name}: {exc.args[0]}") from None
    n = bricks.BRICK_IMAGE_SIZE
    t = Target(str(b["brickname"]), int(b["brickid"]), float(b["ra"]), float(b["dec"]), n, n,
               float(b["ra1"]), float(b["ra2"]), float(b["dec1"]), float(b["dec2"]))
    return _zoomed(t, zoom)


def custom_name(ra: float, dec: float) -> str:
    """The survey's custom-brick name for a centre (deg), e.g. custom-009122p03397."""
    return "custom-%06i%s%05i" % (int(1000 * ra), "m" if dec < 0 else "p", int(1000 * abs(dec)))


def custom_target(ra: float, dec: float, width: int, height: int, zoom=None) -> Target:
    """A custom brick of ``width`` x ``height`` px at 0.262 arcsec/px centred on (ra, dec)."""
    if not (np.isfinite(ra) and np.isfinite(dec) and -90 <= dec <= 90):
        raise UserError(f"--radec {ra} {dec}: RA and Dec must be finite degrees, Dec in [-90, 90]")
    for name, v in (("--width", width), ("--height", height)):
        if not 1 <= int(v) <= MAX_CUSTOM_SIZE:
            raise UserError(f"{name} {v}: must be 1..{MAX_CUSTOM_SIZE} pixels")
    ra = float(np.mod(ra, 360.0))
    t = Target(custom_name(ra, dec), -1, ra, float(dec), int(width), int(height), 0.0, 0.0, 0.0, 0.0)
    w = t.wcs
    W, H = int(width), int(height)
    # the survey's custom box: RA edges through the centre row, Dec edges through the centre column
    # (FITS 1-based pixels (W, H/2), (1, H/2), (W/2, 1), (W/2, H))
    (ra1, _), (ra2, _), (_, dec1), (_, dec2) = w.all_pix2world(
        [[W - 1, H / 2 - 1], [0, H / 2 - 1], [W / 2 - 1, 0], [W / 2 - 1, H - 1]], 0)
    t = Target(t.name, -1, ra, float(dec), W, H, float(ra1), float(ra2), float(dec1), float(dec2))
    return _zoomed(t, zoom)


def _zoomed(t: Target, zoom) -> Target:
    if zoom is None:
        return t
    x0, x1, y0, y1 = (int(v) for v in zoom)
    if not (0 <= x0 < x1 <= t.width and 0 <= y0 < y1 <= t.height):
        raise UserError(f"--zoom {x0} {x1} {y0} {y1}: need 0 <= X0 < X1 <= {t.width} and "
                        f"0 <= Y0 < Y1 <= {t.height} (pixels of {t.name})")
    return Target(t.name, t.brickid, t.ra, t.dec, t.width, t.height, t.ra1, t.ra2, t.dec1, t.dec2,
                  (x0, x1, y0, y1))


def as_target(brick) -> Target:
    """A :class:`Target` from a Target or a brick name (the whole brick)."""
    return brick if isinstance(brick, Target) else brick_target(str(brick))


def corners(t: Target, step: int = 0) -> np.ndarray:
    """(n, 2) RA/Dec of the processed box's corners (and every ``step`` px along its edges)."""
    x0, x1, y0, y1 = t.box
    xs = np.array([x0 - 0.5, x1 - 0.5])
    ys = np.array([y0 - 0.5, y1 - 0.5])
    if step:
        xs = np.unique(np.r_[np.arange(x0 - 0.5, x1 - 0.5, step), xs])
        ys = np.unique(np.r_[np.arange(y0 - 0.5, y1 - 0.5, step), ys])
    pts = np.r_[np.column_stack([xs, np.full(xs.size, ys[0])]), np.column_stack([xs, np.full(xs.size, ys[-1])]),
                np.column_stack([np.full(ys.size, xs[0]), ys]), np.column_stack([np.full(ys.size, xs[-1]), ys])]
    return t.wcs.all_pix2world(pts, 0)


def target_from_catalog(path: str) -> Target:
    """The :class:`Target` a ``run-brick`` catalog was measured on (its header cards)."""
    import fitsio
    h = fitsio.read_header(path, ext=1)
    zoom = tuple(int(h[k]) for k in ("ZOOMX0", "ZOOMX1", "ZOOMY0", "ZOOMY1")) if "ZOOMX0" in h else None
    if h.get("CUSTOM", False):
        return custom_target(float(h["BRICKRA"]), float(h["BRICKDEC"]), int(h["BRICKW"]), int(h["BRICKH"]), zoom)
    return brick_target(str(h["BRICKNAM"]).strip(), zoom)
