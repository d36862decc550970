"""Query benchmarks: pruned cone search vs lsdb, plain DuckDB (box predicate, footer cache) and a
naive DuckDB scan; the function
library vs hand-written SQL on a DESI-like selection; GROUP BY nest4096 throughput.

The lake: ``--rows`` (default 10 million) random rows over the DR9 brick grid at DR9 density
(~96,000 / deg^2, RA 148-160, Dec -1..9), with the ~40 DR9 columns the queries use (units and
descriptions from catalogs_schema), written as a HATS catalog (order-6 leaves, 10,000-row row
groups sorted by _healpix_29) by legacylake.query.synthlake.write_lake. Built once and kept.

    python bench/query.py [--rows 10000000] [--lake /tmp/legacylake_bench_query] [--repeat 15]
                          [--full-rows 1000000]

``--full-rows N`` adds a second lake with every DR9 Tractor column (181): N rows of random
bricks (6,000 rows per brick, DR9 density) written as Tractor FITS and ingested by
``legacylake.etl.build``, on which the cone searches are timed again with all columns.

``--sim-bricks N`` runs everything on a lake of simulated DR9 bricks instead: the ~N bricks
of the box RA 150..150+s, Dec 0..s (s = 0.25 sqrt(N) deg) simulated by ``legacylake simulate
catalogs`` (~4,600 rows per brick, all 181 DR9 columns) and ingested by ``legacylake etl build
--workers 2``, cached in ``--sim-work`` (default bench/_work/sim<N>; the FITS are deleted
after the build unless ``--keep-fits``). N = 2500 gives ~11.8 M rows (~12 GB of Parquet).

    python bench/query.py --sim-bricks 2500 [--repeat 15] [--lsdb-repeat 3] [--centers 3]

``--build-only`` builds the cache and exits, so the (long) build can run at low priority and
the timings later at normal priority: ``nice -n 19 python bench/query.py --sim-bricks 2500
--build-only``. The cone table also gives the "decode floor": one bare pyarrow
``ParquetFile.read_row_groups`` of the row groups the search planned (first centre; footers
cached), i.e. what any reader built on pyarrow pays for those rows before any overhead of its own.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from legacylake.catalogs_schema import bricks, constants, model
from legacylake.etl import layout
from legacylake.query import catalogs, cone_search
from legacylake.query import connect
from legacylake.query.spatial.regions import Region
from legacylake.query.spatial.search import footer, plan
from legacylake.query.synthlake import write_lake

BANDS = ("g", "r", "z", "w1", "w2")
COLUMNS = (["release", "brickid", "brickname", "objid", "brick_primary", "maskbits", "fitbits", "type", "ra", "dec",
            "ebv", "shape_r", "shape_e1", "shape_e2"]
           + [f"flux_{b}" for b in BANDS] + [f"flux_ivar_{b}" for b in BANDS] + [f"mw_transmission_{b}" for b in BANDS]
           + [f"fiberflux_{b}" for b in "grz"] + [f"nobs_{b}" for b in "grz"] + [f"psfdepth_{b}" for b in "grz"]
           + ["gaia_phot_g_mean_mag"])
RA_RANGE, DEC_RANGE = (148.0, 160.0), (-1.0, 9.0)


def make_table(n: int, seed: int = 1) -> pa.Table:
    """``n`` random DR9-like rows (narrow schema) uniform on the sphere inside RA_RANGE x DEC_RANGE."""
    rng = np.random.default_rng(seed)
    m = model("dr9-tractor")
    s1, s2 = np.sin(np.radians(DEC_RANGE))
    dec = np.degrees(np.arcsin(rng.uniform(s1, s2, n)))
    ra = rng.uniform(*RA_RANGE, n)
    bid = bricks.brickid_of(ra, dec)
    order = np.lexsort((ra, bid))
    ra, dec, bid = ra[order], dec[order], bid[order]
    first = np.r_[0, np.flatnonzero(np.diff(bid)) + 1]
    objid = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))
    g = bricks.grid()
    cols = {"release": np.full(n, 9010, np.int16), "brickid": bid.astype(np.int32),
            "brickname": g["brickname"][bid - 1].astype(str), "objid": objid.astype(np.int32),
            "brick_primary": rng.random(n) < 0.9, "ra": ra, "dec": dec,
            "type": rng.choice(np.array(["PSF", "REX", "EXP", "DEV", "SER"]), n),
            "ebv": rng.uniform(0.01, 0.1, n).astype(np.float32),
            "shape_r": rng.exponential(1.0, n).astype(np.float32),
            "shape_e1": rng.uniform(-0.5, 0.5, n).astype(np.float32),
            "shape_e2": rng.uniform(-0.5, 0.5, n).astype(np.float32),
            "gaia_phot_g_mean_mag": np.where(rng.random(n) < 0.1, rng.uniform(12, 21, n), 0).astype(np.float32)}
    bits = np.array([2, 4096, 8192, 1 << 8, 1 << 9, 1 << 11])
    cols["maskbits"] = ((rng.random((n, len(bits))) < 0.05) * bits).sum(axis=1).astype(np.int16)
    cols["fitbits"] = rng.integers(0, 1 << 13, n).astype(np.int16)
    for b in BANDS:
        cols[f"flux_{b}"] = (rng.lognormal(0.0, 1.3, n) - 0.5).astype(np.float32)
        cols[f"flux_ivar_{b}"] = np.where(rng.random(n) < 0.03, 0, rng.uniform(1, 100, n)).astype(np.float32)
        cols[f"mw_transmission_{b}"] = constants.mw_transmission(cols["ebv"], b).astype(np.float32)
    for b in "grz":
        cols[f"fiberflux_{b}"] = (cols[f"flux_{b}"] * 0.6).astype(np.float32)
        cols[f"nobs_{b}"] = rng.integers(0, 6, n).astype(np.int16)
        cols[f"psfdepth_{b}"] = rng.uniform(50, 3000, n).astype(np.float32)
    fields = [f for f in m.arrow_schema() if f.name in COLUMNS]
    fields.sort(key=lambda f: COLUMNS.index(f.name))
    return pa.Table.from_arrays([pa.array(cols[f.name], type=f.type) for f in fields], schema=pa.schema(fields))


def ensure_lake(lake: Path, rows: int) -> Path:
    cat = lake / "dr9"
    if (cat / "hats.properties").exists():
        props = dict(line.split("=", 1) for line in (cat / "hats.properties").read_text().splitlines() if "=" in line)
        if int(props.get("hats_nrows", 0)) == rows:
            return cat
    t0 = time.perf_counter()
    table = make_table(rows)
    write_lake(lake, "dr9", table, order=6, row_group_size=10_000)
    print(f"built lake {cat}: {rows:,} rows in {time.perf_counter() - t0:.1f} s")
    return cat


def ensure_full_lake(lake: Path, rows: int) -> Path:
    """A lake with all 181 DR9 columns built by the ETL from random Tractor FITS bricks."""
    from legacylake.etl import build
    from legacylake.query.synthlake import write_fits_bricks

    cat = lake / "dr9"
    per_brick = 6000
    nb = max(1, rows // per_brick)
    if layout.hats_dir(cat) is not None:
        return cat
    g = bricks.grid()
    side = int(np.ceil(np.sqrt(nb))) * 0.25 + 0.25
    ids = bricks.bricks_in_box(150.0, 150.0 + side, 1.0, 1.0 + side)[:nb]
    t0 = time.perf_counter()
    write_fits_bricks(lake / "fits", [str(n) for n in g["brickname"][ids - 1]], per_brick, seed=5)
    t1 = time.perf_counter()
    s = build(str(lake / "fits"), str(lake), "dr9", workers=2)
    print(f"built full-schema lake {cat}: {s.rows:,} rows ({len(ids)} bricks); FITS {t1 - t0:.0f} s, "
          f"ETL {time.perf_counter() - t1:.0f} s")
    return cat


def sim_box(nbricks: int) -> tuple[float, float, float, float]:
    """The RA/Dec box (deg) whose bricks make the ``--sim-bricks`` lake."""
    side = 0.25 * math.sqrt(nbricks)
    return 150.0, 150.0 + side, 0.0, side


def ensure_sim_lake(work: Path, nbricks: int, keep_fits: bool = False) -> Path:
    """Simulate ~``nbricks`` DR9 bricks and ingest them with the ETL (once; reused after)."""
    cat = work / "lake" / "dr9"
    if layout.hats_dir(cat) is not None:
        return cat
    box = [str(x) for x in sim_box(nbricks)]
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if not (work / "sim" / "tractor").exists():
        subprocess.run([sys.executable, "-m", "legacylake", "simulate", "catalogs", "--out", str(work / "sim"),
                        "--box", *box, "--workers", "2"], check=True)
    t1 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "legacylake", "etl", "build", "--lake", str(work / "lake"),
                    "--catalog", "dr9", "--workers", "2", "--quiet", str(work / "sim" / "tractor")], check=True)
    print(f"built simulated lake {cat}: simulate {t1 - t0:.0f} s, ETL {time.perf_counter() - t1:.0f} s")
    if not keep_fits:
        shutil.rmtree(work / "sim", ignore_errors=True)
    return cat


def timed2(fn) -> tuple[float, float, object]:
    """(wall s, process CPU s incl. all threads, result) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


FEW = ["ra", "dec", "type", "flux_g", "flux_r", "flux_z", "maskbits"]


def sim_cone_table(catdir: Path, cat, con, centers, repeat: int, lsdb_repeat: int) -> None:
    """Cone searches on the all-columns lake: ours vs lsdb vs unpruned DuckDB, all columns and 7.

    Each (radius, columns) row interleaves ours and lsdb on the same centres (warm: one untimed
    call first per centre); medians over centres x repeats of wall and process CPU time."""
    import lsdb

    lcats = {"all": lsdb.open_catalog(str(catdir), columns="all"), "7": lsdb.open_catalog(str(catdir), columns=FEW)}
    pcon, source = plain_duckdb([str(f) for f in cat.files])
    print(f"\ncones at {len(centers)} centres {[(round(a, 3), round(d, 3)) for a, d in centers]}; "
          f"lsdb {lsdb.__version__} open_catalog(columns='all' | the 7).cone_search(...).compute(); "
          "plain DuckDB: read_parquet(leaves) with an RA/Dec box predicate and the exact distance, "
          "parquet_metadata_cache on (warm); naive DuckDB: `SELECT <cols> FROM dr9 WHERE ang_sep(ra, dec, "
          "ra0, dec0) <= r` over every file, no box. All ratios same-run.")
    print("\n| cone | columns | ours wall (CPU) | files / row groups read (of those files) | rows scanned -> "
          "returned | lsdb wall (CPU), partitions | plain DuckDB, box + footer cache | naive DuckDB, no box | "
          "lsdb/ours wall (CPU) | plain DuckDB/ours | naive/ours | decode floor wall (CPU) |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, r in (("1 arcmin", 1 / 60), ("0.5 deg", 0.5)):
        for cols_label, cols in (("all 181", None), ("7", FEW)):
            lcat = lcats["all" if cols is None else "7"]
            ow, oc, lw, lc, st_all, nparts = [], [], [], [], [], []
            for ra0, dec0 in centers:
                st: dict = {}
                out = cone_search(cat, ra0, dec0, r, columns=cols, stats=st)  # warm
                lq = lcat.cone_search(ra0, dec0, r * 3600)
                lout = lq.compute()
                assert out.num_rows == len(lout), (out.num_rows, len(lout))
                nparts.append(len(lq.get_healpix_pixels()))
                st_all.append(st)
                for i in range(repeat):
                    w, c, _ = timed2(lambda: cone_search(cat, ra0, dec0, r, columns=cols))
                    ow.append(w)
                    oc.append(c)
                    if i < lsdb_repeat:
                        w, c, _ = timed2(lambda: lcat.cone_search(ra0, dec0, r * 3600).compute())
                        lw.append(w)
                        lc.append(c)
            ra0, dec0 = centers[0]
            sel = "*" if cols is None else ", ".join(cols)
            sql = f"SELECT {sel} FROM dr9 WHERE ang_sep(ra, dec, {ra0}, {dec0}) <= {r}"
            con.sql(sql).to_arrow_table()
            dw = statistics.median([timed2(lambda: con.sql(sql).to_arrow_table())[0] for _ in range(2)])
            med = statistics.median
            pw = []
            for pra, pdec in centers:
                psql = plain_cone_sql(source, cols, pra, pdec, r)
                pout = pcon.sql(psql).to_arrow_table()   # warm: footers into the cache
                assert pout.num_rows == cone_search(cat, pra, pdec, r, columns=["ra"]).num_rows
                pw += [timed2(lambda: pcon.sql(psql).to_arrow_table())[0] for _ in range(max(2, lsdb_repeat))]
            fw, fc = decode_floor(cat, Region.cone(ra0, dec0, r), cols, max(3, repeat))
            f_read, rg, rg_tot, scanned, rows = (int(med([x[k] for x in st_all])) for k in (
                "files_read", "row_groups_read", "row_groups_in_files", "rows_scanned", "rows"))
            print(f"| {label} | {cols_label} | {med(ow) * 1e3:.1f} ms ({med(oc) * 1e3:.1f} ms) | "
                  f"{f_read}/{st_all[0]['files_total']} files, {rg}/{rg_tot} row groups | {scanned:,} -> {rows:,} | "
                  f"{med(lw) * 1e3:.0f} ms ({med(lc) * 1e3:.0f} ms), {int(med(nparts))} | "
                  f"{med(pw) * 1e3:.0f} ms | {dw * 1e3:.0f} ms | {med(lw) / med(ow):.1f}x ({med(lc) / med(oc):.1f}x) | "
                  f"{med(pw) / med(ow):.1f}x | {dw / med(ow):.0f}x | "
                  f"{fw * 1e3:.1f} ms ({fc * 1e3:.1f} ms) |", flush=True)


def plain_duckdb(files: list[str]):
    """A plain DuckDB connection (no legacylake functions) with its Parquet footer cache on,
    and the ``read_parquet`` source over the catalog's leaf files: the peer at its best honest
    settings."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET parquet_metadata_cache = true")
    return con, "read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])"


def plain_cone_sql(source: str, cols, ra0: float, dec0: float, r: float) -> str:
    """Cone SQL as a DuckDB user writes it without our library: a RA/Dec bounding-box predicate
    (which DuckDB pushes into the Parquet scan, skipping row groups by their min/max) and the
    exact haversine distance."""
    sel = "*" if cols is None else ", ".join(cols)
    dra = min(180.0, r / max(1e-9, math.cos(math.radians(min(89.9, abs(dec0) + r)))))
    return (f"SELECT {sel} FROM {source} WHERE dec BETWEEN {dec0 - r} AND {dec0 + r} "
            f"AND ra BETWEEN {ra0 - dra} AND {ra0 + dra} "
            f"AND degrees(2 * asin(sqrt(pow(sin(radians(dec - {dec0}) / 2), 2) + cos(radians(dec)) * "
            f"cos(radians({dec0})) * pow(sin(radians(ra - {ra0}) / 2), 2)))) <= {r}")


def decode_floor(cat, region, cols, repeat: int) -> tuple[float, float]:
    """Median (wall, CPU) s of one bare pyarrow read of the row groups ``plan`` picks for
    ``region`` (columns ``cols``; no ra/dec pre-read, no row filter)."""
    p = plan(cat, region)

    def read():  # footers as cached by the search (a leaf's footer alone is ~10 ms to parse)
        return [pq.ParquetFile(path, metadata=footer(path)[0]).read_row_groups(rgs, columns=cols)
                for path, rgs in p.files]

    read()
    runs = [timed2(read) for _ in range(repeat)]
    return statistics.median([x[0] for x in runs]), statistics.median([x[1] for x in runs])


def whole_lake_queries(con, nrows: int) -> None:
    """DESI-like selection (functions vs written out, interleaved) and GROUP BY nest4096."""
    print("\n| whole-lake query | median | rows/s |\n|---|---|---|")
    n_f = con.sql(DESI_FUNCS).fetchall()[0][0]
    n_r = con.sql(DESI_RAW).fetchall()[0][0]
    n_g = con.sql(DESI_FUNCS + DESI_GUARDS).fetchall()[0][0]
    assert n_f == n_r == n_g, (n_f, n_r, n_g)
    tf, tr, tg, cf, cr, cg = [], [], [], [], [], []
    for _ in range(5):  # interleaved, so that load from other processes hits all variants alike
        for sql, acc, cacc in ((DESI_FUNCS, tf, cf), (DESI_RAW, tr, cr), (DESI_FUNCS + DESI_GUARDS, tg, cg)):
            w, c, _ = timed2(lambda: con.sql(sql).fetchall())
            acc.append(w)
            cacc.append(c)
    med = statistics.median
    t_f, t_r, t_g = med(tf), med(tr), med(tg)
    print(f"| DESI ELG-like selection, our functions ({n_f:,} rows selected; median of 5 interleaved) | "
          f"{t_f:.3f} s (CPU {med(cf):.3f} s) | {nrows / t_f:,.0f} |")
    print(f"| same selection, arithmetic written out (with the flux > 0 guards it needs) | {t_r:.3f} s "
          f"(CPU {med(cr):.3f} s) | {nrows / t_r:,.0f} |")
    print(f"| our functions plus the same flux > 0 guards (pushed into the Parquet scan) | {t_g:.3f} s "
          f"(CPU {med(cg):.3f} s) | {nrows / t_g:,.0f} |")
    print(f"| ratio functions / written out (same run) | {t_f / t_r:.2f}x (CPU {med(cf) / med(cr):.2f}x); "
          f"with the guards {t_g / t_r:.2f}x (CPU {med(cg) / med(cr):.2f}x) | |")
    q = "SELECT nest4096, count(*) FROM dr9_derived GROUP BY nest4096"
    groups = con.sql(q).fetchall()
    runs = [timed2(lambda: con.sql(q).fetchall()) for _ in range(3)]
    t_g, c_g = med([r[0] for r in runs]), med([r[1] for r in runs])
    print(f"| SELECT nest4096, count(*) ... GROUP BY nest4096 ({len(groups):,} groups) | {t_g:.3f} s "
          f"(CPU {c_g:.3f} s) | {nrows / t_g:,.0f} (per CPU-second {nrows / c_g:,.0f}) |", flush=True)


def cone_table(cat, lcat, con, ra0: float, dec0: float, repeat: int, lsdb_repeat: int) -> None:
    """Print the cone-search comparison rows (ours, lsdb, unpruned DuckDB) for 1 arcmin and 0.5 deg."""
    pcon, source = plain_duckdb([str(f) for f in cat.files])
    print("\n(all ratios same-run; plain DuckDB: read_parquet(leaves) with an RA/Dec box predicate and the exact "
          "distance, parquet_metadata_cache on; naive: our connection's view, no box, ang_sep over every row)")
    print("\n| cone | ours median warm | files / row groups read (of total) | rows | lsdb cone_search | "
          "plain DuckDB, box + footer cache | naive DuckDB, no box | lsdb/ours | plain DuckDB/ours | naive/ours |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    for label, r in (("1 arcmin", 1 / 60), ("0.5 deg", 0.5)):
        stats: dict = {}
        t_ours, out = timed(lambda: cone_search(cat, ra0, dec0, r, stats=stats), repeat)
        cone_search(cat, ra0, dec0, r, stats=stats)
        t_lsdb, lout = timed(lambda: lcat.cone_search(ra0, dec0, r * 3600).compute(), lsdb_repeat)
        sql = f"SELECT * FROM dr9 WHERE ang_sep(ra, dec, {ra0}, {dec0}) <= {r}"
        t_duck, dout = timed(lambda: con.sql(sql).to_arrow_table(), max(2, lsdb_repeat))
        psql = plain_cone_sql(source, None, ra0, dec0, r)
        t_plain, pout = timed(lambda: pcon.sql(psql).to_arrow_table(), max(3, lsdb_repeat))
        assert out.num_rows == len(lout) == dout.num_rows == pout.num_rows, (out.num_rows, len(lout), dout.num_rows)
        print(f"| {label} | {t_ours * 1e3:.1f} ms | {stats['files_read']}/{stats['files_total']} files, "
              f"{stats['row_groups_read']}/{stats['row_groups_in_files']} row groups | {out.num_rows:,} | "
              f"{t_lsdb * 1e3:.0f} ms | {t_plain * 1e3:.0f} ms | {t_duck * 1e3:.0f} ms | {t_lsdb / t_ours:.1f}x | "
              f"{t_plain / t_ours:.1f}x | {t_duck / t_ours:.1f}x |")


def timed(fn, repeat: int) -> tuple[float, object]:
    fn()  # warm
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


DESI_FUNCS = """
SELECT count(*) FROM dr9 WHERE brick_primary
  AND no_maskbits(maskbits, 'BRIGHT,GALAXY,CLUSTER')
  AND nobs_g > 0 AND nobs_r > 0 AND nobs_z > 0
  AND snr(flux_g, flux_ivar_g) > 0 AND snr(flux_r, flux_ivar_r) > 0 AND snr(flux_z, flux_ivar_z) > 0
  AND dered_mag(flux_g, mw_transmission_g) > 20
  AND dered_mag(flux_r, mw_transmission_r) - dered_mag(flux_z, mw_transmission_z) > 0.15
  AND dered_mag(fiberflux_g, mw_transmission_g) < 24.1
  AND dered_mag(flux_g, mw_transmission_g) - dered_mag(flux_r, mw_transmission_r)
      < 0.5 * (dered_mag(flux_r, mw_transmission_r) - dered_mag(flux_z, mw_transmission_z)) + 0.1
"""

DESI_RAW = """
SELECT count(*) FROM dr9 WHERE brick_primary
  AND (maskbits & 12290) = 0
  AND nobs_g > 0 AND nobs_r > 0 AND nobs_z > 0
  AND flux_g * sqrt(flux_ivar_g) > 0 AND flux_r * sqrt(flux_ivar_r) > 0 AND flux_z * sqrt(flux_ivar_z) > 0
  AND flux_g > 0 AND flux_r > 0 AND flux_z > 0 AND fiberflux_g > 0
  AND 22.5 - 2.5 * log10(flux_g / mw_transmission_g) > 20
  AND (22.5 - 2.5 * log10(flux_r / mw_transmission_r)) - (22.5 - 2.5 * log10(flux_z / mw_transmission_z)) > 0.15
  AND 22.5 - 2.5 * log10(fiberflux_g / mw_transmission_g) < 24.1
  AND (22.5 - 2.5 * log10(flux_g / mw_transmission_g)) - (22.5 - 2.5 * log10(flux_r / mw_transmission_r))
      < 0.5 * ((22.5 - 2.5 * log10(flux_r / mw_transmission_r)) - (22.5 - 2.5 * log10(flux_z / mw_transmission_z))) + 0.1
"""


#: The positivity guards the written-out selection needs (DuckDB's log10 gives NaN or -inf, and NaN
#: compares greater than any number); our functions return NULL instead, so they do not need them,
#: but plain column comparisons are pushed into the Parquet scan, which CASE expressions are not.
DESI_GUARDS = "  AND flux_g > 0 AND flux_r > 0 AND flux_z > 0 AND fiberflux_g > 0\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--lake", type=Path, default=Path("/tmp/legacylake_bench_query"))
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--lsdb-repeat", type=int, default=3)
    ap.add_argument("--full-rows", type=int, default=0, help="also time cones on an all-columns ETL lake of N rows")
    ap.add_argument("--full-lake", type=Path, default=Path("/tmp/legacylake_bench_query_full"))
    ap.add_argument("--sim-bricks", type=int, default=0,
                    help="run on a lake of ~N simulated DR9 bricks (all columns) instead of the narrow lake")
    ap.add_argument("--sim-work", type=Path, default=None, help="cache folder (default bench/_work/sim<N>)")
    ap.add_argument("--keep-fits", action="store_true", help="keep the simulated FITS after the ETL")
    ap.add_argument("--centers", type=int, default=3, help="cone centres (--sim-bricks)")
    ap.add_argument("--build-only", action="store_true", help="build the --sim-bricks cache and exit")
    args = ap.parse_args()
    if args.sim_bricks:
        work = args.sim_work or Path(__file__).parent / "_work" / f"sim{args.sim_bricks}"
        catdir = ensure_sim_lake(work, args.sim_bricks, args.keep_fits)
        if args.build_only:
            print(f"cache ready: {catdir}")
            return
        lake = catdir.parent
        cat = catalogs(lake)["dr9"]
        con = connect(lake)
        nrows = con.sql("SELECT count(*) FROM dr9").fetchall()[0][0]
        nbytes = sum(Path(f).stat().st_size for f in cat.files)
        print(f"lake {lake}: {nrows:,} rows x {len(cat.schema)} columns, {len(cat.files)} files "
              f"({nbytes / 1e9:.1f} GB); machine: 2 cores, 24 GiB, shared with other agents "
              f"(load average at start {open('/proc/loadavg').read().split()[0]})")
        ra1, ra2, dec1, dec2 = sim_box(args.sim_bricks)
        rng = np.random.default_rng(7)
        centers = [(float(rng.uniform(ra1 + 1, ra2 - 1)), float(rng.uniform(dec1 + 1, dec2 - 1)))
                   for _ in range(args.centers)]
        sim_cone_table(catdir, cat, con, centers, args.repeat, args.lsdb_repeat)
        whole_lake_queries(con, nrows)
        print(f"(load average at end {open('/proc/loadavg').read().split()[0]})")
        con.close()
        return
    catdir = ensure_lake(args.lake, args.rows)
    cat = catalogs(args.lake)["dr9"]
    con = connect(args.lake)
    nrows = con.sql("SELECT count(*) FROM dr9").fetchall()[0][0]
    print(f"lake: {nrows:,} rows, {len(cat.files)} files; machine: 2 cores, 24 GiB")

    import lsdb

    lcat = lsdb.open_catalog(str(catdir))
    ra0, dec0 = 154.123, 4.321
    cone_table(cat, lcat, con, ra0, dec0, args.repeat, args.lsdb_repeat)
    whole_lake_queries(con, nrows)
    con.close()

    if args.full_rows:
        fcat_dir = ensure_full_lake(args.full_lake, args.full_rows)
        fcat = catalogs(args.full_lake)["dr9"]
        fcon = connect(args.full_lake)
        n = fcon.sql("SELECT count(*) FROM dr9").fetchall()[0][0]
        print(f"\nall-columns lake: {n:,} rows x {len(fcat.schema)} columns, {len(fcat.files)} files")
        ra0 = float(np.median(fcon.sql("SELECT ra FROM dr9 USING SAMPLE 1000").fetchnumpy()["ra"]))
        dec0 = float(np.median(fcon.sql("SELECT dec FROM dr9 USING SAMPLE 1000").fetchnumpy()["dec"]))
        cone_table(fcat, lsdb.open_catalog(str(fcat_dir)), fcon, ra0, dec0, args.repeat, args.lsdb_repeat)
        fcon.close()


if __name__ == "__main__":
    main()
