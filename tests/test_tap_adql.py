"""ADQL to DuckDB (legacylake.query.tap): geometry against brute force, pruned region reads,
crossmatch joins, errors that name the problem, read-only, timeouts, TAP_SCHEMA contents."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from _tap import ids, query_lake, rows, sep_deg  # noqa: F401  (fixtures)

from legacylake.query import connect
from legacylake.query.tap.adql import ADQLError, parse
from legacylake.query.tap.engine import Config, Engine


@pytest.fixture(scope="module")
def engine(query_lake) -> Engine:
    return Engine(Config(query_lake, aliases={"ls_dr9.tractor": "dr9"}))


def run(engine, q, **kw):
    return engine.run(q, **kw)


@pytest.mark.parametrize("ra,dec,r", [(0.0, 0.0, 0.2), (359.95, 0.05, 0.1), (0.1, 89.9, 0.3)])
def test_cone_contains_is_pruned_and_matches_brute_force(engine, rows, ra, dec, r):
    res = run(engine, f"SELECT brickid, objid FROM dr9 WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
                      f"CIRCLE('ICRS', {ra}, {dec}, {r}))")
    assert res.notes == ["cone on dr9: pruned read"]
    assert "__region_" in res.sql and '"dr9"' not in res.sql   # the view (all files) is not scanned
    want = sep_deg(rows["ra"], rows["dec"], ra, dec) <= r
    assert want.sum() > 0 or dec > 89
    assert ids(res.table) == set(zip(rows["brickid"][want].tolist(), rows["objid"][want].tolist()))


def test_box_wraps_through_ra_zero_and_polygon(engine, rows):
    res = run(engine, "SELECT brickid, objid FROM dr9 WHERE 1 = CONTAINS(POINT(ra, dec), BOX(0.0, 0.0, 0.4, 0.2))")
    ra = np.mod(rows["ra"] + 180, 360) - 180
    want = (np.abs(ra) <= 0.2) & (np.abs(rows["dec"]) <= 0.1)
    assert want.sum() > 50 and res.notes
    assert ids(res.table) == set(zip(rows["brickid"][want].tolist(), rows["objid"][want].tolist()))
    poly = run(engine, "SELECT COUNT(*) AS n FROM dr9 WHERE 1 = CONTAINS(POINT(ra, dec), "
                       "POLYGON('ICRS', 359.9, -0.1, 0.1, -0.1, 0.1, 0.1, 359.9, 0.1))")
    inside = (np.abs(ra) < 0.1) & (np.abs(rows["dec"]) < 0.1)
    assert poly.table["n"][0].as_py() == inside.sum()


def test_geometry_functions_match_direct_duckdb(engine, query_lake):
    res = run(engine, "SELECT TOP 5 objid, DISTANCE(POINT(ra, dec), POINT(0.1, 0.05)) AS d, "
                      "COORD1(POINT(ra, dec)) AS c1, COORD2(POINT(ra, dec)) AS c2, "
                      "INTERSECTS(CIRCLE(ra, dec, 0.1), CIRCLE(0, 0, 0.1)) AS i, LOG(EXP(2.0)) AS l, "
                      "AREA(CIRCLE(0, 0, 1)) AS a FROM dr9 ORDER BY objid, brickid")
    con = connect(query_lake)
    ref = con.sql("SELECT objid, ang_sep(ra, dec, 0.1, 0.05) AS d, ra, dec, "
                  "CAST(ang_sep(ra, dec, 0, 0) <= 0.2 AS INTEGER) AS i FROM dr9 ORDER BY objid, brickid LIMIT 5"
                  ).to_arrow_table()
    assert res.table["d"].to_pylist() == pytest.approx(ref["d"].to_pylist(), abs=1e-12)
    assert res.table["c1"].to_pylist() == ref["ra"].to_pylist()
    assert res.table["c2"].to_pylist() == ref["dec"].to_pylist()
    assert res.table["i"].to_pylist() == ref["i"].to_pylist()
    assert res.table["l"][0].as_py() == pytest.approx(2.0)      # ADQL LOG is the natural log
    assert res.table["a"][0].as_py() == pytest.approx(2 * np.pi * (1 - np.cos(np.radians(1))) * (180 / np.pi) ** 2)


def test_top_offset_maxrec_and_our_functions(engine, query_lake):
    con = connect(query_lake)
    ref = con.sql("SELECT objid, dered_mag(flux_g, mw_transmission_g) AS m FROM dr9 "
                  "WHERE no_maskbits(maskbits, 'BRIGHT,GALAXY') ORDER BY brickid, objid LIMIT 7 OFFSET 3"
                  ).to_arrow_table()
    res = run(engine, "SELECT TOP 7 objid, dered_mag(flux_g, mw_transmission_g) AS m FROM dr9 "
                      "WHERE no_maskbits(maskbits, 'BRIGHT,GALAXY') ORDER BY brickid, objid OFFSET 3")
    assert res.table.to_pylist() == ref.to_pylist() and not res.overflow
    capped = run(engine, "SELECT objid FROM dr9", maxrec=10)
    assert capped.table.num_rows == 10 and capped.overflow
    assert run(engine, "SELECT TOP 10 objid FROM dr9", maxrec=10).overflow is False


def test_crossmatch_join_with_upload_matches_brute_force(engine, rows):
    rng = np.random.default_rng(4)
    pick = rng.choice(np.flatnonzero(np.abs(rows["dec"]) < 80), 300, replace=False)   # valid positions
    up = pa.table({"id": np.arange(300), "ra": np.mod(rows["ra"][pick] + rng.normal(0, 1e-4, 300), 360),
                   "dec": rows["dec"][pick] + rng.normal(0, 1e-4, 300)})
    r = 2.0 / 3600
    res = run(engine, "SELECT u.id, t.brickid, t.objid FROM dr9 AS t JOIN TAP_UPLOAD.up AS u "
                      f"ON 1 = CONTAINS(POINT('ICRS', t.ra, t.dec), CIRCLE('ICRS', u.ra, u.dec, {r!r}))",
                      uploads={"up": up})
    assert res.notes and "crossmatch" in res.notes[0]
    got = set(zip(res.table["id"].to_pylist(), res.table["brickid"].to_pylist(), res.table["objid"].to_pylist()))
    want = set()
    for i in range(300):
        m = sep_deg(rows["ra"], rows["dec"], up["ra"][i].as_py(), up["dec"][i].as_py()) <= r
        want |= {(i, b, o) for b, o in zip(rows["brickid"][m].tolist(), rows["objid"][m].tolist())}
    assert len(want) >= 300 and got == want
    star = run(engine, "SELECT * FROM TAP_UPLOAD.up AS u JOIN dr9 AS t ON "
                       f"DISTANCE(POINT(t.ra, t.dec), POINT(u.ra, u.dec)) < {r!r}", uploads={"up": up})
    assert star.table.num_rows == len(want) and not [c for c in star.table.column_names if "__xm" in c]


@pytest.mark.parametrize("q,needle", [
    ("SELECT nosuchcol FROM dr9", 'unknown column: Binder Error: Referenced column "nosuchcol"'),
    ("SELECT frobnicate(ra) FROM dr9", "unknown function 'frobnicate'"),
    ("SELECT ra FROM nosuchtable", "unknown table 'nosuchtable'"),
    ("SELECT ra,\nFROM dr9 WHERE", "parse error at line 2"),
    ("SELECT * FROM read_parquet('/etc/passwd')", "is not a table name"),
    ("DELETE FROM dr9", "only SELECT queries"),
    ("SELECT ra FROM dr9; SELECT dec FROM dr9", "one ADQL query"),
    ("SELECT ra FROM dr9 WHERE 1 = CONTAINS(POINT('GALACTIC', ra, dec), CIRCLE(0, 0, 1))", "coordinate system"),
    ("SELECT ra FROM dr9 WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(0, 0))", "CIRCLE needs 3 numbers"),
    ("SELECT has_maskbits(maskbits, 'NOSUCHBIT') FROM dr9", "NOSUCHBIT"),
    ("SELECT flux_to_mag(ra, dec) FROM dr9", "bad function arguments: Binder Error: Macro flux_to_mag()"),
    ("SELECT SQRT(type) FROM dr9", "bad function arguments: Binder Error: No function matches the given name and "
                                   "argument types 'sqrt(VARCHAR)'"),
])
def test_errors_name_the_problem(engine, q, needle):
    with pytest.raises(ADQLError) as err:
        engine.run(q)
    assert needle in str(err.value)


def test_parse_error_reports_line_and_column():
    with pytest.raises(ADQLError, match=r"line 1, column 16"):
        parse("SELECT ra FROM WHERE x = 1")


def test_timeout_interrupts_a_long_query(query_lake):
    eng = Engine(Config(query_lake, timeout=0.5))
    with pytest.raises(TimeoutError, match="time limit of 0.5 s"):
        eng.run("SELECT COUNT(*) AS n FROM dr9 AS a, dr9 AS b, dr9 AS c WHERE a.flux_r + b.flux_r > c.flux_r")


def test_tap_schema_describes_columns(engine):
    t = run(engine, "SELECT column_name, unit, ucd, datatype, arraysize, description FROM TAP_SCHEMA.columns "
                    "WHERE table_name = 'dr9'").table.to_pylist()
    by = {r["column_name"]: r for r in t}
    assert by["flux_g"]["unit"] == "nanomaggy" and by["flux_g"]["ucd"] == "phot.flux;em.opt.B"
    assert by["ra"]["ucd"] == "pos.eq.ra;meta.main" and by["ra"]["datatype"] == "double"
    assert by["dchisq"]["arraysize"] == "5" and by["dchisq"]["datatype"] == "float"
    assert by["type"]["datatype"] == "char" and by["type"]["arraysize"] == "*"
    assert '"_healpix_29"' in by and by["brickid"]["datatype"] == "int" and by["objid"]["datatype"] == "int"
    assert "flux" in by["flux_g"]["description"].lower()
    tables = {r["table_name"] for r in run(engine, "SELECT table_name FROM TAP_SCHEMA.tables").table.to_pylist()}
    assert {"dr9", "dr9_derived", "ls_dr9.tractor", "TAP_SCHEMA.columns"} <= tables
    d = run(engine, "SELECT unit FROM TAP_SCHEMA.columns WHERE table_name = 'ls_dr9.tractor' "
                    "AND column_name = 'dered_mag_r'").table
    assert d["unit"].to_pylist() == ["mag"]


def test_alias_runs_a_data_lab_query_unchanged(engine, query_lake):
    q = "SELECT ra, dec, mag_r FROM ls_dr9.tractor WHERE q3c_radial_query(ra, dec, 0.05, 0.0, 0.05)"
    res = run(engine, q)
    ref = connect(query_lake).sql("SELECT ra FROM dr9 WHERE ang_sep(ra, dec, 0.05, 0.0) <= 0.05").fetchall()
    assert res.table.num_rows == len(ref) > 0


def test_plain_cone_columns_skip_the_sql_engine_with_the_same_answer(engine):
    where = "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 0.05, 0.0, 0.1))"
    direct = engine.run(f"SELECT brickid, objid AS o, t.ra FROM dr9 AS t {where}")
    via_sql = engine.run(f"SELECT brickid, objid AS o, t.ra FROM dr9 AS t {where} AND 1 = 1")
    assert direct.translation.direct is not None and via_sql.translation.direct is None
    assert direct.table.column_names == ["brickid", "o", "ra"] == via_sql.table.column_names
    assert sorted(direct.table.to_pylist(), key=str) == sorted(via_sql.table.to_pylist(), key=str)
    assert direct.table.num_rows > 20
    top = engine.run(f"SELECT TOP 3 objid FROM dr9 {where}", maxrec=2)
    assert top.table.num_rows == 2 and top.overflow


def test_region_reads_only_the_columns_the_query_names(engine):
    r = engine.run("SELECT type, COUNT(*) AS n FROM dr9 WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(0, 0, 0.2)) "
                   "GROUP BY type")
    (reg,) = r.translation.registrations.values()
    assert sorted(reg.column_names) == ["dec", "ra", "type"]
    r = engine.run("SELECT TOP 1 * FROM dr9 WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(0, 0, 0.2))")
    (reg,) = r.translation.registrations.values()
    assert reg.num_columns == r.table.num_columns > 100


def test_bitwise_with_cte_and_geometry_values(engine, query_lake):
    res = engine.run("WITH near AS (SELECT objid, maskbits FROM dr9 WHERE 1 = INTERSECTS(CIRCLE('ICRS', 0, 0, 0.2), "
                     "POINT('ICRS', ra, dec))) SELECT COUNT(*) AS n FROM near WHERE (maskbits & 2) = 0")
    ref = connect(query_lake).sql("SELECT COUNT(*) FROM dr9 WHERE ang_sep(ra, dec, 0, 0) <= 0.2 "
                                  "AND (maskbits & 2) = 0").fetchall()[0][0]
    assert res.table["n"][0].as_py() == ref > 0
    pt = engine.run("SELECT TOP 1 POINT('ICRS', ra, dec) AS p, ra, dec FROM dr9").table.to_pylist()[0]
    assert pt["p"] == [pt["ra"], pt["dec"]]


def test_each_query_reads_one_snapshot_and_sees_a_new_one(tmp_path):
    from _query_lake import lake_bricks

    from legacylake.etl import build
    from legacylake.query.synthlake import write_fits_bricks

    names = lake_bricks()[:6]
    write_fits_bricks(tmp_path / "fits", names[:3], 100, seed=1)
    lake = tmp_path / "lake"
    build(str(tmp_path / "fits"), str(lake), "dr9", threshold=2000, row_group_rows=300, workers=1)
    eng = Engine(Config(lake))
    count = "SELECT COUNT(*) AS n FROM dr9"
    assert eng.run(count).table["n"][0].as_py() == 300
    write_fits_bricks(tmp_path / "fits2", names[3:], 100, seed=2)
    build(str(tmp_path / "fits2"), str(lake), "dr9", threshold=2000, row_group_rows=300, workers=1)
    assert eng.run(count).table["n"][0].as_py() == 600      # the next query reads the new snapshot
    assert eng.run("SELECT COUNT(*) AS n FROM TAP_SCHEMA.tables").table["n"][0].as_py() > 0


def test_join_of_two_lake_tables_runs_as_crossmatch(engine, rows):
    r = 3.0 / 3600
    res = engine.run("SELECT a.brickid AS b1, a.objid AS o1, b.brickid AS b2, b.objid AS o2 FROM dr9 AS a "
                     f"JOIN dr9_derived AS b ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < {r!r} "
                     "WHERE a.objid <> b.objid OR a.brickid <> b.brickid", maxrec=10**7)
    assert res.notes == [f"crossmatch of dr9 with dr9_derived within {r * 3600:g} arcsec"]
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(rows["ra"] * u.deg, rows["dec"] * u.deg)
    i, j, _, _ = c.search_around_sky(c, r * u.deg)
    keep = i != j
    want = {(int(rows["brickid"][x]), int(rows["objid"][x]), int(rows["brickid"][y]), int(rows["objid"][y]))
            for x, y in zip(i[keep], j[keep])}
    got = set(zip(*(res.table[k].to_pylist() for k in ("b1", "o1", "b2", "o2"))))
    assert len(want) > 100 and got == want


def test_where_form_crossmatch_with_an_upload(engine, rows):
    up = pa.table({"ra": [0.05, 0.1], "dec": [0.0, 0.05]})
    r = 0.02
    q = ("SELECT u.ra AS ura, t.objid, t.brickid FROM dr9 AS t, TAP_UPLOAD.up AS u "
         f"WHERE 1 = CONTAINS(POINT('ICRS', t.ra, t.dec), CIRCLE('ICRS', u.ra, u.dec, {r}))")
    res = engine.run(q, uploads={"up": up})
    assert res.notes and "crossmatch" in res.notes[0]
    n = sum(int((sep_deg(rows["ra"], rows["dec"], a, d) <= r).sum()) for a, d in [(0.05, 0.0), (0.1, 0.05)])
    assert res.table.num_rows == n > 10
    cross = engine.run("SELECT COUNT(*) AS n FROM TAP_UPLOAD.up AS u CROSS JOIN dr9 AS t", uploads={"up": up})
    assert cross.table["n"][0].as_py() == 2 * len(rows["ra"]) and not cross.notes


@pytest.mark.parametrize("table", ["dr9", "dr9_derived"])
def test_big_regions_are_read_by_duckdb_over_the_pruned_files(engine, rows, monkeypatch, table):
    from legacylake.query.tap import engine as engine_mod

    monkeypatch.setattr(engine_mod, "ARROW_REGION_ROWS", 0)   # every region counts as big
    q = (f"SELECT brickid, objid FROM {table} WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(359.95, 0.05, 0.1))")
    res = engine.run(q)
    sql = res.sql.lower().replace('"', "")
    assert "read_parquet" in sql and "_healpix_29 between" in sql
    want = sep_deg(rows["ra"], rows["dec"], 359.95, 0.05) <= 0.1
    assert ids(res.table) == set(zip(rows["brickid"][want].tolist(), rows["objid"][want].tolist()))
    none = engine.run(f"SELECT COUNT(*) AS n FROM {table} WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(90, 30, 0.1))")
    assert none.table["n"][0].as_py() == 0


def test_serve_command_refuses_bad_options(tmp_path, capsys):
    from legacylake.main import main

    assert main(["serve", "--lake", str(tmp_path / "nolake")]) == 2
    assert "no such lake folder" in capsys.readouterr().err
    assert main(["serve", "--lake", str(tmp_path), "--alias", "justaname"]) == 2
    assert "expected SCHEMA.TABLE=CATALOG" in capsys.readouterr().err


def test_jobs_past_destruction_are_deleted_and_running_ones_marked_on_restart(tmp_path):
    from legacylake.query.tap import uws

    store = uws.JobStore(tmp_path, lambda job, cancel: (b"x", "text/plain", "txt"), 1, 60)
    old = store.create({"QUERY": "SELECT 1"}, {})
    store.update(old.jobId, destruction="2000-01-01T00:00:00.000Z")
    running = store.create({"QUERY": "SELECT 1"}, {})
    store.update(running.jobId, phase="EXECUTING")
    kept = store.create({"QUERY": "SELECT 2"}, {})
    again = uws.JobStore(tmp_path, lambda job, cancel: (b"x", "text/plain", "txt"), 1, 60)   # a restart
    assert {j.jobId for j in again.all()} == {running.jobId, kept.jobId}
    assert again.get(running.jobId).phase == "ERROR" and "restarted" in again.get(running.jobId).error
    again.run(kept.jobId)
    assert again.wait(kept.jobId, 10, "QUEUED").phase in ("EXECUTING", "COMPLETED")
    assert again.wait(kept.jobId, 10, "EXECUTING").phase == "COMPLETED"
    assert (tmp_path / kept.jobId / "result.txt").read_bytes() == b"x"


def test_every_ucd_is_valid_ucd1plus():
    from astropy.io.votable.ucd import parse_ucd

    from legacylake.catalogs_schema import model
    from legacylake.catalogs_schema.ucds import ucd_of
    from legacylake.query.sql.macros import derived_columns

    names = set()
    for m in ("dr9-tractor", "dr10-tractor", "dr8-tractor", "dr4-tractor"):
        names |= set(model(m).names)
    names |= {n for n, _ in derived_columns(sorted(names | {"_healpix_29"}))} | {"_healpix_29"}
    given = {n: ucd_of(n) for n in sorted(names) if ucd_of(n)}
    assert len(given) > 150
    for n, u in given.items():
        parse_ucd(u, check_controlled_vocabulary=True, has_colon=False)   # raises on a bad word or order


def test_the_time_limit_covers_pruned_reads_and_crossmatches(query_lake, rows, monkeypatch):
    """The limit stops a slow pruned read between files, and a client's abort stops a crossmatch
    join between partitions: the query ends near the limit, not after the whole read."""
    import threading
    import time

    from legacylake.query.spatial import search as S

    real = S._read_region_rows

    def slow(*a, **k):
        time.sleep(0.3)
        return real(*a, **k)

    monkeypatch.setattr(S, "_read_region_rows", slow)
    eng = Engine(Config(query_lake, timeout=0.2))
    q = "SELECT objid FROM dr9 WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(0.0, 0.0, 30.0))"
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError, match="time limit of 0.2 s"):
        eng.run(q)
    files = len(S.plan(eng.snapshot().cats["dr9"], S.Region.cone(0.0, 0.0, 30.0)).files)
    assert files >= 3 and time.perf_counter() - t0 < 0.3 * files   # stopped before reading every file
    monkeypatch.setattr(S, "_read_region_rows", real)
    aborted = threading.Event()
    aborted.set()
    up = pa.table({"id": np.arange(50), "ra": rows["ra"][:50], "dec": rows["dec"][:50]})
    with pytest.raises(InterruptedError, match="aborted"):
        eng.run("SELECT u.id, t.objid FROM dr9 AS t JOIN TAP_UPLOAD.up AS u ON "
                "1 = CONTAINS(POINT(t.ra, t.dec), CIRCLE(u.ra, u.dec, 0.001))", uploads={"up": up}, cancel=aborted)
    assert eng.run("SELECT TOP 5 objid FROM dr9").table.num_rows == 5   # the engine is usable afterwards


def test_search_and_xmatch_stop_when_cancelled(query_lake, rows):
    import threading

    from legacylake.query.crossmatch.core import xmatch
    from legacylake.query.spatial.search import Region, search

    ev = threading.Event()
    assert search(query_lake, Region.cone(0.0, 0.0, 30.0), "dr9", columns=["objid"], cancel=ev).num_rows > 0
    ev.set()
    with pytest.raises(InterruptedError):
        search(query_lake, Region.cone(0.0, 0.0, 30.0), "dr9", columns=["objid"], cancel=ev)
    ext = pa.table({"ra": rows["ra"][:200], "dec": rows["dec"][:200]})
    with pytest.raises(InterruptedError):
        xmatch(ext, query_lake, "dr9", radius_arcsec=1.0, cancel=ev)
    assert xmatch(ext, query_lake, "dr9", radius_arcsec=1.0).num_rows == 200


def test_area_of_a_polygon(engine):
    """AREA(POLYGON): an octant is 1/8 of the sphere; a small square near the equator matches
    AREA(BOX) of the same corners to the difference between great- and small-circle edges."""
    from legacylake.query.spatial.regions import polygon_area_deg2

    sphere = 4 * np.pi * (180 / np.pi) ** 2
    res = run(engine, "SELECT TOP 1 AREA(POLYGON(0, 0, 90, 0, 0, 90)) AS oct, "
                      "AREA(POLYGON(10, -0.5, 11, -0.5, 11, 0.5, 10, 0.5)) AS sq, "
                      "AREA(BOX(10.5, 0, 1, 1)) AS box FROM dr9").table.to_pylist()[0]
    assert abs(res["oct"] - sphere / 8) < 1e-9
    assert abs(res["sq"] - res["box"]) < 1e-4 * res["box"]
    # either orientation; a polygon bigger than a hemisphere's complement is taken as the smaller side
    assert abs(polygon_area_deg2([90, 0, 0], [0, 0, 90]) - sphere / 8) < 1e-9
    with pytest.raises(ADQLError, match="AREA"):
        run(engine, "SELECT TOP 1 AREA(POLYGON(ra, dec, 1, 0, 0, 1)) FROM dr9")
