"""One calibrated exposure of a brick (:class:`Exposure`), whichever layout it was read from:
simulated images (:mod:`legacylake.photometry.brick.images`) or the survey's CP images
(:mod:`legacylake.photometry.brick.cp`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from legacylake.catalogs_schema.constants import PIXSCALE_ARCSEC
from legacylake.photometry.model.image import Image


@dataclass
class Exposure:
    """One exposure: fitter Image (ivar 0 where DQ != 0), DQ map, sig1 [nmgy], FWHM [arcsec], MJD."""

    image: Image
    dq: np.ndarray
    sig1: float
    fwhm: float
    mjd: float
    saturate: float

    @property
    def band(self) -> str:
        return self.image.band

    @property
    def psfnorm(self) -> float:
        """sqrt(sum p^2) of the unit-sum PSF stamp (reference 5)."""
        st = getattr(self.image.psf, "stamp", None)
        if st is None and hasattr(self.image.psf, "stamp_at"):   # PsfEx: at the image centre
            h, w = self.image.shape
            st = self.image.psf.at(float(w // 2), float(h // 2)).stamp
        if st is None:
            s = self.fwhm / 2.35482 / PIXSCALE_ARCSEC
            return float(1.0 / (2.0 * np.sqrt(np.pi) * s))
        return float(np.sqrt(np.sum(st ** 2)))
