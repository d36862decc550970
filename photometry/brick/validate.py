"""Compare a run-brick catalog with the simulation's truth (completeness, purity, star/galaxy).

``validate(images_dir, outdir, brick)`` returns a dict: completeness of truth sources with
predicted S/N > 8 (max over bands of flux x sqrt(depth), PSF depth for stars, galaxy depth
for galaxies, median depths from the catalog), purity of catalog sources, fraction of
S/N > ``sg_sn`` (default 50) sources whose PSF/non-PSF type matches the truth; all inside the rendered area
less a 20-pixel edge, matched within 4 pixels (about 1 arcsec).
"""

from __future__ import annotations

import os

import numpy as np

MATCH_PX = 4.0
EDGE_PX = 20


def validate(images_dir: str, outdir: str, brick: str, sg_sn: float = 50.0) -> dict:
    import fitsio
    from scipy.spatial import cKDTree
    tp = os.path.join(images_dir, f"truth-{brick}.fits")
    t, h = fitsio.read(tp, header=True)
    c = fitsio.read(os.path.join(outdir, "tractor", brick[:3], f"tractor-{brick}.fits"))
    x0, x1, y0, y1 = h["RX0"], h["RX1"], h["RY0"], h["RY1"]

    def inner(x, y):
        return (x > x0 + EDGE_PX) & (x < x1 - EDGE_PX) & (y > y0 + EDGE_PX) & (y < y1 - EDGE_PX)
    star = np.char.strip(t["MORPH"].astype(str)) == "PSF"
    pd = {b: float(np.median(c["PSFDEPTH_" + b.upper()])) for b in "grz"}
    gd = {b: float(np.median(c["GALDEPTH_" + b.upper()])) for b in "grz"}
    sn = np.max([t["FLUX_" + b.upper()] * np.sqrt(np.where(star, pd[b], gd[b])) for b in "grz"], axis=0)
    ti, ci = inner(t["BX"], t["BY"]), inner(c["BX"], c["BY"])
    txy, cxy = np.column_stack([t["BX"], t["BY"]]), np.column_stack([c["BX"], c["BY"]])
    dt, _ = cKDTree(cxy).query(txy) if len(c) else (np.full(len(t), np.inf), None)
    dc, ic = cKDTree(txy).query(cxy)
    sel = ti & (sn > 8)
    snc = np.max([c["FLUX_" + b] * np.sqrt(c["FLUX_IVAR_" + b]) for b in "GRZ"], axis=0)
    m50 = ci & (dc < MATCH_PX) & (snc > sg_sn)
    cpsf = np.char.strip(c["TYPE"].astype(str)) == "PSF"
    return {"completeness_sn8": float(np.mean(dt[sel] < MATCH_PX)) if sel.any() else float("nan"),
            "n_truth_sn8": int(sel.sum()),
            "purity": float(np.mean(dc[ci] < MATCH_PX)) if ci.any() else float("nan"),
            "n_catalog": int(ci.sum()),
            "n_rows": int(len(c)),
            "star_galaxy_sn50": float(np.mean(cpsf[m50] == star[ic[m50]])) if m50.any() else float("nan"),
            "n_sn50": int(m50.sum())}


#: isolation radius for the flux pulls, pixels (4.2 arcsec, about 3 PSF FWHM)
ISO_PX = 16.0
#: neighbours fainter than this fraction of the source's truth flux (sum over bands) do not break isolation
ISO_FLUX_FRAC = 0.02
#: maskbits that exclude a source from the flux pulls (saturation, masked in all exposures, Gaia bright-star disks)
PULL_MASK = ("SATUR_G", "SATUR_R", "SATUR_Z", "ALLMASK_G", "ALLMASK_R", "ALLMASK_Z", "BRIGHT", "MEDIUM")


def _robust_std(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if len(x) else float("nan")


def _catalog_source(r):
    """Fitter Source of one catalog row (its final type, position, fluxes and shape)."""
    from legacylake.photometry.model.fitter import Source
    t = str(r["TYPE"]).strip()
    kind = t if t in ("PSF", "REX", "EXP", "DEV", "SER") else "PSF"
    return Source(kind, float(r["RA"]), float(r["DEC"]), {b: float(r["FLUX_" + b.upper()]) for b in "grz"},
                  float(r["SHAPE_R"]) if r["SHAPE_R"] > 0 else 0.45, float(r["SHAPE_E1"]),
                  float(r["SHAPE_E2"]), float(r["SERSIC"]) if r["SERSIC"] > 0 else 4.0)


def fisher_flux_sigma(images_dir: str, c: np.ndarray, rows, half: int = 25) -> dict:
    """Marginalised flux sigma (nmgy) per band of catalog rows ``rows`` (indices into ``c``),
    each taken alone: inverse of the Fisher matrix of its own parameters (fluxes, position,
    shape) at the catalog values on +-``half`` px cut-outs of every exposure. For isolated
    sources this is the marginalised sigma of the blob's final fit (same model, same
    pixels up to the blob mask); used when a run has no ``sigma-<brick>.fits`` side file."""
    from legacylake.photometry.brick.images import load_exposures
    from legacylake.photometry.model.fitter import Fitter
    exps = load_exposures(images_dir)
    out = {b: np.zeros(len(c)) for b in "grz"}
    for i in rows:
        src = _catalog_source(c[i])
        ims = []
        for e in exps:
            x, y = e.image.wcs.all_world2pix([[src.ra, src.dec]], 0)[0]
            h, w = e.image.shape
            ix, iy = int(round(x)), int(round(y))
            x0, x1, y0, y1 = max(ix - half, 0), min(ix + half + 1, w), max(iy - half, 0), min(iy + half + 1, h)
            if x1 - x0 < 3 or y1 - y0 < 3 or not np.any(e.image.ivar[y0:y1, x0:x1] > 0):
                continue
            ims.append(e.image.cut(x0, x1, y0, y1))
        bands = sorted({im.band for im in ims}, key="grz".index)
        if not ims:
            continue
        sm = Fitter(ims, [src], bands).results()[0].sigma_marg
        for b in bands:
            out[b][i] = sm.get("flux_" + b, 0.0)
    return out


def flux_pulls(images_dir: str, outdir: str, brick: str, min_sn: float = 20.0, iso_px: float = ISO_PX,
               sigma: str = "auto") -> dict:
    """Flux pulls (catalog flux - truth flux) / sigma of a run-brick catalog against the truth.

    Sources used ("isolated, matched"): catalog sources inside the rendered area less
    EDGE_PX whose nearest truth source is within 2 px and whose truth source has this
    catalog source as its nearest (mutual nearest neighbours); no other catalog source
    within ``iso_px`` and no other truth source within ``iso_px`` brighter than
    ISO_FLUX_FRAC of this one (sum of grz truth fluxes); none of the PULL_MASK maskbits;
    S/N = flux x sqrt(flux_ivar) > ``min_sn`` in the band. sigma is the marginalised one
    from ``metrics/<AAA>/sigma-<brick>.fits`` (run-brick writes it), else the
    Fisher-matrix sigma at the catalog values (:func:`fisher_flux_sigma`, ``sigma="fisher"``),
    or with ``sigma="diagonal"`` the catalog's 1/sqrt(flux_ivar) (``sigma`` in the result says
    which). Truth flux: the simulation's catalogued flux = flux of our mixture at the amplitude of the rendered
    GalSim profile (:mod:`legacylake.photometry.sim.galsim_truth`).

    Returns {"sigma": which sigma, "groups": {(truth type, band): {n, median,
    std, robust_std, median_frac (median flux/truth - 1)}}, the same for the subset fitted
    as the true type (REX counts as EXP) under key "groups_same_type", and "used": {band:
    OBJIDs of the sources used}}.
    Truth types: PSF, EXP, DEV, SER."""
    import fitsio
    from scipy.spatial import cKDTree

    from legacylake.catalogs_schema import MASKBITS

    from legacylake.photometry.brick.run import sigma_path
    if sigma not in ("auto", "file", "fisher", "diagonal"):
        raise ValueError(f"sigma must be auto, file, fisher or diagonal, not {sigma!r}")
    t, h = fitsio.read(os.path.join(images_dir, f"truth-{brick}.fits"), header=True)
    c = fitsio.read(os.path.join(outdir, "tractor", brick[:3], f"tractor-{brick}.fits"))
    sp = sigma_path(outdir, brick)
    sig = fitsio.read(sp) if sigma in ("auto", "file") and os.path.exists(sp) else None
    if sigma == "file" and sig is None:
        raise FileNotFoundError(sp)
    if sig is not None and not np.array_equal(sig["OBJID"], c["OBJID"]):
        raise ValueError(f"{sp}: OBJID does not follow the catalog's rows")
    kind = "marginalised" if sig is not None else "diagonal" if sigma == "diagonal" else "marginalised (Fisher at catalog values)"
    out = {"sigma": kind, "groups": {}, "groups_same_type": {}, "groups_ref": {}, "used": {}}
    if not len(c) or not len(t):
        return out
    x0, x1, y0, y1 = h["RX0"], h["RX1"], h["RY0"], h["RY1"]
    txy, cxy = np.column_stack([t["BX"], t["BY"]]), np.column_stack([c["BX"], c["BY"]])
    ttree, ctree = cKDTree(txy), cKDTree(cxy)
    dc, ic = ttree.query(cxy)
    _, it = ctree.query(txy)
    inner = (c["BX"] > x0 + EDGE_PX) & (c["BX"] < x1 - EDGE_PX) & (c["BY"] > y0 + EDGE_PX) & (c["BY"] < y1 - EDGE_PX)
    ok = inner & (dc < 2.0) & (it[ic] == np.arange(len(c)))
    ok &= np.array([len(a) == 1 for a in ctree.query_ball_point(cxy, iso_px)])
    tsum = sum(t["FLUX_" + b].astype(np.float64) for b in "GRZ")
    for k in np.flatnonzero(ok):
        near = ttree.query_ball_point(txy[ic[k]], iso_px)
        if any(j != ic[k] and tsum[j] > ISO_FLUX_FRAC * tsum[ic[k]] for j in near):
            ok[k] = False
    ok &= (c["MASKBITS"] & MASKBITS.mask(",".join(PULL_MASK))) == 0
    tm = np.char.strip(t["MORPH"].astype(str))[ic]
    ct = np.char.strip(c["TYPE"].astype(str))
    ct = np.where(ct == "REX", "EXP", ct)
    sn = {b: c["FLUX_" + b] * np.sqrt(np.clip(c["FLUX_IVAR_" + b], 0, None)) for b in "GRZ"}
    if sig is None and kind != "diagonal":
        fs = fisher_flux_sigma(images_dir, c, np.flatnonzero(ok & np.any([sn[b] > min_sn for b in "GRZ"], axis=0)))
    for b in "GRZ":
        f, iv = c["FLUX_" + b].astype(np.float64), c["FLUX_IVAR_" + b].astype(np.float64)
        if sig is not None:  # floored at the conditional sigma (side files written before the floor)
            s = np.maximum(sig["FLUX_SIGMA_MARG_" + b].astype(np.float64), 1.0 / np.sqrt(np.where(iv > 0, iv, np.inf)))
        elif kind == "diagonal":
            s = 1.0 / np.sqrt(np.where(iv > 0, iv, 1.0))
        else:
            s = np.where(fs[b.lower()] > 0, np.maximum(fs[b.lower()], 1.0 / np.sqrt(np.where(iv > 0, iv, np.inf))), 0.0)
        good = ok & (iv > 0) & (s > 0) & (sn[b] > min_sn)
        tf = t["FLUX_" + b][ic].astype(np.float64)
        pull = (f - tf) / np.where(s > 0, s, 1.0)
        out["used"][b.lower()] = c["OBJID"][good]
        isref = np.char.strip(c["REF_CAT"].astype(str)) == "G2"
        for key, sel in (("Gaia reference", good & (tm == "PSF") & isref), ("not reference", good & (tm == "PSF") & ~isref)):
            p = pull[sel]
            out["groups_ref"][(key, b.lower())] = {
                "n": int(sel.sum()), "median": float(np.median(p)) if len(p) else float("nan"),
                "std": float(np.std(p)) if len(p) else float("nan"), "robust_std": _robust_std(p),
                "median_frac": float(np.median(f[sel] / tf[sel] - 1)) if len(p) else float("nan")}
        for typ in ("PSF", "EXP", "DEV", "SER"):
            for key, sel in (("groups", good & (tm == typ)), ("groups_same_type", good & (tm == typ) & (ct == typ))):
                p = pull[sel]
                out[key][(typ, b.lower())] = {
                    "n": int(sel.sum()), "median": float(np.median(p)) if len(p) else float("nan"),
                    "std": float(np.std(p)) if len(p) else float("nan"), "robust_std": _robust_std(p),
                    "median_frac": float(np.median(f[sel] / tf[sel] - 1)) if len(p) else float("nan")}
    return out


def format_pulls(p: dict) -> str:
    """Table lines of :func:`flux_pulls` (median / std / robust std / N per truth type and band)."""
    lines = [f"flux pulls (sigma {p['sigma']}), median / std / robust std / N [median flux/truth - 1]:"]
    for key, title in (("groups", "all matched isolated"), ("groups_same_type", "fitted as the true type")):
        lines.append(f"  {title}:")
        for typ in ("PSF", "EXP", "DEV", "SER"):
            cells = []
            for b in "grz":
                g = p[key].get((typ, b))
                if g:
                    cells.append(f"{b} {g['median']:+.2f} / {g['std']:.2f} / {g['robust_std']:.2f} / {g['n']} "
                                 f"[{g['median_frac']:+.4f}]")
            lines.append(f"    {typ}: " + "; ".join(cells))
    if p.get("groups_ref"):
        lines.append("  truth PSF by catalog reference (Gaia stars: positions held, drawn at each exposure's epoch):")
        for key in ("Gaia reference", "not reference"):
            cells = []
            for b in "grz":
                g = p["groups_ref"].get((key, b))
                if g:
                    cells.append(f"{b} {g['median']:+.2f} / {g['std']:.2f} / {g['robust_std']:.2f} / {g['n']} "
                                 f"[{g['median_frac']:+.4f}]")
            lines.append(f"    {key}: " + "; ".join(cells))
    return "\n".join(lines)


def gaia_check(images_dir: str, outdir: str, brick: str, match_arcsec: float = 1.0) -> dict:
    """Point sources of a run-brick catalog against the Gaia stars of ``images_dir`` (survey
    ``gaia/`` chunks or the simulation's ``gaia-<brick>.fits``) inside the catalog's area.

    Gaia positions are moved from their epoch to the catalog's mean MJD with proper motion.
    Returns n Gaia stars in the area, n matched (nearest PSF source within ``match_arcsec``),
    median offset (arcsec), and per band the median and robust scatter (1.4826 MAD) of
    mag - Gaia-predicted mag (reference 8 polynomials) for matched stars with S/N > 20."""
    import fitsio
    from scipy.spatial import cKDTree

    from legacylake.catalogs_schema.astrometry import mjd_to_year, propagate

    from legacylake.photometry.brick.references import gaia_mag, reference_table
    from legacylake.photometry.sim.catalog import brick_path
    from legacylake.photometry.brick.target import as_target, target_from_catalog
    name = brick.name if hasattr(brick, "name") else str(brick)
    path = brick_path(outdir, name)
    c = fitsio.read(path)
    target = target_from_catalog(path) if not hasattr(brick, "name") else as_target(brick)
    g = reference_table(images_dir, target, margin_arcsec=0.0)
    g = g[g["ISGAIA"]] if len(g) else g
    out = {"n_gaia": 0, "n_matched": 0, "median_offset_arcsec": float("nan")}
    if not len(g) or not len(c):
        return out
    mjd = np.where(c["MJD_MAX"] > 0, 0.5 * (c["MJD_MIN"] + c["MJD_MAX"]), np.nan)
    epoch = float(mjd_to_year(np.nanmean(mjd))) if np.isfinite(mjd).any() else 2015.5
    gra, gdec = propagate(g["RA"], g["DEC"], g["PMRA"], g["PMDEC"], epoch - g["REF_EPOCH"])
    # reference rows carry the catalogue position at REF_EPOCH: move them to the same epoch
    cdt = np.where(c["REF_EPOCH"] > 0, epoch - c["REF_EPOCH"], 0.0)
    c_ra, c_dec = propagate(c["RA"], c["DEC"], c["PMRA"], c["PMDEC"], cdt)
    cosd = np.cos(np.deg2rad(float(np.median(c["DEC"]))))  # tangent-plane scale of the matching
    # the area: Gaia stars inside the catalog's bx/by box less 2 px (nobs > 0 over the region)
    gx, gy = target.wcs.all_world2pix(np.column_stack([gra, gdec]), 0).T
    inside = ((gx > c["BX"].min() - 2) & (gx < c["BX"].max() + 2) & (gy > c["BY"].min() - 2) & (gy < c["BY"].max() + 2)
              if len(c) > 1 else np.zeros(len(g), bool))
    out["n_gaia"] = int(inside.sum())
    psf = np.char.strip(c["TYPE"].astype(str)) == "PSF"
    if not inside.any() or not psf.any():
        return out
    cp = np.column_stack([c_ra[psf] * cosd, c_dec[psf]]) * 3600
    gp = np.column_stack([gra[inside] * cosd, gdec[inside]]) * 3600
    d, j = cKDTree(cp).query(gp)
    ok = d < match_arcsec
    out["n_matched"] = int(ok.sum())
    if not ok.any():
        return out
    out["median_offset_arcsec"] = float(np.median(d[ok]))
    gi = np.flatnonzero(inside)[ok]
    ci = np.flatnonzero(psf)[j[ok]]
    # reference stars are held at their Gaia positions; the fitted point sources are the test
    free = np.char.strip(c["REF_CAT"][ci].astype(str)) == ""
    out["n_matched_fitted"] = int(free.sum())
    out["median_offset_fitted_arcsec"] = float(np.median(d[ok][free])) if free.any() else float("nan")
    bprp = g["PHOT_BP_MEAN_MAG"][gi] - g["PHOT_RP_MEAN_MAG"][gi]
    for b in "grz":
        f, iv = c["FLUX_" + b.upper()][ci], c["FLUX_IVAR_" + b.upper()][ci]
        good = (f > 0) & (f * np.sqrt(iv) > 20)
        if not good.any():
            continue
        dm = -2.5 * np.log10(f[good]) + 22.5 - gaia_mag(g["PHOT_G_MEAN_MAG"][gi][good], bprp[good], b)
        out[f"dmag_median_{b}"] = float(np.median(dm))
        out[f"dmag_scatter_{b}"] = float(1.4826 * np.median(np.abs(dm - np.median(dm))))
        out[f"n_dmag_{b}"] = int(good.sum())
    return out


def per_exposure_check(images_dir: str, outdir: str, brick: str, min_sn: float = 50.0) -> list[dict]:
    """Astrometric and photometric consistency of the exposures: every catalog source with
    S/N > ``min_sn`` in some band is refitted (type fixed, all catalog sources jointly) on each
    exposure alone. Returns per (source, exposure): band, offset (arcsec, east and north) of the
    single-exposure position from the catalog's, and flux ratio single-exposure / catalog."""
    import fitsio

    from legacylake.photometry.brick.images import load_exposures
    from legacylake.photometry.model.fitter import Fitter, Source
    c = fitsio.read(os.path.join(outdir, "tractor", brick[:3], f"tractor-{brick}.fits"))
    exps = load_exposures(images_dir)
    srcs = [_catalog_source(r) for r in c]
    sn = np.max([c["FLUX_" + b] * np.sqrt(c["FLUX_IVAR_" + b]) for b in "GRZ"], axis=0)
    rows = []
    for k, e in enumerate(exps):
        b = e.band
        f = Fitter([e.image], [Source(s.type, s.ra, s.dec, {b: s.flux[b]}, s.r_e, s.e1, s.e2, s.n) for s in srcs], [b])
        f.fit(30)
        for i, res in enumerate(f.results()):
            if sn[i] <= min_sn or c["FLUX_" + b.upper()][i] <= 0:
                continue
            s = res.source
            cosd = np.cos(np.deg2rad(c["DEC"][i]))
            rows.append({"source": i, "exposure": k, "band": b,
                         "d_east": float((s.ra - c["RA"][i]) * cosd * 3600), "d_north": float((s.dec - c["DEC"][i]) * 3600),
                         "flux_ratio": float(s.flux[b] / c["FLUX_" + b.upper()][i])})
    return rows
