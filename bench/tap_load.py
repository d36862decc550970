"""Load test of ``legacylake serve`` on 127.0.0.1: concurrent clients x mixed queries, every answer
checked, p50/p99 latency and errors; and a 1-arcmin cone over HTTP against the in-process
``cone_search`` in the same run.

The lake: ``--bricks`` random DR9 bricks (RA 150.., Dec 0..; all 181 DR9 columns, ``--rows``
per brick, ~DR9 density at 6,000) from ``legacylake.query.synthlake``, written as a HATS
catalog (order-7 leaves, 2,000-row row groups) under ``--work`` and kept between runs.

    python bench/tap_load.py [--clients 20] [--queries 50] [--bricks 64] [--rows 6000]

Query mix per client (in turn): a cone of 0.5-3 arcmin (ids checked against all rows in memory:
k-d tree candidates, exact haversine test), a small aggregate (count by type inside a box; checked against DuckDB
in-process), a cone with a function (dered_mag, no_maskbits; checked against DuckDB) and every
tenth query a 200-row upload joined by CONTAINS (the crossmatch; checked the same way).
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from legacylake.catalogs_schema import bricks
from legacylake.query import catalogs, cone_search, connect
from legacylake.query.synthlake import random_rows, write_lake


def build(work: Path, n_bricks: int, rows: int) -> Path:
    lake = work / f"lake_{n_bricks}x{rows}"
    if (lake / "dr9" / "hats.properties").exists():
        return lake
    side = int(np.ceil(np.sqrt(n_bricks))) * 0.25
    g = bricks.grid()
    ids = bricks.bricks_in_box(150.0, 150.0 + side, 0.0, side)[:n_bricks]
    names = [str(n) for n in g["brickname"][ids - 1]]
    t0 = time.time()
    write_lake(lake, "dr9", random_rows(names, rows, seed=5), order=7, row_group_size=2000)
    print(f"built {len(names)} bricks x {rows} rows in {time.time() - t0:.0f} s: {lake}", file=sys.stderr)
    return lake


def sep(ra1, dec1, ra2, dec2):
    ra1, dec1, ra2, dec2 = (np.radians(x) for x in (ra1, dec1, ra2, dec2))
    a = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0, 1))))


def _xyz(ra, dec) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def votable_table(content: bytes):
    from astropy.io import votable

    return votable.parse_single_table(io.BytesIO(content)).to_table()


class Checker:
    """All rows' ids and positions in memory (brute force) and a DuckDB connection (aggregates)."""

    def __init__(self, lake: Path):
        cat = catalogs(lake)["dr9"]
        t = pa.concat_tables([pq.read_table(f, columns=["brickid", "objid", "ra", "dec"]) for f in cat.files])
        self.ra, self.dec = t["ra"].to_numpy(), t["dec"].to_numpy()
        self.ids = np.array(list(zip(t["brickid"].to_numpy().tolist(), t["objid"].to_numpy().tolist())))
        from scipy.spatial import cKDTree

        self.xyz = _xyz(self.ra, self.dec)
        self.tree = cKDTree(self.xyz)
        self.con = connect(lake)
        self.lock = threading.Lock()
        self.lo = (float(self.ra.min()) + 0.05, float(self.dec.min()) + 0.05)
        self.hi = (float(self.ra.max()) - 0.05, float(self.dec.max()) - 0.05)

    def within(self, ra, dec, r) -> np.ndarray:
        """Indices of all rows within ``r`` deg of (ra, dec): k-d tree candidates (chord radius with a
        margin), then the exact haversine test."""
        cand = np.asarray(self.tree.query_ball_point(_xyz(np.array([ra]), np.array([dec]))[0],
                                                     2 * np.sin(np.radians(r) / 2) * 1.001 + 1e-12), dtype=np.int64)
        return cand[sep(self.ra[cand], self.dec[cand], ra, dec) <= r]

    def cone_ids(self, ra, dec, r) -> set:
        return set(map(tuple, self.ids[self.within(ra, dec, r)].tolist()))

    def sql(self, q):
        with self.lock:
            return self.con.sql(q).fetchall()


def make_queries(rng, chk: Checker, n: int):
    """(kind, ADQL, upload table or None, check(table) -> bool) x n."""
    out = []
    for i in range(n):
        ra, dec = rng.uniform(chk.lo[0], chk.hi[0]), rng.uniform(chk.lo[1], chk.hi[1])
        if i % 10 == 9:
            k = 200
            pick = rng.choice(len(chk.ra), k, replace=False)
            up = pa.table({"uid": np.arange(k), "ra": chk.ra[pick] + rng.normal(0, 2e-4, k),
                           "dec": chk.dec[pick] + rng.normal(0, 2e-4, k)})
            r = 1.0 / 3600
            q = ("SELECT u.uid, t.brickid, t.objid FROM dr9 AS t JOIN TAP_UPLOAD.mine AS u ON "
                 f"1 = CONTAINS(POINT('ICRS', t.ra, t.dec), CIRCLE('ICRS', u.ra, u.dec, {r!r}))")
            want = set()
            for j in range(k):
                m = chk.within(up["ra"][j].as_py(), up["dec"][j].as_py(), r)
                want |= {(j, int(b), int(o)) for b, o in chk.ids[m]}
            out.append(("upload join", q, up, lambda t, w=want: {
                (int(a), int(b), int(c)) for a, b, c in zip(t["uid"], t["brickid"], t["objid"])} == w))
        elif i % 3 == 0:
            r = rng.uniform(0.5, 3) / 60
            q = (f"SELECT brickid, objid, ra, dec, flux_r FROM dr9 WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
                 f"CIRCLE('ICRS', {ra!r}, {dec!r}, {r!r}))")
            want = chk.cone_ids(ra, dec, r)
            out.append(("cone", q, None, lambda t, w=want: {(int(b), int(o)) for b, o in zip(t["brickid"], t["objid"])} == w))
        elif i % 3 == 1:
            w = rng.uniform(0.05, 0.3)
            q = (f"SELECT type, COUNT(*) AS n FROM dr9 WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
                 f"BOX('ICRS', {ra!r}, {dec!r}, {w!r}, {w!r})) GROUP BY type ORDER BY type")
            want = chk.sql(f"SELECT type, COUNT(*) FROM dr9 WHERE abs(dec - {dec!r}) <= {w / 2!r} AND "
                           f"abs(ra - {ra!r}) <= {w / 2!r} GROUP BY type ORDER BY type")
            out.append(("box aggregate", q, None, lambda t, w=want: [(str(a), int(b)) for a, b in zip(t["type"], t["n"])]
                        == [(a, b) for a, b in w]))
        else:
            r = rng.uniform(1, 5) / 60
            q = (f"SELECT COUNT(*) AS n, AVG(dered_mag(flux_g, mw_transmission_g)) AS m FROM dr9 "
                 f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra!r}, {dec!r}, {r!r})) "
                 "AND no_maskbits(maskbits, 'BRIGHT,GALAXY') = 1")
            want = chk.sql(f"SELECT COUNT(*), AVG(dered_mag(flux_g, mw_transmission_g)) FROM dr9 WHERE "
                           f"ang_sep(ra, dec, {ra!r}, {dec!r}) <= {r!r} AND no_maskbits(maskbits, 'BRIGHT,GALAXY')")[0]
            out.append(("cone + functions", q, None, lambda t, w=want: int(t["n"][0]) == w[0] and (
                w[1] is None or abs(float(t["m"][0]) - w[1]) < 1e-9)))
    return out


def upload_votable(t: pa.Table) -> bytes:
    from astropy.io.votable import from_table
    from astropy.table import Table

    buf = io.BytesIO()
    from_table(Table({c: t[c].to_numpy() for c in t.column_names})).to_xml(buf)
    return buf.getvalue()


def client(url: str, queries, results: list, deadline: float) -> None:
    import httpx

    with httpx.Client(timeout=120) as http:
        for kind, q, up, check in queries:
            if time.time() > deadline:
                results.append((kind, None, "deadline"))
                continue
            t0 = time.perf_counter()
            try:
                if up is None:
                    r = http.post(url + "sync", data={"LANG": "ADQL", "QUERY": q, "MAXREC": "1000000"})
                else:
                    r = http.post(url + "sync", data={"LANG": "ADQL", "QUERY": q, "UPLOAD": "mine,param:t1"},
                                  files={"t1": ("t1.xml", upload_votable(up), "application/x-votable+xml")})
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    results.append((kind, dt, f"HTTP {r.status_code}: {r.text[:200]}"))
                    continue
                ok = check(votable_table(r.content))
                results.append((kind, dt, None if ok else "wrong answer"))
            except Exception as exc:
                results.append((kind, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--bricks", type=int, default=64)
    ap.add_argument("--rows", type=int, default=6000)
    ap.add_argument("--workers", type=int, default=4, help="legacylake serve --workers")
    ap.add_argument("--repeat", type=int, default=30, help="repeats of the 1-arcmin cone comparison")
    ap.add_argument("--limit", type=float, default=900, help="seconds the load test may take")
    ap.add_argument("--work", default=str(Path(__file__).parent / "_work" / "tap"))
    a = ap.parse_args()
    work = Path(a.work)
    lake = build(work, a.bricks, a.rows)
    chk = Checker(lake)
    import httpx

    port = 8400 + int(time.time()) % 500
    url = f"http://127.0.0.1:{port}/"
    srv = subprocess.Popen([sys.executable, "-m", "legacylake", "serve", "--lake", str(lake), "--port", str(port),
                            "--workers", str(a.workers), "--jobs-dir", str(work / "jobs")], stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "availability", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        rng = np.random.default_rng(1)
        # 1-arcmin cone: in-process cone_search vs the same over HTTP (VOTable BINARY2), same columns
        cols = ["brickid", "objid", "ra", "dec", "flux_g", "flux_r", "flux_z", "type"]
        centres = [(rng.uniform(chk.lo[0], chk.hi[0]), rng.uniform(chk.lo[1], chk.hi[1])) for _ in range(a.repeat)]
        r = 1 / 60
        for ra, dec in centres[:3]:   # warm both (footer caches, imports)
            cone_search(lake, ra, dec, r, catalog="dr9", columns=cols)
        inproc, http_t, bytes_t, nrows = [], [], [], []
        with httpx.Client(timeout=60) as http:
            for ra, dec in centres[:3]:
                http.get(url + "sync", params={"LANG": "ADQL", "QUERY": "SELECT TOP 1 ra FROM dr9"})
            for ra, dec in centres:
                t0 = time.perf_counter()
                t = cone_search(lake, ra, dec, r, catalog="dr9", columns=cols)
                inproc.append(time.perf_counter() - t0)
                q = (f"SELECT {', '.join(cols)} FROM dr9 WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
                     f"CIRCLE('ICRS', {ra!r}, {dec!r}, {r!r}))")
                t0 = time.perf_counter()
                resp = http.get(url + "sync", params={"LANG": "ADQL", "QUERY": q})
                body = resp.content
                bytes_t.append(time.perf_counter() - t0)
                vt = votable_table(body)
                http_t.append(time.perf_counter() - t0)
                assert len(vt) == t.num_rows, (len(vt), t.num_rows)
                nrows.append(t.num_rows)
        mi, mh, mb = statistics.median(inproc), statistics.median(http_t), statistics.median(bytes_t)
        print(f"\n1-arcmin cone ({statistics.median(nrows):.0f} rows median, {len(cols)} columns, {a.repeat} centres): "
              f"in-process cone_search median {mi * 1e3:.1f} ms; HTTP /sync until the VOTable is received "
              f"{mb * 1e3:.1f} ms ({mb / mi:.2f}x); plus parsing it with astropy {mh * 1e3:.1f} ms ({mh / mi:.2f}x)")
        # the load test
        plans = [make_queries(np.random.default_rng(100 + c), chk, a.queries) for c in range(a.clients)]
        results: list = []
        deadline = time.time() + a.limit
        threads = [threading.Thread(target=client, args=(url, p, results, deadline)) for p in plans]
        t0 = time.time()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.time() - t0
        lat = [d for _, d, e in results if e is None]
        errors = [(k, e) for k, _, e in results if e is not None]
        print(f"\nload: {a.clients} clients x {a.queries} queries = {len(results)} queries in {wall:.1f} s "
              f"({len(results) / wall:.1f} queries/s), server --workers {a.workers}; errors: {len(errors)}")
        print("\n| query kind | n | p50 ms | p99 ms | errors |\n|---|---|---|---|---|")
        for kind in ("cone", "box aggregate", "cone + functions", "upload join", None):
            sel = [(d, e) for k, d, e in results if kind is None or k == kind]
            ds = [d for d, e in sel if e is None]
            print(f"| {kind or 'all'} | {len(sel)} | {pct(ds, 50) * 1e3:.0f} | {pct(ds, 99) * 1e3:.0f} | "
                  f"{sum(e is not None for _, e in sel)} |")
        for k, e in errors[:10]:
            print(f"error ({k}): {e}")
        assert lat
    finally:
        srv.terminate()
        srv.wait(10)


if __name__ == "__main__":
    main()
