"""The survey's sweep boxes and file names (reference section 6.1).

DR9 sweeps cut the sky into boxes 10 deg in RA by 5 deg in Dec; a box holds the objects with
``ra1 <= ra < ra2`` and ``dec1 <= dec < dec2`` and is named ``sweep-<RA1><s><DEC1>-<RA2><s><DEC2>
.fits`` (RA as three digits, ``s`` = ``p`` or ``m`` for the sign of Dec, |Dec| as three digits),
e.g. ``sweep-320m005-330p000.fits``. Light curves go to ``...-lc.fits`` and the remaining Tractor
columns to ``...-ex.fits`` under sibling folders.

>>> sweep_name(320, -5, 330, 0)
'sweep-320m005-330p000.fits'
>>> sweep_box("/data/9.0/sweep-320m005-330p000.fits")
(320.0, 330.0, -5.0, 0.0)
"""

from __future__ import annotations

import os
import re

import numpy as np

#: Sweep box width in RA and height in Dec, deg (DR9).
BOX_RA, BOX_DEC = 10, 5
#: File-set folders beside the main one (``9.0`` for DR9): light curves and the other columns.
LIGHTCURVE_SUFFIX, EXTRA_SUFFIX = "-lc", "-ex"

_NAME = re.compile(r"^sweep-(\d{3})([pm])(\d{3})-(\d{3})([pm])(\d{3})\.fits(\.gz|\.fz)?$")

Box = tuple[float, float, float, float]   # (ra1, ra2, dec1, dec2), deg


def _coord(v: int) -> str:
    return f"{'m' if v < 0 else 'p'}{abs(v):03d}"


def sweep_name(ra1: int, dec1: int, ra2: int, dec2: int, suffix: str = "") -> str:
    """``sweep-320m005-330p000{suffix}.fits`` for the box RA [320, 330), Dec [-5, 0), deg."""
    return f"sweep-{ra1:03d}{_coord(dec1)}-{ra2:03d}{_coord(dec2)}{suffix}.fits"


def sweep_box(path: str) -> Box | None:
    """(ra1, ra2, dec1, dec2), deg, of a main sweep file named as the survey names them; None for
    any other name (light-curve and extra files included)."""
    m = _NAME.match(os.path.basename(path))
    if m is None:
        return None
    ra1, s1, d1, ra2, s2, d2 = m.group(1, 2, 3, 4, 5, 6)
    dec1 = -float(d1) if s1 == "m" else float(d1)
    dec2 = -float(d2) if s2 == "m" else float(d2)
    box = (float(ra1), float(ra2), dec1, dec2)
    return box if box[0] < box[1] <= 360 and -90 <= box[2] < box[3] <= 90 else None


def boxes(sel: Box | None = None) -> list[tuple[int, int, int, int]]:
    """Sweep boxes as (ra1, dec1, ra2, dec2), deg, overlapping ``sel`` = (RA1, RA2, DEC1, DEC2)
    (all 36 x 36 if None)."""
    out = []
    for ra1 in range(0, 360, BOX_RA):
        for dec1 in range(-90, 90, BOX_DEC):
            if sel is not None:
                a, b, d1, d2 = sel
                if not (ra1 < b and ra1 + BOX_RA > a and dec1 < d2 and dec1 + BOX_DEC > d1):
                    continue
            out.append((ra1, dec1, ra1 + BOX_RA, dec1 + BOX_DEC))
    return out


def in_box(ra: np.ndarray, dec: np.ndarray, box: Box) -> np.ndarray:
    """Rows inside ``box``: ``ra1 <= ra < ra2`` (ra taken mod 360) and ``dec1 <= dec < dec2``
    (``dec <= 90`` in the top row of boxes)."""
    ra1, ra2, d1, d2 = box
    ra = np.mod(ra, 360.0)
    return (ra >= ra1) & (ra < ra2) & (dec >= d1) & ((dec < d2) | ((d2 == 90) & (dec <= 90)))


def disjoint(a: Box | None, b: Box | None) -> bool:
    """True when two boxes share no point (False when either is unknown)."""
    if a is None or b is None:
        return False
    return a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2]
