"""Lower bounds on how well concentric Gaussian mixtures can match the tapered profiles."""

from __future__ import annotations

import numpy as np

from legacylake.photometry.model.mixture_bounds import (AREA, convolved_profile, l1_lower_bound,
                                                  mixture_convolved, mixture_l1)
from legacylake.photometry.model.mixtures import mixture, mixture_radial, profile

S_RE1 = 1.3 / 2.3548 / 1.0  # PSF sigma in r_e for a 1.3" FWHM PSF and r_e = 1"


def test_direct_convolution_reproduces_a_mixture():
    a, v = mixture("SER", 2.0)
    exact = convolved_profile(lambda r: mixture_radial(a, v, r), S_RE1, rmax=20.0)
    assert np.sum(np.abs(exact - mixture_convolved(a, v, S_RE1)) * AREA) < 2e-5


def test_tapered_exp_cannot_reach_1e3_but_ser1_can():
    # every positive mixture of centred Gaussians misses the tapered EXP by > 3e-3 at r_e = 1"
    lb = l1_lower_bound(profile("EXP"), S_RE1)
    assert 3e-3 < lb < 5e-3
    assert mixture_l1(*mixture("EXP"), profile("EXP"), S_RE1) > lb
    # the n = 1 Sersic tapered at 7-8 r_e is reachable, and our table reaches it
    lb1 = l1_lower_bound(profile("SER", 1.0), S_RE1)
    ours = mixture_l1(*mixture("SER", 1.0), profile("SER", 1.0), S_RE1)
    assert lb1 < 1e-4 and lb1 <= ours < 1e-3
