"""The ASGI application in-process (Starlette's test client): the time limit as an HTTP error,
aborting an executing async job (its DuckDB query is interrupted), repeated slashes."""

from __future__ import annotations

import io
import time
import warnings

import pytest
from astropy.io import votable

with warnings.catch_warnings():   # starlette's note that it prefers httpx2 to httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from _tap import query_lake  # noqa: F401  (fixture)
from legacylake.query.tap.app import make_app
from legacylake.query.tap.engine import Config

HEAVY = "SELECT COUNT(*) AS n FROM dr9 AS a, dr9 AS b, dr9 AS c WHERE a.flux_r + b.flux_r > c.flux_r"


@pytest.fixture(scope="module")
def client(query_lake, tmp_path_factory):
    # one worker: a second job can only run once the first one's query has stopped
    cfg = Config(query_lake, timeout=1.0, workers=1, jobs_dir=tmp_path_factory.mktemp("jobs"))
    with TestClient(make_app(cfg)) as c:
        yield c


def _status(content: bytes) -> tuple[str, str]:
    info = [i for i in votable.parse(io.BytesIO(content)).resources[0].infos if i.name == "QUERY_STATUS"][0]
    return info.value, info.content or ""


def test_sync_time_limit_is_an_error_document(client):
    t0 = time.time()
    r = client.get("/sync", params={"LANG": "ADQL", "QUERY": HEAVY})
    assert time.time() - t0 < 20
    assert r.status_code == 500
    status, msg = _status(r.content)
    assert status == "ERROR" and "time limit of 1 s" in msg and "/async" in msg


def test_abort_interrupts_an_executing_job(client):
    r = client.post("/async", data={"LANG": "ADQL", "QUERY": HEAVY, "EXECUTIONDURATION": "600"},
                    follow_redirects=False)
    job = r.headers["location"]
    client.post(job + "/phase", data={"PHASE": "RUN"}, follow_redirects=False)
    assert "<uws:phase>EXECUTING</uws:phase>" in client.get(job, params={"WAIT": "10", "PHASE": "QUEUED"}).text
    time.sleep(0.5)
    client.post(job + "/phase", data={"PHASE": "ABORT"}, follow_redirects=False)
    assert client.get(job + "/phase").text == "ABORTED"
    assert client.get(job + "/results/result").status_code == 404
    t0 = time.time()   # the only worker is free again: the aborted query was interrupted
    r = client.post("/async", data={"LANG": "ADQL", "QUERY": "SELECT COUNT(*) AS n FROM dr9", "PHASE": "RUN"},
                    follow_redirects=False)
    doc = client.get(r.headers["location"], params={"WAIT": "30"}).text
    assert "<uws:phase>COMPLETED</uws:phase>" in doc and time.time() - t0 < 30


def test_repeated_slashes_and_unknown_jobs(client):
    assert client.get("//availability").status_code == 200
    assert client.get("/async/nosuchjob").status_code == 404
    assert client.post("/async/nosuchjob/phase", data={"PHASE": "RUN"}).status_code == 404
