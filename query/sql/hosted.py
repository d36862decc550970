"""The hosted Legacy Surveys catalog's extra names (Astro Data Lab ``ls_dr9.tractor``): ``ls_id``,
``htm9``, ``elon``/``elat`` and the Q3C 2.0 functions (:mod:`legacylake.query.sql.q3c`).

The HTM trixel ids are a pure-numpy kernel registered as an Arrow function; the rest are
DuckDB macros (:func:`duckdb_macros`). All angles in degrees.
"""

from __future__ import annotations

import functools

import numpy as np

from legacylake.query.sql import q3c

#: HTM depth of the hosted catalog's ``htm9`` column.
HTM_DEPTH = 9

#: The 6 HTM base vertices (unit vectors) and the 8 base triangles S0..S3, N0..N3 (ids 8..15),
#: each counter-clockwise seen from outside the sphere.
_HTM_V = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 0, -1]], dtype=np.float64)
_HTM_BASE = ((1, 5, 2), (2, 5, 3), (3, 5, 4), (4, 5, 1), (1, 0, 4), (4, 0, 3), (3, 0, 2), (2, 0, 1))


def unit_vectors(ra, dec) -> np.ndarray:
    """(N, 3) unit vectors of ``ra``, ``dec`` (deg)."""
    r, d = np.radians(np.asarray(ra, np.float64)), np.radians(np.asarray(dec, np.float64))
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)


def _inside(p, a, b, c, eps: float = 1e-15) -> np.ndarray:
    def side(u, v):
        return np.einsum("ij,ij->i", np.cross(u, v), p) >= -eps

    return side(a, b) & side(b, c) & side(c, a)


def _norm(v):
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@np.errstate(invalid="ignore", divide="ignore")  # non-finite positions: NaN vectors, then -1
def htm_id(ra, dec, depth: int = HTM_DEPTH) -> np.ndarray:
    """HTM trixel id (int64, in [8 * 4^depth, 16 * 4^depth)) of each position (deg); -1 where
    ra or dec is not finite."""
    p = unit_vectors(np.ravel(ra), np.ravel(dec)).reshape(-1, 3)
    n = len(p)
    ids = np.full(n, -1, dtype=np.int64)
    v0, v1, v2 = (np.zeros((n, 3)) for _ in range(3))
    ok = np.all(np.isfinite(p), axis=1)
    for k, (a, b, c) in enumerate(_HTM_BASE):
        A, B, C = (np.broadcast_to(_HTM_V[i], (n, 3)) for i in (a, b, c))
        sel = ok & (ids < 0) & _inside(p, A, B, C)
        ids[sel] = 8 + k
        v0[sel], v1[sel], v2[sel] = _HTM_V[a], _HTM_V[b], _HTM_V[c]
    for _ in range(depth):
        w0, w1, w2 = _norm(v1 + v2), _norm(v0 + v2), _norm(v0 + v1)
        kids = ((v0, w2, w1), (v1, w0, w2), (v2, w1, w0), (w0, w1, w2))
        child = np.full(n, 3, dtype=np.int64)
        for k in (2, 1, 0):  # the first child that contains the point wins (edges are shared)
            child[_inside(p, *kids[k])] = k
        nv = [np.empty_like(v0) for _ in range(3)]
        for k in range(4):
            sel = child == k
            for j in range(3):
                nv[j][sel] = kids[k][j][sel]
        v0, v1, v2 = nv
        ids = np.where(ids >= 0, ids * 4 + child, -1)
    return ids


@functools.cache
def ecliptic_matrix() -> np.ndarray:
    """3x3 rotation from ICRS to mean ecliptic-and-equinox-of-J2000 unit vectors (astropy's
    BarycentricMeanEcliptic at J2000: a fixed rotation, no time or distance dependence)."""
    import astropy.units as u
    from astropy.coordinates import BarycentricMeanEcliptic, SkyCoord

    c = SkyCoord(ra=[0.0, 90.0, 0.0] * u.deg, dec=[0.0, 0.0, 90.0] * u.deg, distance=[1e9] * 3 * u.pc, frame="icrs")
    e = c.transform_to(BarycentricMeanEcliptic(equinox="J2000"))
    # barycentric: the ICRS origin, so a pure rotation (distance only removes float noise)
    return np.asarray(e.cartesian.xyz.value / 1e9, dtype=np.float64)


def _arrow_htm9(ra, dec):
    import pyarrow as pa

    r = np.asarray(ra.to_numpy(zero_copy_only=False), np.float64)
    d = np.asarray(dec.to_numpy(zero_copy_only=False), np.float64)
    ids = htm_id(r, d, HTM_DEPTH)
    return pa.array(ids, mask=ids < 0)


def _rot(m: np.ndarray, i: int) -> str:
    return (f"{float(m[i, 0])!r} * cos(radians(dec)) * cos(radians(ra)) + {float(m[i, 1])!r} * cos(radians(dec)) * "
            f"sin(radians(ra)) + {float(m[i, 2])!r} * sin(radians(dec))")


def duckdb_macros() -> list[tuple[str, str, str]]:
    """(name, parameters, body) of the hosted-catalog macros, the Q3C ones (:mod:`.q3c`) included."""
    m = ecliptic_matrix()
    return [
        ("ls_id", "release, brickid, objid",
         "(release::BIGINT * 1099511627776 + brickid::BIGINT * 65536 + objid::BIGINT)"),
        ("_ex", "ra, dec", _rot(m, 0)), ("_ey", "ra, dec", _rot(m, 1)), ("_ez", "ra, dec", _rot(m, 2)),
        ("elon", "ra, dec", "((degrees(atan2(_ey(ra, dec), _ex(ra, dec))) % 360.0) + 360.0) % 360.0"),
        ("elat", "ra, dec", "degrees(asin(greatest(-1.0, least(1.0, _ez(ra, dec)))))"),
    ] + q3c.duckdb_macros()


#: The hosted catalog's functions: name -> (signature, meaning and units, example).
FUNCTIONS: dict[str, tuple[str, str, str]] = {
    "ls_id": ("ls_id(release, brickid, objid)", "the hosted catalog's unique id release * 2^40 + brickid * 2^16 + objid (BIGINT)",
              "SELECT ls_id(release, brickid, objid) FROM dr9 LIMIT 5"),
    "htm9": ("htm9(ra, dec)", "Hierarchical Triangular Mesh trixel id at depth 9 (BIGINT in [8*4^9, 16*4^9); "
             "NULL for a non-finite position)", "SELECT htm9(ra, dec) FROM dr9 LIMIT 5"),
    "elon": ("elon(ra, dec)", "ecliptic longitude (mean ecliptic and equinox J2000), deg in [0, 360)",
             "SELECT elon(ra, dec) FROM dr9 LIMIT 5"),
    "elat": ("elat(ra, dec)", "ecliptic latitude (mean ecliptic and equinox J2000), deg",
             "SELECT count(*) FROM dr9 WHERE abs(elat(ra, dec)) > 30"),
    "q3c_radial_query": ("q3c_radial_query(ra, dec, ra0, dec0, radius)", "Q3C 2.0 / Data Lab: true where Q3C's "
                         "q3c_sindist is below sin^2(radius / 2), radius deg (strict <); a Dec range test first lets "
                         "DuckDB skip row groups (files are all opened: use cone() for file pruning)",
                         "SELECT count(*) FROM ls_dr9.tractor WHERE q3c_radial_query(ra, dec, 150.1, 2.2, 0.05)"),
    "q3c_dist": ("q3c_dist(ra1, dec1, ra2, dec2)", "Q3C 2.0's angular distance (its haversine-like formula), deg; "
                 "NULL for non-finite input", "SELECT q3c_dist(ra, dec, 150.1, 2.2) FROM dr9 LIMIT 5"),
    "q3c_join": ("q3c_join(ra1, dec1, ra2, dec2, radius)", "Q3C 2.0 join condition: true within radius deg (the "
                 "q3c_radial_query test). In query() / legacylake sql, "
                 "lake_view JOIN table ON q3c_join(...) with a constant radius runs as the crossmatch "
                 "(xmatch_all cells and a key join); elsewhere a Dec band plus the distance, which DuckDB "
                 "runs as a range join (not a cross join)",
                 "SELECT * FROM (VALUES (150.1, 2.2)) e(ra, dec) JOIN dr9 t ON q3c_join(e.ra, e.dec, t.ra, t.dec, 1.0 / 3600)"),
    "q3c_poly_query": ("q3c_poly_query(ra, dec, [ra1, dec1, ra2, dec2, ...])", "Q3C 2.0: true inside the polygon "
                       "with great-circle edges through the vertices (deg), by the even-odd rule on the gnomonic "
                       "projection onto the point's cube face (Q3C refuses polygons wider than ~23 deg)",
                       "SELECT count(*) FROM dr9 WHERE q3c_poly_query(ra, dec, [150.0, 2.0, 150.2, 2.0, 150.1, 2.2])"),
    "q3c_ang2ipix": ("q3c_ang2ipix(ra, dec)", "Q3C 2.0's pixel at nside 2^30: cube face * 2^60 + the face's x and y "
                     "cells bit-interleaved (BIGINT); NULL for a non-finite position",
                     "SELECT q3c_ang2ipix(ra, dec) FROM dr9 LIMIT 5"),
    "q3c_ellipse_query": ("q3c_ellipse_query(ra, dec, ra0, dec0, maj_ax, axis_ratio, pa)",
                          "Q3C 2.0: true inside the ellipse centred on (ra0, dec0) with semi-major axis maj_ax deg, "
                          "position angle pa deg east of north, in the tangent plane at the centre: semi-axes "
                          "tan(maj_ax) and axis_ratio * tan(maj_ax); |axis_ratio| > 1 selects nothing",
                          "SELECT count(*) FROM dr9 WHERE q3c_ellipse_query(ra, dec, 150.1, 2.2, 0.05, 0.5, 30)"),
}


#: (unit, description) of the hosted catalog's derived columns (for units and TAP_SCHEMA).
DERIVED_INFO: dict[str, tuple[str, str]] = {
    "ls_id": ("", "unique source id release * 2^40 + brickid * 2^16 + objid (Astro Data Lab's ls_id)"),
    "htm9": ("", "Hierarchical Triangular Mesh trixel id at depth 9 (Astro Data Lab's htm9)"),
    "elon": ("deg", "ecliptic longitude, mean ecliptic and equinox J2000"),
    "elat": ("deg", "ecliptic latitude, mean ecliptic and equinox J2000"),
}


def install(con) -> None:
    """Register the Arrow functions (the macros are created by :func:`macros.install`)."""
    from duckdb.sqltypes import BIGINT, DOUBLE

    con.create_function("htm9", _arrow_htm9, [DOUBLE, DOUBLE], BIGINT, type="arrow", side_effects=False,
                        null_handling="special")  # NULL in (as NaN) and out


def derived_columns(have: set[str]) -> list[tuple[str, str]]:
    """(name, SQL expression) of the hosted catalog's derived columns a catalog with ``have`` supports."""
    out: list[tuple[str, str]] = []
    if {"release", "brickid", "objid"} <= have:
        out.append(("ls_id", "ls_id(release, brickid, objid)"))
    if {"ra", "dec"} <= have:
        out += [("htm9", "htm9(ra, dec)"), ("elon", "elon(ra, dec)"), ("elat", "elat(ra, dec)")]
    return out
