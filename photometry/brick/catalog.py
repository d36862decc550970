"""The catalog rows of a ``run-brick`` fit (DR9 data model, reference 5 and 2): positions,
types, fluxes and shapes of the kept fits, reference columns, DUP rows, derived columns,
MASKBITS and FITBITS.

Reference rows (reference 4.1, 2.2): Gaia (``G2``) and Tycho-2 (``T2``) stars fitted as PSF
carry the catalogue position at ``ref_epoch`` with its proper motion, parallax and errors;
the SGA galaxy (``L3``) its fitted position; ``ref_id`` the catalogue id. References not
fitted (Gaia/Tycho-2 stars at an SGA centre) are written as ``type = DUP`` rows with zero
fluxes and ivars after the regular rows (objid continues). MASKBITS adds BRIGHT / MEDIUM /
GALAXY from the reference masks (:func:`legacylake.photometry.brick.references.mask_bits`); FITBITS: GAIA, TYCHO2,
LARGEGALAXY, BRIGHT, MEDIUM, GAIA_POINTSOURCE, FORCED_POINTSOURCE (point-source references
and detections forced to PSF inside BRIGHT/GALAXY masks), FROZEN, WALKER, RUNNER, ITERATIVE,
HIT_RADIUS_LIMIT, HIT_SERSIC_LIMIT.
"""

from __future__ import annotations

import numpy as np

from legacylake.catalogs_schema import FITBITS, MASKBITS
from legacylake.catalogs_schema.constants import mw_transmission

from legacylake.photometry.brick.references import mask_bits

RELEASE_SOUTH = 9010
#: DR9 release of catalogs measured on the northern cameras (BASS 90Prime g, r; MzLS Mosaic3 z)
RELEASE_NORTH = 9011
NORTH_CAMERAS = ("90prime", "mosaic")
WISE = ("w1", "w2", "w3", "w4")
PROFILES = ("PSF", "REX", "EXP", "DEV", "SER")


def fit_type(t: str) -> str:
    """DR9 profile of a row type (DR4's SIMP is an EXP, its COMP is approximated by a SER)."""
    return {"SIMP": "EXP", "COMP": "SER"}.get(t, t)


def ebv_function(images_dir: str, exposures):
    """E(B-V) at (ra, dec): the simulation's dust field for simulated images, else None (0)."""
    import fitsio
    try:
        hdr = fitsio.read_header(exposures[0].image.name, "IMAGE")
    except (OSError, ValueError):  # CP images: no IMAGE HDU, not simulated
        return None
    if "SIMSEED" not in hdr:
        return None
    from legacylake.photometry.sim.sky import ebv_at
    seed = int(hdr["SIMSEED"])

    def f(ra, dec):
        r, d = np.deg2rad(ra), np.deg2rad(dec)
        xyz = np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])
        return ebv_at(xyz, seed, ra, dec)
    return f


def _ref_columns(cat, i: int, r, fitted_psf: bool) -> None:
    """Reference-catalogue columns of row ``i`` from reference row ``r``."""
    cat["ref_cat"][i] = str(r["REF_CAT"])
    cat["ref_id"][i] = r["REF_ID"]
    if r["ISLARGEGALAXY"]:
        return
    cat["ref_epoch"][i] = r["REF_EPOCH"]
    if fitted_psf:  # the catalogue's position at its epoch, and its astrometric errors (mas)
        cat["ra"][i], cat["dec"][i] = r["RA"], r["DEC"]
        for c, e in (("ra", "RA_ERROR"), ("dec", "DEC_ERROR")):
            err = float(r[e])
            cat[f"{c}_ivar"][i] = 1.0 / (err / 3.6e6) ** 2 if err > 0 else 0.0
    cat["pmra"][i], cat["pmdec"][i], cat["parallax"][i] = r["PMRA"], r["PMDEC"], r["PARALLAX"]
    for c, e in (("pmra", "PMRA_ERROR"), ("pmdec", "PMDEC_ERROR"), ("parallax", "PARALLAX_ERROR")):
        err = float(r[e])
        cat[f"{c}_ivar"][i] = 1.0 / err ** 2 if err > 0 else 0.0
    if r["ISGAIA"]:
        for c in ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "phot_g_mean_flux_over_error",
                  "astrometric_excess_noise"):
            v = float(r[c.upper()])
            cat[f"gaia_{c}"][i] = v if np.isfinite(v) else 0.0


def _ref_fitbits(r) -> int:
    fb = 0
    if r["ISGAIA"]:
        fb |= FITBITS.mask("GAIA")
    if r["ISTYCHO"]:
        fb |= FITBITS.mask("TYCHO2")
    if r["ISLARGEGALAXY"]:
        fb |= FITBITS.mask("LARGEGALAXY")
    if r["ISBRIGHT"]:
        fb |= FITBITS.mask("BRIGHT")
    if r["ISMEDIUM"]:
        fb |= FITBITS.mask("MEDIUM")
    if r["POINTSOURCE"] and not r["ISLARGEGALAXY"]:
        fb |= FITBITS.mask("GAIA_POINTSOURCE") | FITBITS.mask("FORCED_POINTSOURCE")
    if r["FREEZE"]:
        fb |= FITBITS.mask("FROZEN")
    return fb


def build_catalog(target, rows, refs, exps, pixmaps, models, region, bands, images_dir, log,
                  model_set: str = "dr9", kept: list | None = None) -> np.ndarray:
    """The catalog rows (objid order: regular rows by RA, then DUPs); ``kept`` (if given)
    receives the FitRows of the regular rows in that order."""
    from legacylake.photometry.brick import derived as bd
    from legacylake.photometry.brick.sources import positions_at
    from legacylake.photometry.sim.records import catalog_dtype
    bw = target.wcs
    n0 = len(rows)
    ra = np.array([r.result.source.ra for r in rows]) if rows else np.zeros(0)
    dec = np.array([r.result.source.dec for r in rows]) if rows else np.zeros(0)
    ra = np.mod(ra, 360.0)
    bxy = bw.all_world2pix(np.column_stack([ra, dec]), 0) if n0 else np.zeros((0, 2))
    x0, x1, y0, y1 = target.box
    inb = ((np.rint(bxy[:, 0]) >= x0) & (np.rint(bxy[:, 0]) < x1) & (np.rint(bxy[:, 1]) >= y0)
           & (np.rint(bxy[:, 1]) < y1))
    if n0:  # sources whose final position left every exposure are dropped
        cov = bd.at_sources(exps, ra, dec, bands, depths=False)
        inb &= sum(cov[f"nobs_{bb}"].astype(int) for bb in bands) > 0
        if (~inb).any():
            log.msg(f"{int((~inb).sum())} sources dropped: final position outside the target box or every exposure")
    rows = [r for r, k in zip(rows, inb) if k]
    ra, dec, bxy = ra[inb], dec[inb], bxy[inb]
    order = np.argsort(ra, kind="stable")
    rows = [rows[i] for i in order]
    ra, dec, bxy = ra[order], dec[order], bxy[order]
    # DUP rows: references not fitted (stars at an SGA centre) inside the box
    dups = np.zeros(0, int)
    if refs is not None and len(refs):
        dra, ddec = refs["RA"].astype(np.float64), refs["DEC"].astype(np.float64)
        dxy = bw.all_world2pix(np.column_stack([dra, ddec]), 0)
        dups = np.flatnonzero(refs["DONOTFIT"] & (np.rint(dxy[:, 0]) >= x0) & (np.rint(dxy[:, 0]) < x1)
                              & (np.rint(dxy[:, 1]) >= y0) & (np.rint(dxy[:, 1]) < y1))
        dups = dups[np.argsort(dra[dups], kind="stable")]
        if len(dups):
            ra, dec = np.r_[ra, dra[dups]], np.r_[dec, ddec[dups]]
            bxy = np.r_[bxy, dxy[dups]]
            log.msg(f"{len(dups)} DUP rows: reference stars at large-galaxy centres, not fitted")
    nreg = len(rows)
    N = nreg + len(dups)
    if kept is not None:
        kept[:] = rows
    cat = np.zeros(N, dtype=catalog_dtype("dr9"))
    if target.custom and len(target.name) > cat.dtype["brickname"].itemsize // 4:
        dt = [(n, (f"U{len(target.name)}" if n == "brickname" else cat.dtype[n])) for n in cat.dtype.names]
        cat = np.zeros(N, dtype=dt)
    cams = {getattr(e, "camera", "") for e in exps}
    cat["release"] = RELEASE_NORTH if cams and cams <= set(NORTH_CAMERAS) else RELEASE_SOUTH
    cat["brickid"] = target.brickid
    cat["brickname"] = target.name
    cat["objid"] = np.arange(N)
    cat["ra"], cat["dec"] = ra, dec
    cat["bx"], cat["by"] = bxy[:, 0], bxy[:, 1]
    cat["brick_primary"] = target.is_primary(ra, dec)
    cat["type"] = [fit_type(r.type) for r in rows] + ["DUP"] * len(dups)
    if nreg:
        cat["dchisq"][:nreg] = np.array([r.dchisq for r in rows]).reshape(nreg, 5)
    for i, r in enumerate(rows):
        s, iv = r.result.source, r.result.ivar
        cosd = np.cos(np.deg2rad(s.dec))
        cat["ra_ivar"][i] = iv["ra"] / cosd ** 2 if cosd > 0 else 0.0
        cat["dec_ivar"][i] = iv["dec"]
        for bb in bands:
            fl, fiv = s.flux.get(bb, 0.0), iv.get("flux_" + bb, 0.0)
            cat[f"flux_{bb}"][i] = fl if fiv > 0 else 0.0
            cat[f"flux_ivar_{bb}"][i] = fiv
            cat[f"rchisq_{bb}"][i] = r.result.rchisq.get(bb, 0.0)
            for k in ("fracflux", "fracmasked", "fracin", "nea"):
                cat[f"{k}_{bb}"][i] = r.metrics.get(f"{k}_{bb}", 0.0)
        rt = fit_type(r.type)
        if rt != "PSF":
            cat["shape_r"][i], cat["shape_r_ivar"][i] = s.r_e, iv["shape_r"]
            if rt != "REX":
                cat["shape_e1"][i], cat["shape_e2"][i] = s.e1, s.e2
                cat["shape_e1_ivar"][i], cat["shape_e2_ivar"][i] = iv["shape_e1"], iv["shape_e2"]
        cat["sersic"][i] = {"PSF": 0.0, "REX": 1.0, "EXP": 1.0, "DEV": 4.0}.get(rt, s.n)
        if rt == "SER":
            cat["sersic_ivar"][i] = iv["sersic"]
    # fluxes zeroed where fracin < 1e-3 (not for DUPs, whose fluxes are 0 anyway)
    for bb in bands:
        tiny = cat[f"fracin_{bb}"] < 1e-3
        tiny[nreg:] = False
        cat[f"flux_{bb}"][tiny] = 0.0
        cat[f"flux_ivar_{bb}"][tiny] = 0.0
    # per-exposure quantities at the source pixel
    d = bd.at_sources(exps, ra, dec, bands)
    for bb in bands:
        for k in ("nobs", "anymask", "allmask", "psfsize", "psfdepth", "galdepth"):
            cat[f"{k}_{bb}"] = d[f"{k}_{bb}"]
        psfsize, psfdepth = d[f"psfsize_{bb}"], d[f"psfdepth_{bb}"]
        s = np.array([r.metrics.get(f"bnea_sum_{bb}", 0.0) for r in rows] + [0.0] * len(dups))
        with np.errstate(invalid="ignore", divide="ignore"):
            cat[f"blob_nea_{bb}"] = np.where(s > 0, psfdepth * 4 * np.pi * (psfsize / 2.3548) ** 2 / np.where(s > 0, s, 1), 0)
    cat["mjd_min"], cat["mjd_max"] = d["mjd_min"], d["mjd_max"]
    # maskbits
    mb = np.where(cat["brick_primary"], 0, MASKBITS.mask("NPRIMARY")).astype(np.int64)
    for bb in bands:
        if bb in "grz":
            mb |= np.where(d[f"satur_{bb}"], MASKBITS.mask(f"SATUR_{bb.upper()}"), 0)
            mb |= np.where(cat[f"allmask_{bb}"] != 0, MASKBITS.mask(f"ALLMASK_{bb.upper()}"), 0)
    fb = np.zeros(N, np.int64)
    if refs is not None and len(refs):
        mb |= mask_bits(refs, ra, dec)
        for i, r in enumerate(rows):
            if r.src.ref >= 0:
                rr = refs[r.src.ref]
                _ref_columns(cat, i, rr, fit_type(r.type) == "PSF")
                fb[i] |= _ref_fitbits(rr)
                if fit_type(r.type) != "PSF" and not rr["ISLARGEGALAXY"]:
                    fb[i] &= ~(FITBITS.mask("GAIA_POINTSOURCE") | FITBITS.mask("FORCED_POINTSOURCE"))
        for j, k in enumerate(dups):
            _ref_columns(cat, nreg + j, refs[k], True)
            fb[nreg + j] |= _ref_fitbits(refs[k])
    for i, r in enumerate(rows):
        if r.src.mask_forced:
            fb[i] |= FITBITS.mask("FORCED_POINTSOURCE")
        moved = np.hypot((r.result.source.ra - r.src.ra) * np.cos(np.deg2rad(r.src.dec)),
                         r.result.source.dec - r.src.dec) * 3600.0
        if moved > 1.0:
            fb[i] |= FITBITS.mask("WALKER")
        if moved > 2.5:
            fb[i] |= FITBITS.mask("RUNNER")
        if r.src.iterative:
            fb[i] |= FITBITS.mask("ITERATIVE")
        rt = fit_type(r.type)
        if rt in ("REX", "EXP", "DEV", "SER"):
            from legacylake.photometry.model.ellipse import LOGR_MAX, LOGR_MIN
            lr = np.log(max(r.result.source.r_e, 1e-30))
            hi = min(LOGR_MAX[rt], r.result.source.logr_max)
            if abs(lr - LOGR_MIN) < 0.01 or abs(lr - hi) < 0.01:
                fb[i] |= FITBITS.mask("HIT_RADIUS_LIMIT")
        if rt == "SER":
            from legacylake.photometry.model.mixtures import SERSIC_MAX, SERSIC_MIN
            if min(abs(r.result.source.n - SERSIC_MIN), abs(r.result.source.n - SERSIC_MAX)) < 0.001:
                fb[i] |= FITBITS.mask("HIT_SERSIC_LIMIT")
    cat["maskbits"], cat["fitbits"] = mb, fb
    # Galactic extinction
    ebvf = ebv_function(images_dir, exps)
    if ebvf is None:
        log.msg("ebv: no SFD map for these images; ebv = 0, mw_transmission = 1")
        cat["ebv"] = 0.0
    else:
        cat["ebv"] = ebvf(ra, dec) if N else 0.0
    for bb in ("g", "r", "z") + WISE:
        cat[f"mw_transmission_{bb}"] = mw_transmission(cat["ebv"].astype(np.float64), bb)
    # coadds, apertures, fibers
    co = bd.coadds(region, exps, pixmaps, models, bands)
    for bb in bands:
        ap = bd.aperture_photometry(co[bb], bxy[:, 0], bxy[:, 1], region)
        cat[f"apflux_{bb}"] = ap["apflux"]
        cat[f"apflux_ivar_{bb}"] = ap["apflux_ivar"]
        cat[f"apflux_resid_{bb}"] = ap["apflux_resid"]
        cat[f"apflux_blobresid_{bb}"] = ap["apflux_resid"]
        cat[f"apflux_masked_{bb}"] = ap["apflux_masked"]
    del co
    from legacylake.photometry.model.fitter import Source
    srcs = []
    for i, r in enumerate(rows):
        s = r.result.source
        kind = fit_type(r.type) if fit_type(r.type) in PROFILES else "PSF"
        srcs.append(Source(kind, s.ra, s.dec, dict(s.flux), s.r_e if s.r_e > 0 else 0.45, s.e1, s.e2,
                           s.n if s.n > 0 else 4.0))
    if len(dups):  # DUPs have zero flux: rendered as nothing
        rd = positions_at(refs[dups], 0.0)
        srcs += [Source("PSF", float(a), float(b), {}) for a, b in zip(*rd)]
    ok = [{bb: bool(cat[f"flux_ivar_{bb}"][i] > 0) for bb in bands} for i in range(N)]
    fib = bd.fiber_fluxes(target, region, srcs, bands, ok)
    for k, v in fib.items():
        cat[k] = v
    # WISE and other inputs we do not have
    cat["wise_coadd_id"] = ""
    cat["lc_epoch_index_w1"] = -1
    cat["lc_epoch_index_w2"] = -1
    log.msg("WISE: no unWISE images; flux_w1..w4 = 0, flux_ivar_w1..w4 = 0, nobs_w* = 0, lc_* empty")
    missing = [bb for bb in "grz" if bb not in bands]
    if missing:
        log.msg(f"bands without exposures: {''.join(missing)} (flux 0, ivar 0, nobs 0)")
    if model_set == "dr4":
        from legacylake.photometry.brick.dr4 import to_dr4
        log.msg("DR4 data model: types PSF/SIMP/DEV/EXP/COMP (COMP approximated by a Sersic fit), "
                "no maskbits/fitbits, lc_* (7 epochs) empty")
        return to_dr4(cat, [r.type for r in rows] + ["DUP"] * len(dups), cat["sersic"].astype(np.float64))
    return cat
