"""From the truth sky to one brick's Tractor catalog (DR9 or DR4 data model).

What a source's catalog entry says about it (fluxes, dchisq, type, position, shape, masks)
depends only on the source and the seed, so neighbouring bricks share duplicate rows and
``brick_primary`` (a test on the measured position) is true in exactly one brick.
Every random number is keyed by the source uid, so duplicate rows differ only in the brick's
own columns and in what depends on the neighbours seen in the brick (fracflux, rchisq, ...).
Array columns (apflux, lc_*) are written by numba kernels (``sim.kernels``) straight into the
big-endian FITS record. Fluxes in nanomaggies, sizes in arcsec, ivars in 1/unit^2.
"""

from __future__ import annotations

import numpy as np

from legacylake.catalogs_schema import ANYMASK, FITBITS, MASKBITS, WISEMASK, bricks
from legacylake.catalogs_schema.constants import (
    FIBER_DIAMETER_ARCSEC,
    FIBER_SEEING_FWHM_ARCSEC,
    PIXSCALE_ARCSEC,
    mask_radius_arcsec,
)
from legacylake.photometry.sim.brickgeom import (
    NPIX,
    _candidates,
    _DiskTester,
    _mag,
    _mw_transmission,
    _sorted_by,
    brick_pixels,
    gal_sigma,
    mod360,
)
from legacylake.photometry.sim.conditions import OPT, WISE, WISE_FWHM, conditions
from legacylake.photometry.sim.kernels.blend import blend_kernel
from legacylake.photometry.sim.kernels.common import NORMAL_TABLE
from legacylake.photometry.sim.kernels.dchisq import dchisq_kernel
from legacylake.photometry.sim.kernels.pairs import pairs_kernel
from legacylake.photometry.sim.kernels.randoms import table_normals_t_kernel, uniforms16_t_kernel
from legacylake.photometry.sim.kernels.select import select_index_fast
from legacylake.photometry.sim.records import (
    BAND_ALL,
    LC_EPOCHS,
    NFILL,
    RELEASE,
    BrickRecords,
    _no_data_columns,
    _PackedColumns,
    from_fits_records,
)
from legacylake.photometry.sim.refstars import (
    _GAIA_KEYS,
    TYCHO_EPOCH,
    gaia_measure,
    gaia_source_id,
    mask_mag,
    tycho_measure,
    tycho_only,
)
from legacylake.photometry.sim.rng import seed_key, unit_vectors
from legacylake.photometry.sim.sky import (
    BRIGHT_SUB,
    GAIA_EXTINCTION,
    sin_gal_b,
)

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
SIMP_RADIUS = 0.45  # arcsec, DR4's SIMP model (and galdepth's reference galaxy)
PROFILE_K = 0.02  # profile-mismatch strength in dchisq (EXP vs DEV vs SER)


# ---------------------------------------------------------------- uid-keyed filler randoms
# columns of the filler uniforms: 10 per optical band (fracmasked 2, fracin 2, anymask 5,
# allmask 1), Gaia 10, misc 4 (walker, wisemask halo w1, w2, iterative)
_F_OPT, _F_GAIA, _F_MISC = 0, 30, 40


def simulate_brick(brickname: str, release: str = "dr9", seed: int = 0, density: float | None = None,
                   return_uid: bool = False, out_dtype: np.dtype | None = None):
    """The catalog of one brick as a structured array (lowercase names, the required columns
    of ``<release>-tractor``, sorted by RA with objid 0..N-1). With ``return_uid`` also the
    truth uid of each row (see :func:`legacylake.photometry.sim.sky.truth_sky`). ``out_dtype``
    (the on-disk FITS layout of :func:`fits_record_dtype`) returns that layout instead."""
    recs = measure_brick(brickname, release, seed, density)
    if out_dtype is not None:
        assert out_dtype == recs.dtype, "out_dtype must be the FITS layout of fits_record_dtype(release)"
    rec = recs.records()
    out = rec if out_dtype is not None else from_fits_records(rec, recs.release)
    return (out, recs.uid.copy()) if return_uid else out


def measure_brick(brickname: str, release: str = "dr9", seed: int = 0,
                  density: float | None = None) -> "BrickRecords":
    """One brick's catalog as a :class:`BrickRecords` (rows sorted by RA, objid 0..N-1), to be
    filled into FITS records all at once or block by block."""
    rel = release.lower()
    if rel not in RELEASE:
        raise ValueError(f"unknown release {release!r}; valid: dr9, dr4")
    b = bricks.brick(brickname)
    t_all, cand, clusters, sinb_all = _candidates(b, seed, density)
    key = seed_key(seed, 3)

    # ---- masks from bright stars, large galaxies and clusters (position-only, per source)
    bright_star = (((t_all["uid"] >> 16) & 0xFF) == BRIGHT_SUB) & (t_all["kind"] == 0)
    mm = np.full(len(t_all), np.inf)  # mask magnitudes of the bright stars only
    bs = np.flatnonzero(bright_star)
    mm[bs] = mask_mag(np.take(t_all, bs))
    med = bright_star & (mm < 16.0)
    brt = bright_star & (mm < 13.0)
    rad_med = mask_radius_arcsec(mm[med])
    rad_brt = mask_radius_arcsec(mm[brt]) / 2.0
    large_gal = (((t_all["uid"] >> 16) & 0xFF) == BRIGHT_SUB) & (t_all["kind"] == 1) & (t_all["flux_r"] > 10 ** (-0.4 * (16.0 - 22.5)))
    t = np.take(t_all, np.flatnonzero(cand))  # take: much faster than fancy indexing of a record array
    n = len(t)
    ra_t, dec_t = t["ra"], t["dec"]
    sinb = sinb_all[cand]
    cond = conditions(ra_t, dec_t, sinb, seed, rel)

    t2 = tycho_only(t, seed) & (rel == "dr9")  # Tycho-2 reference stars with no Gaia match
    in_gaia = t["in_gaia"] & ~t2
    gaia_ref = in_gaia & (rel == "dr9")
    any_ref = gaia_ref | t2
    gi = np.flatnonzero(in_gaia)  # Gaia measurements of the Gaia sources only (keyed by uid)
    gmeas = gaia_measure(np.take(t, gi), seed, 10, 2015.5)
    ti2 = np.flatnonzero(t2)  # T2 rows: Tycho astrometry in the same slots
    tyc = tycho_measure(np.take(t, ti2), seed)
    # per candidate only what the selection needs; the rest per kept row (below)
    gm = {}
    for kk in ("ra", "dec", "pos_err_mas", "aen"):
        gm[kk] = np.ones(n)  # 1: harmless where a source is not in Gaia
        gm[kk][gi] = gmeas[kk]
        if kk in tyc:
            gm[kk][ti2] = tyc[kk]
    tyc_id = np.zeros(n, np.int64)
    tyc_id[ti2] = tyc["tyc_id"]
    # Gaia: G <= 18 with a small excess noise, or G <= 13; Tycho-2: always
    pointsource = (gaia_ref & (((t["gaia_g"] <= 18.0) & (gm["aen"] < 10 ** 0.5)) | (t["gaia_g"] <= 13.0))) | t2

    # measured position (needed before masks: masks are evaluated at the catalog position)
    z = table_normals_t_kernel(np.ascontiguousarray(t["uid"]), key, 0, 24, NORMAL_TABLE)  # (24, n)
    sig_p = {bd: cond[f"psfsize_{bd}"] * FWHM_TO_SIGMA for bd in OPT}
    nser_t = np.where(t["morph"] == "PSF", 1.0, t["sersic"]).astype(np.float64)
    sg = gal_sigma(t["shape_r"].astype(np.float64), nser_t)
    emod = np.hypot(t["shape_e1"], t["shape_e2"]).astype(np.float64)
    q = (1 - emod) / (1 + emod)
    sa, sb_ = sg / np.sqrt(q), sg * np.sqrt(q)

    # fluxes with truth-profile inverse variances
    flux, ivar = {}, {}
    nea = {}
    for j, bd in enumerate(OPT):
        s2 = sig_p[bd] ** 2
        nea_psf = 4 * np.pi * s2
        nea[bd] = 4 * np.pi * np.sqrt((s2 + sa**2) * (s2 + sb_**2))
        ivar[bd] = cond[f"psfdepth_{bd}"] * nea_psf / nea[bd]
        flux[bd] = t[f"flux_{bd}"] + z[j] / np.sqrt(ivar[bd])
    for j, bd in enumerate(WISE):
        sw2 = (WISE_FWHM[bd] * FWHM_TO_SIGMA) ** 2
        ivar[bd] = cond[f"psfdepth_{bd}"] * sw2 / (sw2 + sg**2)
        flux[bd] = t[f"flux_{bd}"] + z[3 + j] / np.sqrt(ivar[bd])
    qb = {bd: np.sign(flux[bd]) * flux[bd] ** 2 * ivar[bd] for bd in OPT}
    qtot = sum(qb.values())
    snr = np.sqrt(np.maximum(qtot, 1.0))
    sig_pos = np.sqrt(sig_p["r"] ** 2 + sg**2) / snr * 1.2 + 0.001  # arcsec
    dec_m = dec_t + sig_pos * z[7] / 3600.0
    ra_m = ra_t + sig_pos * z[8] / 3600.0 / np.maximum(np.cos(np.deg2rad(dec_t)), 1e-6)
    ra_m = np.where(any_ref, gm["ra"], mod360(ra_m))
    dec_m = np.where(any_ref, gm["dec"], dec_m)
    ra_ivar = np.where(any_ref, 1.0 / (gm["pos_err_mas"] / 3.6e6) ** 2, 1.0 / (sig_pos / 3600.0) ** 2)

    _in = _DiskTester(ra_m, dec_m, b)
    in_med = _in(t_all["ra"][med], t_all["dec"][med], rad_med)
    in_brt = _in(t_all["ra"][brt], t_all["dec"][brt], rad_brt)
    in_cl = _in(clusters["ra"], clusters["dec"], clusters["radius"].astype(np.float64))
    lg = np.take(t_all, np.flatnonzero(large_gal))
    in_gal = _in(lg["ra"], lg["dec"], 3.0 * lg["shape_r"].astype(np.float64) + 5.0)
    lg_t = (np.cumsum(cand) - 1)[np.flatnonzero(large_gal & cand)]  # the galaxies themselves among t
    in_gal[lg_t] = False  # (uids are unique: the same rows as ~np.isin(t["uid"], lg["uid"]))
    forced = pointsource | in_brt | in_cl | in_gal

    # ---- dchisq of the candidate models and the type
    dch = np.empty((n, 5))
    dchisq_kernel(np.stack([sig_p[bd] for bd in OPT]), sa, sb_, sg, nser_t, np.stack([qb[bd] for bd in OPT]),
                  qtot, z[9:18].T, rel == "dr9", gal_sigma(SIMP_RADIUS, 1.0) ** 2, PROFILE_K, dch)
    # which models the pipeline computes
    if rel == "dr9":
        dch[forced, 1:] = 0.0
        try_gal = ~forced & ((dch[:, 1] > dch[:, 0] + 1) | (np.maximum(dch[:, 0], dch[:, 1]) > 400))
        dch[~try_gal, 2:] = 0.0
        part = dch.copy()
        part[:, 4] = 0.0
        pick = select_index_fast(part, "dr9")
        dch[~((pick == 2) | (pick == 3)), 4] = 0.0
    else:
        try_gal = (dch[:, 1] > dch[:, 0]) | (dch[:, 0] > 400)
        dch[~try_gal, 2:] = 0.0
        dch[~(try_gal & (np.maximum(dch[:, 2], dch[:, 3]) >= dch[:, 0] + 12)), 4] = 0.0
    dch = dch.astype(np.float32).astype(np.float64)  # selection on the values written
    ti = select_index_fast(dch, rel)
    force_keep = any_ref & (ti < 0)
    ti = np.where(force_keep, 0, ti)

    # ---- in the brick image, and kept
    bx, by = brick_pixels(ra_m, dec_m, b)
    ibx, iby = np.round(bx), np.round(by)
    inb = (ibx >= 0) & (ibx <= NPIX - 1) & (iby >= 0) & (iby <= NPIX - 1)
    keep = inb & (ti >= 0)
    k = _sorted_by(np.flatnonzero(keep), ra_m)
    nk = len(k)
    cols = _PackedColumns(rel, nk)  # packed columns are copied into the pack matrices when assigned
    # filler randoms keyed by the source uid (16-bit uniforms, table normals): duplicate rows
    # of a source in neighbouring bricks agree in every column but the brick-specific ones
    uid_k = np.ascontiguousarray(t["uid"][k])
    U = uniforms16_t_kernel(uid_k, seed_key(seed, 4), NFILL)  # (NFILL, nk)
    ZF = table_normals_t_kernel(uid_k, seed_key(seed, 5), 0, 12, NORMAL_TABLE)
    # string columns as bytes (the FITS layout): no per-row unicode encoding
    type_names = np.array([b"PSF", b"REX", b"DEV", b"EXP", b"SER"] if rel == "dr9" else [b"PSF ", b"SIMP", b"DEV ", b"EXP ", b"COMP"])
    ti = ti[k]
    sig_pk = {bd: sig_p[bd][k] for bd in OPT}
    tt = np.take(t, k)
    region = "N" if (b["dec"] >= 32.375 and float(sin_gal_b(unit_vectors(np.array([b["ra"]]), np.array([b["dec"]])))[0]) > 0) else "S"
    cols["release"] = np.full(nk, RELEASE[rel][region])
    cols["brickid"] = np.full(nk, b["brickid"])
    cols["brickname"] = np.full(nk, str(b["brickname"]).encode(), dtype="S8")
    cols["objid"] = np.arange(nk)
    ra_k, dec_k = ra_m[k], dec_m[k]
    primary = bricks.is_primary(ra_k, dec_k, b["brickid"])
    cols["brick_primary"] = primary
    cols["type"] = type_names[ti]
    cols["ra"], cols["dec"] = ra_k, dec_k
    cols["ra_ivar"] = ra_ivar[k]
    cols["dec_ivar"] = ra_ivar[k]
    cols["bx"], cols["by"] = bx[k], by[k]
    cols["dchisq"] = np.take(dch, k, axis=0)
    ebv = tt["ebv"].astype(np.float64)
    cols["ebv"] = ebv
    cols["mjd_min"], cols["mjd_max"] = cond["mjd_min"][k], cond["mjd_max"][k]

    # ---- reference (Gaia) columns
    ref = gaia_ref[k]
    tyc2 = t2[k]
    aref = ref | tyc2
    at = np.full(n, -1)  # candidate -> kept row
    at[k] = np.arange(nk)
    kg, kt = at[gi], at[ti2]
    kg_ok, kt_ok = kg >= 0, kt >= 0
    g = dict(zip(_GAIA_KEYS, np.ones((len(_GAIA_KEYS), nk))))
    for kk in _GAIA_KEYS:  # Gaia, then Tycho astrometry, of the kept rows; 1 elsewhere
        g[kk][kg[kg_ok]] = gmeas[kk][kg_ok]
        if kk in tyc:
            g[kk][kt[kt_ok]] = tyc[kk][kt_ok]
    cols["ref_cat"] = np.where(ref, b"G2", np.where(tyc2, b"T2", b""))
    ref_id = tyc_id[k]
    ref_id[ref] = gaia_source_id(tt["uid"][ref], tt["ra"][ref], tt["dec"][ref])
    cols["ref_id"] = ref_id
    for c, v, e in (("pmra", g["pmra"], g["pm_err"]), ("pmdec", g["pmdec"], g["pm_err"]),
                    ("parallax", g["parallax"], g["parallax_err"])):
        cols[c] = np.where(aref, v, 0.0)
        cols[c + "_ivar"] = np.where(aref, 1.0 / e**2, 0.0)
    cols["ref_epoch"] = np.where(ref, 2015.5, np.where(tyc2, TYCHO_EPOCH, 0.0))
    for jg, (band, key2) in enumerate((("g", "g"), ("bp", "bp"), ("rp", "rp"))):
        cols[f"gaia_phot_{band}_mean_mag"] = np.where(ref, g[key2], 0.0)
        cols[f"gaia_phot_{band}_mean_flux_over_error"] = np.where(ref, g[f"{key2}_foe"], 0.0)
        cols[f"gaia_phot_{band}_n_obs"] = np.where(ref, 150 + (300 * U[_F_GAIA + 7 + jg]).astype(np.int64), 0)
    cols["gaia_phot_variable_flag"] = ref & (U[_F_GAIA + 3] < 0.02)
    cols["gaia_astrometric_excess_noise"] = np.where(ref, g["aen"], 0.0)
    cols["gaia_astrometric_excess_noise_sig"] = np.where(ref, 1.5 * np.abs(ZF[7]), 0.0)
    nal = 100 + (300 * U[_F_GAIA + 4]).astype(np.int64)
    cols["gaia_astrometric_n_obs_al"] = np.where(ref, nal, 0)
    cols["gaia_astrometric_n_good_obs_al"] = np.where(ref, nal - (5 * U[_F_GAIA + 5]).astype(np.int64), 0)
    cols["gaia_astrometric_weight_al"] = np.where(ref, 1.0 / (g["pos_err_mas"] ** 2 + 0.01), 0.0)
    cols["gaia_duplicated_source"] = ref & (U[_F_GAIA + 6] < 0.005)
    cols["gaia_a_g_val"] = np.where(ref, GAIA_EXTINCTION["g"] * ebv, 0.0)
    cols["gaia_e_bp_min_rp_val"] = np.where(ref, (GAIA_EXTINCTION["bp"] - GAIA_EXTINCTION["rp"]) * ebv, 0.0)
    cols["gaia_phot_bp_rp_excess_factor"] = np.where(ref, 1.2 + 0.05 * np.abs(ZF[8]), 0.0)
    cols["gaia_astrometric_sigma5d_max"] = np.where(ref, g["sigma5d"], 0.0)
    cols["gaia_astrometric_params_solved"] = np.where(ref, np.where(tt["gaia_g"] < 21, 31, 3), 0)

    # ---- fluxes
    fk = force_keep[k]
    for bd in BAND_ALL:
        f, iv = flux[bd][k], ivar[bd][k]
        cols[f"flux_{bd}"] = np.where(fk, tt[f"flux_{bd}"], f)
        cols[f"flux_ivar_{bd}"] = np.where(fk, 0.0, iv)
        cols[f"mw_transmission_{bd}"] = _mw_transmission(ebv, bd)
        cols[f"nobs_{bd}"] = cond[f"nobs_{bd}"][k]
    for bd in OPT:
        cols[f"psfsize_{bd}"] = cond[f"psfsize_{bd}"][k]
        cols[f"psfdepth_{bd}"] = cond[f"psfdepth_{bd}"][k]
        sp2 = sig_pk[bd] ** 2
        sgal = gal_sigma(SIMP_RADIUS, 1.0) ** 2
        cols[f"galdepth_{bd}"] = cond[f"psfdepth_{bd}"][k] * np.sqrt(sp2 * sp2 / ((sp2 + sgal) * (sp2 + sgal)))
        cols[f"nea_{bd}"] = nea[bd][k]
    for bd in WISE:
        cols[f"psfdepth_{bd}"] = cond[f"psfdepth_{bd}"][k]

    # ---- shapes of the chosen model
    zs = np.take(z[18:24], k, axis=1)
    re_t = np.maximum(tt["shape_r"].astype(np.float64), 0.05)
    sp_r = sig_pk["r"]
    s_k = snr[k]
    sig_r = (re_t + sp_r) * 1.5 / s_k
    sig_e = np.minimum(1.5 * np.sqrt(1 + (sp_r / re_t) ** 2) / s_k, 0.5)
    n_t = nser_t[k]
    model_n = np.choose(ti, [1.0, 1.0, 4.0, 1.0, n_t])
    r_fit = np.abs(re_t * (model_n / n_t) ** 0.3 + sig_r * zs[0])
    hit_r = r_fit < 0.01
    r_fit = np.maximum(r_fit, 0.01)
    e1 = tt["shape_e1"] + sig_e * zs[1]
    e2 = tt["shape_e2"] + sig_e * zs[2]
    em = np.hypot(e1, e2)
    shrink = np.where(em > 0.99, 0.99 / np.maximum(em, 1e-9), 1.0)
    e1, e2 = e1 * shrink, e2 * shrink
    is_psf, is_round = ti == 0, ti == 1
    sig_n = np.maximum(n_t, 0.5) * 3.0 / s_k
    n_fit = n_t + sig_n * zs[3]
    hit_n = (n_fit <= 0.501) | (n_fit >= 5.999)
    n_fit = np.clip(n_fit, 0.5, 6.0)
    if rel == "dr9":
        cols["shape_r"] = np.where(is_psf, 0.0, r_fit)
        cols["shape_r_ivar"] = np.where(is_psf | fk, 0.0, 1.0 / sig_r**2)
        cols["shape_e1"] = np.where(is_psf | is_round, 0.0, e1)
        cols["shape_e2"] = np.where(is_psf | is_round, 0.0, e2)
        cols["shape_e1_ivar"] = np.where(is_psf | is_round, 0.0, 1.0 / sig_e**2)
        cols["shape_e2_ivar"] = cols["shape_e1_ivar"]
        cols["sersic"] = np.choose(ti, [0.0, 1.0, 4.0, 1.0, n_fit])
        cols["sersic_ivar"] = np.where(ti == 4, 1.0 / sig_n**2, 0.0)
    else:
        is_exp = (ti == 3) | (ti == 4) | (ti == 1)
        is_dev = (ti == 2) | (ti == 4)
        comp = ti == 4
        rexp = np.where(ti == 1, SIMP_RADIUS, r_fit * np.where(comp, 1.2, 1.0))
        for pre, on, r in (("shapeexp", is_exp, rexp), ("shapedev", is_dev, r_fit * np.where(comp, 0.8, 1.0))):
            full = on & (ti != 1)
            cols[f"{pre}_r"] = np.where(on, r, 0.0)
            cols[f"{pre}_r_ivar"] = np.where(full, 1.0 / sig_r**2, 0.0)
            cols[f"{pre}_e1"] = np.where(full, e1, 0.0)
            cols[f"{pre}_e2"] = np.where(full, e2, 0.0)
            cols[f"{pre}_e1_ivar"] = np.where(full, 1.0 / sig_e**2, 0.0)
            cols[f"{pre}_e2_ivar"] = cols[f"{pre}_e1_ivar"]
        fd = np.clip((n_t - 1.0) / 3.0 + 0.1 * zs[4], 0.0, 1.0)
        cols["fracdev"] = np.where(ti == 2, 1.0, np.where(comp, fd, 0.0))
        cols["fracdev_ivar"] = np.where(comp, (s_k / 3.0) ** 2, 0.0)

    # ---- neighbours: fibre, blending fractions
    sg_k = np.where(is_psf, 0.0, gal_sigma(r_fit, np.asarray(cols.get("sersic", np.ones(nk)), dtype=np.float64).clip(0.5)))
    fib_s2 = (FIBER_SEEING_FWHM_ARCSEC * FWHM_TO_SIGMA) ** 2 + sg_k**2
    rfib = FIBER_DIAMETER_ARCSEC / 2.0
    fib_frac = 1.0 - np.exp(-rfib**2 / (2 * fib_s2))
    xy = np.stack([bx[k], by[k]], axis=1) * PIXSCALE_ARCSEC
    pairs = pairs_kernel(np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1]), 8.0)
    pi, pj = pairs[:, 0], pairs[:, 1]
    d2 = ((xy[pi] - xy[pj]) ** 2).sum(axis=1)
    fl = np.empty((7, nk))
    for j, bd in enumerate(BAND_ALL):
        fl[j] = cols[f"flux_{bd}"]
    good = np.stack([(fl[j] > 0) & (cols[f"flux_ivar_{bd}"] > 0) for j, bd in enumerate(OPT)])
    s2b = np.stack([sig_pk[bd] ** 2 + sg_k**2 for bd in OPT])
    sw2 = np.array([(WISE_FWHM[bd] * FWHM_TO_SIGMA) ** 2 for bd in WISE])
    fiber, fibertot, fracflux = np.empty((3, nk)), np.empty((3, nk)), np.empty((7, nk))
    blend_kernel(fl, good, fib_frac, fib_s2, s2b, sw2, np.ascontiguousarray(pi), np.ascontiguousarray(pj), d2,
                 fiber, fibertot, fracflux)
    for j, bd in enumerate(OPT):
        cols[f"fiberflux_{bd}"], cols[f"fibertotflux_{bd}"] = fiber[j], fibertot[j]
    for j, bd in enumerate(BAND_ALL):
        cols[f"fracflux_{bd}"] = fracflux[j]
    for j, bd in enumerate(BAND_ALL):
        mism = 1.0 + 0.3 * np.minimum(cols[f"fracflux_{bd}"], 3.0)
        cols[f"rchisq_{bd}"] = mism * np.exp(0.22 * ZF[j] - 0.025)  # ~ gamma(20, 1/20)
    for j, bd in enumerate(OPT):
        u = U[_F_OPT + 10 * j:]
        cols[f"fracmasked_{bd}"] = np.where(u[0] < 0.05, u[1] * 0.3, 0.0)
        cols[f"fracin_{bd}"] = 1.0 - np.where(u[2] < 0.05, u[3] * 0.1, 0.0)
        cols[f"blob_nea_{bd}"] = nea[bd][k] * (1.0 + np.minimum(cols[f"fracflux_{bd}"], 5.0))

    # ---- aperture photometry: numba kernels write straight into the record buffer (below)
    ap_in = {}
    for bd in OPT:
        ap_in[bd] = (tt[f"flux_{bd}"], cols[f"flux_{bd}"],  # cast to float64 where BrickRecords stacks them
                     sig_pk[bd] ** 2 + sg_k**2, 4 * np.pi * sig_pk[bd] ** 2,
                     cols[f"psfdepth_{bd}"], cols[f"fracmasked_{bd}"])
    for bd in WISE:
        nea_w = 4 * np.pi * (WISE_FWHM[bd] * FWHM_TO_SIGMA) ** 2
        ap_in[bd] = (tt[f"flux_{bd}"], cols[f"flux_{bd}"], (WISE_FWHM[bd] * FWHM_TO_SIGMA) ** 2 + sg_k**2,
                     nea_w, cols[f"psfdepth_{bd}"], 0.0)

    # ---- mask bits
    _in_all = _in  # the candidates' disk tester, at the same (catalog) positions

    def _in(cra, cdec, radius):
        return _in_all(cra, cdec, radius)[k]

    satur = {}
    for j, bd in enumerate(OPT):
        sat_src = bright_star & (t_all[f"flux_{bd}"] > 10 ** (-0.4 * (16.5 - 22.5)))
        m_b = _mag(t_all[f"flux_{bd}"][sat_src])
        satur[bd] = _in(t_all["ra"][sat_src], t_all["dec"][sat_src], 2.0 * 10 ** (0.2 * (16.5 - m_b)) + 1.0)
    any_bits = np.array([ANYMASK.value(nm) for nm in ("BADPIX", "INTERP", "CR", "EDGE", "TRANS")], np.int64)[:, None]
    any_p = np.array([0.01, 0.01, 0.03, 0.005, 0.005])[:, None]
    maskbits = np.where(primary, 0, MASKBITS.value("NPRIMARY"))
    Uo = U[_F_OPT:_F_OPT + 10 * len(OPT)].reshape(len(OPT), 10, nk)  # per band: 10 filler uniforms
    am_all = ((Uo[:, 4:9] < any_p) * any_bits).sum(axis=1)  # distinct bits: the sum is the OR
    for bd in OPT:
        u = U[_F_OPT + 10 * OPT.index(bd):]
        am = am_all[OPT.index(bd)]
        am |= np.where(satur[bd], ANYMASK.value("SATUR"), 0)
        allm = am & np.where(u[9] < 0.1, ANYMASK.value("BADPIX") | ANYMASK.value("SATUR"), 0)
        cols[f"anymask_{bd}"], cols[f"allmask_{bd}"] = am, allm
        maskbits |= np.where(satur[bd], MASKBITS.value(f"SATUR_{bd.upper()}"), 0)
        maskbits |= np.where(allm != 0, MASKBITS.value(f"ALLMASK_{bd.upper()}"), 0)
    for bd in ("w1", "w2"):
        wsrc = bright_star & (t_all[f"flux_{bd}"] > 10 ** (-0.4 * (15.0 - 22.5)))
        mw = _mag(t_all[f"flux_{bd}"][wsrc])
        core = _in(t_all["ra"][wsrc], t_all["dec"][wsrc], 25.0 * 10 ** (0.2 * (15.0 - mw)))
        halo = _in(t_all["ra"][wsrc], t_all["dec"][wsrc], 60.0 * 10 ** (0.2 * (15.0 - mw)))
        wm = np.where(core, WISEMASK.value("BRIGHT"), 0) | np.where(halo & (U[_F_MISC + int(bd[1])] < 0.3),
                                                                    WISEMASK.value("HALO"), 0)
        cols[f"wisemask_{bd}"] = wm
        maskbits |= np.where(wm != 0, MASKBITS.value(f"WISEM{bd[1]}"), 0)
    in_brt_k, in_med_k, in_gal_k = in_brt[k], in_med[k], in_gal[k]
    maskbits |= np.where(in_brt_k, MASKBITS.value("BRIGHT"), 0)
    maskbits |= np.where(in_med_k, MASKBITS.value("MEDIUM"), 0)
    maskbits |= np.where(in_gal_k, MASKBITS.value("GALAXY"), 0)
    maskbits |= np.where(in_cl[k], MASKBITS.value("CLUSTER"), 0)
    cols["maskbits"] = maskbits
    mmk = np.full(nk, np.inf)
    ri = np.flatnonzero(ref)
    mmk[ri] = mask_mag(np.take(tt, ri))
    fb = np.where(forced[k], FITBITS.value("FORCED_POINTSOURCE"), 0)
    fb |= np.where((in_brt_k | in_med_k | in_gal_k) & is_psf, FITBITS.value("FIT_BACKGROUND"), 0)
    fb |= np.where(hit_r & ~is_psf, FITBITS.value("HIT_RADIUS_LIMIT"), 0)
    fb |= np.where(hit_n & (ti == 4), FITBITS.value("HIT_SERSIC_LIMIT"), 0)
    fb |= np.where(ref, FITBITS.value("GAIA"), 0)
    fb |= np.where(tyc2, FITBITS.value("TYCHO2"), 0)
    fb |= np.where((ref & (mmk < 13)) | tyc2, FITBITS.value("BRIGHT"), 0)  # Tycho-2: bright and medium
    fb |= np.where((ref & (mmk < 16)) | tyc2, FITBITS.value("MEDIUM"), 0)
    fb |= np.where(pointsource[k], FITBITS.value("GAIA_POINTSOURCE"), 0)
    walk = ~aref & (sig_pos[k] > 0.5) & (U[_F_MISC] < 0.2)
    fb |= np.where(walk, FITBITS.value("WALKER"), 0)
    fb |= np.where(~aref & (snr[k] < 12) & (U[_F_MISC + 3] < 0.03), FITBITS.value("ITERATIVE"), 0)
    cols["fitbits"] = fb

    for nm, bd, shape in _no_data_columns(rel):
        cols[nm] = _mw_transmission(ebv, bd) if nm.startswith("mw_transmission") else np.zeros((nk,) + shape)

    # ---- unWISE tile, light curves
    dec_tile = np.clip(np.round(dec_k / 1.5) * 1.5, -88.5, 88.5)
    n_ra = np.maximum(np.round(360.0 * np.cos(np.deg2rad(dec_tile)) / 1.5), 1)
    ra_tile = (np.round(ra_k / 360.0 * n_ra) % n_ra) * 360.0 / n_ra
    code = np.round(ra_tile * 10).astype(np.int64) * 10000 + np.round((dec_tile + 90) * 10).astype(np.int64)
    uc, inv = np.unique(code, return_inverse=True)
    tile_names = np.array([f"{c // 10000:04d}{'p' if (c % 10000) >= 900 else 'm'}{abs(c % 10000 - 900):03d}" for c in uc], dtype="S8")
    cols["wise_coadd_id"] = tile_names[inv] if nk else np.zeros(0, "S8")
    dra = mod360(ra_k - ra_tile + 180.0) - 180.0
    cols["wise_x"] = dra * np.cos(np.deg2rad(dec_tile)) * 3600.0 / 2.75 + 1023.5
    cols["wise_y"] = (dec_k - dec_tile) * 3600.0 / 2.75 + 1023.5
    ne = LC_EPOCHS[rel]
    nep = np.minimum(cond["lc_nep"][k], ne).astype(np.int64)
    mjd0 = 55200.0 + 3.0 * (cols["wise_x"] % 7)

    # ---- the FITS record: scalar columns packed from numpy, array columns by the kernels
    lc_in = {bd: (tt[f"flux_{bd}"], cols[f"flux_ivar_{bd}"], cols[f"fracflux_{bd}"], nep, cond[f"nobs_{bd}"][k])
             for bd in ("w1", "w2")}
    recs = BrickRecords(rel, seed, cols, uid_k, ap_in, lc_in, mjd0, tt["kind"] == 2)
    recs.brick = b  # the brick's grid row (for the writer's header)
    return recs


