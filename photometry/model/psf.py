"""PSF models (reference 3.2): Gaussian mixtures, pixelized stamps, PsfEx files.

All PSFs are in image pixels, normalised to unit sum, and treated as already
pixel-convolved (models are sampled at pixel centres).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import scipy.fft

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass
class GaussianMixturePSF:
    """K components: amplitude (sum 1), mean offset (pixels), covariance (pixels^2)."""

    amp: np.ndarray
    mx: np.ndarray
    my: np.ndarray
    vxx: np.ndarray
    vxy: np.ndarray
    vyy: np.ndarray

    @classmethod
    def gaussian(cls, sigma_pix: float) -> "GaussianMixturePSF":
        """A single circular Gaussian of sigma ``sigma_pix`` pixels."""
        z = np.zeros(1)
        v = np.array([sigma_pix ** 2], dtype=np.float64)
        return cls(np.ones(1), z, z.copy(), v, z.copy(), v.copy())

    @classmethod
    def from_fwhm(cls, fwhm_arcsec: float, pixscale_arcsec: float) -> "GaussianMixturePSF":
        """Circular Gaussian with FWHM in arcsec on pixels of ``pixscale_arcsec``."""
        return cls.gaussian(fwhm_arcsec * FWHM_TO_SIGMA / pixscale_arcsec)

    @property
    def radius(self) -> float:
        """Half-size in pixels holding all but ~1e-6 of the flux."""
        return float(np.max(np.hypot(self.mx, self.my) + 5.3 * np.sqrt(np.maximum(self.vxx, self.vyy))))

    @property
    def sigma(self) -> float:
        """sigma of a single Gaussian with the same second moments (pixels)."""
        return float(np.sqrt(0.5 * np.sum(self.amp * (self.vxx + self.vyy))))


@dataclass
class PixelizedPSF:
    """A square odd-sized stamp centred on its central pixel, normalised to unit sum."""

    stamp: np.ndarray
    _ft: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        s = np.asarray(self.stamp, dtype=np.float64)
        if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] % 2 == 0:
            raise ValueError(f"PSF stamp must be square and odd-sized, got {s.shape}")
        self.stamp = s / s.sum()

    @property
    def radius(self) -> float:
        return float(self.stamp.shape[0] // 2)

    @property
    def sigma(self) -> float:
        """Gaussian-equivalent sigma from the stamp's second moments (pixels), positive part."""
        h = self.stamp.shape[0] // 2
        y, x = np.mgrid[-h:h + 1, -h:h + 1]
        p = np.clip(self.stamp, 0, None)
        p = p / p.sum()
        return float(np.sqrt(0.5 * np.sum(p * (x * x + y * y))))

    @functools.cached_property
    def fft_n(self) -> int:
        """FFT box size for the hybrid renderer: smallest power of two >= 2 radius + 17, >= 32."""
        n = 32
        while n < 2 * int(self.radius) + 17:
            n *= 2
        return n

    @functools.cached_property
    def fx(self) -> np.ndarray:
        """rfft frequencies (cycles/pixel) of the FFT box."""
        return np.fft.rfftfreq(self.fft_n)

    @functools.cached_property
    def fy(self) -> np.ndarray:
        """fft frequencies (cycles/pixel) of the FFT box."""
        return np.fft.fftfreq(self.fft_n)

    @functools.cached_property
    def gauss(self) -> GaussianMixturePSF:
        """The hybrid renderer's PSF for broad galaxy components: a 3-component Gaussian
        mixture least-squares fitted to the stamp (sampled at pixel centres, shared centre),
        amplitudes normalised to 1; a circular Gaussian of the stamp's second moments if the
        fit fails. (The Tractor uses a single Gaussian of the PsfEx FWHM; a mixture keeps a
        Moffat's core and wings, which matters for galaxies of the PSF's size.)"""
        return fit_mog(self.stamp, self.sigma) or GaussianMixturePSF.gaussian(self.sigma)

    def fourier(self, n: int) -> np.ndarray:
        """rfft2 of the stamp padded into an n x n image with its centre at pixel (0, 0)."""
        if n not in self._ft:
            h = self.stamp.shape[0] // 2
            if n < 2 * h + 1:
                raise ValueError(f"FFT size {n} smaller than the PSF stamp")
            pad = np.zeros((n, n))
            pad[:2 * h + 1, :2 * h + 1] = self.stamp
            pad = np.roll(pad, (-h, -h), axis=(0, 1))
            self._ft[n] = scipy.fft.rfft2(pad, workers=1)
        return self._ft[n]


def fit_mog(stamp: np.ndarray, sigma: float, k: int = 3) -> GaussianMixturePSF | None:
    """Least-squares K-Gaussian fit (shared centre, free covariances) to a unit-sum stamp."""
    from scipy.optimize import least_squares
    h = stamp.shape[0] // 2
    y, x = np.mgrid[-h:h + 1, -h:h + 1].astype(np.float64)

    def comps(p):
        cx, cy = p[0], p[1]
        q = p[2:].reshape(k, 4)
        a = q[:, 0]
        sx, sy, rho = np.exp(q[:, 1]), np.exp(q[:, 2]), np.tanh(q[:, 3])
        return cx, cy, a, sx * sx, rho * sx * sy, sy * sy

    def model(p):
        cx, cy, a, vxx, vxy, vyy = comps(p)
        det = vxx * vyy - vxy * vxy
        dx, dy = (x - cx)[..., None], (y - cy)[..., None]
        q = (vyy * dx * dx - 2 * vxy * dx * dy + vxx * dy * dy) / det
        return np.sum(a / (2 * np.pi * np.sqrt(det)) * np.exp(-0.5 * q), axis=-1)

    s0 = np.log(sigma * np.array([0.6, 1.0, 2.0])[:k])
    p0 = np.concatenate([[0.0, 0.0], np.column_stack([np.full(k, 1.0 / k), s0, s0, np.zeros(k)]).ravel()])
    try:
        sol = least_squares(lambda p: (model(p) - stamp).ravel(), p0, method="lm", ftol=1e-6, xtol=1e-6,
                            max_nfev=100 * len(p0))
    except (ValueError, np.linalg.LinAlgError):
        return None
    cx, cy, a, vxx, vxy, vyy = comps(sol.x)
    if not (np.all(np.isfinite(sol.x)) and abs(a.sum()) > 0.5 and np.all(vxx * vyy - vxy ** 2 > 0)):
        return None
    return GaussianMixturePSF(a / a.sum(), np.full(k, cx), np.full(k, cy), vxx, vxy, vyy)


class PsfEx:
    """PsfEx model with polynomial spatial variation (reference 3.2, TR psfex.py).

    Reads both layouts the survey has used: the polynomial terms (POLDEG1, POLZERO1/2,
    POLSCAL1/2, PSF_SAMP) as columns of a table row (per-CCD ``*-psfex.fits`` and merged
    per-exposure tables, see :mod:`legacylake.photometry.brick.calib`) or as header keywords of the table HDU
    (the older per-CCD PsfEx files whose only column is PSF_MASK). Padding of merged tables
    (PSFAXIS1/2 smaller than the stored planes) is removed; PSF_SAMP 0 is read as 1."""

    def __init__(self, path: str):
        import fitsio
        from legacylake.errors import UserError
        try:
            with fitsio.FITS(path) as f:
                if len(f) < 2:
                    raise UserError(f"{path}: no PsfEx table HDU")
                t = f[1].read()
                hdr = f[1].read_header()
        except OSError as exc:
            raise UserError(f"{path}: cannot read PsfEx table ({exc})") from exc
        self._init_from_row(t, path, hdr)

    @classmethod
    def from_table(cls, t, name: str = "PSFEX", header=None, row: int = 0) -> "PsfEx":
        """From row ``row`` of a PsfEx table (``header``: the HDU header, for keyword layouts)."""
        self = cls.__new__(cls)
        self._init_from_row(t, name, header, row)
        return self

    def _init_from_row(self, t, name, header=None, row: int = 0):
        from legacylake.errors import UserError
        cols = {c.lower(): c for c in t.dtype.names}
        hdr = {} if header is None else {str(k).lower(): header[k] for k in header.keys()}

        def get(k, default=None):
            if k in cols:
                return t[cols[k]][row]
            if k in hdr:
                return hdr[k]
            if default is not None:
                return default
            raise UserError(f"{name}: PsfEx model has no {k.upper()} (neither a column nor a header keyword)")
        self.name = name
        if "psf_mask" not in cols:
            raise UserError(f"{name}: PsfEx table has no PSF_MASK column")
        self.basis = np.asarray(t[cols["psf_mask"]][row], dtype=np.float64)
        if self.basis.ndim == 2:
            self.basis = self.basis[None]
        self.deg = int(get("poldeg1"))
        nterm = (self.deg + 1) * (self.deg + 2) // 2
        ax1, ax2 = int(get("psfaxis1", self.basis.shape[2])), int(get("psfaxis2", self.basis.shape[1]))
        self.basis = self.basis[:nterm, :ax2, :ax1]   # merged tables pad to the largest model
        for k in ("polname1", "polname2"):
            v = str(get(k, "X_IMAGE" if k.endswith("1") else "Y_IMAGE")).strip()
            if self.deg > 0 and v != ("X_IMAGE" if k.endswith("1") else "Y_IMAGE"):
                raise UserError(f"{name}: {k.upper()} = {v!r}; only X_IMAGE/Y_IMAGE polynomials are supported")
        self.zero = (float(get("polzero1")), float(get("polzero2")))
        self.scale = (float(get("polscal1")), float(get("polscal2")))
        self.samp = float(get("psf_samp"))
        if self.samp == 0.0:
            self.samp = 1.0
        fw = get("psf_fwhm", float("nan"))
        self.fwhm_pix = float(fw) if np.isfinite(float(fw)) and float(fw) > 0 else float("nan")
        if self.basis.shape[0] != nterm:
            raise UserError(f"{name}: {self.basis.shape[0]} PSF_MASK planes, expected {nterm}")
        if not np.all(np.isfinite(self.basis)):
            raise UserError(f"{name}: PSF_MASK has non-finite values")

    def shifted(self, dx: float, dy: float) -> "PsfEx":
        """The same model for a cut-out whose pixel (0, 0) is pixel (dx, dy) of this model's image."""
        import copy
        out = copy.copy(self)
        out.zero = (self.zero[0] - dx, self.zero[1] - dy)
        return out

    def terms(self, x: float, y: float) -> np.ndarray:
        """Polynomial coefficients t_i(x, y), index j + (d+1)k - k(k-1)/2 for dx^j dy^k."""
        d = self.deg
        dx = (x - self.zero[0]) / self.scale[0]
        dy = (y - self.zero[1]) / self.scale[1]
        t = np.zeros((d + 1) * (d + 2) // 2)
        for k in range(d + 1):
            for j in range(d + 1 - k):
                t[j + (d + 1) * k - k * (k - 1) // 2] = dx ** j * dy ** k
        return t

    def stamp_at(self, x: float, y: float) -> np.ndarray:
        """Unit-sum PSF image at 0-based pixel (x, y) on native pixels (see :func:`resample_stamp`)."""
        img = np.tensordot(self.terms(x, y), self.basis, axes=1)
        if self.samp != 1.0:
            img = resample_stamp(img, self.samp)
        return img / img.sum()

    @functools.lru_cache(maxsize=256)
    def at(self, x: float, y: float) -> PixelizedPSF:
        """Constant pixelized PSF evaluated at (x, y)."""
        return PixelizedPSF(self.stamp_at(x, y))

    @property
    def fwhm(self) -> float:
        """FWHM (native pixels): PSF_FWHM of the file, else the effective-area FWHM of the stamp
        at the model's reference point, 2 sqrt(2 ln 2) sqrt(Neff / 4 pi), Neff = 1 / sum p^2."""
        if np.isfinite(self.fwhm_pix):
            return self.fwhm_pix
        return stamp_fwhm(self.stamp_at(*self.zero))


def stamp_fwhm(stamp: np.ndarray) -> float:
    """FWHM (pixels) of the Gaussian with the same effective area as a unit-sum stamp."""
    p = np.asarray(stamp, np.float64)
    p = p / p.sum()
    neff = 1.0 / float(np.sum(p * p))
    return float(2.0 * np.sqrt(2.0 * np.log(2.0)) * np.sqrt(neff / (4.0 * np.pi)))


def resample_stamp(img: np.ndarray, samp: float) -> np.ndarray:
    """A PsfEx stamp sampled every ``samp`` native pixels, resampled onto native pixels.

    Output: odd size covering the stamp, centred on the same point (the stamp's central
    pixel); native pixel offset d from the centre reads the stamp at centre + d / samp
    (cubic spline interpolation, 0 outside). Not normalised."""
    from scipy.ndimage import map_coordinates
    n = img.shape[0]
    c_in = (n - 1) / 2.0
    half = int(np.floor(c_in * samp))
    d = np.arange(-half, half + 1, dtype=np.float64) / samp + c_in
    yy, xx = np.meshgrid(d, d, indexing="ij")
    return map_coordinates(img, [yy, xx], order=3, mode="constant", cval=0.0, prefilter=True)
