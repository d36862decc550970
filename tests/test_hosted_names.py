"""The hosted catalog's names (issue 17, item 3): ls_id, htm9, elon/elat, the q3c_* functions, and
derived columns on every spatial path; checked against direct formulas, astropy and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from _query_lake import query_lake  # noqa: F401  (fixture)

from legacylake.errors import UserError
from legacylake.query.run import query
from legacylake.query.spatial.regions import Region
from legacylake.query.spatial.search import cone_search
from legacylake.query.sql import hosted, q3c
from legacylake.query.sql.connect import connect


@pytest.fixture(scope="module")
def con(query_lake):
    c = connect(query_lake)
    yield c
    c.close()


@pytest.fixture(scope="module")
def dr8_lake(shared_data, tmp_path_factory):
    """The survey's real DR8 tractor files, ingested."""
    from legacylake.etl import build

    src = shared_data / "desitarget"
    lake = tmp_path_factory.mktemp("dr8") / "lake"
    s = build([str(src / f) for f in ("tractor-3301m002.fits", "tractor-3301m007.fits", "tractor-3303p000.fits")],
              str(lake), "dr8", workers=1)
    assert s.ok and s.total_rows == 18
    return lake


def _rows(con, sql):
    t = query(con, sql)
    return {k: t[k].to_numpy(zero_copy_only=False) for k in t.column_names}


# ---------------------------------------------------------------- ls_id, elon/elat, htm9

def test_ls_id_is_the_hosted_formula(con, dr8_lake):
    for c, cat in ((con, "dr9"), (connect(dr8_lake), "dr8")):
        r = _rows(c, f"SELECT release, brickid, objid, ls_id, ls_id(release, brickid, objid) AS f FROM {cat}_derived")
        want = r["release"].astype(np.int64) * 2**40 + r["brickid"].astype(np.int64) * 2**16 + r["objid"].astype(np.int64)
        assert len(want) > 0 and np.array_equal(r["ls_id"], want) and np.array_equal(r["f"], want)
        assert r["ls_id"].dtype == np.int64
        assert len(np.unique(want)) == len(want)


def test_elon_elat_match_astropy_barycentric_mean_ecliptic(con, dr8_lake):
    """A fixed rotation, so astropy's BarycentricMeanEcliptic(J2000) (geocentric *true* ecliptic
    adds nutation and a time dependence, which a catalog column cannot have)."""
    import astropy.units as u
    from astropy.coordinates import BarycentricMeanEcliptic, SkyCoord

    for c, cat in ((con, "dr9"), (connect(dr8_lake), "dr8")):
        r = _rows(c, f"SELECT ra, dec, elon, elat FROM {cat}_derived")
        e = SkyCoord(r["ra"] * u.deg, r["dec"] * u.deg).transform_to(BarycentricMeanEcliptic(equinox="J2000"))
        dlon = (r["elon"] - e.lon.deg + 180.0) % 360.0 - 180.0
        assert np.max(np.abs(dlon * np.cos(np.radians(r["dec"])))) < 1e-9
        assert np.max(np.abs(r["elat"] - e.lat.deg)) < 1e-9
        assert np.all((r["elon"] >= 0) & (r["elon"] < 360))


def _htm_triangle(trixel: int, depth: int) -> np.ndarray:
    """Vertices of an HTM trixel from its id, descending the mesh digit by digit."""
    V = [np.array(v, float) for v in ([0, 0, 1], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 0, -1])]
    base = {8: (1, 5, 2), 9: (2, 5, 3), 10: (3, 5, 4), 11: (4, 5, 1),
            12: (1, 0, 4), 13: (4, 0, 3), 14: (3, 0, 2), 15: (2, 0, 1)}
    a, b, c = (V[i] for i in base[trixel >> (2 * depth)])
    for level in range(depth - 1, -1, -1):
        k = (trixel >> (2 * level)) & 3
        m = [(b + c) / np.linalg.norm(b + c), (a + c) / np.linalg.norm(a + c), (a + b) / np.linalg.norm(a + b)]
        a, b, c = [(a, m[2], m[1]), (b, m[0], m[2]), (c, m[1], m[0]), (m[0], m[1], m[2])][k]
    return np.array([a, b, c])


def test_htm9_trixel_holds_the_point(con, dr8_lake):
    rng = np.random.default_rng(5)
    ra = np.r_[rng.uniform(0, 360, 300), 45.0, 45.0, 0.0, 10.0]
    dec = np.r_[np.degrees(np.arcsin(rng.uniform(-1, 1, 300))), -35.0, 35.0, 90.0, -90.0]
    ids = hosted.htm_id(ra, dec, 9)
    assert np.all((ids >= 8 * 4**9) & (ids < 16 * 4**9))
    assert ids[300] >> 18 == 8 and ids[301] >> 18 == 15  # S0 and N3 hold (45, -35) and (45, 35)
    p = hosted.unit_vectors(ra, dec)
    for i in range(len(ra)):
        t = _htm_triangle(int(ids[i]), 9)
        sides = [np.dot(np.cross(t[j], t[(j + 1) % 3]), p[i]) for j in range(3)]
        assert min(sides) > -1e-12, (ra[i], dec[i], ids[i])
        # depth-9 trixel sides are ~90 deg / 2^9 = 0.18 deg (up to ~1.5x that)
        assert np.degrees(np.arccos(np.clip(t @ p[i], -1, 1))).max() < 0.3
    for c, cat in ((con, "dr9"), (connect(dr8_lake), "dr8")):
        r = _rows(c, f"SELECT ra, dec, htm9 FROM {cat}_derived")
        assert np.array_equal(r["htm9"], hosted.htm_id(r["ra"], r["dec"], 9))
    bad = query(con, "SELECT htm9('nan'::DOUBLE, 1.0) AS a, htm9(1.0, 'inf'::DOUBLE) AS b, htm9(NULL, 1.0) AS c")
    assert bad.to_pylist() == [{"a": None, "b": None, "c": None}]  # NULL, not an error


# ---------------------------------------------------------------- q3c_*

def test_q3c_poly_query_matches_polygon_search(con, dr8_lake):
    verts = [359.7, -0.2, 0.3, -0.25, 0.2, 0.2, 359.8, 0.1]
    r = _rows(con, f"SELECT ra, dec, q3c_poly_query(ra, dec, {verts}) AS inside FROM dr9")
    want = Region.polygon(verts).contains(r["ra"], r["dec"])
    assert 0 < want.sum() < len(want) and np.array_equal(r["inside"], want)
    n = query(con, f"SELECT count(*) AS n FROM dr9 WHERE q3c_poly_query(ra, dec, {verts})")["n"][0].as_py()
    assert n == query(con, "SELECT count(*) AS n FROM polygon('dr9', " + ", ".join(map(str, verts)) + ")")["n"][0].as_py()
    c8 = connect(dr8_lake)
    r8 = _rows(c8, "SELECT ra, dec FROM dr8")
    lo, hi = float(r8["ra"].min()), float(r8["ra"].max())
    mid = float(np.median(r8["dec"]))
    v8 = [lo - 0.01, mid - 1, hi + 0.01, mid - 1, hi + 0.01, mid, lo - 0.01, mid]
    got = _rows(c8, f"SELECT q3c_poly_query(ra, dec, {v8}) AS i FROM dr8")["i"]
    assert np.array_equal(got, Region.polygon(v8).contains(r8["ra"], r8["dec"]))


def test_q3c_ellipse_query_matches_a_tan_projection(con):
    """Against astropy's TAN (gnomonic) WCS: projected offsets in deg are degrees(tan(angle)); the
    semi-axes are tan(a) and ratio * tan(a), as in Q3C."""
    from astropy.wcs import WCS

    ra0, dec0, a, ratio, pa = 0.05, 0.02, 0.2, 0.4, 30.0
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = [0, 0]
    w.wcs.cdelt = [1.0, 1.0]
    r = _rows(con, f"SELECT ra, dec, q3c_ellipse_query(ra, dec, {ra0}, {dec0}, {a}, {ratio}, {pa}) AS i FROM dr9 "
                   "WHERE abs(dec) < 1")
    x, y = w.wcs_world2pix(r["ra"], r["dec"], 1)  # with crpix 0, cdelt 1: the projected offsets, deg
    xi, eta = np.radians(x), np.radians(y)  # x grows to the east (cdelt1 > 0), y to the north
    u = xi * np.sin(np.radians(pa)) + eta * np.cos(np.radians(pa))
    v = xi * np.cos(np.radians(pa)) - eta * np.sin(np.radians(pa))
    want = (u / np.tan(np.radians(a))) ** 2 + (v / (ratio * np.tan(np.radians(a)))) ** 2 < 1
    assert 0 < want.sum() < len(want)
    assert np.array_equal(r["i"], want)
    # a circle (ratio 1) is the cone up to the tan/angle difference (< 1e-6 deg at 0.2 deg)
    circ = _rows(con, f"SELECT count(*) AS n FROM dr9 WHERE q3c_ellipse_query(ra, dec, {ra0}, {dec0}, 0.1, 1.0, 0)")
    assert circ["n"][0] == cone_search(con_lake(con), ra0, dec0, 0.1, columns=["ra"]).num_rows


def con_lake(con):
    from legacylake.query.sql.connect import lake_of

    return lake_of(con)[0]


def test_q3c_join_is_a_range_join_matching_brute_force(con):
    import pyarrow as pa

    lake = _rows(con, "SELECT ra, dec, brickid, objid FROM dr9 WHERE abs(dec) < 1")
    rng = np.random.default_rng(2)
    pick = rng.choice(len(lake["ra"]), 40, replace=False)
    ext = pa.table({"xid": np.arange(40), "ra": (lake["ra"][pick] + rng.normal(0, 2e-4, 40)) % 360,
                    "dec": lake["dec"][pick] + rng.normal(0, 2e-4, 40)})
    con.register("ext", ext)
    sql = ("SELECT e.xid, t.brickid, t.objid FROM ext e JOIN dr9 t "
           "ON q3c_join(e.ra, e.dec, t.ra, t.dec, 3.0 / 3600)")
    plan = "\n".join(r[1] for r in con.sql("EXPLAIN " + sql).fetchall())
    assert "CROSS_PRODUCT" not in plan and "NESTED_LOOP" not in plan
    got = {tuple(r) for r in con.sql(sql).fetchall()}
    d = np.degrees(np.arccos(np.clip(hosted.unit_vectors(ext["ra"].to_numpy(), ext["dec"].to_numpy())
                                     @ hosted.unit_vectors(lake["ra"], lake["dec"]).T, -1, 1)))
    i, j = np.nonzero(d <= 3.0 / 3600)
    want = {(int(a), int(lake["brickid"][b]), int(lake["objid"][b])) for a, b in zip(i, j)}
    assert len(want) >= 40 and got == want
    # through query(): the same join runs as the crossmatch (xmatch_all cells + a key join)
    from legacylake.query.sql.q3cjoin import rewrite

    assert "xmatch_all('ext', 'dr9'" in rewrite(sql, {"dr9"}).lower()
    got2 = query(con, sql)
    assert {(int(a), int(b), int(c)) for a, b, c in zip(got2["xid"].to_numpy(), got2["brickid"].to_numpy(),
                                                         got2["objid"].to_numpy())} == want
    flipped = query(con, "SELECT e.xid, t.objid FROM dr9_derived t JOIN ext e "
                         "ON q3c_join(t.ra, t.dec, e.ra, e.dec, 3.0 / 3600)")
    assert flipped.num_rows == len(want)
    con.unregister("ext")


def test_q3c_ang2ipix_faces_and_locality(con):
    """Faces 0 (north), 1-4 (equator from RA 0), 5 (south); bits: x cell in the even positions.
    (tests/test_q3c_reference.py compares the values with PostgreSQL's Q3C.)"""
    import pyarrow as pa

    n2 = q3c.NSIDE ** 2
    r = _rows(con, "SELECT q3c_ang2ipix(0.0, 90.0) AS n, q3c_ang2ipix(0.0, -90.0) AS s, "
                   "q3c_ang2ipix(0.0, 0.0) AS e0, q3c_ang2ipix(90.0, 0.0) AS e1, q3c_ang2ipix(180.0, 10.0) AS e2, "
                   "q3c_ang2ipix(270.0, -10.0) AS e3")
    assert [int(r[k][0]) // n2 for k in ("n", "s", "e0", "e1", "e2", "e3")] == [0, 5, 1, 2, 3, 4]
    # the cube centre of face 1 is the middle cell x = y = nside / 2 = 2^29: bits 58 (x) and 59 (y)
    assert int(r["e0"][0]) % n2 == 3 * 2**58
    # neighbours 1e-6 deg apart share the leading bits; all values are in range
    rng = np.random.default_rng(1)
    ra, dec = rng.uniform(0, 360, 500), np.degrees(np.arcsin(rng.uniform(-1, 1, 500)))
    con.register("pix", pa.table({"ra": ra, "dec": dec}))
    p = _rows(con, "SELECT q3c_ang2ipix(ra, dec) AS a, q3c_ang2ipix(ra + 1e-6, dec) AS b FROM pix")
    con.unregister("pix")
    a, b = p["a"], p["b"]
    assert np.all((a >= 0) & (a < 6 * n2)) and np.mean((a >> 30) == (b >> 30)) > 0.95


# ---------------------------------------------------------------- derived columns on the spatial paths

def test_cone_box_polygon_accept_derived(con, query_lake):
    want = _rows(con, "SELECT objid, brickid, mag_g, ls_id, htm9 FROM dr9_derived "
                      "WHERE q3c_radial_query(ra, dec, 359.95, 0.05, 0.1) ORDER BY ls_id")
    got = _rows(con, "SELECT objid, brickid, mag_g, ls_id, htm9 FROM cone('dr9_derived', 359.95, 0.05, 0.1) ORDER BY ls_id")
    assert len(want["ls_id"]) > 0
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    b = _rows(con, "SELECT count(mag_r) AS n, count(*) AS m FROM box('dr9_derived', 359.9, 0.1, -0.1, 0.1)")
    assert b["m"][0] > 0 and b["n"][0] <= b["m"][0]
    p = _rows(con, "SELECT elon FROM polygon('dr9_derived', 359.9, -0.1, 0.1, -0.1, 0.0, 0.1)")
    assert len(p["elon"]) > 0
    with pytest.raises(UserError, match="unknown catalog 'dr10_derived'.*dr9_derived"):
        query(con, "SELECT * FROM cone('dr10_derived', 0, 0, 0.1)")


def test_python_and_cli_columns_accept_derived(query_lake, tmp_path, capsys):
    t = cone_search(query_lake, 359.95, 0.05, 0.1, columns=["ra", "dec", "mag_r", "ls_id"])
    ref = cone_search(query_lake, 359.95, 0.05, 0.1, columns=["ra", "dec", "flux_r", "release", "brickid", "objid"])
    f = ref["flux_r"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(f > 0, 22.5 - 2.5 * np.log10(f), np.nan)
    got = t["mag_r"].to_numpy(zero_copy_only=False).astype(float)
    np.testing.assert_allclose(got, mag, rtol=1e-6, equal_nan=True)
    assert t.column_names == ["ra", "dec", "mag_r", "ls_id"]
    w = cone_search(query_lake, 359.95, 0.05, 0.1, columns=["ra", "mag_r"], where="mag_r < 24")
    assert w.num_rows == int(np.sum(mag < 24)) > 0
    from legacylake.main import main

    out = tmp_path / "c.parquet"
    assert main(["cone", "359.95", "0.05", "0.1", "--lake", str(query_lake), "--columns", "ra,dec,mag_r",
                 "--out", str(out)]) == 0
    import pyarrow.parquet as pq

    pt = pq.read_table(out)
    assert pt.column_names == ["ra", "dec", "mag_r"] and pt.num_rows == t.num_rows
    assert pt.schema.field("mag_r").metadata[b"unit"] == b"mag"
    assert main(["cone", "0", "0", "0.1", "--lake", str(query_lake), "--columns", "ra,nope"]) != 0
    assert "unknown column 'nope'" in capsys.readouterr().err
