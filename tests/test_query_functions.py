"""The SQL function library and the lake views, checked against numpy / catalogs_schema / astropy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _query_lake import query_lake  # noqa: F401  (fixture)
from legacylake.catalogs_schema import BITMASKS, bricks, constants
from legacylake.errors import UserError
from legacylake.query import catalogs, query
from legacylake.query import connect


@pytest.fixture(scope="module")
def con(query_lake):
    c = connect(query_lake)
    yield c
    c.close()


def q(con, sql) -> dict[str, np.ndarray]:
    t = con.sql(sql).to_arrow_table()
    return {n: t[n].to_numpy(zero_copy_only=False) for n in t.column_names}


def nan(x):
    return np.array([np.nan if v is None else v for v in x], dtype=float)


def test_views_and_row_count(con, query_lake):
    cat = catalogs(query_lake)["dr9"]
    n = sum(pq.read_metadata(f).num_rows for f in cat.files)
    assert con.sql("SELECT count(*) FROM dr9").fetchall()[0][0] == n
    cols = [r[0] for r in con.sql("DESCRIBE dr9").fetchall()]
    assert cols[0] == "_healpix_29" and "norder" not in [c.lower() for c in cols]  # no hive columns
    dcols = [r[0] for r in con.sql("DESCRIBE dr9_derived").fetchall()]
    for c in ["mag_g", "mag_w4", "dered_mag_z", "dered_flux_w1", "snr_r", "g_r", "r_z", "z_w1", "w1_w2",
              "nest4096", "ring256", "random_id", "glon", "glat"]:
        assert c in dcols, c


def test_photometric_functions_match_numpy(con):
    d = q(con, """SELECT flux_g, flux_ivar_g, mw_transmission_g, ebv, flux_w1, shape_e1, shape_e2, psfdepth_r,
        flux_to_mag(flux_g) m, mag_err(flux_g, flux_ivar_g) me, snr(flux_g, flux_ivar_g) s,
        dered_flux(flux_g, mw_transmission_g) df, dered_mag(flux_g, mw_transmission_g) dm,
        mw_transmission(ebv, 'g') mwt, extinction(ebv, 'R') ext, asinh_mag(flux_g, flux_ivar_g) am,
        wise_vega_to_ab(flux_w1, 'w1') ab, wise_ab_to_vega(wise_vega_to_ab(flux_w1, 'W1'), 'w1') back,
        shape_ba(shape_e1, shape_e2) ba, shape_phi(shape_e1, shape_e2) phi, depth_mag(psfdepth_r) dep
        FROM dr9""")
    f, iv = d["flux_g"].astype(float), d["flux_ivar_g"].astype(float)
    assert (f <= 0).any() and (iv == 0).any()  # the cases that must give NULL
    with np.errstate(all="ignore"):
        mag = np.where(f > 0, 22.5 - 2.5 * np.log10(f), np.nan)
        np.testing.assert_allclose(nan(d["m"]), mag, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(nan(d["me"]), np.where((f > 0) & (iv > 0), 2.5 / np.log(10) / (f * np.sqrt(iv)), np.nan),
                                   rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(nan(d["s"]), f * np.sqrt(iv), rtol=1e-12)
        mwt = d["mw_transmission_g"].astype(float)
        np.testing.assert_allclose(nan(d["df"]), f / mwt, rtol=1e-12)
        np.testing.assert_allclose(nan(d["dm"]), np.where(f > 0, 22.5 - 2.5 * np.log10(f / mwt), np.nan),
                                   rtol=1e-12, equal_nan=True)
    ebv = d["ebv"].astype(float)
    np.testing.assert_allclose(d["mwt"], constants.mw_transmission(ebv, "g"), rtol=1e-12)
    np.testing.assert_allclose(d["ext"], constants.EXTINCTION_R["r"] * ebv, rtol=1e-12)
    # luptitudes: finite where ivar > 0 (also for negative flux), -> flux_to_mag for bright sources
    am = nan(d["am"])
    assert np.all(np.isfinite(am[iv > 0])) and np.all(np.isnan(am[iv <= 0]))
    assert np.any(f[iv > 0] < 0)
    bright = (iv > 0) & (f * np.sqrt(iv) > 100)
    np.testing.assert_allclose(am[bright], mag[bright], atol=1e-3)
    w1 = d["flux_w1"].astype(float)
    np.testing.assert_allclose(d["ab"], w1 * 10 ** (-constants.WISE_VEGA_TO_AB["w1"] / 2.5), rtol=1e-12)
    np.testing.assert_allclose(d["back"], w1, rtol=1e-12)
    e = np.hypot(d["shape_e1"].astype(float), d["shape_e2"].astype(float))
    np.testing.assert_allclose(d["ba"], (1 - e) / (1 + e), rtol=1e-12)
    phi = np.mod(np.degrees(-0.5 * np.arctan2(d["shape_e2"].astype(float), d["shape_e1"].astype(float))), 180)
    np.testing.assert_allclose(np.mod(d["phi"] - phi + 90, 180) - 90, 0, atol=1e-9)
    dep = d["psfdepth_r"].astype(float)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(nan(d["dep"]), np.where(dep > 0, -2.5 * (np.log10(5 / np.sqrt(dep)) - 9), np.nan),
                                   rtol=1e-12, equal_nan=True)
    assert np.isnan(nan(d["dep"])[dep <= 0]).all() and (dep <= 0).any()


def test_flux_to_mag_is_null_not_error(con):
    assert con.sql("SELECT flux_to_mag(0.0), flux_to_mag(-1.0), flux_to_mag(1.0)").fetchall()[0] == (None, None, 22.5)


@pytest.mark.parametrize("family,column", [("maskbits", "maskbits"), ("fitbits", "fitbits"), ("anymask", "anymask_g"),
                                           ("allmask", "allmask_r"), ("wisemask", "wisemask_w1")])
def test_bit_functions_match_bitmask(con, family, column):
    m = BITMASKS[family]
    names = ",".join(m.names[1:3])
    fn = {"maskbits": "maskbit_names", "fitbits": "fitbit_names"}.get(family, f"{family}_names")
    d = q(con, f"SELECT {column} v, has_{family}({column}, '{names}') h, no_{family}({column}, '{names.lower()}') n, "
               f"{fn}({column}) names, {family}_value('{names}') val FROM dr9")
    v = d["v"].astype(np.int64)
    expect = m.any_set(v, names)
    assert expect.any() and (~expect).any()
    np.testing.assert_array_equal(d["h"], expect)
    np.testing.assert_array_equal(d["n"], ~expect)
    assert int(d["val"][0]) == m.mask(names)
    for x, got in zip(v[:300], d["names"][:300]):
        assert list(got) == m.decode(int(x))


def test_bit_names_resolve_to_constants_when_planned(con):
    plan = "\n".join(r[1] for r in con.sql(
        "EXPLAIN SELECT count(*) FROM dr9 WHERE has_maskbits(maskbits, 'BRIGHT,GALAXY') "
        "AND no_maskbits(maskbits, 'cluster')").fetchall())
    assert "& 4098) != 0" in plan and "& 8192) = 0" in plan
    assert "_mask_value" not in plan


def test_unknown_bit_name_errors_with_valid_names(con):
    with pytest.raises(Exception) as err:
        con.sql("SELECT count(*) FROM dr9 WHERE has_maskbits(maskbits, 'BRIGHT,GALAXXY')").fetchall()
    msg = str(err.value)
    assert "GALAXXY" in msg and "CLUSTER" in msg and "NPRIMARY" in msg
    with pytest.raises(UserError, match="unknown band 'q'.*valid bands"):
        query(con, "SELECT mw_transmission(ebv, 'q') FROM dr9")


def test_brick_functions_match_grid(con):
    g = bricks.grid()
    rng = np.random.default_rng(1)
    ra = np.r_[rng.uniform(-10, 370, 20000), g["ra1"][::50], g["ra"][::7]]
    dec = np.r_[np.degrees(np.arcsin(rng.uniform(-1, 1, 20000))), g["dec1"][::50].clip(-90, 90), g["dec"][::7]]
    con.register("pts", pa.table({"ra": ra, "dec": dec}))
    d = q(con, "SELECT brickid_of(ra, dec) id, brickname_of(ra, dec) name FROM pts")
    con.unregister("pts")
    np.testing.assert_array_equal(d["id"], bricks.brickid_of(ra, dec))
    np.testing.assert_array_equal(d["name"].astype(str), bricks.brickname_of(ra, dec).astype(str))
    # every brick centre gives its own name
    con.register("ctr", pa.table({"ra": g["ra"], "dec": g["dec"]}))
    bad = con.sql("SELECT count(*) FROM ctr WHERE brickname_of(ra, dec) IS NULL").fetchall()[0][0]
    names = con.sql("SELECT brickname_of(ra, dec) FROM ctr").to_arrow_table().column(0).to_numpy(zero_copy_only=False)
    con.unregister("ctr")
    assert bad == 0
    np.testing.assert_array_equal(names.astype(str), g["brickname"].astype(str))


def test_healpix_glon_glat_random_id(con, query_lake):
    import astropy.units as u
    import cdshealpix
    from astropy.coordinates import SkyCoord

    d = q(con, "SELECT ra, dec, _healpix_29 h, healpix_of(ra, dec, 12) h12, nest4096, ring256, glon, glat, random_id, "
               "release, brickid, objid FROM dr9_derived")
    np.testing.assert_array_equal(d["h12"], d["h"] >> 34)
    np.testing.assert_array_equal(d["nest4096"], d["h"] >> 34)
    np.testing.assert_array_equal(d["ring256"], cdshealpix.to_ring((d["h"] >> 42).astype(np.uint64), 8))
    gal = SkyCoord(d["ra"] * u.deg, d["dec"] * u.deg).galactic
    np.testing.assert_allclose(d["glat"], gal.b.deg, atol=1e-8)
    dl = np.mod(d["glon"] - gal.l.deg + 180, 360) - 180
    np.testing.assert_allclose(dl * np.cos(np.radians(gal.b.deg)), 0, atol=1e-8)
    rid = d["random_id"]
    assert rid.min() >= 0 and rid.max() < 100 and len(np.unique(rid)) == len(rid)
    hist = np.histogram(rid, bins=10, range=(0, 100))[0]
    assert hist.min() > 0.8 * len(rid) / 10
    other = connect(query_lake)  # stable per row across connections
    rid2 = other.sql("SELECT random_id(release, brickid, objid) FROM dr9").to_arrow_table().column(0).to_numpy()
    other.close()
    np.testing.assert_array_equal(rid, rid2)


def test_derived_view_uses_the_functions(con):
    d = q(con, "SELECT mag_r, flux_r, dered_mag_g, dered_mag_r, g_r, snr_z, flux_z, flux_ivar_z FROM dr9_derived")
    with np.errstate(all="ignore"):
        f = d["flux_r"].astype(float)
        np.testing.assert_allclose(nan(d["mag_r"]), np.where(f > 0, 22.5 - 2.5 * np.log10(f), np.nan), rtol=1e-12,
                                   equal_nan=True)
    np.testing.assert_allclose(nan(d["g_r"]), nan(d["dered_mag_g"]) - nan(d["dered_mag_r"]), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(d["snr_z"], d["flux_z"].astype(float) * np.sqrt(d["flux_ivar_z"].astype(float)), rtol=1e-6)


def test_results_carry_units(con):
    t = query(con, "SELECT ra, flux_g, mag_g, shape_r FROM dr9_derived LIMIT 10", output="astropy")
    assert str(t["ra"].unit) == "deg" and t["flux_g"].unit is not None and str(t["mag_g"].unit) == "mag"
    df = query(con, "SELECT count(*) AS n FROM dr9", output="pandas")
    assert int(df["n"][0]) > 0


def test_not_a_lake(tmp_path):
    with pytest.raises(UserError, match="not a lake"):
        connect(tmp_path)
    with pytest.raises(UserError, match="no such lake"):
        connect(tmp_path / "missing")


def test_connection_cannot_write_into_the_lake(query_lake, tmp_path):
    import duckdb

    cat = catalogs(query_lake)["dr9"]
    leaf = Path(cat.files[0])
    before = (leaf.read_bytes(), sorted(p.name for p in leaf.parent.iterdir()))
    c = connect(query_lake)
    n = c.sql("SELECT count(*) FROM dr9").fetchall()[0][0]
    # writing statements are refused by their DuckDB statement type, before DuckDB runs them,
    # whatever the target (a leaf itself included) and however the call is made
    for sql in (f"COPY (SELECT 1 AS a) TO '{leaf}' (FORMAT parquet, USE_TMP_FILE false)",
                f"COPY (SELECT * FROM dr9 LIMIT 5) TO '{leaf}'",
                f"COPY (SELECT 1 AS a) TO '{leaf.parent / 'new.parquet'}'",
                f"COPY (SELECT 1 AS a) TO '{tmp_path / 'elsewhere.csv'}'",
                f"SELECT 1; COPY (SELECT 1 AS a) TO '{tmp_path / 'elsewhere.csv'}'",
                f"EXPORT DATABASE '{query_lake / 'exported'}'",
                f"ATTACH '{query_lake / 'db.duckdb'}'",
                "ATTACH ':memory:' AS other",
                "INSTALL httpfs", "LOAD httpfs"):
        for run in (c.execute, c.sql, c.query, lambda q: c.cursor().execute(q)):
            with pytest.raises(UserError, match="refused on a lake connection"):
                run(sql)
    # relation methods that write files are refused too
    for method in ("write_parquet", "to_parquet", "to_csv", "write_csv"):
        with pytest.raises(UserError, match="refused on a lake connection"):
            getattr(c.sql("SELECT * FROM dr9 LIMIT 1"), method)(str(leaf))
    # DuckDB's own sandbox: no other file is readable, and no SET can lift it
    with pytest.raises(duckdb.Error, match="Permission Error: Cannot access"):
        c.execute(f"SELECT * FROM read_csv('{tmp_path / 'elsewhere.csv'}')")
    for sql in ("SET enable_external_access = true", "SET lock_configuration = false",
                "RESET lock_configuration", "SET allowed_paths = ['/']", "PRAGMA threads = 1"):
        with pytest.raises(duckdb.Error, match="configuration has been locked"):
            c.execute(sql)
    with pytest.raises(UserError, match="only reads the lake's files"):
        query(c, f"SELECT * FROM read_parquet('{tmp_path / 'x.parquet'}')")
    assert (leaf.read_bytes(), sorted(p.name for p in leaf.parent.iterdir())) == before
    assert not (query_lake / "exported").exists() and not (query_lake / "db.duckdb").exists()
    assert not (tmp_path / "elsewhere.csv").exists()
    # ordinary queries, the derived view, SQL spatial tables, in-memory tables, variables and
    # registered Arrow tables still work
    assert c.sql("SELECT count(*) FROM dr9").fetchall()[0][0] == n
    assert c.execute("SELECT count(*) FROM dr9").fetchall()[0][0] == n
    assert c.sql("SELECT count(mag_r) FROM dr9_derived").fetchall()[0][0] > 0
    ra, dec = c.sql("SELECT ra, dec FROM dr9 LIMIT 1").fetchall()[0]
    assert query(c, f"SELECT count(*) AS n FROM cone('dr9', {ra}, {dec}, 0.01)")["n"][0].as_py() >= 1
    c.register("pts", pa.table({"x": [1, 2, 3]}))
    assert c.sql("SELECT sum(x) FROM pts").fetchall()[0][0] == 6
    c.execute("CREATE TEMP TABLE t AS SELECT * FROM dr9 LIMIT 3")
    c.execute("SET VARIABLE k = 2")
    assert c.sql("SELECT count(*) * getvariable('k') FROM t").fetchall()[0][0] == 6
    assert c.sql("SELECT 1 AS a").filter("a = 1").project("a").to_arrow_table().num_rows == 1
    c.close()
    t = connect(query_lake, threads=1)  # settings are given when the connection is made
    assert t.sql("SELECT current_setting('threads')").fetchall()[0][0] == 1
    t.close()
    free = connect(query_lake, read_only=False)  # the opt-out: an unlocked connection
    free.execute(f"COPY (SELECT 1 AS a) TO '{tmp_path / 'free.csv'}'")
    assert (tmp_path / "free.csv").exists()
    free.close()


def test_every_documented_example_runs(con):
    from legacylake.query import FUNCTIONS

    for name, (sig, desc, example) in FUNCTIONS.items():
        sql = example.split("--")[0]
        query(con, sql)  # raises UserError on any failure
        assert name in sql
