"""Fixtures of the TAP tests: the test lake (tests/_query_lake.py), a ``legacylake serve`` process
on a free 127.0.0.1 port, and the lake's rows for brute-force answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _query_lake import query_lake  # noqa: F401  (fixture)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``legacylake serve`` subprocess; ``url`` ends with a slash."""

    def __init__(self, lake: Path, jobs: Path, log: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = log
        cmd = [sys.executable, "-m", "legacylake", "serve", "--lake", str(lake), "--port", str(self.port),
               "--jobs-dir", str(jobs), "--alias", "ls_dr9.tractor=dr9", "--workers", "4", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "wb"), cwd="/")
        import httpx

        t0 = time.time()
        while time.time() - t0 < 90:
            if self.proc.poll() is not None:
                raise RuntimeError(f"legacylake serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "availability", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"legacylake serve did not start: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def tap_dirs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tap")


@pytest.fixture(scope="session")
def server(query_lake, tap_dirs):
    s = Server(query_lake, tap_dirs / "jobs", tap_dirs / "serve.log")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def service(server):
    import pyvo

    return pyvo.dal.TAPService(server.url)


@pytest.fixture(scope="session")
def rows(query_lake) -> dict[str, np.ndarray]:
    """Every row of the test lake: ids, positions, fluxes, type, maskbits (numpy)."""
    from legacylake.query import catalogs

    cat = catalogs(query_lake)["dr9"]
    t = pa.concat_tables([pq.read_table(f, columns=["release", "brickid", "objid", "ra", "dec", "flux_r", "type",
                                                    "maskbits"]) for f in cat.files])
    return {n: t[n].to_numpy(zero_copy_only=False) for n in t.column_names}


def sep_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Angular separation (haversine), deg."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(x, dtype=float)) for x in (ra1, dec1, ra2, dec2))
    a = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0, 1))))


def ids(table) -> set:
    """{(brickid, objid)} of a table with those columns (astropy, Arrow or dict of arrays)."""
    return set(zip(np.asarray(table["brickid"]).tolist(), np.asarray(table["objid"]).tolist()))
