"""Truth images rendered with GalSim (independent renderer) for validating the fitter.

Conventions (reference section 9): catalog shape_r = GalSim circularised hlr / sqrt(b/a)
(= hlr ((1+d)/(1-d))^0.25 for GalSim distortion d), b/a = (1-|e|)/(1+|e|); catalog (e1, e2) = -(g1, g2). Truth fluxes: the
survey's EXP and DEV are tapered (reference 3.3: EXP from 3 to 4 r_e, DEV and our SER from
7 to 8 r_e). ``profile="tapered"`` (default of :func:`render_scene`) renders that tapered
profile itself with GalSim, as a staircase of ``TAPER_STEPS`` Sersics hard-truncated inside
the taper annulus (sum of the steps = the taper function, to ~1e-5 of the flux);
``profile="truncated"`` (default of :func:`galsim_galaxy`, used by the image simulator) is
one Sersic hard-truncated where the taper ends. Either way the catalogued truth flux of EXP,
REX and DEV (the reference's mixtures, which are not flux-preserving fits of the tapered
profiles) is the flux of *our mixture* at the amplitude of the rendered profile: see
:func:`flux_correction`. A tapered SER's truth flux is the tapered profile's own flux: our
SER table is fitted to the unit-flux tapered Sersic keeping the flux after the PSF.
GalSim needs the ``test`` extra.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from legacylake.photometry.model.image import Image, tan_wcs
from legacylake.photometry.model.mixtures import profile, profile_flux, sersic_b
from legacylake.photometry.model.psf import GaussianMixturePSF, PixelizedPSF

PIXSCALE = 0.262
TYPE_N = {"EXP": 1.0, "REX": 1.0, "DEV": 4.0}


def GSPARAMS():
    """GalSim accuracy settings of the truth images (5x tighter than GalSim's defaults)."""
    import galsim
    return galsim.GSParams(folding_threshold=1e-3, maxk_threshold=2e-4)


#: Steps of the GalSim staircase approximating the taper (``profile="tapered"``).
TAPER_STEPS = 8


def trunc_re(kind: str) -> float:
    """Where the survey's taper ends, in r_e (hard truncation of ``profile="truncated"``)."""
    return 4.0 if kind in ("EXP", "REX") else 8.0


def taper_steps(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(truncation radii in r_e, weights) of the staircase sum_k w_k 1[r < t_k] that
    approximates the survey's taper (1 inside r0, (1-(r-r0)^2)^2 on (r0, r0+1)): the taper's
    drop over each of TAPER_STEPS equal sub-annuli, truncated at the sub-annulus midpoint."""
    from legacylake.photometry.model.mixtures import taper
    r0 = trunc_re(kind) - 1.0
    edges = r0 + np.linspace(0.0, 1.0, TAPER_STEPS + 1)
    w = -np.diff(taper(edges, r0))
    return 0.5 * (edges[1:] + edges[:-1]), w


@functools.lru_cache(maxsize=256)
def mixture_scale(kind: str, n: float) -> float:
    """Amplitude of our unit-flux mixture in units of the exact profile (``photometry.model.mixtures.profile``,
    value 1 at r_e): least squares in 2-D over 0.05 < r < 3 r_e, where taper and truncation
    play no part (stable to 1e-4 for EXP, 1e-3 for DEV against the fitting range)."""
    from legacylake.photometry.model.mixtures import mixture, mixture_radial
    a, v = mixture(kind, n)
    r = np.geomspace(0.05, 3.0, 400)
    w = r * np.gradient(r)
    m, f = mixture_radial(a, v, r), profile(kind, n)(r)
    return float(np.sum(m * f * w) / np.sum(f * f * w))


@functools.lru_cache(maxsize=256)
def flux_correction(kind: str, n: float, profile_kind: str = "truncated") -> float:
    """GalSim flux per unit flux of our mixture, for the GalSim profile whose amplitude is
    that of the mixture (:func:`mixture_scale`).

    ``truncated`` (one Sersic hard-truncated at 4 / 8 r_e): EXP 1.0054, DEV 1.0016, SER(1)
    1.0008, SER(4) 1.0127. ``tapered`` (the survey's tapered profile): EXP 0.9953, DEV 0.9849,
    i.e. the mixture itself carries 0.5% (EXP) / 1.5% (DEV) more flux than the profile it
    approximates (light beyond the taper and the fit's residuals).
    """
    s = mixture_scale(kind, n)
    b = sersic_b(n)
    if profile_kind == "truncated":
        t = trunc_re(kind)
        return float(s * profile_flux(lambda x: np.where(x < t, np.exp(-b * (x ** (1.0 / n) - 1.0)), 0.0),
                                      rmax=t + 1))
    if profile_kind == "tapered":
        r0 = trunc_re(kind) - 1.0
        tk, wk = taper_steps(kind)
        stair = lambda x: np.sum(wk * (x[:, None] < tk), axis=1)  # noqa: E731
        return float(s * profile_flux(lambda x: np.exp(-b * (x ** (1.0 / n) - 1.0)) * stair(x), rmax=r0 + 1.01))
    raise ValueError(f"profile_kind must be 'truncated' or 'tapered', not {profile_kind!r}")


def galsim_galaxy(kind: str, flux: float, r_e: float, e1: float, e2: float, n: float | None = None,
                  profile_kind: str = "truncated"):
    """GalSim object for a survey-parameterised galaxy (r_e major-axis arcsec, e1, e2) whose
    amplitude is that of our mixture of flux ``flux`` (nmgy); ``profile_kind`` 'truncated' or
    'tapered' (module docstring)."""
    import galsim
    if kind == "PSF":
        return galsim.DeltaFunction(flux=flux)
    if n is None:
        n = TYPE_N[kind]
    e = np.hypot(e1, e2)
    hlr_circ = r_e * np.sqrt((1 - e) / (1 + e))  # major axis r_e, b/a = (1-e)/(1+e)
    # GalSim's half_light_radius with trunc refers to the truncated profile; use scale
    # radius so the untruncated r_e is r_e (as for the survey's profiles).
    b = sersic_b(n)
    scale = hlr_circ / b ** n
    kk = kind if kind != "REX" else "EXP"
    if profile_kind == "tapered":
        # staircase of truncated Sersics sharing one amplitude scale: flux_untruncated=True
        # makes ``flux`` the untruncated flux, so every step has amplitude w_k * A.
        u = flux * mixture_scale(kk, float(n)) * profile_flux(
            lambda x: np.exp(-b * (x ** (1.0 / n) - 1.0)), rmax=200.0)
        if kk == "SER":
            # our SER table is fitted to the unit-flux tapered Sersic with the flux kept
            # after the PSF (sersic_fit), so its truth flux is the tapered profile's own
            u /= flux_correction(kk, float(n), "tapered")
        tk, wk = taper_steps(kk)
        g = galsim.Sum([galsim.Sersic(n=n, scale_radius=scale, flux=u * w, trunc=t * hlr_circ,
                                      flux_untruncated=True) for t, w in zip(tk, wk)])
    else:
        f = flux * flux_correction(kk, float(n))
        g = galsim.Sersic(n=n, scale_radius=scale, flux=f, trunc=trunc_re(kind) * hlr_circ)
    if e > 0:
        g = g.shear(g1=-e1, g2=-e2)
    return g


def render_scene(sources, psf_kind: str, fwhm: float, shape=(64, 64), band: str = "r",
                 sig1: float = 0.01, seed: int = 1, ra0: float = 150.0, dec0: float = 2.0,
                 moffat_beta: float = 3.5, noise: bool = True, profile_kind: str = "tapered"):
    """GalSim image of ``sources`` [(type, ra, dec, flux, r_e, e1, e2, n)] with known noise.

    psf_kind 'gaussian' -> our Image has a Gaussian PSF of the same FWHM; 'moffat' -> our
    Image has the GalSim Moffat drawn as a pixelized stamp. Galaxies are the survey's tapered
    profiles by default (``profile_kind``, see :func:`galsim_galaxy`); ``flux`` is the flux of
    our mixture at the same amplitude. Returns (Image, noiseless).
    """
    import galsim
    wcs = tan_wcs(ra0, dec0, shape, PIXSCALE)
    if psf_kind == "gaussian":
        gpsf = galsim.Gaussian(fwhm=fwhm)
        our_psf = GaussianMixturePSF.from_fwhm(fwhm, PIXSCALE)
    else:
        gpsf = galsim.Moffat(beta=moffat_beta, fwhm=fwhm, trunc=5 * fwhm)
        st = gpsf.drawImage(nx=41, ny=41, scale=PIXSCALE, method="no_pixel").array
        our_psf = PixelizedPSF(st)
    img = galsim.ImageD(shape[1], shape[0], scale=PIXSCALE)
    for (kind, ra, dec, flux, r_e, e1, e2, n) in sources:
        x, y = wcs.all_world2pix([[ra, dec]], 0)[0]
        # GalSim image x increases with our pixel x; our WCS is east-left, so the sky-east
        # direction is GalSim -x: a GalSim image-frame shear g1 is sky (e1 = -g1) as in ref. 9.
        # FFT convolution (GalSim would pick slow real-space convolution for two hard-edged
        # profiles) with tightened folding / maxk thresholds for truth-quality accuracy.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", galsim.GalSimWarning)
            obj = galsim.Convolve(galsim_galaxy(kind, flux, r_e, e1, e2, n, profile_kind), gpsf, real_space=False,
                                  gsparams=GSPARAMS())
        off = galsim.PositionD(x - (shape[1] - 1) / 2.0, y - (shape[0] - 1) / 2.0)
        obj.drawImage(image=img, method="no_pixel", offset=off, add_to_image=True)
    clean = img.array.copy()
    rng = np.random.default_rng(seed)
    data = clean + (rng.normal(0, sig1, clean.shape) if noise else 0.0)
    ivar = np.full(shape, 1.0 / sig1 ** 2)
    return Image(data, ivar, wcs, band, our_psf, "galsim"), clean
