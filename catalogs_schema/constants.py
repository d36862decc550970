"""Photometric and survey constants of the Legacy Surveys: one place for each number.

Sources: the survey's data-model pages and legacypipe/tractor (see the project reference).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Flux zero point: mag = NANOMAGGY_ZEROPOINT - 2.5 log10(flux / nanomaggy) (AB).
NANOMAGGY_ZEROPOINT: float = 22.5

#: Optical bands of the catalogs, in catalog order, and the WISE bands.
OPTICAL_BANDS: tuple[str, ...] = ("g", "r", "i", "z")
WISE_BANDS: tuple[str, ...] = ("w1", "w2", "w3", "w4")

#: Galactic extinction coefficients R = A_band / E(B-V) (DECam, used for all DR9 cameras; WISE).
EXTINCTION_R: dict[str, float] = {
    "u": 3.995, "g": 3.214, "r": 2.165, "i": 1.592, "z": 1.211, "y": 1.064,
    "w1": 0.184, "w2": 0.113, "w3": 0.0241, "w4": 0.00910,
}

#: WISE Vega-to-AB magnitude offsets: m_AB = m_Vega + delta; flux_AB = flux_Vega * 10**(-delta/2.5).
WISE_VEGA_TO_AB: dict[str, float] = {"w1": 2.699, "w2": 3.339, "w3": 5.174, "w4": 6.620}

#: Aperture radii of apflux_<optical band>[8], arcsec.
APERTURE_RADII_OPTICAL_ARCSEC: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.5, 5.0, 7.0)
#: Aperture radii of apflux_w1..w4[5], arcsec.
APERTURE_RADII_WISE_ARCSEC: tuple[float, ...] = (3.0, 5.0, 7.0, 9.0, 11.0)

#: Fibre aperture for fiberflux (diameter, arcsec) and the seeing it assumes (FWHM, arcsec).
FIBER_DIAMETER_ARCSEC: float = 1.5
FIBER_SEEING_FWHM_ARCSEC: float = 1.0

#: Pixel scale of brick images and DECam CCDs, arcsec/pixel.
PIXSCALE_ARCSEC: float = 0.262

#: Order of the dchisq entries per model set.
DCHISQ_MODELS: dict[str, tuple[str, ...]] = {
    "dr9": ("PSF", "REX", "DEV", "EXP", "SER"),
    "dr4": ("PSF", "SIMP", "DEV", "EXP", "COMP"),
}

#: Gaia G, BP-RP -> DECam g, r, z (legacypipe reference.py read_gaia; mag = G + sum c_k x^k).
GAIA_TO_DECAM = {
    "g": (-0.1178631039, 0.3650113495, 0.5608615360, -0.2850687702, -1.0243473939,
          1.4378375491, 0.0679401731, -1.1713172509, 0.9107811975, -0.3374324004,
          0.0683946390, -0.0073089582, 0.0003230170),
    "r": (0.1139078673, -0.2868955307, 0.0013196434, 0.1029151074, 0.1196710702,
          -0.3729031390, 0.1859874242, 0.1370162451, -0.1808580848, 0.0803219195,
          -0.0180218196, 0.0020584707, -0.0000953486),
    "z": (0.4811198057, -0.9990015041, 0.1403990019, 0.2150988888, -0.2917655866,
          0.1326831887, -0.0259205004, 0.0018548776),
}
#: BP-RP is clipped to this range before the polynomials (NaN -> 1.4).
GAIA_BPRP_RANGE = (-0.6, 4.1)


@dataclass(frozen=True)
class ReleaseInfo:
    """What a RELEASE number means."""

    release: int
    data_release: str  # e.g. "dr9"
    region: str  # "N" or "S"
    camera: str  # "DECam" or "90Prime+Mosaic3"


_S, _N = "DECam", "90Prime+Mosaic3"
RELEASES: dict[int, ReleaseInfo] = {
    r.release: r
    for r in [
        ReleaseInfo(3000, "dr3", "S", _S),
        ReleaseInfo(4000, "dr4", "N", _N),
        ReleaseInfo(5000, "dr5", "S", _S),
        ReleaseInfo(6000, "dr6", "N", _N),
        ReleaseInfo(7000, "dr7", "S", _S),
        ReleaseInfo(7999, "dr7", "S", _S),
        ReleaseInfo(8000, "dr8", "S", _S),
        ReleaseInfo(8001, "dr8", "N", _N),
        *[ReleaseInfo(r, "dr9", "S" if r % 2 == 0 else "N", _S if r % 2 == 0 else _N)
          for r in range(9000, 9014)],
        ReleaseInfo(10000, "dr10", "S", _S),
    ]
}


def release_info(release: int) -> ReleaseInfo:
    """(data release, region N/S, camera) of a RELEASE number; KeyError names the valid ones."""
    try:
        return RELEASES[int(release)]
    except KeyError:
        raise KeyError(f"unknown release {release}; known: {sorted(RELEASES)}") from None


def photsys(release: int) -> str:
    """PHOTSYS ('N' or 'S') of a RELEASE number."""
    return release_info(release).region


def mw_transmission(ebv, band: str):
    """Galactic transmission 10**(-0.4 R_band ebv); ebv in mag (scalar or array)."""
    return 10.0 ** (-0.4 * EXTINCTION_R[band.lower()] * ebv)


def mask_radius_arcsec(mag):
    """Bright-star mask radius R(m) = 1630 arcsec * 1.396**(-m) (MEDIUM uses R, BRIGHT R/2)."""
    return 1630.0 * 1.396 ** (-mag)
