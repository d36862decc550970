"""Checks of a ``run-brick`` catalog measured on real survey images, without a truth table:
Gaia stars found, offsets to Gaia per camera, and per-exposure flux consistency.

* :func:`gaia_recovery`: every Gaia star (G < 20) inside the processed box at the exposures'
  mean epoch, and whether the catalog has it (its REF_ID as a G2 row, DUP rows included,
  or a source within 1 arcsec).
* :func:`gaia_offsets`: per camera, the position of each Gaia star fitted freely on that
  camera's exposures alone (a point source, fluxes free per band, every other catalog source
  held at its catalog model), as an offset from the Gaia position moved with proper motion
  to each exposure's epoch (the fitted offset is common to the camera's exposures). Stars
  fitted by the catalog as PSF and not DUP.
* :func:`flux_consistency`: for each PSF row, forced fluxes on each exposure alone (position
  fixed at the catalog's, moved to the exposure's epoch for reference stars; all catalog
  sources' fluxes fitted jointly, shapes fixed), and per band chi2 = sum (f_i - mean)^2 /
  sigma_i^2 over the exposures, dof = n - 1. sigma_i: marginalised over the neighbours'
  fluxes, plus the source's own photon noise (electrons per count measured from the sky level
  and the weight map, :mod:`legacylake.photometry.brick.cp`); exposures whose pixels at the star are masked are
  left out.
"""

from __future__ import annotations

import numpy as np

from legacylake.catalogs_schema.astrometry import mjd_to_year

GAIA_G_MAX = 20.0
#: maskbits that leave a star out of the flux consistency (bright-star halos, large galaxies,
#: saturation, pixels masked in every exposure)
EXCLUDE_MASKS = ("BRIGHT", "MEDIUM", "GALAXY", "SATUR_G", "SATUR_R", "SATUR_Z", "ALLMASK_G", "ALLMASK_R",
                 "ALLMASK_Z")
MATCH_ARCSEC = 1.0
CUT_HALF = 25   # px half-size of the cut-outs the per-exposure fits use


def load(images_dir: str, outdir: str, brick):
    """(catalog rows, Target, exposures with epochs) of a run-brick output."""
    import fitsio

    from legacylake.photometry.brick.images import load_exposures
    from legacylake.photometry.brick.sources import epochs
    from legacylake.photometry.sim.catalog import brick_path
    from legacylake.photometry.brick.target import target_from_catalog
    name = brick.name if hasattr(brick, "name") else str(brick)
    path = brick_path(outdir, name)
    c = fitsio.read(path)
    target = target_from_catalog(path)
    exps = load_exposures(images_dir, None, target)
    for e, ep in zip(exps, epochs(exps)):
        e.image.epoch = float(ep)
    return c, target, exps


def catalog_sources(c: np.ndarray):
    """Fitter Sources of the catalog's non-DUP rows (reference stars with their motion) and
    their row indices."""
    from legacylake.photometry.model.fitter import Source
    out, idx = [], []
    for i, r in enumerate(c):
        t = str(r["TYPE"]).strip()
        if t == "DUP":
            continue
        kind = t if t in ("PSF", "REX", "EXP", "DEV", "SER") else "PSF"
        moving = kind == "PSF" and r["REF_EPOCH"] > 0
        out.append(Source(kind, float(r["RA"]), float(r["DEC"]), {b: float(r["FLUX_" + b.upper()]) for b in "grz"},
                          float(r["SHAPE_R"]) if r["SHAPE_R"] > 0 else 0.45, float(r["SHAPE_E1"]), float(r["SHAPE_E2"]),
                          float(r["SERSIC"]) if r["SERSIC"] > 0 else 4.0,
                          float(r["PMRA"]) if moving else 0.0, float(r["PMDEC"]) if moving else 0.0,
                          float(r["REF_EPOCH"]) if moving else 0.0))
        idx.append(i)
    return out, np.array(idx, int)


def _cut(e, ra: float, dec: float, half: int = CUT_HALF):
    """Cut-out of exposure ``e`` around (ra, dec) at its epoch, or None if off the image."""
    x, y = e.image.wcs.all_world2pix([[ra, dec]], 0)[0]
    h, w = e.image.shape
    ix, iy = int(round(x)), int(round(y))
    x0, x1, y0, y1 = max(ix - half, 0), min(ix + half + 1, w), max(iy - half, 0), min(iy + half + 1, h)
    if x1 - x0 < 5 or y1 - y0 < 5 or not (0 <= ix < w and 0 <= iy < h):
        return None
    im = e.image.cut(x0, x1, y0, y1)
    return im if np.any(im.ivar > 0) else None


def gaia_recovery(images_dir: str, outdir: str, brick, data=None) -> dict:
    """Gaia stars (G < 20) inside the processed box and which the catalog has (module doc):
    {"n_gaia", "n_found", "missing": [source_id], "stars": [(source_id, G, found_as)]}."""
    from legacylake.photometry.brick.sources import mean_epoch, positions_at
    from legacylake.photometry.brick.references import reference_table
    c, target, exps = data or load(images_dir, outdir, brick)
    refs = reference_table(images_dir, target, margin_arcsec=0.0)
    out = {"n_gaia": 0, "n_found": 0, "missing": [], "stars": []}
    if not len(refs):
        return out
    g = refs[refs["ISGAIA"] & (refs["PHOT_G_MEAN_MAG"] < GAIA_G_MAX)]
    ra, dec = positions_at(g, mean_epoch(exps))
    x, y = target.wcs.all_world2pix(np.column_stack([ra, dec]), 0).T
    x0, x1, y0, y1 = target.box
    g = g[(np.rint(x) >= x0) & (np.rint(x) < x1) & (np.rint(y) >= y0) & (np.rint(y) < y1)]
    rra, rdec = positions_at(g, mean_epoch(exps))
    cat_ref = {int(i): str(t).strip() for i, t, rc in zip(c["REF_ID"], c["TYPE"], c["REF_CAT"]) if str(rc).strip() == "G2"}
    for k, r in enumerate(g):
        sid = int(r["SOURCE_ID"])
        found = cat_ref.get(sid)
        if found is None and len(c):
            d = np.hypot((c["RA"] - rra[k]) * np.cos(np.deg2rad(rdec[k])), c["DEC"] - rdec[k]) * 3600.0
            j = int(np.argmin(d))
            if d[j] < MATCH_ARCSEC:
                found = f"{str(c['TYPE'][j]).strip()} (detected, {d[j]:.2f} arcsec)"
        out["stars"].append((sid, float(r["PHOT_G_MEAN_MAG"]), found))
        if found is None:
            out["missing"].append(sid)
    out["n_gaia"] = len(g)
    out["n_found"] = len(g) - len(out["missing"])
    return out


def gaia_offsets(images_dir: str, outdir: str, brick, min_sn: float = 10.0, data=None, gaia_only: bool = True) -> dict:
    """{camera: {"n", "median_mas", "offsets_mas": [(ref_id or objid, east, north, S/N)], "epoch"}}
    (module doc); stars with a fitted S/N below ``min_sn`` on the camera are left out. With
    ``gaia_only`` False every PSF row is fitted and the offset is from its catalog position
    (for comparing cameras where no Gaia star is available)."""
    import dataclasses

    from legacylake.photometry.model.fitter import Fitter
    c, target, exps = data or load(images_dir, outdir, brick)
    srcs, idx = catalog_sources(c)
    is_star = [((str(c["REF_CAT"][i]).strip() == "G2" or not gaia_only) and str(c["TYPE"][i]).strip() == "PSF")
               for i in idx]
    cams = sorted({getattr(e, "camera", "") or "sim" for e in exps})
    out = {}
    for cam in cams:
        ce = [e for e in exps if (getattr(e, "camera", "") or "sim") == cam]
        rows = []
        for k, star in enumerate(srcs):
            if not is_star[k]:
                continue
            ims = [im for im in (_cut(e, *star.position_at(e.image.epoch)) for e in ce) if im is not None]
            if not ims:
                continue
            bands = sorted({im.band for im in ims}, key="grz".index)
            others = [s for j, s in enumerate(srcs) if j != k]
            f = Fitter(ims, [dataclasses.replace(star, flux={b: star.flux.get(b, 1.0) for b in bands})] + others, bands,
                       frozen_src=[False] + [True] * len(others))
            f.fit(30)
            res = f.results()[0]
            sn = max((res.source.flux[b] * np.sqrt(res.ivar["flux_" + b]) for b in bands), default=0.0)
            if not np.isfinite(sn) or sn < min_sn:
                continue
            cosd = np.cos(np.deg2rad(star.dec))
            east = (res.source.ra - star.ra) * cosd * 3.6e6
            north = (res.source.dec - star.dec) * 3.6e6
            rows.append((int(c["REF_ID"][idx[k]] if gaia_only else c["OBJID"][idx[k]]), float(east), float(north),
                         float(sn)))
        off = np.array([np.hypot(r[1], r[2]) for r in rows])
        out[cam] = {"n": len(rows), "median_mas": float(np.median(off)) if len(off) else float("nan"),
                    "offsets_mas": rows,
                    "epoch": float(mjd_to_year(np.mean([e.mjd for e in ce])))}
    return out


def forced_fluxes(im, sources, band: str, background: bool = True):
    """Linear least-squares fluxes (nmgy) of ``sources`` (positions and shapes fixed, drawn at
    the image's epoch) on one image, with a constant background if asked; returns (fluxes,
    sigmas) with sigmas from the inverse of the weighted normal matrix (marginalised over the
    other fluxes and the background)."""
    from legacylake.photometry.model.fitter import Fitter
    f = Fitter([im], sources, [band])
    cols = []
    for si in range(len(sources)):
        pt = f._patch(si, 0, f.p, False)
        col = np.zeros(im.shape)
        if pt is not None:
            col[pt.slices] = pt.model
        cols.append(col.ravel())
    if background:
        cols.append(np.ones(im.data.size))
    A = np.array(cols).T
    w = im.ivar.ravel()
    ata = A.T @ (A * w[:, None])
    atb = A.T @ (w * im.data.ravel())
    live = np.diag(ata) > 0
    x = np.zeros(len(cols))
    cov = np.zeros((len(cols), len(cols)))
    if live.any():
        sub = ata[np.ix_(live, live)]
        cov[np.ix_(live, live)] = np.linalg.pinv(sub)
        x[live] = cov[np.ix_(live, live)] @ atb[live]
    sig = np.sqrt(np.clip(np.diag(cov), 0, None))
    n = len(sources)
    return x[:n], sig[:n]


def flux_consistency(images_dir: str, outdir: str, brick, min_sn: float = 5.0, data=None,
                     background: bool = False) -> dict:
    """Per PSF row and band with >= 2 usable exposures: chi2, dof, S/N of the catalog flux and
    the per-exposure fluxes (module doc; with ``background`` a constant background is fitted
    per exposure cut-out too). Rows with any of the EXCLUDE_MASKS maskbits are left out (a
    star on a bright star's halo or a large galaxy measures its background, not the
    exposures' calibration). Returns {"rows": [...], "excluded": n, "pooled": {S/N bin:
    {n, chi2_dof}}}."""
    from legacylake.catalogs_schema import MASKBITS
    c, target, exps = data or load(images_dir, outdir, brick)
    srcs, idx = catalog_sources(c)
    bad = (c["MASKBITS"][idx] & MASKBITS.mask(",".join(EXCLUDE_MASKS))) != 0 if len(idx) else np.zeros(0, bool)
    psf = [str(c["TYPE"][i]).strip() == "PSF" and not b for i, b in zip(idx, bad)]
    n_excluded = int(sum(str(c["TYPE"][i]).strip() == "PSF" and b for i, b in zip(idx, bad)))
    per = {}   # (k, band) -> [(flux, sigma, exposure index)]
    for ei, e in enumerate(exps):
        b = e.band
        for k, s in enumerate(srcs):
            if not psf[k]:
                continue
            im = _cut(e, *s.position_at(e.image.epoch), half=12)
            if im is None:
                continue
            # the star's own pixels must be usable (a masked core gives no independent flux)
            px, py, _ = im.local(*s.position_at(e.image.epoch))
            ix, iy = int(round(px)), int(round(py))
            if ix < 1 or iy < 1 or im.ivar[iy - 1:iy + 2, ix - 1:ix + 2].min() <= 0:
                continue
            near = [j for j, t in enumerate(srcs)
                    if j == k or np.hypot((t.ra - s.ra) * np.cos(np.deg2rad(s.dec)), t.dec - s.dec) * 3600 < 20.0]
            fl, sg = forced_fluxes(im, [srcs[j] for j in near], b, background)
            fl, sig = float(fl[near.index(k)]), float(sg[near.index(k)])
            if not sig > 0:
                continue
            epn = getattr(e, "e_per_count", np.nan) * getattr(e, "zpscale", np.nan) * (
                getattr(e, "exptime", 1.0) if getattr(e, "per_second", False) else 1.0)
            if np.isfinite(epn) and epn > 0 and fl > 0:
                sig = float(np.hypot(sig, np.sqrt(fl / epn)))
            per.setdefault((k, b), []).append((fl, sig, ei))
    rows = []
    for (k, b), v in sorted(per.items()):
        if len(v) < 2:
            continue
        f = np.array([x[0] for x in v])
        s = np.array([x[1] for x in v])
        w = 1.0 / s ** 2
        m = float(np.sum(w * f) / np.sum(w))
        chi2 = float(np.sum(((f - m) / s) ** 2))
        rows.append({"objid": int(c["OBJID"][idx[k]]), "ref_cat": str(c["REF_CAT"][idx[k]]).strip(), "band": b,
                     "n": len(v), "chi2": chi2, "dof": len(v) - 1, "sn": float(m * np.sqrt(np.sum(w))),
                     "fluxes": f.tolist(), "sigmas": s.tolist()})
    pooled = {}
    for lo, hi in ((min_sn, 100.0), (100.0, np.inf)):
        sel = [r for r in rows if lo <= r["sn"] < hi]
        dof = sum(r["dof"] for r in sel)
        pooled[f"{lo:g}-{hi:g}"] = {"n": len(sel), "chi2_dof": float(sum(r["chi2"] for r in sel) / dof) if dof else float("nan")}
    return {"rows": rows, "excluded": n_excluded, "pooled": pooled}
