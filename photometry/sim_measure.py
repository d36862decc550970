"""From the truth sky to one brick's Tractor catalog (DR9 or DR4 data model).

What a source's catalog entry says about it (fluxes, dchisq, type, position, shape, masks)
depends only on the source and the seed, so neighbouring bricks share duplicate rows and
``brick_primary`` (a test on the measured position) is true in exactly one brick.
Every random number is keyed by the source uid, so duplicate rows differ only in the brick's
own columns and in what depends on the neighbours seen in the brick (fracflux, rchisq, ...).
Array columns (apflux, lc_*) are written by numba kernels (``sim_k_*``) straight into the
big-endian FITS record. Fluxes in nanomaggies, sizes in arcsec, ivars in 1/unit^2.
"""

from __future__ import annotations

import functools

import numpy as np

from legacylake.catalogs_schema import ANYMASK, FITBITS, MASKBITS, WISEMASK, bricks, model
from legacylake.catalogs_schema.constants import (
    APERTURE_RADII_OPTICAL_ARCSEC, APERTURE_RADII_WISE_ARCSEC, EXTINCTION_R, FIBER_DIAMETER_ARCSEC,
    FIBER_SEEING_FWHM_ARCSEC, NANOMAGGY_ZEROPOINT, PIXSCALE_ARCSEC, mask_radius_arcsec)

from legacylake.photometry.sim_conditions import OPT, WISE, WISE_FWHM, conditions
from legacylake.photometry.sim_fits import fits_dtype
from legacylake.photometry.sim_k_apflux import aperture_gauss
from legacylake.photometry.sim_k_blend import blend_kernel
from legacylake.photometry.sim_k_common import NORMAL_TABLE, field_offset, record_buffer
from legacylake.photometry.sim_k_dchisq import dchisq_kernel
from legacylake.photometry.sim_k_disks import disks_kernel
from legacylake.photometry.sim_k_healpix import healpix_nest_kernel
from legacylake.photometry.sim_k_pack import PackPlan, string_matrix
from legacylake.photometry.sim_k_pairs import pairs_kernel
from legacylake.photometry.sim_k_record import record_block_kernel
from legacylake.photometry.sim_k_randoms import table_normals_t_kernel, uniforms16_t_kernel
from legacylake.photometry.sim_k_select import select_index_fast
from legacylake.photometry.sim_k_tan import tan_kernel, tan_np
from legacylake.photometry.sim_random import _C2, _GOLD, _mix, normals, seed_key, uniforms, unit_vectors
from legacylake.photometry.sim_sky import BRIGHT_SUB, GAIA_BPRP_RANGE, GAIA_EXTINCTION, GAIA_TO_DECAM, cell_sources, cells_near, make_truth, sin_gal_b, star_clusters

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
SIMP_RADIUS = 0.45  # arcsec, DR4's SIMP model (and galdepth's reference galaxy)
PROFILE_K = 0.02  # profile-mismatch strength in dchisq (EXP vs DEV vs SER)
NPIX = bricks.BRICK_IMAGE_SIZE
RELEASE = {"dr9": {"S": 9010, "N": 9011}, "dr4": {"S": 4000, "N": 4000}}
BAND_ALL = ("g", "r", "z", "w1", "w2", "w3", "w4")
LC_EPOCHS = {"dr9": 15, "dr4": 7}


# ---------------------------------------------------------------- geometry
def tan_project(ra, dec, ra0: float, dec0: float):
    """Gnomonic projection about (ra0, dec0): (x, y) in deg (x East-positive), and cos(distance)
    (:mod:`.sim_k_tan`)."""
    if np.ndim(ra) != 1 or np.ndim(dec) != 1:
        return tan_np(ra, dec, ra0, dec0)
    ra, dec = np.ascontiguousarray(ra, np.float64), np.ascontiguousarray(dec, np.float64)
    x, y, cosc = np.empty(len(ra)), np.empty(len(ra)), np.empty(len(ra))
    tan_kernel(ra, dec, float(ra0), float(dec0), x, y, cosc)
    return x, y, cosc


def brick_pixels(ra, dec, b: dict):
    """0-based (bx, by) in the brick's 3600^2 TAN image (East left), NaN behind the tangent point."""
    x, y, cosc = tan_project(ra, dec, b["ra"], b["dec"])
    scale = PIXSCALE_ARCSEC / 3600.0
    bx = -x / scale + (NPIX / 2 + 0.5) - 1.0
    by = y / scale + (NPIX / 2 + 0.5) - 1.0
    bad = cosc <= 0.05
    return np.where(bad, np.nan, bx), np.where(bad, np.nan, by)


def mod360(x):
    """``np.mod(x, 360.0)`` (deg), skipped when every value is already in [0, 360) (where the
    mod is the identity; numpy's float mod costs ~10 ns a value)."""
    x = np.asarray(x)
    if x.ndim and x.size and x.min() >= 0.0 and x.max() < 360.0:
        return x
    return np.mod(x, 360.0)


def _offsets_arcsec(ra, dec, ra0, dec0):
    """(dx, dy) arcsec of points from centres (broadcasting), flat-sky."""
    dra = mod360(ra - ra0 + 180.0) - 180.0
    return dra * np.cos(np.deg2rad(dec0)) * 3600.0, (dec - dec0) * 3600.0


# ---------------------------------------------------------------- profile overlaps
def _ov(s1, s2):
    """Normalised overlap of two 1-D Gaussians of widths s1, s2."""
    return np.sqrt(2.0 * s1 * s2 / (s1 * s1 + s2 * s2))


def gal_sigma(r_e, n):
    """Gaussian-equivalent width (arcsec) of a Sersic profile of half-light radius r_e."""
    return r_e / 1.1774 / (1.0 + 0.15 * (np.maximum(n, 0.5) - 1.0))


# ---------------------------------------------------------------- Gaia measurement
def gaia_measure(t: np.ndarray, seed: int, salt: int, epoch: float, err_scale: float = 1.0) -> dict:
    """Gaia-like measurements of truth sources: mags, errors, astrometry at ``epoch``."""
    key = seed_key(seed, salt)
    z = normals(t["uid"], key, 0, 10)
    G = t["gaia_g"].astype(np.float64)
    sig_g = 0.0003 + 0.02 * 10 ** (0.4 * (G - 21.0))
    sig_pm = err_scale * (0.03 + 0.05 * 10 ** (0.3 * (G - 15.0)))
    sig_plx = 0.7 * sig_pm
    sig_pos = 0.5 * sig_pm  # mas
    dt = epoch - t["epoch"]
    pmra = t["pmra"] + sig_pm * z[:, 0]
    pmdec = t["pmdec"] + sig_pm * z[:, 1]
    cosd = np.cos(np.deg2rad(t["dec"]))
    dec = t["dec"] + (t["pmdec"] * dt + sig_pos * z[:, 3]) / 3.6e6
    ra = t["ra"] + (t["pmra"] * dt + sig_pos * z[:, 4]) / 3.6e6 / np.maximum(cosd, 1e-6)
    out = {
        "ra": np.mod(ra, 360.0), "dec": dec, "pos_err_mas": sig_pos,
        "pmra": pmra, "pmdec": pmdec, "pm_err": sig_pm,
        "parallax": t["parallax"] + sig_plx * z[:, 2], "parallax_err": sig_plx,
        "g": G + sig_g * z[:, 5], "bp": t["gaia_bp"] + 2.5 * sig_g * z[:, 6],
        "rp": t["gaia_rp"] + 2.0 * sig_g * z[:, 7],
        "g_foe": 1.0857 / sig_g, "bp_foe": 1.0857 / (2.5 * sig_g), "rp_foe": 1.0857 / (2.0 * sig_g),
        "aen": np.where(t["kind"] == 0, 0.05 + 0.1 * np.abs(z[:, 8]), 0.3 + 0.2 * np.abs(z[:, 8])),
        "sigma5d": 1.2 * sig_pm,
    }
    return out


_GAIA_KEYS = ("ra", "dec", "pos_err_mas", "pmra", "pmdec", "pm_err", "parallax", "parallax_err", "g", "bp", "rp",
              "g_foe", "bp_foe", "rp_foe", "aen", "sigma5d")

# ---------------------------------------------------------------- Tycho-2
TYCHO_G_MAX = 12.0  # bright stars with observed G below this are in Tycho-2
TYCHO_ONLY_G = 7.0  # brighter than this Gaia DR2 is taken as incomplete: the star is a T2 row
TYCHO_ONLY_FRAC = 0.1  # fraction of the other Tycho-2 stars with no Gaia match (T2 rows)
TYCHO_EPOCH = 1991.25  # Tycho-2 mean epoch given to every T2 row (reference section 4)


def tycho_only(t: np.ndarray, seed: int) -> np.ndarray:
    """Tycho-2 stars without a Gaia match: catalog rows with ref_cat 'T2', absent from Gaia
    (the tractor's G2 rows and `simulate external --kind gaia`). Bright truth stars with observed
    G < TYCHO_G_MAX, all of those brighter than TYCHO_ONLY_G and a uid-keyed TYCHO_ONLY_FRAC
    of the rest."""
    out = (((t["uid"] >> 16) & 0xFF) == BRIGHT_SUB) & (t["kind"] == 0) & (t["gaia_g"] < TYCHO_G_MAX)
    i = np.flatnonzero(out)
    if len(i):
        u = uniforms(t["uid"][i], seed_key(seed, 13), 0)
        out[i] = (t["gaia_g"][i] < TYCHO_ONLY_G) | (u < TYCHO_ONLY_FRAC)
    return out


def tycho_measure(t: np.ndarray, seed: int) -> dict:
    """Tycho-2-like astrometry of truth stars (keys as :func:`gaia_measure`'s astrometry):
    position at TYCHO_EPOCH (deg; ~25-60 mas errors), proper motions (mas/yr, ~2.5 mas/yr
    errors), no parallax (0, error inf), and the Tycho id tyc1 * 10^6 + tyc2 * 10 + tyc3."""
    if len(t) == 0:  # the usual case in a brick: no T2 rows (skip ~20 numpy calls)
        e = np.zeros(0)
        return {"ra": e, "dec": e.copy(), "pos_err_mas": e.copy(), "pmra": e.copy(), "pmdec": e.copy(),
                "pm_err": e.copy(), "parallax": e.copy(), "parallax_err": e.copy(), "tyc_id": np.zeros(0, np.int64)}
    key = seed_key(seed, 14)
    z = normals(t["uid"], key, 0, 4)
    u = uniforms(t["uid"], key, 8, 2)
    G = t["gaia_g"].astype(np.float64)
    sig_pos = 25.0 + 35.0 * np.clip((G - 6.0) / 6.0, 0.0, 1.0)  # mas
    sig_pm = 1.0 + 1.5 * np.clip((G - 6.0) / 6.0, 0.0, 1.0)
    dt = TYCHO_EPOCH - t["epoch"]
    cosd = np.maximum(np.cos(np.deg2rad(t["dec"])), 1e-6)
    tyc1 = 1 + (u[:, 0] * 9537).astype(np.int64)
    tyc2 = 1 + (u[:, 1] * 12000).astype(np.int64)
    return {"ra": np.mod(t["ra"] + (t["pmra"] * dt + sig_pos * z[:, 0]) / 3.6e6 / cosd, 360.0),
            "dec": t["dec"] + (t["pmdec"] * dt + sig_pos * z[:, 1]) / 3.6e6, "pos_err_mas": sig_pos,
            "pmra": t["pmra"] + sig_pm * z[:, 2], "pmdec": t["pmdec"] + sig_pm * z[:, 3], "pm_err": sig_pm,
            "parallax": np.zeros(len(t)), "parallax_err": np.full(len(t), np.inf),
            "tyc_id": tyc1 * 1_000_000 + tyc2 * 10 + 1}


def mask_mag(t: np.ndarray) -> np.ndarray:
    """mask_mag = min(G, z_guess + 1) of Gaia stars (z_guess from the G, BP-RP polynomial)."""
    x = np.clip(t["gaia_bp"] - t["gaia_rp"], *GAIA_BPRP_RANGE)
    zg = t["gaia_g"] + np.polynomial.polynomial.polyval(x, GAIA_TO_DECAM["z"])
    return np.minimum(t["gaia_g"], zg + 1.0)


def _mw_transmission(ebv: np.ndarray, band: str) -> np.ndarray:
    """catalogs_schema's mw_transmission, 10^(-0.4 R ebv), as a vectorised exp (same values to
    float32 precision, ~20x faster than the power)."""
    return np.exp((-0.4 * np.log(10.0) * EXTINCTION_R[band.lower()]) * ebv)


def _mag(flux):
    return NANOMAGGY_ZEROPOINT - 2.5 * np.log10(np.maximum(flux, 1e-30))


# ---------------------------------------------------------------- uid-keyed filler randoms
# columns of the filler uniforms: 10 per optical band (fracmasked 2, fracin 2, anymask 5,
# allmask 1), Gaia 10, misc 4 (walker, wisemask halo w1, w2, iterative)
_F_OPT, _F_GAIA, _F_MISC = 0, 30, 40
NFILL = 44


def uniforms16(uid: np.ndarray, key: np.uint64, k: int) -> np.ndarray:
    """(n, k) uniforms in (0, 1) with 16-bit resolution, four per splitmix64 hash of the uid."""
    u = np.asarray(uid).astype(np.uint64, copy=False)
    nw = (k + 3) // 4
    with np.errstate(over="ignore"):
        base = _mix(u * _GOLD ^ np.uint64(key))
        s = (np.arange(nw, dtype=np.uint64) + np.uint64(1)) * _C2
        h = _mix(base[:, None] + s[None, :])
    v = h.view(np.uint16).reshape(len(u), 4 * nw)[:, :k]
    return (v + 0.5) * (1.0 / 65536.0)


# ---------------------------------------------------------------- record layout
@functools.cache
def fits_record_dtype(release: str = "dr9") -> np.dtype:
    """On-disk FITS layout (upper-case, big-endian, logicals as uint8) of every
    ``<release>-tractor`` column (:func:`.sim_fits.fits_dtype`): the required ones and the
    optional ones (DR4's u, i, Y bands, written with no data: see :func:`_no_data_columns`)."""
    dm = model(f"{release.lower()}-tractor")
    return fits_dtype(dm, [c.name for c in dm.columns])


@functools.cache
def _scalar_plan(release: str) -> tuple[tuple[str, bool], ...]:
    """(name, is_bool) of the columns filled by numpy (all but the kernels' apflux and lc_*)."""
    dm = model(f"{release.lower()}-tractor")
    kern = tuple(f"_{bd}" for bd in BAND_ALL)
    return tuple((c.name, c.numpy_dtype.kind == "b") for c in dm.columns
                 if not ((c.name.startswith("apflux") and c.name.endswith(kern)) or c.name.startswith("lc_")))


@functools.cache
def _no_data_columns(release: str) -> tuple[tuple[str, str, tuple], ...]:
    """(name, band, shape) of the optional model columns of bands the survey did not observe
    (DR4: u, i, Y): written with the no-data convention, flux 0, ivar 0, nobs 0, masks 0, and
    mw_transmission from the band's extinction coefficient."""
    dm = model(f"{release.lower()}-tractor")
    return tuple((c.name, c.name.rsplit("_", 1)[1], c.shape or ()) for c in dm.columns if not c.required)


@functools.cache
def _pack_plan(release: str) -> tuple[PackPlan, tuple[str, ...]]:
    """The :class:`.sim_k_pack.PackPlan` of the scalar columns and the string columns' names."""
    fdt = fits_record_dtype(release)
    cols, strings = [], []
    for nm, is_bool in _scalar_plan(release):
        up = nm.upper()
        kind = fdt[up].base.kind
        if kind == "S":
            strings.append(up)
        else:
            cols.append((up, "b" if is_bool else ("f" if kind == "f" else "i")))
    return PackPlan(fdt, cols), tuple(strings)


def from_fits_records(rec: np.ndarray, release: str = "dr9") -> np.ndarray:
    """The FITS-layout records as the native :func:`catalog_dtype` array (lowercase, str, bool)."""
    dm = model(f"{release.lower()}-tractor")
    out = np.empty(len(rec), dtype=catalog_dtype(release))
    for c in dm.columns:
        if not c.required:
            continue
        v = rec[c.name.upper()]
        if c.is_string:
            v = v.astype(out.dtype[c.name].base)
        elif c.numpy_dtype.kind == "b":
            v = v == ord("T")
        out[c.name] = v
    return out


class _PackedColumns(dict):
    """The kept rows' columns (lower-case name -> (n,) or (n, k) array). Each column of the
    release's :class:`.sim_k_pack.PackPlan` is also copied into the plan's F / I matrices when
    it is assigned, while it is still in the cache. A column must not be changed in place
    after it is assigned (assign it again instead)."""

    def __init__(self, release: str, n: int):
        super().__init__()
        plan, _ = _pack_plan(release)
        self._plan = plan
        self._F, self._I = plan.matrices(n)
        self._slots = _slot_map(release)
        self._done: set[str] = set()

    def __setitem__(self, name: str, v) -> None:
        super().__setitem__(name, v)
        hit = self._slots.get(name)
        if hit is None:
            return
        is_f, s = hit
        M = self._F if is_f else self._I
        v = np.asarray(v)
        if v.ndim == 2:
            M[s:s + v.shape[1]] = v.T
        else:
            M[s] = v
        self._done.add(name)

    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """(F, I), every slot filled (checked)."""
        missing = set(self._slots) - self._done
        if missing:
            raise KeyError(f"packed columns never assigned: {sorted(missing)}")
        return self._F, self._I


@functools.cache
def _slot_map(release: str) -> dict[str, tuple[bool, int]]:
    """lower-case column name -> (float matrix?, first slot) of the release's pack plan."""
    plan, _ = _pack_plan(release)
    out = {nm.lower(): (True, s) for nm, s in plan.frow.items()}
    out.update({nm.lower(): (False, s) for nm, s in plan.irow.items()})
    return out


# ---------------------------------------------------------------- the brick
def _candidates(b: dict, seed: int, density: float | None):
    """Truth sources that can land in the brick image, and the mask-making objects around it."""
    margin_px = 60.0

    def keep_sub(ra_lo, ra_hi, dec_lo, dec_hi):
        rc, dc = (ra_lo + ra_hi) / 2, (dec_lo + dec_hi) / 2
        bx, by = brick_pixels(rc, dc, b)
        half = np.maximum((ra_hi - ra_lo) * np.cos(np.deg2rad(dc)), dec_hi - dec_lo) * 3600 / PIXSCALE_ARCSEC * 0.75
        far = np.isnan(bx) | (np.abs(dc) > 88.0)
        inside = (bx > -half - margin_px) & (bx < NPIX + half + margin_px) & \
                 (by > -half - margin_px) & (by < NPIX + half + margin_px)
        return far | inside

    cells = cells_near(b["ra1"], b["ra2"], max(b["dec1"], -90), min(b["dec2"], 90), margin=0.08)
    cs = cell_sources(cells, seed, density, subcell_keep=keep_sub)
    bx, by = brick_pixels(cs.ra, cs.dec, b)
    near = (bx > -margin_px) & (bx < NPIX + margin_px) & (by > -margin_px) & (by < NPIX + margin_px)
    is_bright = ((cs.uid >> 16) & 0xFF) == BRIGHT_SUB
    sel = near | is_bright
    t, sinb = make_truth(cs.take(sel), seed, with_sinb=True, dense=near[sel])  # the bright ones: scattered
    cand = near[sel]  # the same positions: no second projection
    return t, cand, star_clusters(cells, seed), sinb


def _sorted_by(idx: np.ndarray, key: np.ndarray) -> np.ndarray:
    """``idx`` ordered by ``key[idx]``, ties in ``idx`` order (as a stable sort; numpy's
    quicksort when the keys are distinct, ~6x faster than its stable sort)."""
    v = key[idx]
    o = np.argsort(v)
    vs = v[o]
    if len(vs) > 1 and not (vs[1:] > vs[:-1]).all():  # ties (or NaN): the stable sort decides
        o = np.argsort(v, kind="stable")
    return idx[o]


class _DiskTester:
    """Which points lie inside any of a set of disks: the points' flat-sky offsets (arcsec)
    from the brick centre, sorted by y for :func:`.sim_k_disks.disks_kernel`."""

    def __init__(self, ra, dec, b: dict):
        self.b = b
        self.n = len(ra)
        dx, dy = _offsets_arcsec(ra, dec, b["ra"], b["dec"])
        self.dx, self.dy = np.ascontiguousarray(dx, np.float64), np.ascontiguousarray(dy, np.float64)
        self.ysort = np.argsort(self.dy)  # any order of equal y gives the same answers
        self.ys = self.dy[self.ysort]

    def __call__(self, cra, cdec, radius_arcsec) -> np.ndarray:
        out = np.zeros(self.n, bool)
        if self.n == 0 or len(cra) == 0:
            return out
        dx, dy = _offsets_arcsec(np.asarray(cra), np.asarray(cdec), self.b["ra"], self.b["dec"])
        radius = np.broadcast_to(np.asarray(radius_arcsec, dtype=np.float64), dx.shape)
        disks_kernel(self.dx, self.dy, self.ysort, self.ys, np.ascontiguousarray(dx, np.float64),
                     np.ascontiguousarray(dy, np.float64), np.ascontiguousarray(radius), out)
        return out


def simulate_brick(brickname: str, release: str = "dr9", seed: int = 0, density: float | None = None,
                   return_uid: bool = False, out_dtype: np.dtype | None = None):
    """The catalog of one brick as a structured array (lowercase names, the required columns
    of ``<release>-tractor``, sorted by RA with objid 0..N-1). With ``return_uid`` also the
    truth uid of each row (see :func:`legacylake.photometry.sim_sky.truth_sky`). ``out_dtype``
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
    dm = model(f"{rel}-tractor")
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

    kind = t["kind"]
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


@functools.lru_cache(maxsize=8)
def _kernel_layout(release: str, seed: int) -> dict:
    """Per (release, seed) constants of :func:`.sim_k_record.record_block_kernel`: apflux and
    light-curve byte offsets (-1: column absent), random keys, aperture radii (read-only)."""
    fdt = fits_record_dtype(release)
    bands = OPT + WISE
    nrmax = max(len(APERTURE_RADII_OPTICAL_ARCSEC), len(APERTURE_RADII_WISE_ARCSEC))
    nb = len(bands)
    ap = {"offs": np.full((nb, 5), -1, np.int64), "keys": np.zeros(nb, np.uint64),
          "radii": np.zeros((nb, nrmax)), "nr": np.zeros(nb, np.int64), "opt": np.zeros(nb, np.bool_)}
    pre = "APFLUX", "APFLUX_IVAR", "APFLUX_RESID", "APFLUX_BLOBRESID", "APFLUX_MASKED"
    for j, bd in enumerate(bands):
        offs = np.array([field_offset(fdt, f"{p}_{bd.upper()}") for p in pre], np.int64)
        if offs[0] < 0:
            continue
        opt = bd in OPT
        radii = APERTURE_RADII_OPTICAL_ARCSEC if opt else APERTURE_RADII_WISE_ARCSEC
        ap["offs"][j], ap["keys"][j], ap["nr"][j], ap["opt"][j] = offs, seed_key(seed, 20 + j), len(radii), opt
        ap["radii"][j, :len(radii)] = radii
    pre = "FLUX", "FLUX_IVAR", "NOBS", "FRACFLUX", "RCHISQ", "MJD", "EPOCH_INDEX"
    wb = ("w1", "w2")
    lc = {"offs": np.array([[field_offset(fdt, f"LC_{p}_{bd.upper()}") for p in pre] for bd in wb], np.int64),
          "keys": np.array([seed_key(seed, 30 + j) for j in range(len(wb))], np.uint64)}
    for v in list(ap.values()) + list(lc.values()):
        v.flags.writeable = False
    return {"bands": bands, "ap": ap, "lc_bands": wb, "lc": lc,
            "mjd_f8": fdt["LC_MJD_W1"].base.itemsize == 8, "ne": fdt["LC_FLUX_W1"].shape[0]}


class BrickRecords:
    """One brick's catalog ready to be written as FITS records (:func:`fits_record_dtype`):
    the scalar columns packed by :mod:`.sim_k_pack`, apflux and lc_* made by their kernels,
    any block of rows at a time (:mod:`.sim_k_record`). ``uid``: truth uid of each row."""

    BLOCK_ROWS = 384  # ~810 kB of DR9 records: stays in the 1 MiB L2 while filled and written

    def __init__(self, release: str, seed: int, cols: dict, uid: np.ndarray, ap_in: dict, lc_in: dict,
                 mjd0: np.ndarray, is_qso: np.ndarray):
        self.release = release
        self.dtype = fdt = fits_record_dtype(release)
        self.n = n = len(uid)
        self.uid = uid
        #: the RELEASE of the rows (None for an empty brick)
        self.release_id = int(cols["release"][0]) if n else None
        plan, strings = _pack_plan(release)
        self._plan = plan
        self._S, self._soffs, self._sstart = string_matrix(fdt, strings, cols, n)
        if isinstance(cols, _PackedColumns):
            self._F, self._I = cols.matrices()
        else:
            self._F, self._I = plan.matrices(n)
            plan.fill(self._F, self._I, cols)
        lay = _kernel_layout(release, seed)
        self._ap = ap = dict(lay["ap"], f=np.empty((len(lay["bands"]), 5, n)),
                             gauss=np.empty((len(lay["bands"]), lay["ap"]["radii"].shape[1], n)))
        for j, bd in enumerate(lay["bands"]):
            if ap["offs"][j, 0] < 0:
                continue
            ftrue, fmodel, s2, nea_psf, depth, fmask = ap_in[bd]
            nr = ap["nr"][j]
            aperture_gauss(s2, ap["radii"][j, :nr], out=ap["gauss"][j, :nr])
            for q, v in enumerate((ftrue, fmodel, nea_psf, depth, fmask)):
                ap["f"][j, q] = v
        wb = lay["lc_bands"]
        self._lc = lc = dict(lay["lc"], f=np.empty((len(wb), 3, n)), i=np.empty((len(wb), 2, n), np.int64))
        for j, bd in enumerate(wb):
            ftrue, ivar, fracflux, nep, nobs = lc_in[bd]
            lc["f"][j, 0], lc["f"][j, 1], lc["f"][j, 2] = ftrue, ivar, fracflux
            lc["i"][j, 0], lc["i"][j, 1] = nep, nobs
        self._mjd_f8, self._ne = lay["mjd_f8"], lay["ne"]
        self._mjd0 = np.ascontiguousarray(mjd0, np.float64)
        self._qso = np.ascontiguousarray(is_qso)

    def fill(self, buf: np.ndarray, i0: int, i1: int) -> None:
        """Rows i0..i1 into buf[0:i1-i0] (C-contiguous uint8 (m, itemsize))."""
        if i1 <= i0:
            return
        p, ap, lc = self._plan, self._ap, self._lc
        record_block_kernel(buf, i0, i1, self.uid, NORMAL_TABLE, self._F, p.foffs, p.fcodes, self._I, p.ioffs,
                            p.icodes, self._S, self._soffs, self._sstart, ap["offs"], ap["keys"], ap["f"],
                            ap["gauss"], ap["radii"], ap["nr"], ap["opt"], lc["offs"], lc["keys"], lc["f"], lc["i"],
                            self._mjd0, self._qso, self._mjd_f8, self._ne)

    def records(self) -> np.ndarray:
        """All rows as one FITS-layout structured array."""
        rec = np.empty(self.n, self.dtype)
        buf = record_buffer(rec)
        for i0 in range(0, self.n, self.BLOCK_ROWS):
            self.fill(buf[i0:], i0, min(i0 + self.BLOCK_ROWS, self.n))
        return rec

    def blocks(self, rows: int | None = None):
        """Successive blocks of rows as bytes-like views of one reused buffer (for the writer)."""
        rows = rows or self.BLOCK_ROWS
        buf = np.empty((rows, self.dtype.itemsize), np.uint8)
        for i0 in range(0, self.n, rows):
            i1 = min(i0 + rows, self.n)
            self.fill(buf, i0, i1)
            yield memoryview(buf[: i1 - i0]).cast("B")


def catalog_dtype(release: str = "dr9") -> np.dtype:
    """Native structured dtype of the required ``<release>-tractor`` columns (lowercase)."""
    dm = model(f"{release.lower()}-tractor")
    fields = []
    for c in dm.columns:
        if not c.required:
            continue
        base = np.dtype(f"U{c.width}") if c.is_string else c.numpy_dtype
        fields.append((c.name, base, c.shape) if c.shape else (c.name, base))
    return np.dtype(fields)


def gaia_source_id(uid, ra, dec) -> np.ndarray:
    """A Gaia-like source_id: HEALPix order-12 nested index * 2^35 + low bits of the uid."""
    n = len(uid)
    ipix = np.empty(n, np.int64)
    if n:
        healpix_nest_kernel(np.ascontiguousarray(ra, np.float64), np.ascontiguousarray(dec, np.float64), 12, ipix)
    return ipix * (1 << 35) + (np.asarray(uid, np.int64) & ((1 << 35) - 1))
