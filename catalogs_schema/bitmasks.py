"""Legacy Surveys bitmasks: maskbits, fitbits, anymask/allmask, wisemask.

Each mask is a :class:`Bitmask`: an ordered mapping of bit name to bit number, with helpers
to turn names into an integer mask and an integer back into names. Bit names are
case-insensitive on input and upper-case on output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np


class UnknownBitError(ValueError):
    """A bit name that the mask does not define."""


@dataclass(frozen=True)
class Bitmask:
    """A named set of bits.

    Parameters
    ----------
    name : the mask's name (e.g. ``maskbits``).
    bits : mapping of bit name to bit number (0-based).
    descriptions : optional one-line meaning per bit name.
    """

    name: str
    bits: dict[str, int]
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Bit names in bit order."""
        return sorted(self.bits, key=self.bits.__getitem__)

    def value(self, name: str) -> int:
        """Integer value (``1 << bit``) of one bit name."""
        key = name.strip().upper()
        if key not in self.bits:
            raise UnknownBitError(
                f"unknown {self.name} bit {name.strip()!r}; valid names: {', '.join(self.names)}"
            )
        return 1 << self.bits[key]

    def mask(self, names: str | Iterable[str]) -> int:
        """OR of the named bits; ``names`` is a list or a comma/pipe/space separated string."""
        if isinstance(names, str):
            names = [n for n in names.replace("|", ",").replace(" ", ",").split(",") if n.strip()]
        out = 0
        for n in names:
            out |= self.value(n)
        return out

    def decode(self, value: int) -> list[str]:
        """Names of the bits set in ``value`` (bits without a name appear as ``BIT<n>``)."""
        value = int(value)
        out = []
        by_bit = {b: n for n, b in self.bits.items()}
        bit = 0
        while value >> bit:
            if (value >> bit) & 1:
                out.append(by_bit.get(bit, f"BIT{bit}"))
            bit += 1
        return out

    def any_set(self, values: np.ndarray, names: str | Iterable[str]) -> np.ndarray:
        """Boolean array: any of the named bits set in ``values``."""
        return (np.asarray(values).astype(np.int64) & self.mask(names)) != 0


def _mask(name: str, spec: list[tuple[int, str, str]]) -> Bitmask:
    return Bitmask(name, {n: b for b, n, _ in spec}, {n: d for _, n, d in spec})


# DR9 MASKBITS (int16) with the DR10 additions (int32); bits 16-19 are post-DR10.
MASKBITS = _mask("maskbits", [
    (0, "NPRIMARY", "outside the brick's unique area"),
    (1, "BRIGHT", "inside a bright-star disk (half R(mag), mask_mag < 13)"),
    (2, "SATUR_G", "a g exposure is saturated here (dilated 4 px)"),
    (3, "SATUR_R", "an r exposure is saturated here"),
    (4, "SATUR_Z", "a z exposure is saturated here"),
    (5, "ALLMASK_G", "every g exposure has a data-quality bit here"),
    (6, "ALLMASK_R", "every r exposure has a data-quality bit here"),
    (7, "ALLMASK_Z", "every z exposure has a data-quality bit here"),
    (8, "WISEM1", "unWISE W1 mask"),
    (9, "WISEM2", "unWISE W2 mask"),
    (10, "BAILOUT", "blob not fitted"),
    (11, "MEDIUM", "inside a medium-bright star disk (mask_mag < 16)"),
    (12, "GALAXY", "inside an SGA large-galaxy ellipse"),
    (13, "CLUSTER", "inside a star-cluster ellipse"),
    (14, "SATUR_I", "an i exposure is saturated here (DR10)"),
    (15, "ALLMASK_I", "every i exposure has a data-quality bit here (DR10)"),
    (16, "SUB_BLOB", "sub-blob (after DR10)"),
    (17, "RESOLVED", "resolved galaxy (after DR10)"),
    (18, "MCLOUDS", "Magellanic Clouds (after DR10)"),
    (19, "WISE_GAIA", "WISE fluxes from Gaia (after DR10)"),
])

FITBITS = _mask("fitbits", [
    (0, "FORCED_POINTSOURCE", "only the PSF model was tried (centre in a BRIGHT/CLUSTER/GALAXY mask)"),
    (1, "FIT_BACKGROUND", "a constant sky per image was fitted with the source"),
    (2, "HIT_RADIUS_LIMIT", "log r_e ended at a bound"),
    (3, "HIT_SERSIC_LIMIT", "Sersic index ended at a bound"),
    (4, "FROZEN", "parameters frozen at reference values"),
    (5, "BRIGHT", "reference source flagged bright"),
    (6, "MEDIUM", "reference source flagged medium"),
    (7, "GAIA", "from Gaia"),
    (8, "TYCHO2", "from Tycho-2"),
    (9, "LARGEGALAXY", "SGA galaxy"),
    (10, "WALKER", "moved more than 1 arcsec"),
    (11, "RUNNER", "moved more than 2.5 arcsec"),
    (12, "GAIA_POINTSOURCE", "reference star forced to stay a point source"),
    (13, "ITERATIVE", "found in the iterative detection on residuals"),
])

# ANYMASK_x / ALLMASK_x (per-exposure data-quality bits), DR9 names; DR4 adds LONGTHIN.
DQ_BITS = _mask("anymask", [
    (0, "BADPIX", "bad pixel, no data or low weight"),
    (1, "SATUR", "saturated"),
    (2, "INTERP", "interpolated"),
    (4, "CR", "single-exposure cosmic ray"),
    (6, "BLEED", "bleed trail"),
    (7, "TRANS", "multi-exposure transient or streak"),
    (8, "EDGE", "edge"),
    (9, "EDGE2", "edge2"),
    (10, "LONGTHIN", "DR4: long thin connected component (satellite trail)"),
    (11, "OUTLIER", "rejected as an outlier between exposures"),
])
ANYMASK = DQ_BITS
ALLMASK = Bitmask("allmask", DQ_BITS.bits, DQ_BITS.descriptions)

WISEMASK = _mask("wisemask", [
    (0, "BRIGHT", "bright-star core and wings"),
    (1, "SPIKE", "PSF-based diffraction spike"),
    (2, "GHOST", "optical ghost"),
    (3, "LATENT", "first latent"),
    (4, "LATENT2", "second latent"),
    (5, "HALO", "AllWISE-like circular halo"),
    (6, "SATUR", "bright-star saturation"),
    (7, "SPIKE2", "geometric diffraction spike"),
])

BITMASKS: dict[str, Bitmask] = {
    "maskbits": MASKBITS,
    "fitbits": FITBITS,
    "anymask": ANYMASK,
    "allmask": ALLMASK,
    "wisemask": WISEMASK,
}


def bitmask(name: str) -> Bitmask:
    """The bitmask that a column family uses: ``maskbits``, ``fitbits``, ``anymask``, ``allmask``, ``wisemask``.

    Column names such as ``anymask_g`` or ``wisemask_w1`` are accepted.
    """
    key = name.strip().lower()
    for family, bm in BITMASKS.items():
        if key == family or key.startswith(family + "_"):
            return bm
    raise KeyError(f"no bitmask named {name!r}; valid: {', '.join(BITMASKS)}")
