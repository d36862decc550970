"""The lake's SQL function library, generated from :mod:`legacylake.catalogs_schema`.

Arithmetic functions are SQL macros (they run at scan speed inside DuckDB and Spark).
Bit names and band names are resolved by small *deterministic* Python functions whose
arguments are constants, so DuckDB folds them into integer / float constants when the
query is planned: ``has_maskbits(maskbits, 'BRIGHT,GALAXY')`` is executed as
``(maskbits & 4098) != 0``, and an unknown name fails before any row is read, naming the
bad name and listing the valid ones. Only ``healpix_of`` and ``nest_to_ring`` are
(Arrow-vectorised) Python functions evaluated on data.

:data:`FUNCTIONS` documents each function (signature, meaning, example) for the README
and ``legacylake sql --functions``.
"""

from __future__ import annotations

import functools

import numpy as np

from legacylake.catalogs_schema import BITMASKS, bricks
from legacylake.catalogs_schema.constants import EXTINCTION_R, NANOMAGGY_ZEROPOINT, WISE_VEGA_TO_AB
from legacylake.query.sql import hosted

ZP = NANOMAGGY_ZEROPOINT
#: 2.5 / ln(10): converts a relative flux error to a magnitude error.
POGSON = float(2.5 / np.log(10.0))

#: (mask family, SQL suffix of the names function) for the bit functions.
BIT_FAMILIES: dict[str, str] = {
    "maskbits": "maskbit_names", "fitbits": "fitbit_names", "anymask": "anymask_names",
    "allmask": "allmask_names", "wisemask": "wisemask_names",
}

#: Data Lab-style derived bands, in the order they are added to ``<catalog>_derived``.
DERIVED_BANDS = ("g", "r", "i", "z", "w1", "w2", "w3", "w4")
#: Colours (from dereddened magnitudes) of ``<catalog>_derived``.
DERIVED_COLOURS = (("g", "r"), ("r", "z"), ("z", "w1"), ("w1", "w2"))


#: Every SQL function: name -> (signature, meaning and units, example).
FUNCTIONS: dict[str, tuple[str, str, str]] = {
    "flux_to_mag": ("flux_to_mag(flux)", "AB magnitude 22.5 - 2.5 log10(flux/nanomaggy); NULL when flux <= 0",
                    "SELECT flux_to_mag(flux_r) FROM dr9 LIMIT 5"),
    "mag_err": ("mag_err(flux, ivar)", "magnitude error 1.0857 / (flux sqrt(ivar)), mag; NULL when flux <= 0 or ivar <= 0",
                "SELECT mag_err(flux_r, flux_ivar_r) FROM dr9 LIMIT 5"),
    "snr": ("snr(flux, ivar)", "signal-to-noise flux * sqrt(ivar) (0 where ivar = 0; NULL if ivar < 0)",
            "SELECT count(*) FROM dr9 WHERE snr(flux_z, flux_ivar_z) > 5"),
    "dered_flux": ("dered_flux(flux, mw_transmission)", "flux / mw_transmission, nanomaggy (NULL if transmission <= 0)",
                   "SELECT dered_flux(flux_g, mw_transmission_g) FROM dr9 LIMIT 5"),
    "dered_mag": ("dered_mag(flux, mw_transmission)", "flux_to_mag(flux / mw_transmission), AB mag",
                  "SELECT dered_mag(flux_g, mw_transmission_g) - dered_mag(flux_r, mw_transmission_r) AS g_r FROM dr9"),
    "mw_transmission": ("mw_transmission(ebv, band)", "10^(-0.4 R_band ebv); R from catalogs_schema.EXTINCTION_R (bands "
                        + ", ".join(EXTINCTION_R) + ")", "SELECT mw_transmission(ebv, 'g') FROM dr9 LIMIT 5"),
    "extinction": ("extinction(ebv, band)", "A_band = R_band * ebv, mag",
                   "SELECT extinction(ebv, 'r') FROM dr9 LIMIT 5"),
    "asinh_mag": ("asinh_mag(flux, ivar)", "asinh magnitude (luptitude) with softening b = 1/sqrt(ivar) nanomaggy: "
                  "22.5 - 2.5 log10(b) - 1.0857 asinh(flux / 2b); finite for zero and negative flux, "
                  "tends to flux_to_mag for flux >> b; NULL when ivar <= 0",
                  "SELECT asinh_mag(flux_g, flux_ivar_g) FROM dr9 WHERE flux_g < 0 LIMIT 5"),
    "asinh_mag_b": ("asinh_mag_b(flux, b)", "asinh magnitude with an explicit softening b (nanomaggy, > 0)",
                    "SELECT asinh_mag_b(flux_g, 0.05) FROM dr9 LIMIT 5"),
    "wise_vega_to_ab": ("wise_vega_to_ab(flux, band)", "WISE flux on the Vega scale to AB: flux * 10^(-delta/2.5), "
                        "delta = " + ", ".join(f"{k} {v}" for k, v in WISE_VEGA_TO_AB.items()),
                        "SELECT wise_vega_to_ab(1.0, 'w1')"),
    "wise_ab_to_vega": ("wise_ab_to_vega(flux, band)", "the reverse of wise_vega_to_ab (catalog fluxes are AB)",
                        "SELECT wise_ab_to_vega(flux_w1, 'w1') FROM dr9 LIMIT 5"),
    "shape_ba": ("shape_ba(e1, e2)", "axis ratio b/a = (1 - |e|) / (1 + |e|), |e| = hypot(e1, e2)",
                 "SELECT shape_ba(shape_e1, shape_e2) FROM dr9 WHERE type <> 'PSF' LIMIT 5"),
    "shape_phi": ("shape_phi(e1, e2)", "position angle phi = -1/2 atan2(e2, e1) in degrees, in [0, 180) "
                  "(the Tractor's EllipseE.fromRAbPhi convention)",
                  "SELECT shape_phi(shape_e1, shape_e2) FROM dr9 LIMIT 5"),
    "depth_mag": ("depth_mag(depth)", "5-sigma depth of psfdepth/galdepth (1/nanomaggy^2) as AB mag: "
                  "22.5 - 2.5 log10(5 / sqrt(depth)); NULL when depth <= 0",
                  "SELECT median(depth_mag(psfdepth_r)) FROM dr9"),
    "brickid_of": ("brickid_of(ra, dec)", "brick id containing (ra, dec) deg, same rule as catalogs_schema.bricks.brickid_of",
                   "SELECT count(*) FROM dr9 WHERE brickid_of(ra, dec) = brickid"),
    "brickname_of": ("brickname_of(ra, dec)", "brick name containing (ra, dec) deg, e.g. '1126p222'",
                     "SELECT brickname_of(112.6, 22.2)"),
    "healpix_of": ("healpix_of(ra, dec, order)", "nested HEALPix index at order 0..29 (Arrow-vectorised cdshealpix); "
                   "for lake rows prefer _healpix_29 >> (2 * (29 - order))",
                   "SELECT healpix_of(ra, dec, 12) FROM dr9 LIMIT 5"),
    "nest_to_ring": ("nest_to_ring(ipix, order)", "nested to ring HEALPix index (Arrow-vectorised cdshealpix)",
                     "SELECT nest_to_ring(_healpix_29 >> 42, 8) FROM dr9 LIMIT 5"),
    "ang_sep": ("ang_sep(ra1, dec1, ra2, dec2)", "angular separation, deg (haversine, exact at small angles)",
                "SELECT * FROM dr9 WHERE ang_sep(ra, dec, 10.0, 0.0) < 0.01"),
    "glon": ("glon(ra, dec)", "Galactic longitude of ICRS (ra, dec), deg in [0, 360)", "SELECT glon(ra, dec) FROM dr9 LIMIT 5"),
    "glat": ("glat(ra, dec)", "Galactic latitude of ICRS (ra, dec), deg", "SELECT count(*) FROM dr9 WHERE abs(glat(ra, dec)) > 30"),
    "random_id": ("random_id(release, brickid, objid)", "stable pseudo-random number in [0, 100) per (release, brickid, objid) "
                  "(a multiplicative hash; same value in DuckDB and Spark)",
                  "SELECT * FROM dr9 WHERE random_id(release, brickid, objid) < 1  -- a 1% sample"),
}
FUNCTIONS.update(hosted.FUNCTIONS)
#: A column of each mask family, for the examples.
_EXAMPLE_COLUMN = {"maskbits": "maskbits", "fitbits": "fitbits", "anymask": "anymask_g",
                   "allmask": "allmask_r", "wisemask": "wisemask_w1"}
for _fam, _names_fn in BIT_FAMILIES.items():
    _m, _col = BITMASKS[_fam], _EXAMPLE_COLUMN[_fam]
    FUNCTIONS[f"has_{_fam}"] = (f"has_{_fam}({_col}, 'NAME,NAME')",
                                f"true if any named {_fam} bit is set (names: {', '.join(_m.names)}); "
                                "names resolve to an integer constant when the query is planned",
                                f"SELECT count(*) FROM dr9 WHERE has_{_fam}({_col}, '{','.join(_m.names[1:3])}')")
    FUNCTIONS[f"no_{_fam}"] = (f"no_{_fam}({_col}, 'NAME,NAME')", f"true if none of the named {_fam} bits is set",
                               f"SELECT count(*) FROM dr9 WHERE no_{_fam}({_col}, '{','.join(_m.names[1:3])}')")
    FUNCTIONS[_names_fn] = (f"{_names_fn}({_col})", f"list of the {_fam} bit names set (unnamed bits as BIT<n>)",
                            f"SELECT {_names_fn}({_col}) FROM dr9 LIMIT 5")
    FUNCTIONS[f"{_fam}_value"] = (f"{_fam}_value('NAME,NAME')", f"integer OR of the named {_fam} bits",
                                  f"SELECT {_fam}_value('{','.join(_m.names[1:3])}')")


# ---------------------------------------------------------------- constant lookups (folded at plan time)

def mask_value(family: str, names: str) -> int:
    """Integer OR of bit ``names`` of mask ``family``; ValueError names the bad name and lists valid ones."""
    return BITMASKS[family].mask(names)


def extinction_coeff(band: str) -> float:
    """R_band = A_band / E(B-V) from catalogs_schema; ValueError lists the valid bands."""
    key = str(band).strip().lower()
    if key not in EXTINCTION_R:
        raise ValueError(f"unknown band {band!r} for extinction; valid bands: {', '.join(EXTINCTION_R)}")
    return float(EXTINCTION_R[key])


def wise_ab_offset(band: str) -> float:
    """WISE Vega-to-AB magnitude offset; ValueError lists the valid bands."""
    key = str(band).strip().lower()
    if key not in WISE_VEGA_TO_AB:
        raise ValueError(f"unknown WISE band {band!r}; valid bands: {', '.join(WISE_VEGA_TO_AB)}")
    return float(WISE_VEGA_TO_AB[key])


@functools.cache
def galactic_matrix() -> np.ndarray:
    """3x3 rotation from ICRS unit vectors to Galactic unit vectors (from astropy)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(ra=[0.0, 90.0, 0.0] * u.deg, dec=[0.0, 0.0, 90.0] * u.deg, frame="icrs")
    g = c.galactic.cartesian.xyz.value  # columns: images of the ICRS basis vectors x, y, z
    return np.asarray(g, dtype=np.float64)


def _list(values) -> str:
    return "[" + ", ".join(str(int(v)) for v in values) + "]"


def _bit_names_list(family: str) -> tuple[int, str]:
    m = BITMASKS[family]
    nbits = max(m.bits.values()) + 1
    by_bit = {b: n for n, b in m.bits.items()}
    names = [by_bit.get(b, f"BIT{b}") for b in range(nbits)]
    return nbits, "[" + ", ".join(f"'{n}'" for n in names) + "]"


# ---------------------------------------------------------------- macro text (DuckDB dialect)

def duckdb_macros() -> list[tuple[str, str, str]]:
    """(name, parameter list, body) of every DuckDB scalar macro, in dependency order."""
    dec_c, ncol, offset = bricks._rows()
    nrows = len(ncol)
    m = galactic_matrix()
    out = [
        ("flux_to_mag", "flux", f"CASE WHEN flux > 0 THEN {ZP} - 2.5 * log10(flux) END"),
        ("mag_err", "flux, ivar", f"CASE WHEN flux > 0 AND ivar > 0 THEN {POGSON!r} / (flux * sqrt(ivar)) END"),
        ("snr", "flux, ivar", "CASE WHEN ivar >= 0 THEN flux * sqrt(ivar) END"),
        ("dered_flux", "flux, mwt", "CASE WHEN mwt > 0 THEN flux::DOUBLE / mwt END"),
        ("dered_mag", "flux, mwt", f"CASE WHEN mwt > 0 AND flux > 0 THEN {ZP} - 2.5 * log10(flux::DOUBLE / mwt) END"),
        ("mw_transmission", "ebv, band", "power(10.0, -0.4 * _extinction_coeff(band) * ebv)"),
        ("extinction", "ebv, band", "_extinction_coeff(band) * ebv"),
        ("asinh_mag_b", "flux, b", f"CASE WHEN b > 0 THEN {ZP} - 2.5 * log10(b) - {POGSON!r} * asinh(flux / (2.0 * b)) END"),
        ("asinh_mag", "flux, ivar", f"CASE WHEN ivar > 0 THEN {ZP} + 1.25 * log10(ivar) - {POGSON!r} * asinh(flux * sqrt(ivar) / 2.0) END"),
        ("wise_vega_to_ab", "flux, band", "flux * power(10.0, -_wise_ab_offset(band) / 2.5)"),
        ("wise_ab_to_vega", "flux, band", "flux * power(10.0, _wise_ab_offset(band) / 2.5)"),
        ("shape_ba", "e1, e2", "(1.0 - sqrt(e1::DOUBLE * e1 + e2::DOUBLE * e2)) / (1.0 + sqrt(e1::DOUBLE * e1 + e2::DOUBLE * e2))"),
        ("shape_phi", "e1, e2", "((degrees(-0.5 * atan2(e2, e1)) % 180.0) + 180.0) % 180.0"),
        ("depth_mag", "depth", f"CASE WHEN depth > 0 THEN {ZP} - 2.5 * log10(5.0 / sqrt(depth)) END"),
        ("ang_sep", "ra1, dec1, ra2, dec2",
         "degrees(2.0 * asin(least(1.0, sqrt(power(sin(radians(dec2 - dec1) / 2.0), 2) + "
         "cos(radians(dec1)) * cos(radians(dec2)) * power(sin(radians(ra2 - ra1) / 2.0), 2)))))"),
        # brick grid: row from dec (with the same float-edge fixes as catalogs_schema.bricks), column from ra
        ("_brick_ncol", "r", f"{_list(ncol)}[r + 1]"),
        ("_brick_offset", "r", f"{_list(offset)}[r + 1]"),
        ("_brick_row0", "dec", f"least(greatest(floor((dec + 90.0 + 0.125) / 0.25), 0), {nrows - 1})::INTEGER"),
        ("_brick_row1", "dec, r", "CASE WHEN dec < -90.0 + 0.25 * r - 0.125 AND r > 0 THEN r - 1 ELSE r END"),
        ("_brick_row2", "dec, r", f"CASE WHEN dec >= -90.0 + 0.25 * r + 0.125 AND r < {nrows - 1} THEN r + 1 ELSE r END"),
        ("_brick_row", "dec", "_brick_row2(dec, _brick_row1(dec, _brick_row0(dec)))"),
        ("_ra360", "ra", "CASE WHEN ra >= 0 AND ra < 360.0 THEN ra ELSE ((ra % 360.0) + 360.0) % 360.0 END"),
        ("_brick_col0", "ra, n", "least(floor(ra / 360.0 * n), n - 1)::INTEGER"),
        ("_brick_col1", "ra, n, c", "CASE WHEN ra < c * (360.0 / n) AND c > 0 THEN c - 1 ELSE c END"),
        ("_brick_col2", "ra, n, c", "CASE WHEN ra >= (c + 1) * (360.0 / n) AND c < n - 1 THEN c + 1 ELSE c END"),
        ("_brick_col", "ra, n", "_brick_col2(ra, n, _brick_col1(ra, n, _brick_col0(ra, n)))"),
        ("_brickid_rc", "r, c", "(_brick_offset(r) + c + 1)::INTEGER"),
        ("brickid_of", "ra, dec",
         "_brickid_rc(_brick_row(dec), _brick_col(_ra360(ra), _brick_ncol(_brick_row(dec))))"),
        ("_brick_name_rc", "r, c, n",
         "lpad(floor(round((c * (360.0 / n) + (c + 1) * (360.0 / n)) / 2.0 * 1e4, 0) / 1000)::BIGINT::VARCHAR, 4, '0')"
         " || CASE WHEN -90.0 + 0.25 * r >= 0 THEN 'p' ELSE 'm' END"
         " || lpad(floor(round(abs(-90.0 + 0.25 * r) * 1e4, 0) / 1000)::BIGINT::VARCHAR, 3, '0')"),
        ("brickname_of", "ra, dec",
         "_brick_name_rc(_brick_row(dec), _brick_col(_ra360(ra), _brick_ncol(_brick_row(dec))), _brick_ncol(_brick_row(dec)))"),
        # Galactic coordinates: rotate the ICRS unit vector
        ("_gx", "ra, dec", f"{float(m[0, 0])!r} * cos(radians(dec)) * cos(radians(ra)) + {float(m[0, 1])!r} * cos(radians(dec)) * sin(radians(ra)) + {float(m[0, 2])!r} * sin(radians(dec))"),
        ("_gy", "ra, dec", f"{float(m[1, 0])!r} * cos(radians(dec)) * cos(radians(ra)) + {float(m[1, 1])!r} * cos(radians(dec)) * sin(radians(ra)) + {float(m[1, 2])!r} * sin(radians(dec))"),
        ("_gz", "ra, dec", f"{float(m[2, 0])!r} * cos(radians(dec)) * cos(radians(ra)) + {float(m[2, 1])!r} * cos(radians(dec)) * sin(radians(ra)) + {float(m[2, 2])!r} * sin(radians(dec))"),
        ("glon", "ra, dec", "((degrees(atan2(_gy(ra, dec), _gx(ra, dec))) % 360.0) + 360.0) % 360.0"),
        ("glat", "ra, dec", "degrees(asin(greatest(-1.0, least(1.0, _gz(ra, dec)))))"),
        # random_id: two multiplicative-hash rounds modulo the Mersenne prime 2^61 - 1 (int128 intermediate)
        ("_rid_key", "release, brickid, objid",
         "(release::HUGEINT * 4398046511104 + brickid::HUGEINT * 4194304 + objid::HUGEINT)"),
        ("_rid_h1", "k", "(k * 1442695040888963407) % 2305843009213693951"),
        ("_rid_h2", "h", "((h + h // 2147483648) * 1181783497276652981) % 2305843009213693951"),
        ("random_id", "release, brickid, objid",
         "(_rid_h2(_rid_h1(_rid_key(release, brickid, objid)))::DOUBLE / 2305843009213693951.0 * 100.0)"),
    ]
    for fam, names_fn in BIT_FAMILIES.items():
        nbits, names = _bit_names_list(fam)
        out += [
            (f"{fam}_value", "names", f"_mask_value('{fam}', names)"),
            (f"has_{fam}", "col, names", f"(col & _mask_value('{fam}', names)) != 0"),
            (f"no_{fam}", "col, names", f"(col & _mask_value('{fam}', names)) = 0"),
            (names_fn, "col",
             f"list_transform(list_filter(range(0, {nbits}), lambda b: ((col::BIGINT >> b) & 1) = 1), lambda b: {names}[b + 1])"),
        ]
    return out


def _healpix_of(ra, dec, order):
    import cdshealpix
    import pyarrow as pa
    from astropy.coordinates import Latitude, Longitude
    import astropy.units as u

    ra = np.mod(np.asarray(ra.to_numpy(zero_copy_only=False), dtype=np.float64), 360.0)
    dec = np.clip(np.asarray(dec.to_numpy(zero_copy_only=False), dtype=np.float64), -90.0, 90.0)
    orders = np.asarray(order.to_numpy(zero_copy_only=False), dtype=np.int64)
    out = np.empty(len(ra), dtype=np.int64)
    ok = np.isfinite(ra) & np.isfinite(dec)
    for o in np.unique(orders[ok]) if ok.any() else []:
        if not 0 <= o <= 29:
            raise ValueError(f"healpix order {o} out of range 0..29")
        sel = ok & (orders == o)
        out[sel] = cdshealpix.nested.lonlat_to_healpix(Longitude(ra[sel] * u.deg), Latitude(dec[sel] * u.deg), int(o))
    return pa.array(out, mask=~ok)


def _nest_to_ring(ipix, order):
    import cdshealpix
    import pyarrow as pa

    p = np.asarray(ipix.to_numpy(zero_copy_only=False), dtype=np.int64)
    orders = np.asarray(order.to_numpy(zero_copy_only=False), dtype=np.int64)
    out = np.empty(len(p), dtype=np.int64)
    for o in np.unique(orders):
        sel = orders == o
        out[sel] = cdshealpix.to_ring(p[sel].astype(np.uint64), int(o), num_threads=1)
    return pa.array(out)


def install(con) -> None:
    """Create every function of the library in DuckDB connection ``con``."""
    from duckdb.sqltypes import BIGINT, DOUBLE, INTEGER, VARCHAR

    con.create_function("_mask_value", mask_value, [VARCHAR, VARCHAR], BIGINT, side_effects=False)
    con.create_function("_extinction_coeff", extinction_coeff, [VARCHAR], DOUBLE, side_effects=False)
    con.create_function("_wise_ab_offset", wise_ab_offset, [VARCHAR], DOUBLE, side_effects=False)
    con.create_function("healpix_of", _healpix_of, [DOUBLE, DOUBLE, INTEGER], BIGINT, type="arrow", side_effects=False)
    con.create_function("nest_to_ring", _nest_to_ring, [BIGINT, INTEGER], BIGINT, type="arrow", side_effects=False)
    hosted.install(con)
    for name, params, body in duckdb_macros() + hosted.duckdb_macros():
        con.execute(f"CREATE OR REPLACE MACRO {name}({params}) AS {body}")


def derived_columns(columns: list[str]) -> list[tuple[str, str]]:
    """(name, SQL expression) of the Data Lab-style derived columns a catalog with ``columns`` supports."""
    have = set(columns)
    out: list[tuple[str, str]] = []
    bands = [b for b in DERIVED_BANDS if f"flux_{b}" in have]
    for b in bands:
        out.append((f"mag_{b}", f"flux_to_mag(flux_{b})"))
    for b in bands:
        if f"mw_transmission_{b}" in have:
            out.append((f"dered_mag_{b}", f"dered_mag(flux_{b}, mw_transmission_{b})"))
    for b in bands:
        if f"mw_transmission_{b}" in have:
            out.append((f"dered_flux_{b}", f"dered_flux(flux_{b}, mw_transmission_{b})"))
    for b in bands:
        if f"flux_ivar_{b}" in have:
            out.append((f"snr_{b}", f"snr(flux_{b}, flux_ivar_{b})"))
    names = {n for n, _ in out}
    for a, b in DERIVED_COLOURS:
        if f"dered_mag_{a}" in names and f"dered_mag_{b}" in names:
            out.append((f"{a}_{b}", f"dered_mag(flux_{a}, mw_transmission_{a}) - dered_mag(flux_{b}, mw_transmission_{b})"))
    if "_healpix_29" in have:
        out.append(("nest4096", "(_healpix_29 >> 34)"))
        out.append(("ring256", "nest_to_ring(_healpix_29 >> 42, 8)"))
    if {"release", "brickid", "objid"} <= have:
        out.append(("random_id", "random_id(release, brickid, objid)"))
    if {"ra", "dec"} <= have:
        out.append(("glon", "glon(ra, dec)"))
        out.append(("glat", "glat(ra, dec)"))
    return out + hosted.derived_columns(have)
