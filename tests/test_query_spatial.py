"""Cone/box/polygon search against brute force (RA wrap, poles), pruning counts, SQL expansion."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import SkyCoord

from _query_lake import query_lake  # noqa: F401  (fixture)
from legacylake.errors import UserError
from legacylake.query import Region, box_search, catalogs, cone_search, polygon_search, query, search
from legacylake.query import connect
from legacylake.query.spatial.regions import ranges29


@pytest.fixture(scope="module")
def everything(query_lake):
    cat = catalogs(query_lake)["dr9"]
    t = pa.concat_tables([pq.read_table(f, columns=["_healpix_29", "release", "brickid", "objid", "ra", "dec"])
                          for f in cat.files])
    return {n: t[n].to_numpy() for n in t.column_names}


def keys(d) -> set:
    return set(zip(np.asarray(d["brickid"]).tolist(), np.asarray(d["objid"]).tolist()))


def brute(everything, mask) -> set:
    return set(zip(everything["brickid"][mask].tolist(), everything["objid"][mask].tolist()))


CONES = [(0.0, 0.0, 0.2), (359.95, 0.05, 0.1), (0.05, -0.1, 0.15), (123.0, 89.9, 0.3), (0.0, 90.0, 0.2),
         (200.0, -89.95, 0.1), (0.0, -90.0, 0.25), (180.0, 0.0, 0.1)]


@pytest.mark.parametrize("ra,dec,r", CONES)
def test_cone_matches_brute_force(query_lake, everything, ra, dec, r):
    stats: dict = {}
    out = cone_search(query_lake, ra, dec, r, catalog="dr9", columns=["brickid", "objid", "ra", "dec"], stats=stats)
    sep = SkyCoord(everything["ra"] * u.deg, everything["dec"] * u.deg).separation(SkyCoord(ra * u.deg, dec * u.deg)).deg
    inside = sep <= r
    got = keys({n: out[n].to_numpy() for n in ("brickid", "objid")})
    # rows within 1e-9 deg of the edge may go either way (haversine vs astropy's formula)
    edge = np.abs(sep - r) < 1e-9
    assert brute(everything, inside & ~edge) <= got <= brute(everything, inside | edge)
    assert stats["rows"] == out.num_rows
    if inside.any():
        assert stats["files_read"] >= 1


def test_pruning_reads_few_files_and_row_groups(query_lake):
    stats: dict = {}
    out = cone_search(query_lake, 0.01, 0.01, 1 / 60, catalog="dr9", stats=stats)
    assert out.num_rows > 0
    assert stats["files_read"] < stats["files_total"]
    assert stats["row_groups_read"] < stats["row_groups_in_files"]
    assert stats["rows_scanned"] < 3000
    assert out.column_names[0] == "_healpix_29"


@pytest.mark.parametrize("box", [(359.8, 0.2, -0.2, 0.1), (0.0, 0.3, -0.3, 0.3), (0, 360, 89.7, 90.0),
                                 (100, 250, -90.0, -89.8), (350, 10, -0.05, 0.05)])
def test_box_matches_brute_force(query_lake, everything, box):
    ra1, ra2, d1, d2 = box
    out = box_search(query_lake, *box, columns="brickid,objid")
    ra, dec = np.mod(everything["ra"], 360), everything["dec"]
    if ra2 - ra1 >= 360:
        in_ra = np.ones(len(ra), bool)
    elif ra1 <= ra2:
        in_ra = (ra >= ra1) & (ra <= ra2)
    else:
        in_ra = (ra >= ra1) | (ra <= ra2)
    mask = in_ra & (dec >= d1) & (dec <= d2)
    assert mask.sum() > 0
    assert keys({n: out[n].to_numpy() for n in ("brickid", "objid")}) == brute(everything, mask)


POLYGONS = [
    [(359.8, -0.2), (0.2, -0.2), (0.2, 0.2), (359.8, 0.2)],            # square across RA 0
    [(359.7, -0.25), (0.3, -0.25), (0.0, 0.0), (0.3, 0.25), (359.7, 0.25)],  # concave (a notch)
    [(0.0, 89.8), (120.0, 89.8), (240.0, 89.8)],                     # around the north pole
    [(10.0, -89.85), (100.0, -89.7), (200.0, -89.85), (300.0, -89.7)],  # around the south pole
]


def _brute_polygon(verts, ra, dec):
    """Independent test: sum of the angles subtended by the edges (via astropy unit vectors)."""
    p = SkyCoord(ra * u.deg, dec * u.deg).cartesian.xyz.value.T
    v = SkyCoord([a for a, _ in verts] * u.deg, [b for _, b in verts] * u.deg).cartesian.xyz.value.T
    total = np.zeros(len(p))
    for i in range(len(v)):
        a, b = v[i], v[(i + 1) % len(v)]
        ta = a[None, :] - (p @ a)[:, None] * p
        tb = b[None, :] - (p @ b)[:, None] * p
        total += np.arctan2(np.einsum("ij,ij->i", np.cross(ta, tb), p), np.einsum("ij,ij->i", ta, tb))
    centre = v.sum(axis=0) / np.linalg.norm(v.sum(axis=0))
    return (np.abs(total) > np.pi) & (p @ centre > 0)


@pytest.mark.parametrize("verts", POLYGONS)
def test_polygon_matches_brute_force(query_lake, everything, verts):
    out = polygon_search(query_lake, verts, columns=["brickid", "objid"])
    mask = _brute_polygon(verts, everything["ra"], everything["dec"])
    assert mask.sum() > 0
    assert keys({n: out[n].to_numpy() for n in ("brickid", "objid")}) == brute(everything, mask)


def test_sql_spatial_tables_match_python(query_lake):
    con = connect(query_lake)
    try:
        for sql, region in [
            ("SELECT brickid, objid FROM cone('dr9', 359.95, 0.05, 0.1)", Region.cone(359.95, 0.05, 0.1)),
            ("SELECT brickid, objid FROM box('dr9', 359.8, 0.2, -0.2, 0.1)", Region.box(359.8, 0.2, -0.2, 0.1)),
            ("SELECT brickid, objid FROM polygon('dr9', 0, 89.8, 120, 89.8, 240, 89.8)",
             Region.polygon([(0, 89.8), (120, 89.8), (240, 89.8)])),
        ]:
            got = query(con, sql)
            ref = search(query_lake, region, columns=["brickid", "objid"])
            assert got.num_rows > 0
            assert keys({n: got[n].to_numpy() for n in ("brickid", "objid")}) == \
                keys({n: ref[n].to_numpy() for n in ("brickid", "objid")})
        # combined with other SQL and the function library
        n = query(con, "SELECT count(*) AS n FROM cone('dr9', 0, 0, 0.2) c WHERE no_maskbits(maskbits, 'BRIGHT')")
        ref = cone_search(query_lake, 0, 0, 0.2, where="no_maskbits(maskbits, 'BRIGHT')", columns=["objid"])
        assert n["n"][0].as_py() == ref.num_rows > 0
    finally:
        con.close()


def test_ranges_cover_partitions():
    # one order-3 cell and its children at order 5 give the same single range
    r1 = ranges29(np.array([3]), np.array([7]))
    r2 = ranges29(np.full(16, 5), 7 * 16 + np.arange(16))
    np.testing.assert_array_equal(r1, r2)
    assert r1[0, 0] == 7 << 52 and r1[0, 1] == 8 << 52


@pytest.mark.parametrize("region,ra,dec", [
    # boxes that start at RA 0 exactly (cdshealpix's zone_search misses cells there) and a cone
    (Region.box(0.0, 0.3, -0.3, 0.3), (0.0, 0.3), (-0.3, 0.3)),
    (Region.box(0.0, 20.0, 30.0, 40.0), (0.0, 20.0), (30.0, 40.0)),
    (Region.box(359.0, 0.0, -0.5, 0.5), (359.0, 360.0), (-0.5, 0.5)),
    (Region.cone(0.0, 0.0, 0.3), (-0.2, 0.2), (-0.2, 0.2)),
])
def test_fine_coverage_holds_every_inside_point(region, ra, dec):
    """The _healpix_29 ranges used for row-group pruning cover every point of the region."""
    from legacylake.query.spatial.regions import overlaps, region_ranges
    from legacylake.query.synthlake import healpix29

    rng = np.random.default_rng(0)
    r, d = rng.uniform(*ra, 20_000) % 360.0, rng.uniform(*dec, 20_000)
    r, d = r[region.contains(r, d)], d[region.contains(r, d)]
    hp = healpix29(r, d)
    ranges = region_ranges(region)
    assert len(r) > 1000 and overlaps(ranges, hp, hp).all()
    covered = (ranges[:, 1] - ranges[:, 0]).sum() / (12 * 4.0 ** 29)  # fraction of the sky
    assert covered < 1.5 * region_area_fraction(region)  # tight: fine cells, not the coarse ones


def region_area_fraction(region) -> float:
    if region.kind == "cone":
        return (1 - np.cos(np.radians(region.params[2]))) / 2
    a, b, d1, d2 = region.params
    w = (b - a) % 360.0
    return w / 360.0 * (np.sin(np.radians(d2)) - np.sin(np.radians(d1))) / 2


@pytest.mark.parametrize("fn,args,msg", [
    (Region.cone, (0, 0, 0), "radius must be > 0"),
    (Region.cone, (0, 0, -1), "radius must be > 0"),
    (Region.cone, (0, 95, 1), "outside"),
    (Region.box, (0, 1, 2, 1), "dec1 < dec2"),
    (Region.polygon, ([(0, 0), (1, 1)],), "at least 3"),
    (Region.polygon, ([(0, 0), (120, 0), (240, 0)],), "hemisphere"),
])
def test_bad_regions(fn, args, msg):
    with pytest.raises(UserError, match=msg):
        fn(*args)


def test_bad_catalog_and_column(query_lake):
    with pytest.raises(UserError, match="unknown catalog 'dr10'"):
        cone_search(query_lake, 0, 0, 0.1, catalog="dr10")
    with pytest.raises(UserError, match="unknown column 'nope'"):
        cone_search(query_lake, 0, 0, 0.1, columns=["ra", "nope"])
    with pytest.raises(UserError, match="unknown catalog"):
        query(query_lake, "SELECT * FROM cone('dr10', 0, 0, 0.1)")


def test_data_lab_style_sql_runs(query_lake):
    """Data Lab SQL (ls_dr9.tractor, q3c_radial_query, derived columns) runs unchanged."""
    con = connect(query_lake)
    try:
        got = query(con, "SELECT objid, brickid, dered_mag_g, g_r FROM ls_dr9.tractor "
                         "WHERE q3c_radial_query(ra, dec, 359.95, 0.05, 0.1)")
        ref = cone_search(query_lake, 359.95, 0.05, 0.1, columns=["brickid", "objid"])
        assert got.num_rows == ref.num_rows > 0
        assert keys({n: got[n].to_numpy() for n in ("brickid", "objid")}) == \
            keys({n: ref[n].to_numpy() for n in ("brickid", "objid")})
        with pytest.raises(UserError, match='dr10.*Did you mean "dr9"'):
            query(con, "SELECT * FROM dr10")
    finally:
        con.close()
