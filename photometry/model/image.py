"""Images for model fitting: pixels (nanomaggies), inverse variance (0 = masked), TAN WCS,
band and PSF; read from / written to the ``IMAGE`` + ``IVAR`` (+ ``PSF`` | ``PSFEX``) FITS layout.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS

from legacylake.errors import UserError
from legacylake.photometry.model.psf import GaussianMixturePSF, PixelizedPSF, PsfEx


@dataclass
class Image:
    """One image: data and ivar (float64 arrays, nmgy and nmgy^-2), WCS, band, PSF, and the
    epoch of the exposure (Julian year; 0 = unknown), at which moving reference stars are drawn."""

    data: np.ndarray
    ivar: np.ndarray
    wcs: WCS
    band: str
    psf: object  # GaussianMixturePSF | PixelizedPSF | PsfEx
    name: str = ""
    epoch: float = 0.0

    def cut(self, x0: int, x1: int, y0: int, y1: int, ivar: np.ndarray | None = None) -> "Image":
        """The sub-image [y0:y1, x0:x1] (same band, epoch; a spatially varying PSF re-based on
        the cut-out's pixels); ``ivar`` replaces the cut-out's inverse variance."""
        psf = self.psf.shifted(x0, y0) if hasattr(self.psf, "shifted") else self.psf
        return dataclasses.replace(self, data=self.data[y0:y1, x0:x1],
                                   ivar=self.ivar[y0:y1, x0:x1] if ivar is None else ivar,
                                   wcs=self.wcs[y0:y1, x0:x1], psf=psf)

    def with_data(self, data: np.ndarray) -> "Image":
        """The same image with other pixels (e.g. residuals)."""
        return dataclasses.replace(self, data=data)

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    @property
    def pixscale(self) -> float:
        """Pixel scale in arcsec (sqrt |det CD|)."""
        return float(np.sqrt(abs(np.linalg.det(self.wcs.pixel_scale_matrix))) * 3600.0)

    def psf_at(self, x: float, y: float):
        """A spatially constant PSF for a cut-out centred at (x, y)."""
        if isinstance(self.psf, PsfEx):
            return self.psf.at(round(float(x), 0), round(float(y), 0))
        return self.psf

    def local(self, ra: float, dec: float) -> tuple[float, float, np.ndarray]:
        """0-based pixel (x, y) of (ra, dec) and the local d(x, y)/d(xi, eta) in pixel/deg,
        xi = dRA cos(dec) (east), eta = dDec (north)."""
        h = 1e-5
        c = np.cos(np.deg2rad(dec))
        pts = np.array([[ra, dec], [ra + h / c, dec], [ra, dec + h], [ra - h / c, dec], [ra, dec - h]])
        pix = self.wcs.all_world2pix(pts, 0)
        jac = np.column_stack([(pix[1] - pix[3]) / (2 * h), (pix[2] - pix[4]) / (2 * h)])
        return float(pix[0, 0]), float(pix[0, 1]), jac


def tan_wcs(ra: float, dec: float, shape: tuple[int, int], pixscale: float) -> WCS:
    """A north-up, east-left TAN WCS centred on (ra, dec) for an image of ``shape`` (h, w)."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
    w.wcs.cd = np.array([[-pixscale / 3600.0, 0.0], [0.0, pixscale / 3600.0]])
    return w


def read_image(path: str, psfex: str | None = None) -> Image:
    """Read IMAGE/IVAR(/PSF/PSFEX) HDUs; PSF_FWHM (arcsec) gives a Gaussian PSF if no stamp."""
    import fitsio
    if not os.path.exists(path):
        raise UserError(f"{path}: no such image file")
    try:
        f = fitsio.FITS(path)
    except OSError as exc:
        raise UserError(f"{path}: not a FITS file ({exc})") from exc
    with f:
        names = {f[i].get_extname().upper(): i for i in range(len(f))}
        for need in ("IMAGE", "IVAR"):
            if need not in names:
                raise UserError(f"{path}: missing {need} HDU")
        hdr = f["IMAGE"].read_header()
        data = np.asarray(f["IMAGE"].read(), dtype=np.float64)
        ivar = np.asarray(f["IVAR"].read(), dtype=np.float64)
        if data.shape != ivar.shape:
            raise UserError(f"{path}: IMAGE {data.shape} and IVAR {ivar.shape} differ in shape")
        hd = {k: hdr[k] for k in hdr.keys() if k not in ("COMMENT", "HISTORY", "")}
        wcs = WCS(hd, naxis=2)
        if not wcs.has_celestial or "TAN" not in wcs.wcs.ctype[0]:
            raise UserError(f"{path}: IMAGE header has no celestial TAN WCS")
        if "BAND" not in hdr:
            raise UserError(f"{path}: IMAGE header has no BAND keyword")
        band = str(hdr["BAND"]).strip().lower()
        pixscale = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600.0)
        if psfex is not None:
            psf = PsfEx(psfex)
        elif "PSFEX" in names:
            psf = PsfEx.from_table(f["PSFEX"].read(), f"{path}[PSFEX]")
        elif "PSF" in names:
            psf = PixelizedPSF(f["PSF"].read())
        elif "PSF_FWHM" in hdr:
            psf = GaussianMixturePSF.from_fwhm(float(hdr["PSF_FWHM"]), pixscale)
        else:
            raise UserError(f"{path}: no PSF (needs header PSF_FWHM, a PSF or PSFEX HDU, or --psfex)")
    ivar[~np.isfinite(data)] = 0.0
    data[~np.isfinite(data)] = 0.0
    return Image(data, np.where(np.isfinite(ivar) & (ivar > 0), ivar, 0.0), wcs, band, psf, path)


def write_image(path: str, data: np.ndarray, ivar: np.ndarray, wcs: WCS, band: str,
                psf_fwhm: float | None = None, psf_stamp: np.ndarray | None = None) -> None:
    """Write the IMAGE (float32) + IVAR (+ PSF) layout atomically."""
    import fitsio
    hdr = [{"name": k, "value": v} for k, v in wcs.to_header().items()]
    hdr.append({"name": "BAND", "value": band})
    if psf_fwhm is not None:
        hdr.append({"name": "PSF_FWHM", "value": float(psf_fwhm), "comment": "arcsec"})
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".fits.tmp")
    os.close(fd)
    os.remove(tmp)
    with fitsio.FITS(tmp, "rw", clobber=True) as f:
        f.write(np.asarray(data, np.float32), extname="IMAGE", header=hdr)
        f.write(np.asarray(ivar, np.float32), extname="IVAR")
        if psf_stamp is not None:
            f.write(np.asarray(psf_stamp, np.float32), extname="PSF")
    os.replace(tmp, path)
