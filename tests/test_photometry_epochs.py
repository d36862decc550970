"""Moving reference stars drawn at each exposure's epoch (issue 18: one position for exposures
years apart biased the fluxes of fast Gaia stars)."""

import dataclasses

import numpy as np

from legacylake.catalogs_schema.astrometry import propagate
from legacylake.photometry.model.fitter import Fitter, Source
from legacylake.photometry.model.image import Image, tan_wcs
from legacylake.photometry.model.psf import GaussianMixturePSF

RA, DEC = 150.0, 2.0
PM = (300.0, -200.0)     # mas/yr: a fast star, so that the effect is large in a small test


def _images(epochs, flux=1000.0, sig1=0.05, seed=3):
    """Images (0.262"/px, 1.2" seeing) of one star at its position at each epoch, with noise."""
    rng = np.random.default_rng(seed)
    psf = GaussianMixturePSF.from_fwhm(1.2, 0.262)
    out = []
    for ep in epochs:
        im = Image(np.zeros((41, 41)), np.full((41, 41), 1 / sig1 ** 2), tan_wcs(RA, DEC, (41, 41), 0.262), "r", psf,
                   epoch=ep)
        ra, dec = propagate(RA, DEC, *PM, ep - 2015.5)
        m = Fitter([im], [Source("PSF", float(ra), float(dec), {"r": flux})]).model_images()[0]
        out.append(im.with_data(m + rng.normal(0, sig1, m.shape)))
    return out


def test_position_at_matches_propagate():
    s = Source("PSF", RA, DEC, {}, pmra=PM[0], pmdec=PM[1], ref_epoch=2015.5)
    for ep in (2014.0, 2015.5, 2019.25):
        np.testing.assert_allclose(s.position_at(ep), [float(v) for v in propagate(RA, DEC, *PM, ep - 2015.5)], atol=1e-12)
    assert s.position_at(0.0) == (RA, DEC)                                   # unknown epoch: unchanged
    assert dataclasses.replace(s, ref_epoch=0.0).position_at(2019.0) == (RA, DEC)


def test_moving_star_flux_unbiased_at_each_epoch():
    """A star held at its catalogue position: drawn at each image's epoch its flux is right;
    held at one (mean-epoch) position it loses flux in every image."""
    ims = _images([2014.0, 2018.0, 2022.0])
    moving = Source("PSF", RA, DEC, {"r": 900.0}, pmra=PM[0], pmdec=PM[1], ref_epoch=2015.5)
    f = Fitter(ims, [moving], ["r"], frozen_pos=[True]).fit()
    r = f.results()[0]
    pull = (r.source.flux["r"] - 1000.0) * np.sqrt(r.ivar["flux_r"])
    assert abs(pull) < 3, pull
    mra, mdec = propagate(RA, DEC, *PM, 2018.0 - 2015.5)
    static = Source("PSF", float(mra), float(mdec), {"r": 900.0})
    g = Fitter(ims, [static], ["r"], frozen_pos=[True]).fit().results()[0]
    assert (g.source.flux["r"] - 1000.0) * np.sqrt(g.ivar["flux_r"]) < -10      # 1.2" of motion: a deficit
    # a free position with the motion fitted as an offset from the catalogue: offset ~ 0
    h = Fitter(ims, [moving], ["r"]).fit().results()[0]
    d = np.hypot((h.source.ra - RA) * np.cos(np.deg2rad(DEC)), h.source.dec - DEC) * 3.6e6
    assert d < 5, d
