"""The Q3C functions of the hosted catalog (``q3c_ang2ipix``, ``q3c_dist``, ``q3c_radial_query``,
``q3c_join``, ``q3c_ellipse_query``, ``q3c_poly_query``) as DuckDB macros that give the answers of
the Q3C 2.0.0 PostgreSQL extension (checked row by row in ``tests/test_q3c_reference.py``).

They follow Q3C's own arithmetic: the cube face and face coordinates of ``q3c_ang2ipix`` (RA
unwrapped into [0, 360], Dec clamped to [-90, 90], x and y cells at nside 2^30 bit-interleaved),
the haversine-like ``q3c_sindist`` with a strict ``<`` for the circles, the ellipse in the
tangent plane at its centre (semi-axes tan(maj) and axis_ratio * tan(maj); |axis_ratio| > 1
selects nothing), and the even-odd (crossing-number) rule for polygons on the gnomonic
projection onto the point's cube face. A negative radius or semi-major axis acts as its absolute
value, as in Q3C. Where Q3C raises an error (a non-finite centre or radius), the queries are false.

Non-finite inputs: ``q3c_ang2ipix`` and ``q3c_dist`` give NULL (Q3C: NULL and NaN; DuckDB and Spark
order NaN above every number, so a NaN distance would pass ``> x`` tests), the queries give false
for a non-finite point (as Q3C). Comparisons are written ``expression < 0`` so that a NaN
anywhere makes them false in DuckDB and Spark too. All angles in degrees.

Everything but ``q3c_poly_query`` (list lambdas) is also valid Spark SQL after
:func:`legacylake.query.spark.to_spark`.
"""

from __future__ import annotations

#: Largest finite double: ``abs(v) <= MAX`` is false for NaN and +-inf in DuckDB and Spark.
_MAX_FLOAT = "1.7976931348623157e308"
#: Q3C's cube face side in cells (2^30) and the pixel offset of a face (nside^2 = 2^60).
NSIDE = 1 << 30
_FACE_STEP = NSIDE * NSIDE
#: Slack (deg) of the Dec bands in front of the exact tests (they only let DuckDB skip row groups).
_BAND_SLACK = "1e-9"


def _spread_table() -> list[int]:
    """The 8 bits of 0..255 moved to the even bit positions (Q3C's ``xbits``, one byte wide)."""
    return [sum(((b >> k) & 1) << (2 * k) for k in range(8)) for b in range(256)]


def _spread_sql() -> str:
    """SQL of the 30-bit ``ix`` with its bits moved to the even positions, a byte at a time
    (the INTEGER index is for Spark's ``element_at``)."""
    t = "[" + ", ".join(map(str, _spread_table())) + "]"
    byte = [f"{t}[(ix{d} % 256 + 1)::INTEGER]" for d in ("", " // 256", " // 65536", " // 16777216")]
    return f"({byte[0]} + {byte[1]} * 65536 + {byte[2]} * 4294967296 + {byte[3]} * 281474976710656)"


def _pixel_macros() -> list[tuple[str, str, str]]:
    """Q3C's cube face of (ra, dec) and the face coordinates x, y in [-1, 1] of (lon, lat) on a face."""
    inv_tan = "(1.0 / tan(radians(lat)))"
    eq = "radians(lon - 90.0 * (face - 1))"
    return [
        ("_q3c_sq", "v", "(v * v)"),
        ("_q3c_ok", "v", f"(abs(v) <= {_MAX_FLOAT})"),
        # v, or NULL if not finite: NULL then flows through the arithmetic (an outer CASE would
        # stop DuckDB from evaluating the repeated subexpressions once: ~10x slower)
        ("_q3c_fin", "v", "CASE WHEN _q3c_ok(v) THEN v END"),
        # Q3C's UNWRAP_RA (360 stays 360, -360 becomes 360) and its Dec clamp
        ("_q3c_ra", "ra", "CASE WHEN ra < 0 THEN ra % 360.0 + 360.0 WHEN ra > 360 THEN ra % 360.0 ELSE ra END"),
        ("_q3c_dec", "dec", "CASE WHEN dec > 90 THEN 90.0 WHEN dec < -90 THEN -90.0 ELSE dec END"),
        # equatorial face 0..3 (Q3C's face_num before its ++); faces 0 and 5 where |y| > 1 on it
        ("_q3c_eqf", "ra", "floor(((ra + 45.0) / 90.0) % 4.0)::INTEGER"),
        ("_q3c_yeq", "ra, dec", "(tan(radians(dec)) / cos(radians(ra - 90.0 * _q3c_eqf(ra))))"),
        ("_q3c_face", "ra, dec",
         "CASE WHEN _q3c_yeq(ra, dec) > 1 THEN 0 WHEN _q3c_yeq(ra, dec) < -1 THEN 5 "
         "WHEN dec IS NOT NULL THEN _q3c_eqf(ra) + 1 END"),
        ("_q3c_x", "lon, lat, face", f"CASE face WHEN 0 THEN sin(radians(lon)) * {inv_tan} "
                                     f"WHEN 5 THEN sin(radians(lon)) * -{inv_tan} ELSE tan({eq}) END"),
        ("_q3c_y", "lon, lat, face", f"CASE face WHEN 0 THEN cos(radians(lon)) * -{inv_tan} "
                                     f"WHEN 5 THEN cos(radians(lon)) * -{inv_tan} "
                                     f"ELSE tan(radians(lat)) / cos({eq}) END"),
        # Q3C truncates (v + 1) / 2 * nside and moves nside to nside - 1: the same for v >= -1 - 2^-30
        # (a NULL v gives 0 here, but then the face is NULL: a NULL ra or dec gives a NULL pixel)
        ("_q3c_cell", "v", f"least(greatest(floor((v + 1.0) / 2.0 * {float(NSIDE)!r}), 0), {NSIDE - 1})::BIGINT"),
        ("_q3c_spread", "ix", _spread_sql()),
        ("_q3c_pix", "face, x, y",
         f"(face * {_FACE_STEP} + _q3c_spread(_q3c_cell(x)) + 2 * _q3c_spread(_q3c_cell(y)))"),
        ("_q3c_ipix", "ra, dec", "_q3c_pix(_q3c_face(ra, dec), _q3c_x(ra, dec, _q3c_face(ra, dec)), "
                                 "_q3c_y(ra, dec, _q3c_face(ra, dec)))"),
        ("q3c_ang2ipix", "ra, dec", "_q3c_ipix(_q3c_ra(_q3c_fin(ra::DOUBLE)), _q3c_dec(_q3c_fin(dec::DOUBLE)))"),
    ]


def _distance_macros() -> list[tuple[str, str, str]]:
    """Q3C's sin^2(distance / 2) and what is built on it: q3c_dist, q3c_radial_query, q3c_join."""
    within = ("_q3c_sindist(ra1::DOUBLE, dec1::DOUBLE, ra2::DOUBLE, dec2::DOUBLE) - "
              "_q3c_sq(sin(radians(radius::DOUBLE) / 2.0)) < 0")
    return [
        ("_q3c_sindist", "ra1, dec1, ra2, dec2",
         "(_q3c_sq(sin(radians((ra1 - ra2) / 2.0))) * (_q3c_sq(cos(radians((dec1 + dec2) / 2.0))) - "
         "_q3c_sq(sin(radians((dec1 - dec2) / 2.0)))) + _q3c_sq(sin(radians((dec1 - dec2) / 2.0))))"),
        ("q3c_dist", "ra1, dec1, ra2, dec2",
         "degrees(2.0 * asin(sqrt(_q3c_sindist(_q3c_fin(ra1::DOUBLE), _q3c_fin(dec1::DOUBLE), _q3c_fin(ra2::DOUBLE), "
         "_q3c_fin(dec2::DOUBLE)))))"),
        ("_q3c_within", "ra1, dec1, ra2, dec2, radius", f"({within})"),
        ("q3c_radial_query", "ra, dec, ra0, dec0, radius",
         f"(dec BETWEEN dec0 - abs(radius) - {_BAND_SLACK} AND dec0 + abs(radius) + {_BAND_SLACK} "
         "AND _q3c_within(ra, dec, ra0, dec0, radius))"),
        ("q3c_join", "ra1, dec1, ra2, dec2, radius",
         f"(dec2 BETWEEN dec1 - abs(radius) - {_BAND_SLACK} AND dec1 + abs(radius) + {_BAND_SLACK} "
         "AND _q3c_within(ra1, dec1, ra2, dec2, radius))"),
    ]


def _ellipse_macros() -> list[tuple[str, str, str]]:
    """The ellipse in the tangent plane at (ra0, dec0): (xi, eta) times the cosine c of the distance."""
    c = ("(sin(radians(dec0)) * sin(radians(dec)) + cos(radians(dec0)) * cos(radians(dec)) * "
         "cos(radians(ra - ra0)))")
    xi = "(cos(radians(dec)) * sin(radians(ra - ra0)))"
    eta = "(cos(radians(dec0)) * sin(radians(dec)) - sin(radians(dec0)) * cos(radians(dec)) * cos(radians(ra - ra0)))"
    major = f"({xi} * sin(radians(pa)) + {eta} * cos(radians(pa)))"
    minor = f"({xi} * cos(radians(pa)) - {eta} * sin(radians(pa)))"
    return [
        # (major / tan(maj))^2 + (minor / (ratio tan(maj)))^2 < c^2, multiplied by (ratio tan(maj))^2
        ("_q3c_in_ellipse", "ra, dec, ra0, dec0, maj, ratio, pa",
         f"(-{c} <= 0 AND ratio * ratio - 1 <= 0 AND _q3c_sq(ratio * {major}) + _q3c_sq({minor}) - "
         f"_q3c_sq(ratio * tan(radians(maj)) * {c}) < 0)"),
        ("q3c_ellipse_query", "ra, dec, ra0, dec0, maj_ax, axis_ratio, pa",
         f"(dec BETWEEN dec0 - abs(maj_ax) - {_BAND_SLACK} AND dec0 + abs(maj_ax) + {_BAND_SLACK} AND "
         "_q3c_in_ellipse(ra::DOUBLE, dec::DOUBLE, ra0::DOUBLE, dec0::DOUBLE, maj_ax::DOUBLE, axis_ratio::DOUBLE, "
         "pa::DOUBLE))"),
    ]


def _poly_macros() -> list[tuple[str, str, str]]:
    """Even-odd rule on the point's cube face; ``poly`` is [ra1, dec1, ra2, dec2, ...] (deg).

    One-element ``list_transform`` calls bind the face and the projected vertices to lambda
    names, so that macro expansion does not repeat their trigonometry for every vertex. A cap
    around the vertices (its centre the mean of their unit vectors; DuckDB folds it to constants
    for a constant polygon) holds the whole polygon while it is smaller than a hemisphere: a Dec
    band and a distance test on it skip row groups and rows before the exact test."""
    lon, lat = "poly[2 * i + 1]", "poly[2 * i + 2]"
    a, b = "v[i + 1]", "v[(i + 1) % len(v) + 1]"
    each = "list_transform(range(len(poly) // 2), lambda i: {})"
    unit = [f"cos(radians({lat})) * cos(radians({lon}))", f"cos(radians({lat})) * sin(radians({lon}))",
            f"sin(radians({lat}))"]
    sx, sy, sz = (f"list_sum({each.format(u)})" for u in unit)
    radius = "degrees(2 * asin(sqrt(_q3c_poly_cap(poly))))"
    vertex = f"[_q3c_x({lon}, {lat}, face), _q3c_y({lon}, {lat}, face), _q3c_poly_behind({lon}, {lat}, face)::INTEGER]"
    return [
        ("_q3c_poly_cra", "poly", f"degrees(atan2({sy}, {sx}))"),
        ("_q3c_poly_cdec", "poly", f"degrees(atan2({sz}, sqrt(_q3c_sq({sx}) + _q3c_sq({sy}))))"),
        # sin^2(r / 2) of the cap radius r: the farthest vertex, with a little slack
        ("_q3c_poly_cap", "poly", "list_max(" + each.format(
            f"_q3c_sindist({lon}, {lat}, _q3c_poly_cra(poly), _q3c_poly_cdec(poly))") + ") * (1 + 1e-9) + 1e-15"),
        ("_q3c_poly_near", "ra, dec, poly",
         f"(_q3c_poly_cap(poly) > 0.5 OR (dec BETWEEN _q3c_poly_cdec(poly) - {radius} - {_BAND_SLACK} AND "
         f"_q3c_poly_cdec(poly) + {radius} + {_BAND_SLACK} AND "
         "_q3c_sindist(ra, dec, _q3c_poly_cra(poly), _q3c_poly_cdec(poly)) - _q3c_poly_cap(poly) < 0))"),
        # a vertex the face cannot project (behind its hemisphere): Q3C refuses such polygons as too large
        ("_q3c_poly_behind", "lon, lat, face",
         "CASE face WHEN 0 THEN lat <= 0 WHEN 5 THEN lat >= 0 ELSE cos(radians(lon - 90.0 * (face - 1))) <= 0 END"),
        ("_q3c_poly_cross", "x0, y0, xa, ya, xb, yb",
         "((y0 <= ya) = (y0 > yb) AND x0 - xa < (y0 - ya) * (xb - xa) / (yb - ya))"),
        # v: the vertices on the face as [x, y, 1 if behind the face else 0]
        ("_q3c_poly_count", "x0, y0, v",
         f"(list_sum(list_transform(v, lambda w: w[3])) = 0 AND list_sum(list_transform(range(len(v)), lambda i: "
         f"_q3c_poly_cross(x0, y0, {a}[1], {a}[2], {b}[1], {b}[2])::INTEGER)) % 2 = 1)"),
        ("_q3c_poly_face", "ra, dec, face, poly",
         f"list_transform([{each.format(vertex)}], "
         "lambda v: _q3c_poly_count(_q3c_x(ra, dec, face), _q3c_y(ra, dec, face), v))[1]"),
        ("_q3c_poly_at", "ra, dec, poly",
         "list_transform([_q3c_face(ra, dec)], lambda face: _q3c_poly_face(ra, dec, face, poly))[1]"),
        ("q3c_poly_query", "ra, dec, poly",
         "(_q3c_ok(ra) AND _q3c_ok(dec) AND _q3c_poly_near(ra, dec, poly::DOUBLE[]) AND "
         "_q3c_poly_at(_q3c_ra(_q3c_fin(ra::DOUBLE)), _q3c_dec(_q3c_fin(dec::DOUBLE)), poly::DOUBLE[]))"),
    ]


def duckdb_macros() -> list[tuple[str, str, str]]:
    """(name, parameters, body) of the Q3C macros, in dependency order."""
    return _pixel_macros() + _distance_macros() + _ellipse_macros() + _poly_macros()
