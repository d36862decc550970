"""Truth images rendered with GalSim (independent renderer) for validating the fitter.

Conventions (reference section 9): catalog shape_r = GalSim circularised hlr / sqrt(b/a)
(= hlr ((1+d)/(1-d))^0.25 for GalSim distortion d), b/a = (1-|e|)/(1+|e|); catalog (e1, e2) = -(g1, g2). Truth fluxes: the
survey's EXP and DEV are tapered, so we render GalSim ``Sersic(n, trunc=...)`` truncated
where the survey's taper ends (4 r_e for EXP, 8 r_e otherwise) and use the *model's*
flux as truth: see :func:`flux_correction`.
GalSim needs the ``test`` extra.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from .image import Image, tan_wcs
from .mixtures import profile, profile_flux, sersic_b
from .psf import GaussianMixturePSF, PixelizedPSF

PIXSCALE = 0.262
TYPE_N = {"EXP": 1.0, "REX": 1.0, "DEV": 4.0}


def GSPARAMS():
    """GalSim accuracy settings of the truth images (5x tighter than GalSim's defaults)."""
    import galsim
    return galsim.GSParams(folding_threshold=1e-3, maxk_threshold=2e-4)


def trunc_re(kind: str) -> float:
    return 4.0 if kind in ("EXP", "REX") else 8.0


@functools.lru_cache(maxsize=256)
def flux_correction(kind: str, n: float) -> float:
    """GalSim flux per unit survey-model flux for a hard-truncated GalSim Sersic.

    The truth flux is the flux of *our mixture*: the exact profile is scaled to match the
    mixture (least squares in 2-D over 0.05 < r < 3 r_e, where taper and truncation play no
    part), and the hard-truncated integral of that scaled profile is the GalSim flux per
    unit model flux (EXP 1.0054, DEV 1.0016, SER(1) 1.0008, SER(4) 1.0127).
    """
    from .mixtures import mixture, mixture_radial
    a, v = mixture(kind, n)
    r = np.geomspace(0.05, 3.0, 400)
    w = r * np.gradient(r)
    m, f = mixture_radial(a, v, r), profile(kind, n)(r)
    s = np.sum(m * f * w) / np.sum(f * f * w)
    b, t = sersic_b(n), trunc_re(kind)
    return float(s * profile_flux(lambda x: np.where(x < t, np.exp(-b * (x ** (1.0 / n) - 1.0)), 0.0),
                                  rmax=t + 1))


def galsim_galaxy(kind: str, flux: float, r_e: float, e1: float, e2: float, n: float | None = None):
    """GalSim object for a survey-parameterised galaxy (r_e major-axis arcsec, e1, e2)."""
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
    f = flux * flux_correction(kind if kind != "REX" else "EXP", float(n))
    g = galsim.Sersic(n=n, scale_radius=scale, flux=f, trunc=trunc_re(kind) * hlr_circ)
    if e > 0:
        g = g.shear(g1=-e1, g2=-e2)
    return g


def render_scene(sources, psf_kind: str, fwhm: float, shape=(64, 64), band: str = "r",
                 sig1: float = 0.01, seed: int = 1, ra0: float = 150.0, dec0: float = 2.0,
                 moffat_beta: float = 3.5, noise: bool = True):
    """GalSim image of ``sources`` [(type, ra, dec, flux, r_e, e1, e2, n)] with known noise.

    psf_kind 'gaussian' -> our Image has a Gaussian PSF of the same FWHM; 'moffat' -> our
    Image has the GalSim Moffat drawn as a pixelized stamp. Returns (Image, noiseless).
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
            obj = galsim.Convolve(galsim_galaxy(kind, flux, r_e, e1, e2, n), gpsf, real_space=False,
                                  gsparams=GSPARAMS())
        off = galsim.PositionD(x - (shape[1] - 1) / 2.0, y - (shape[0] - 1) / 2.0)
        obj.drawImage(image=img, method="no_pixel", offset=off, add_to_image=True)
    clean = img.array.copy()
    rng = np.random.default_rng(seed)
    data = clean + (rng.normal(0, sig1, clean.shape) if noise else 0.0)
    ivar = np.full(shape, 1.0 / sig1 ** 2)
    return Image(data, ivar, wcs, band, our_psf, "galsim"), clean
