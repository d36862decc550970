"""``legacylake serve`` with real clients: pyvo TAPService (sync, async, 10,000-row upload, MAXREC
overflow, error messages), raw HTTP (formats, 400s, UWS), STILTS taplint (zero errors), the
DALI examples; answers checked against direct DuckDB queries and brute force."""

from __future__ import annotations

import io
import shutil
import subprocess
import time

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from _tap import Server, ids, query_lake, rows, sep_deg, server, service, tap_dirs  # noqa: F401  (fixtures)
from astropy.io import votable
from astropy.table import Table

from legacylake.query import connect

CONE = "SELECT brickid, objid, ra, dec, flux_r FROM dr9 WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 0.05, 0.0, 0.1))"


def brute_cone(rows, ra, dec, r) -> set:
    m = sep_deg(rows["ra"], rows["dec"], ra, dec) <= r
    return set(zip(rows["brickid"][m].tolist(), rows["objid"][m].tolist()))


def test_pyvo_sync_cone_matches_brute_force_with_units(service, rows):
    res = service.search(CONE)
    t = res.to_table()
    assert len(t) > 20 and ids(t) == brute_cone(rows, 0.05, 0.0, 0.1)
    assert str(t["ra"].unit) == "deg" and str(t["flux_r"].unit) == "nanomaggy"
    assert res.fieldname_with_ucd("pos.eq.ra") == "ra" and res.fieldname_with_ucd("pos.eq.dec") == "dec"
    assert res.query_status == "OK"


def test_pyvo_maxrec_overflow(service):
    res = service.search("SELECT objid FROM dr9", maxrec=25)
    assert len(res) == 25 and res.query_status == "OVERFLOW"
    full = service.search("SELECT TOP 25 objid FROM dr9", maxrec=25)
    assert len(full) == 25 and full.query_status == "OK"


@pytest.mark.parametrize("q,needle", [
    ("SELECT nosuchcol FROM dr9", "nosuchcol"),
    ("SELECT frobnicate(ra) FROM dr9", "unknown function 'frobnicate'"),
    ("SELECT ra FROM WHERE x = 1", "line 1, column 16"),
])
def test_pyvo_error_messages(service, q, needle):
    import pyvo

    with pytest.raises(pyvo.dal.DALQueryError) as err:
        service.search(q)
    assert needle in str(err.value)


def test_pyvo_async_matches_sync_and_duckdb(service, query_lake):
    q = "SELECT type, COUNT(*) AS n FROM dr9 GROUP BY type ORDER BY type"
    t = service.run_async(q).to_table()
    ref = connect(query_lake).sql("SELECT type, COUNT(*) AS n FROM dr9 GROUP BY type ORDER BY type").fetchall()
    assert [(str(a), int(b)) for a, b in zip(t["type"], t["n"])] == [(a, b) for a, b in ref]


def test_pyvo_upload_of_10000_rows_runs_as_crossmatch(service, rows):
    rng = np.random.default_rng(11)
    n = 10_000
    base = rng.choice(np.flatnonzero(np.abs(rows["dec"]) < 80), n)
    up = Table({"uid": np.arange(n), "ra": np.mod(rows["ra"][base] + rng.normal(0, 2e-4, n), 360),
                "dec": rows["dec"][base] + rng.normal(0, 2e-4, n)})
    r = 1.5 / 3600
    q = ("SELECT u.uid, t.brickid, t.objid FROM dr9 AS t JOIN TAP_UPLOAD.mine AS u "
         f"ON 1 = CONTAINS(POINT('ICRS', t.ra, t.dec), CIRCLE('ICRS', u.ra, u.dec, {r!r}))")
    t0 = time.time()
    got = service.search(q, uploads={"mine": up}, maxrec=1_000_000).to_table()
    assert time.time() - t0 < 30
    pairs = set(zip(np.asarray(got["uid"]).tolist(), np.asarray(got["brickid"]).tolist(),
                    np.asarray(got["objid"]).tolist()))
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    lake = SkyCoord(rows["ra"] * u.deg, rows["dec"] * u.deg)
    ext = SkyCoord(np.asarray(up["ra"]) * u.deg, np.asarray(up["dec"]) * u.deg)
    i_ext, i_lake, _, _ = lake.search_around_sky(ext, r * u.deg)   # indices into ext, into lake
    want = {(int(a), int(rows["brickid"][b]), int(rows["objid"][b])) for a, b in zip(i_ext, i_lake)}
    assert len(want) > 5000 and pairs == want


def _get(server, **params):
    return httpx.get(server.url + "sync", params={"LANG": "ADQL", **params}, timeout=60)


def test_response_formats_agree(server, rows):
    want = brute_cone(rows, 0.05, 0.0, 0.1)
    b2 = _get(server, QUERY=CONE)
    assert b2.status_code == 200 and b"BINARY2" in b2.content
    td = _get(server, QUERY=CONE, RESPONSEFORMAT="votable/td")
    assert b"<TABLEDATA>" in td.content and ids(votable.parse_single_table(io.BytesIO(td.content)).to_table()) == want
    csv = _get(server, QUERY=CONE, RESPONSEFORMAT="csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert ids(Table.read(csv.text, format="ascii.csv")) == want
    fits = _get(server, QUERY=CONE, FORMAT="fits")
    assert ids(Table.read(io.BytesIO(fits.content), format="fits")) == want
    parq = pq.read_table(io.BytesIO(_get(server, QUERY=CONE, RESPONSEFORMAT="parquet").content))
    assert ids(parq) == want and parq.schema.field("ra").metadata[b"unit"] == b"deg"
    post = httpx.post(server.url + "sync", data={"LANG": "ADQL", "QUERY": CONE, "REQUEST": "doQuery"}, timeout=60)
    assert ids(votable.parse_single_table(io.BytesIO(post.content)).to_table()) == want


def test_votable_metadata_arrays_and_descriptions(server):
    r = _get(server, QUERY="SELECT TOP 3 dchisq, type, flux_g, maskbits FROM dr9", RESPONSEFORMAT="votable/td")
    t = votable.parse_single_table(io.BytesIO(r.content))
    f = {x.name: x for x in t.fields}
    assert f["dchisq"].arraysize == "5" and f["dchisq"].datatype == "float"
    assert f["type"].datatype == "char" and f["type"].ucd == "src.class.struct"
    assert f["flux_g"].ucd == "phot.flux;em.opt.B" and "flux" in f["flux_g"].description.lower()
    assert f["maskbits"].datatype == "short" and f["maskbits"].ucd == "meta.code.qual"


@pytest.mark.parametrize("params,needle", [
    ({"QUERY": "SELECT TOP 1 ra FROM dr9", "LANG": None}, "LANG is missing"),
    ({"QUERY": "SELECT TOP 1 ra FROM dr9", "LANG": "SQL"}, "LANG=SQL is not supported"),
    ({"QUERY": "SELECT TOP 1 ra FROM dr9", "MAXREC": "lots"}, "MAXREC=lots is not an integer"),
    ({"QUERY": "SELECT TOP 1 ra FROM dr9", "RESPONSEFORMAT": "xlsx"}, "RESPONSEFORMAT 'xlsx' is not supported"),
    ({}, "QUERY is missing"),
    ({"QUERY": "SELECT TOP 1 ra FROM dr9", "UPLOAD": "t,param:nopart"}, "no part named 'nopart'"),
])
def test_malformed_requests_get_400_with_an_error_votable(server, params, needle):
    p = {"LANG": "ADQL", **params}
    p = {k: v for k, v in p.items() if v is not None}
    r = httpx.get(server.url + "sync", params=p, timeout=30)
    assert r.status_code == 400
    t = votable.parse(io.BytesIO(r.content))
    info = [i for i in t.resources[0].infos if i.name == "QUERY_STATUS"][0]
    assert info.value == "ERROR" and needle in info.content


def test_read_only_and_request_size_limit(server):
    r = _get(server, QUERY="SELECT * FROM read_csv('/etc/passwd')")
    assert r.status_code == 400 and b"is not a table name" in r.content
    r = _get(server, QUERY="COPY dr9 TO '/tmp/x.csv'")
    assert r.status_code == 400
    big = httpx.post(server.url + "sync", content=b"x" * (65 << 20) + b"x" * (2 << 20),
                     headers={"content-type": "application/x-www-form-urlencoded"}, timeout=60)
    assert big.status_code == 413


def test_uws_life_cycle_and_jobs_survive_a_restart(server, query_lake, tap_dirs):
    base = server.url + "async"
    r = httpx.post(base, data={"LANG": "ADQL", "QUERY": "SELECT COUNT(*) AS n FROM dr9"}, timeout=30)
    assert r.status_code == 303
    job = r.headers["location"]
    assert httpx.get(job + "/phase").text == "PENDING"
    assert httpx.post(job + "/executionduration", data={"EXECUTIONDURATION": "120"}).status_code == 303
    assert httpx.get(job + "/executionduration").text == "120"
    assert httpx.post(job + "/destruction", data={"DESTRUCTION": "2099-01-01T00:00:00Z"}).status_code == 303
    assert httpx.get(job + "/destruction").text == "2099-01-01T00:00:00.000Z"
    assert httpx.post(job + "/phase", data={"PHASE": "RUN"}).status_code == 303
    doc = httpx.get(job, params={"WAIT": "30"}, timeout=60).text
    assert "<uws:phase>COMPLETED</uws:phase>" in doc
    n = connect(query_lake).sql("SELECT COUNT(*) FROM dr9").fetchall()[0][0]
    res = votable.parse_single_table(io.BytesIO(httpx.get(job + "/results/result").content)).to_table()
    assert int(res["n"][0]) == n
    # a failing job: ERROR phase and an error document naming the column
    bad = httpx.post(base, data={"LANG": "ADQL", "QUERY": "SELECT nosuch FROM dr9", "PHASE": "RUN"}).headers["location"]
    assert "<uws:phase>ERROR</uws:phase>" in httpx.get(bad, params={"WAIT": "30"}, timeout=60).text
    assert b"nosuch" in httpx.get(bad + "/error").content
    # abort a pending job, delete another
    ab = httpx.post(base, data={"LANG": "ADQL", "QUERY": "SELECT 1 AS x"}).headers["location"]
    httpx.post(ab + "/phase", data={"PHASE": "ABORT"})
    assert httpx.get(ab + "/phase").text == "ABORTED"
    r = httpx.post(ab, data={"ACTION": "DELETE"})
    assert r.status_code == 303 and httpx.get(ab).status_code == 404
    # restart the service on the same jobs folder: the completed job and its result are still there
    other = Server(query_lake, tap_dirs / "jobs", tap_dirs / "serve2.log")
    try:
        job2 = job.replace(server.url, other.url)
        assert "<uws:phase>COMPLETED</uws:phase>" in httpx.get(job2).text
        res2 = votable.parse_single_table(io.BytesIO(httpx.get(job2 + "/results/result").content)).to_table()
        assert int(res2["n"][0]) == n
        listing = httpx.get(other.url + "async").text
        assert job.rsplit("/", 1)[1] in listing
    finally:
        other.stop()


def test_examples_run_as_written(server, service):
    import re
    from html import unescape

    doc = httpx.get(server.url + "examples").text
    queries = [unescape(q) for q in re.findall(r'<pre property="query">(.*?)</pre>', doc, re.S)]
    assert len(queries) >= 6
    up = Table({"ra": [0.05, 0.1], "dec": [0.0, 0.05]})
    for q in queries:
        res = service.search(q, uploads={"mine": up} if "TAP_UPLOAD.mine" in q else None)
        assert res.query_status in ("OK", "OVERFLOW"), q
    assert any(len(service.search(q)) > 0 for q in queries if "CIRCLE('ICRS'" in q and "TAP_UPLOAD" not in q)


def test_capabilities_tables_availability(server):
    cap = httpx.get(server.url + "capabilities").text
    assert "ivo://ivoa.net/std/TAP" in cap and "features-adqlgeo" in cap and "flux_to_mag(flux DOUBLE)" in cap
    tables = httpx.get(server.url + "tables").text
    assert "<name>ls_dr9.tractor</name>" in tables and "<unit>nanomaggy</unit>" in tables
    assert "<ucd>pos.eq.ra;meta.main</ucd>" in tables
    assert "<vosi:available>true</vosi:available>" in httpx.get(server.url + "availability").text


def test_taplint_reports_zero_errors(server):
    assert shutil.which("stilts"), "stilts is not installed (apt-get install stilts; .ci/run does)"
    r = subprocess.run(["stilts", "taplint", f"tapurl={server.url}", "report=EW"], capture_output=True, text=True,
                       timeout=300)
    out = r.stdout + r.stderr
    totals = [ln for ln in out.splitlines() if ln.startswith("Totals:")]
    assert totals and "Errors: 0;" in totals[0], out[-4000:]
    assert totals[0].strip().endswith("Warnings: 1"), [ln for ln in out.splitlines() if ln.startswith("W-")]
    for stage in ("TMV", "TME", "TMS", "TMC", "CPV", "CAP", "AVV", "QGE", "QPO", "QAS", "UWS", "MDQ", "UPL", "EXA"):
        assert f"Section {stage}" in out


def test_pyvo_async_upload_join(service, rows):
    up = Table({"ra": [0.05, 0.1, 359.95], "dec": [0.0, 0.05, -0.05]})
    r = 0.02
    q = ("SELECT u.ra AS ura, t.brickid, t.objid FROM TAP_UPLOAD.mine AS u JOIN dr9 AS t "
         f"ON DISTANCE(POINT('ICRS', t.ra, t.dec), POINT('ICRS', u.ra, u.dec)) <= {r}")
    got = service.run_async(q, uploads={"mine": up}).to_table()
    want = set()
    for a, d in zip(up["ra"], up["dec"]):
        m = sep_deg(rows["ra"], rows["dec"], a, d) <= r
        want |= {(float(a), b, o) for b, o in zip(rows["brickid"][m].tolist(), rows["objid"][m].tolist())}
    assert len(want) > 10
    assert {(float(a), int(b), int(o)) for a, b, o in zip(got["ura"], got["brickid"], got["objid"])} == want


def test_tap_schema_keys_and_interface_version(service):
    keys = service.search("SELECT key_id, from_table, target_table FROM TAP_SCHEMA.keys").to_table()
    assert ("columns_table", "TAP_SCHEMA.columns", "TAP_SCHEMA.tables") in \
        {(str(a), str(b), str(c)) for a, b, c in zip(keys["key_id"], keys["from_table"], keys["target_table"])}
    cols = service.search("SELECT from_column, target_column FROM TAP_SCHEMA.key_columns "
                          "WHERE key_id = 'tables_schema'").to_table()
    assert [(str(a), str(b)) for a, b in zip(cols["from_column"], cols["target_column"])] == [("schema_name",
                                                                                             "schema_name")]
