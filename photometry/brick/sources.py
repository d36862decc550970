"""Sources ``run-brick`` starts from: reference sources of the target (:mod:`legacylake.photometry.brick.references`)
and SED-matched detections, with the reference rules of the DR9 pipeline (reference 4.1-4.3):

* Gaia and Tycho-2 stars inside the processed region are fitted at their catalogue
  position moved with proper motion to each exposure's epoch (point sources: PSF only);
  SGA galaxies start as an EXP of r_e = a quarter of their diameter with the catalogue's
  axis ratio and position angle, try every model, log r_e <= ln(2 r_e); pre-burned frozen
  ones keep their parameters; references flagged DONOTFIT become DUP rows later.
* Detection avoids 4 px around each reference source at every exposure epoch.
* Detections whose centre lies in a BRIGHT or GALAXY mask are forced to PSF.
"""

from __future__ import annotations

import numpy as np

from legacylake.catalogs_schema import MASKBITS
from legacylake.catalogs_schema.astrometry import mjd_to_year, propagate

from legacylake.photometry.brick.fit import BlobSource
from legacylake.photometry.brick.references import initial_flux, mask_bits

#: masks whose detections are forced to be point sources (FITBITS FORCED_POINTSOURCE)
FORCE_PSF_MASKS = ("BRIGHT", "GALAXY")


def epochs(exposures) -> np.ndarray:
    """Julian years of the exposures (0 where the MJD is unknown)."""
    mjd = np.array([e.mjd for e in exposures], np.float64)
    return np.where(mjd > 0, mjd_to_year(np.where(mjd > 0, mjd, 51544.5)), 0.0)


def mean_epoch(exposures) -> float:
    ep = epochs(exposures)
    return float(np.mean(ep[ep > 0])) if np.any(ep > 0) else 0.0


def positions_at(refs: np.ndarray, epoch: float) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) of every reference at Julian year ``epoch`` (unchanged if epoch is 0)."""
    if epoch <= 0:
        return refs["RA"].astype(np.float64), refs["DEC"].astype(np.float64)
    dt = np.where(refs["REF_EPOCH"] > 0, epoch - refs["REF_EPOCH"], 0.0)
    return propagate(refs["RA"], refs["DEC"], refs["PMRA"], refs["PMDEC"], dt)


def reference_sources(refs: np.ndarray, target, region, exposures, bands) -> list[tuple[float, float, BlobSource]]:
    """(x, y region px at the mean epoch, BlobSource) of the references to fit in ``region``."""
    out = []
    if refs is None or not len(refs):
        return out
    x0, x1, y0, y1 = region
    ra, dec = positions_at(refs, mean_epoch(exposures))
    rx, ry = target.wcs.all_world2pix(np.column_stack([ra, dec]), 0).T
    inside = (rx >= x0 - 0.5) & (rx < x1 - 0.5) & (ry >= y0 - 0.5) & (ry < y1 - 0.5) & ~refs["DONOTFIT"]
    flux = {b: initial_flux(refs, b) for b in bands}
    for i in np.flatnonzero(inside):
        r = refs[i]
        fl = {b: float(flux[b][i]) for b in bands}
        if r["ISLARGEGALAXY"]:
            ba = float(r["BA"])
            e = (1.0 - ba) / (1.0 + ba)
            pa = np.deg2rad(float(r["PA"]))
            r_e = max(float(r["RADIUS"]) / 2.0, 0.1)       # diam / 4, arcsec
            src = BlobSource(float(r["RA"]), float(r["DEC"]), fl, ref=int(i), kind="EXP", r_e=r_e,
                             e1=e * np.cos(2 * pa), e2=e * np.sin(2 * pa), logr_max=float(np.log(2.0 * r_e)),
                             all_models=True, freeze=bool(r["FREEZE"]))
        else:
            src = BlobSource(float(r["RA"]), float(r["DEC"]), fl, ref=int(i), forced_psf=bool(r["POINTSOURCE"]),
                             pmra=float(r["PMRA"]), pmdec=float(r["PMDEC"]), ref_epoch=float(r["REF_EPOCH"]))
        out.append((float(rx[i] - x0), float(ry[i] - y0), src))
    return out


def veto_map(refs: np.ndarray, target, region, exposures, radius: float = 4.0) -> np.ndarray | None:
    """Region pixels within ``radius`` px of a reference source at any exposure's epoch."""
    from legacylake.photometry.brick.detect import _disk_veto
    if refs is None or not len(refs):
        return None
    x0, x1, y0, y1 = region
    veto = np.zeros((y1 - y0, x1 - x0), bool)
    for ep in np.unique(epochs(exposures)):
        ra, dec = positions_at(refs, float(ep))
        rx, ry = target.wcs.all_world2pix(np.column_stack([ra, dec]), 0).T
        for x, y in zip(rx - x0, ry - y0):
            if -radius <= x < x1 - x0 + radius and -radius <= y < y1 - y0 + radius:
                _disk_veto(veto, float(np.rint(x)), float(np.rint(y)), radius)
    return veto


def force_psf_in_masks(refs: np.ndarray, sources: list[BlobSource]) -> int:
    """Mark detections (not references) centred in FORCE_PSF_MASKS as forced PSF; returns how many."""
    det = [s for s in sources if s.ref < 0]
    if refs is None or not len(refs) or not det:
        return 0
    mb = mask_bits(refs, np.array([s.ra for s in det]), np.array([s.dec for s in det]))
    bad = (mb & MASKBITS.mask(",".join(FORCE_PSF_MASKS))) != 0
    for s, b in zip(det, bad):
        if b:
            s.forced_psf = s.mask_forced = True
    return int(bad.sum())
