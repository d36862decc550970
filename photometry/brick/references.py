"""Reference sources of a target (reference 4.1, 2.1, 8): Gaia stars, Tycho-2 stars and SGA
large galaxies, merged into one table, and the BRIGHT / MEDIUM / GALAXY masks they define.

Where the catalogues are found (the survey's environment variables, else the survey folder):
Gaia ``$GAIA_CAT_DIR`` or ``<dir>/gaia/`` (``chunk-%05d.fits``, HEALPix nside 32 ring; only
the chunks near the target are read; a folder of other names is read whole), or a
simulation's ``gaia-<brick>.fits``; Tycho-2 ``$TYCHO2_KD_DIR/tycho2.kd.fits`` or
``<dir>/tycho2.kd.fits`` (``tycho2.fits[.gz]`` if no k-d file); SGA ``$LARGEGALAXIES_CAT`` or
``<dir>/{sga,SGA,LSLGA}*.fits`` (catalogue version from the SGAVER/LSLGAVER header key, e.g. L3).

Rules (legacypipe ``reference.py``): Gaia ``mask_mag = min(G, z_guess + 1)``, point source
(forced PSF) if (G <= 18 and astrometric_excess_noise < 10^0.5) or G <= 13, bright if
mask_mag < 13, medium if < 16. Tycho-2: galaxies (isgalaxy) dropped, moved to the mean of
its RA/Dec epochs, mask_mag = VT (else HP, BT) or z_guess if z_guess + 1 < VT, kept if
mask_mag < 13, bright, medium and point source; a Tycho-2 star within 1 arcsec of a Gaia star
(at the Tycho epoch) is dropped and the Gaia star marked bright and Tycho-2. SGA: mask
ellipse of semi-major diam/2 (arcmin), axis ratio BA, position angle PA (deg E of N); Gaia
stars within 2 arcsec and Tycho-2 stars within 5 arcsec of an SGA centre are not fitted
(``DONOTFIT``, written as DUP rows); pre-burned entries flagged ``freeze`` keep their
parameters (``FREEZE``). Kept: stars within 4 R(mask_mag) (Gaia) or 2 R (Tycho-2) and galaxies
within their diameter of the processed box.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from legacylake.catalogs_schema.constants import GAIA_BPRP_RANGE, GAIA_TO_DECAM, mask_radius_arcsec

from legacylake.errors import UserError

GAIA_NSIDE = 32
GAIA_REF_EPOCH = 2015.5
TYCHO_MATCH_ARCSEC = 1.0
SGA_GAIA_ARCSEC = 2.0
SGA_TYCHO_ARCSEC = 5.0

REF_DTYPE = [("REF_CAT", "U2"), ("REF_ID", "i8"), ("RA", "f8"), ("DEC", "f8"), ("REF_EPOCH", "f8"),
             ("PMRA", "f8"), ("PMDEC", "f8"), ("PARALLAX", "f8"), ("RA_ERROR", "f8"), ("DEC_ERROR", "f8"),
             ("PMRA_ERROR", "f8"), ("PMDEC_ERROR", "f8"), ("PARALLAX_ERROR", "f8"),
             ("PHOT_G_MEAN_MAG", "f8"), ("PHOT_BP_MEAN_MAG", "f8"), ("PHOT_RP_MEAN_MAG", "f8"),
             ("PHOT_G_MEAN_FLUX_OVER_ERROR", "f8"), ("ASTROMETRIC_EXCESS_NOISE", "f8"),
             ("MAG", "f8"), ("MASK_MAG", "f8"), ("RADIUS", "f8"), ("KEEP_RADIUS", "f8"),
             ("DIAM", "f8"), ("BA", "f8"), ("PA", "f8"),
             ("ISGAIA", "?"), ("ISTYCHO", "?"), ("ISLARGEGALAXY", "?"), ("ISBRIGHT", "?"), ("ISMEDIUM", "?"),
             ("POINTSOURCE", "?"), ("DONOTFIT", "?"), ("FREEZE", "?"), ("SOURCE_ID", "i8")]


def _empty(n: int = 0) -> np.ndarray:
    return np.zeros(n, dtype=REF_DTYPE)


def gaia_mag(g, bprp, band: str) -> np.ndarray:
    """Gaia G and BP-RP -> DECam magnitude in ``band`` (reference 8; BP-RP NaN -> 1.4, clipped)."""
    x = np.clip(np.nan_to_num(np.asarray(bprp, np.float64), nan=1.4), *GAIA_BPRP_RANGE)
    return np.asarray(g, np.float64) + sum(c * x ** k for k, c in enumerate(GAIA_TO_DECAM[band]))


def initial_flux(refs: np.ndarray, band: str) -> np.ndarray:
    """Initial flux (nmgy) of each reference source in ``band``: Gaia colour polynomials, else MAG."""
    mag = np.where(refs["ISGAIA"], gaia_mag(refs["PHOT_G_MEAN_MAG"],
                                            refs["PHOT_BP_MEAN_MAG"] - refs["PHOT_RP_MEAN_MAG"],
                                            band if band in GAIA_TO_DECAM else "r"), refs["MAG"])
    return 10 ** (-0.4 * (np.nan_to_num(mag, nan=30.0) - 22.5))


# ---------------------------------------------------------------- readers
def _first_table(path: str, need: str) -> tuple[np.ndarray, dict]:
    """(rows, primary header) of the first table HDU with column ``need`` (k-d tree files too)."""
    import fitsio
    try:
        with fitsio.FITS(path) as f:
            h0 = {k: f[0].read_header()[k] for k in f[0].read_header().keys() if k not in ("COMMENT", "HISTORY", "")}
            for hdu in f[1:]:
                if hdu.get_exttype() == "IMAGE_HDU":
                    continue
                if need in [c.lower() for c in hdu.get_colnames()]:
                    return (hdu.read(lower=True) if hdu.get_nrows() else None), h0
    except OSError as exc:
        raise UserError(f"{path}: cannot read reference catalogue ({exc})") from exc
    raise UserError(f"{path}: no table with a {need} column")


def _sep_deg(ra, dec, ra0: float, dec0: float) -> np.ndarray:
    """Angular separation (deg) of (ra, dec) from (ra0, dec0)."""
    r, d, r0, d0 = np.deg2rad(ra), np.deg2rad(dec), np.deg2rad(ra0), np.deg2rad(dec0)
    c = np.sin(d) * np.sin(d0) + np.cos(d) * np.cos(d0) * np.cos(r - r0)
    return np.rad2deg(np.arccos(np.clip(c, -1.0, 1.0)))


def _near(ra, dec, ra0: float, dec0: float, radius_deg: float) -> np.ndarray:
    return _sep_deg(ra, dec, ra0, dec0) <= radius_deg


def gaia_paths(survey_dir: str, brick_name: str, ra0: float, dec0: float, radius_deg: float) -> list[str]:
    """Gaia files to read for a circle (module doc)."""
    d = os.environ.get("GAIA_CAT_DIR") or os.path.join(survey_dir, "gaia")
    if os.path.isdir(d):
        chunks = glob.glob(os.path.join(d, "chunk-*.fits"))
        if chunks:
            ring = gaia_chunks(ra0, dec0, radius_deg)
            return sorted(p for p in (os.path.join(d, "chunk-%05d.fits" % int(i)) for i in ring) if os.path.exists(p))
        return sorted(glob.glob(os.path.join(d, "*.fits")))
    sim = os.path.join(survey_dir, f"gaia-{brick_name}.fits")
    return [sim] if os.path.exists(sim) else []


def gaia_chunks(ra0: float, dec0: float, radius_deg: float) -> np.ndarray:
    """Ring-scheme HEALPix pixels (nside 32) overlapping a circle: the nested cone search's
    pixels, renumbered through their centres."""
    import astropy.units as u
    import cdshealpix.nested as hn
    import cdshealpix.ring as hr
    from astropy.coordinates import Latitude, Longitude
    depth = int(np.log2(GAIA_NSIDE))
    ipix, _, _ = hn.cone_search(Longitude(ra0 * u.deg), Latitude(dec0 * u.deg), min(radius_deg, 179.0) * u.deg, depth)
    lon, lat = hn.healpix_to_lonlat(np.asarray(ipix, np.uint64), depth)
    return np.unique(np.asarray(hr.lonlat_to_healpix(lon, lat, GAIA_NSIDE), np.int64))


def read_gaia(paths: list[str], ra0: float, dec0: float, radius_deg: float) -> np.ndarray:
    """Gaia stars of ``paths`` within ``radius_deg`` of (ra0, dec0) as reference rows."""
    parts = []
    for p in paths:
        t, _ = _first_table(p, "ra")
        if t is None or not len(t):
            continue
        for need in ("source_id", "dec", "phot_g_mean_mag"):
            if need not in t.dtype.names:
                raise UserError(f"{p}: Gaia table has no {need} column")
        ok = _near(t["ra"], t["dec"], ra0, dec0, radius_deg)
        if ok.any():
            parts.append(t[ok])
    if not parts:
        return _empty()
    names = set(parts[0].dtype.names)
    for q in parts[1:]:
        names &= set(q.dtype.names)
    t = np.concatenate([q[sorted(names)] for q in parts]) if len(parts) > 1 else parts[0]
    _, first = np.unique(t["source_id"], return_index=True)
    t = t[np.sort(first)]
    out = _empty(len(t))

    def col(name, default=0.0):
        return np.asarray(t[name], np.float64) if name in t.dtype.names else np.full(len(t), default)
    out["REF_CAT"], out["REF_ID"], out["SOURCE_ID"] = "G2", t["source_id"], t["source_id"]
    out["RA"], out["DEC"] = col("ra"), col("dec")
    out["REF_EPOCH"] = np.where(col("ref_epoch", GAIA_REF_EPOCH) > 0, col("ref_epoch", GAIA_REF_EPOCH), GAIA_REF_EPOCH)
    for k in ("pmra", "pmdec", "parallax", "ra_error", "dec_error", "pmra_error", "pmdec_error", "parallax_error"):
        out[k.upper()] = np.nan_to_num(col(k), nan=0.0)
    for k in ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "phot_g_mean_flux_over_error",
              "astrometric_excess_noise"):
        out[k.upper()] = col(k, np.nan)
    g = out["PHOT_G_MEAN_MAG"]
    zguess = gaia_mag(g, out["PHOT_BP_MEAN_MAG"] - out["PHOT_RP_MEAN_MAG"], "z")
    out["MAG"] = g
    out["MASK_MAG"] = np.fmin(g, zguess + 1.0)
    out["ISGAIA"] = True
    aen = np.nan_to_num(out["ASTROMETRIC_EXCESS_NOISE"], nan=np.inf)
    with np.errstate(invalid="ignore"):
        out["POINTSOURCE"] = ((g <= 18.0) & (aen < 10 ** 0.5)) | (g <= 13.0)
    out["RADIUS"] = mask_radius_arcsec(out["MASK_MAG"])
    out["KEEP_RADIUS"] = 4.0 * out["RADIUS"]
    return out


def tycho2_path(survey_dir: str) -> str | None:
    for d in (os.environ.get("TYCHO2_KD_DIR"), survey_dir):
        if not d:
            continue
        for name in ("tycho2.kd.fits", "tycho2.fits.gz", "tycho2.fits"):
            p = os.path.join(d, name)
            if os.path.exists(p):
                return p
    return None


def read_tycho2(path: str, ra0: float, dec0: float, radius_deg: float) -> np.ndarray:
    """Tycho-2 stars (module doc) within ``radius_deg`` of (ra0, dec0)."""
    t, _ = _first_table(path, "ra")
    if t is None or not len(t):
        return _empty()
    t = t[_near(t["ra"], t["dec"], ra0, dec0, radius_deg)]
    if "isgalaxy" in t.dtype.names:
        t = t[t["isgalaxy"] == 0]
    if not len(t):
        return _empty()
    names = t.dtype.names

    def col(name, default=0.0):
        return np.asarray(t[name], np.float64) if name in names else np.full(len(t), default)
    mag = col("mag_vt", np.nan) if "mag_vt" in names else col("mag", np.nan)
    for alt in ("mag_hp", "mag_bt"):
        if alt in names:
            mag = np.where(mag == 0, col(alt), mag)
    zg = col("zguess", np.nan)
    with np.errstate(invalid="ignore"):
        mask_mag = np.where(np.isfinite(zg) & (zg + 1.0 < mag), zg, mag)
    keep = mask_mag < 13.0
    t, mag, mask_mag = t[keep], mag[keep], mask_mag[keep]
    out = _empty(len(t))
    if not len(t):
        return out
    names = t.dtype.names

    def col2(name, default=0.0):
        return np.asarray(t[name], np.float64) if name in names else np.full(len(t), default)
    pmra, pmdec = np.nan_to_num(col2("pm_ra")), np.nan_to_num(col2("pm_dec"))   # arcsec/yr
    era = np.where(col2("epoch_ra", 1991.25) == 0, 1991.25, col2("epoch_ra", 1991.25))
    edec = np.where(col2("epoch_dec", 1991.25) == 0, 1991.25, col2("epoch_dec", 1991.25))
    epoch = 0.5 * (era + edec)
    dec = col2("dec")
    out["RA"] = col2("ra") + (epoch - era) * pmra / 3600.0 / np.cos(np.deg2rad(dec))
    out["DEC"] = dec + (epoch - edec) * pmdec / 3600.0
    out["REF_EPOCH"] = epoch
    out["PMRA"], out["PMDEC"] = pmra * 1000.0, pmdec * 1000.0
    out["PMRA_ERROR"], out["PMDEC_ERROR"] = col2("sigma_pm_ra") * 1000.0, col2("sigma_pm_dec") * 1000.0
    out["RA_ERROR"], out["DEC_ERROR"] = col2("sigma_ra") * 3.6e6, col2("sigma_dec") * 3.6e6  # deg -> mas
    if all(k in names for k in ("tyc1", "tyc2", "tyc3")):
        out["REF_ID"] = t["tyc1"].astype(np.int64) * 1000000 + t["tyc2"].astype(np.int64) * 10 + t["tyc3"].astype(np.int64)
    out["REF_CAT"] = "T2"
    out["MAG"], out["MASK_MAG"] = mag, mask_mag
    out["PHOT_G_MEAN_MAG"] = mag
    for k in ("PHOT_BP_MEAN_MAG", "PHOT_RP_MEAN_MAG", "PHOT_G_MEAN_FLUX_OVER_ERROR", "ASTROMETRIC_EXCESS_NOISE"):
        out[k] = np.nan
    out["ISTYCHO"] = out["ISBRIGHT"] = out["ISMEDIUM"] = out["POINTSOURCE"] = True
    out["RADIUS"] = mask_radius_arcsec(mask_mag)
    out["KEEP_RADIUS"] = 2.0 * out["RADIUS"]
    return out


def sga_path(survey_dir: str) -> str | None:
    p = os.environ.get("LARGEGALAXIES_CAT")
    if p:
        if not os.path.exists(p):
            raise UserError(f"LARGEGALAXIES_CAT={p}: no such file")
        return p
    for pat in ("sga*.fits", "SGA*.fits", "LSLGA*.fits", "sga*.fits.gz", "SGA*.fits.gz"):
        found = sorted(glob.glob(os.path.join(survey_dir, pat)))
        if found:
            return found[0]
    return None


def read_sga(path: str, ra0: float, dec0: float, radius_deg: float) -> np.ndarray:
    """SGA galaxies whose ellipse may reach within ``radius_deg`` of (ra0, dec0)."""
    t, h0 = _first_table(path, "ra")
    if t is None or not len(t):
        return _empty()
    names = t.dtype.names
    for need in ("dec", "diam" if "diam" in names else "d25_leda"):
        if need not in names:
            raise UserError(f"{path}: SGA table has no {need} column")
    diam = np.asarray(t["diam"] if "diam" in names else t["d25_leda"], np.float64)   # arcmin
    t = t[_near(t["ra"], t["dec"], ra0, dec0, radius_deg + np.nan_to_num(diam, nan=0.0).max() / 60.0)]
    if not len(t):
        return _empty()
    diam = np.asarray(t["diam"] if "diam" in names else t["d25_leda"], np.float64)
    ver = str(h0.get("SGAVER", h0.get("LSLGAVER", ""))).strip()
    preburn = "ellipse" in ver.lower()
    ver = ver.split("-")[0] if ver else ("L3" if "3.0" in os.path.basename(path) else "LG")
    out = _empty(len(t))
    out["REF_CAT"] = ver[:2]
    idcol = "sga_id" if "sga_id" in names else "lslga_id" if "lslga_id" in names else None
    out["REF_ID"] = t[idcol] if idcol else np.arange(len(t))
    out["RA"], out["DEC"] = t["ra"], t["dec"]
    out["DIAM"] = np.maximum(np.nan_to_num(diam, nan=0.0), 0.0)
    for k, alt in (("BA", "ba_leda"), ("PA", "pa_leda")):
        v = np.asarray(t[k.lower()] if k.lower() in names else t[alt] if alt in names else np.full(len(t), np.nan),
                       np.float64)
        out[k] = v
    ba = out["BA"]
    out["BA"] = np.where(np.isfinite(ba) & (ba > 0) & (ba <= 1), ba, 1.0)
    out["PA"] = np.nan_to_num(out["PA"], nan=0.0)
    mag = np.asarray(t["mag_leda"], np.float64) if "mag_leda" in names else np.full(len(t), 18.0)
    out["MAG"] = out["MASK_MAG"] = np.nan_to_num(mag, nan=18.0)
    out["ISLARGEGALAXY"] = True
    out["RADIUS"] = out["DIAM"] * 60.0 / 2.0          # arcsec, semi-major axis
    out["KEEP_RADIUS"] = 2.0 * out["RADIUS"]
    if preburn and "freeze" in names and "preburned" in names:
        out["FREEZE"] = np.asarray(t["freeze"], bool) & np.asarray(t["preburned"], bool)
    return out


# ---------------------------------------------------------------- merged table
def _match(ra1, dec1, ra2, dec2, radius_arcsec: float):
    """Nearest pairs (i into 1, j into 2) within ``radius_arcsec``."""
    from scipy.spatial import cKDTree
    if not len(ra1) or not len(ra2):
        return np.zeros(0, int), np.zeros(0, int)

    def xyz(r, d):
        r, d = np.deg2rad(r), np.deg2rad(d)
        return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])
    dist, j = cKDTree(xyz(ra2, dec2)).query(xyz(ra1, dec1), distance_upper_bound=np.deg2rad(radius_arcsec / 3600.0))
    i = np.flatnonzero(np.isfinite(dist))
    return i, j[i]


def reference_table(survey_dir: str, target, margin_arcsec: float | None = None) -> np.ndarray:
    """All reference sources that matter for the target's processed box (module doc)."""
    from legacylake.catalogs_schema.astrometry import propagate

    from legacylake.photometry.brick.target import corners
    rd = corners(target)
    ra0, dec0 = target.wcs.all_pix2world([[0.5 * (target.box[0] + target.box[1]) - 0.5,
                                           0.5 * (target.box[2] + target.box[3]) - 0.5]], 0)[0]
    half = float(np.max(_sep_deg(rd[:, 0], rd[:, 1], ra0, dec0)))
    margin = (mask_radius_arcsec(0.0) if margin_arcsec is None else margin_arcsec) / 3600.0
    gaia = read_gaia(gaia_paths(survey_dir, target.name, ra0, dec0, half + margin), ra0, dec0, half + margin)
    tp = tycho2_path(survey_dir)
    tycho = read_tycho2(tp, ra0, dec0, half + margin) if tp else _empty()
    sp = sga_path(survey_dir)
    sga = read_sga(sp, ra0, dec0, half + 0.1) if sp else _empty()
    if len(gaia) and len(tycho):
        # Gaia moved back to each Tycho-2 star's epoch (coarse 10 arcsec, then 1 arcsec)
        gra, gdec = propagate(gaia["RA"], gaia["DEC"], gaia["PMRA"], gaia["PMDEC"], 1991.5 - gaia["REF_EPOCH"])
        i, j = _match(tycho["RA"], tycho["DEC"], gra, gdec, 10.0)
        if len(i):
            gra, gdec = propagate(gaia["RA"][j], gaia["DEC"][j], gaia["PMRA"][j], gaia["PMDEC"][j],
                                  tycho["REF_EPOCH"][i] - gaia["REF_EPOCH"][j])
            d = np.hypot((gra - tycho["RA"][i]) * np.cos(np.deg2rad(gdec)), gdec - tycho["DEC"][i]) * 3600.0
            ok = d <= TYCHO_MATCH_ARCSEC
            i, j = i[ok], j[ok]
            gaia["ISBRIGHT"][j] = True
            gaia["ISTYCHO"][j] = True
            tycho = np.delete(tycho, i)
    for t in (gaia,):
        t["ISBRIGHT"] |= t["MASK_MAG"] < 13.0
        t["ISMEDIUM"] |= t["MASK_MAG"] < 16.0
    if len(sga):
        for t, r in ((gaia, SGA_GAIA_ARCSEC), (tycho, SGA_TYCHO_ARCSEC)):
            i, j = _match(sga["RA"], sga["DEC"], t["RA"], t["DEC"], r)
            t["DONOTFIT"][j] = True
    refs = np.concatenate([gaia, tycho, sga])
    if not len(refs):
        return refs
    # keep what reaches the processed box: stars within KEEP_RADIUS, galaxies within theirs
    x, y = target.wcs.all_world2pix(np.column_stack([refs["RA"], refs["DEC"]]), 0).T
    x0, x1, y0, y1 = target.box
    from legacylake.catalogs_schema.constants import PIXSCALE_ARCSEC
    kr = np.maximum(refs["KEEP_RADIUS"], refs["RADIUS"]) / PIXSCALE_ARCSEC
    keep = (x > x0 - 0.5 - kr) & (x < x1 - 0.5 + kr) & (y > y0 - 0.5 - kr) & (y < y1 - 0.5 + kr)
    return refs[keep]


# ---------------------------------------------------------------- masks
def mask_bits(refs: np.ndarray, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """MASKBITS BRIGHT / MEDIUM / GALAXY at positions (deg): inside a bright star's disk of
    R(mask_mag) / 2, a medium star's disk of R, an SGA ellipse (reference 2.1)."""
    from legacylake.catalogs_schema import MASKBITS
    ra, dec = np.atleast_1d(np.asarray(ra, np.float64)), np.atleast_1d(np.asarray(dec, np.float64))
    out = np.zeros(len(ra), np.int64)
    if refs is None or not len(refs) or not len(ra):
        return out
    bright, medium, galaxy = MASKBITS.mask("BRIGHT"), MASKBITS.mask("MEDIUM"), MASKBITS.mask("GALAXY")
    for r in refs:
        dx = ((ra - r["RA"] + 180.0) % 360.0 - 180.0) * np.cos(np.deg2rad(r["DEC"])) * 3600.0   # east, arcsec
        dy = (dec - r["DEC"]) * 3600.0
        if r["ISLARGEGALAXY"]:
            if r["RADIUS"] <= 0:
                continue
            pa = np.deg2rad(r["PA"])
            u = dx * np.sin(pa) + dy * np.cos(pa)          # along the major axis
            v = dx * np.cos(pa) - dy * np.sin(pa)
            inside = (u / r["RADIUS"]) ** 2 + (v / (r["RADIUS"] * r["BA"])) ** 2 < 1.0
            out[inside] |= galaxy
            continue
        d2 = dx * dx + dy * dy
        if r["ISBRIGHT"]:
            out[d2 < (r["RADIUS"] / 2.0) ** 2] |= bright
        if r["ISMEDIUM"]:
            out[d2 < r["RADIUS"] ** 2] |= medium
    return out


def mask_map(refs: np.ndarray, wcs, box) -> np.ndarray:
    """int32 BRIGHT / MEDIUM / GALAXY bits over the pixel box (x0, x1, y0, y1) of ``wcs``."""
    x0, x1, y0, y1 = box
    out = np.zeros((y1 - y0, x1 - x0), np.int32)
    if refs is None or not len(refs):
        return out
    from legacylake.catalogs_schema.constants import PIXSCALE_ARCSEC
    rx, ry = wcs.all_world2pix(np.column_stack([refs["RA"], refs["DEC"]]), 0).T
    for k, r in enumerate(refs):
        rad = r["RADIUS"] / PIXSCALE_ARCSEC + 2
        xa, xb = max(int(rx[k] - rad), x0), min(int(rx[k] + rad) + 2, x1)
        ya, yb = max(int(ry[k] - rad), y0), min(int(ry[k] + rad) + 2, y1)
        if xa >= xb or ya >= yb:
            continue
        yy, xx = np.mgrid[ya:yb, xa:xb]
        ra, dec = wcs.all_pix2world(xx.ravel().astype(float), yy.ravel().astype(float), 0)
        out[ya - y0:yb - y0, xa - x0:xb - x0] |= mask_bits(refs[k:k + 1], ra, dec).reshape(xx.shape).astype(np.int32)
    return out
