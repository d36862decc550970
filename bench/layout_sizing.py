"""Layout sizing by measurement (issue 19, item 2): the same >= 10M-row lake laid out with
different row-group sizes, with and without the Parquet page index, and with leaves split by
rows or by bytes, each timed on the queries the defaults are chosen for.

    python bench/layout_sizing.py --lake /tmp/sizing_sim2500/lake [--variants rg8192,rg65536,...]
                                  [--repeat 15] [--cold-repeat 2] [--lsdb-repeat 3]
                                  [--spark-repeat 2] [--centers 3] [--work /tmp/sizing_variants]

The lake is one built by ``python bench/query.py --sim-bricks 2500 --build-only --sim-work DIR``
(``DIR/lake``; 11.8M simulated DR9 rows x 181 columns). Its leaves are rewritten by pyarrow into
``--work/<variant>/dr9`` (a plain HATS catalog: hats.properties, partition_info.csv,
_common_metadata, _metadata, point_map.fits), with the ETL's codec and dictionary columns
(``legacylake.etl.task.COMPRESSION``, ``dictionary_columns``) and rows kept in ``_healpix_29``
order (the ETL writes them sorted; checked). One variant at a time is written, measured and
deleted (``--keep`` keeps them), so the disk holds the lake plus one copy. Variant ``etl`` is the
lake as the ETL wrote it (not rewritten).

Variant names: ``rgN`` (row groups of N rows), ``+pi`` (page index written, ``sorting_columns``
declared, pages of at most 1,024 rows so that the index has something to prune), ``+bytesM``
(leaves split into their HEALPix children while a leaf would exceed M MiB of Parquet, hats-import's
``byte_pixel_threshold`` measured on the files; the source leaves' bytes per row estimate a pixel's
bytes). Example: ``rg8192+pi``, ``rg8192+bytes256``.

Measured per variant (imports and connection set-up outside the timed regions):

- footer bytes: the Parquet FileMetaData of every leaf (+ its page index when written), as a share
  of the leaf bytes and per row; the ``_metadata`` file's size beside;
- 1-arcmin cone, all 181 columns and 3 (ra, dec, flux_r): ``legacylake.query.cone_search`` (the
  pruned pyarrow path) and the same cone in DuckDB SQL (``query(con, "SELECT ... FROM
  cone('dr9', ...)")``, the lake connection). **warm**: median of ``--repeat`` calls per centre
  after one untimed call. **cold**: before each timed call the page cache of the catalog's leaf
  files is dropped (``posix_fadvise(DONTNEED)`` on each file: only those files, so the other
  processes of this shared machine keep theirs), the process's footer and catalog caches are
  cleared and (DuckDB) a new connection is opened (untimed); the VM's host may still cache the
  disk, so "cold" is a lower bound on a real cold read;
- full scans: ``SELECT count(*)`` and an aggregate (``type, count(*), avg(flux_r), max(dec)
  GROUP BY type``) in DuckDB (lake connection) and in Spark (local[2], views by
  ``legacylake.query.spark.register_lake``), Spark with its default 128 MB split size and with the
  read options the lake sets (``read_options``), warm (files in the page cache);
- lsdb 1-arcmin cone, all columns (``lsdb.open_catalog(...).cone_search(...).compute()``), warm.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HPX = "_healpix_29"
FEW = ["ra", "dec", "flux_r"]
AGG = "SELECT type, count(*) AS n, avg(flux_r) AS f, max(dec) AS d FROM dr9 GROUP BY type ORDER BY type"
COUNT = "SELECT count(*) AS n FROM dr9"
SCAN = "SELECT count(*) AS n FROM dr9 WHERE flux_r > 0"
ARCMIN = 1 / 60


def load() -> str:
    return open("/proc/loadavg").read().split()[0]


# ---------------------------------------------------------------- variants

def parse_variant(name: str) -> dict:
    v = {"name": name, "rg": None, "pi": False, "bytes": None}
    if name == "etl":
        return v
    for part in name.split("+"):
        if part.startswith("rg"):
            v["rg"] = int(part[2:])
        elif part == "pi":
            v["pi"] = True
        elif part.startswith("bytes"):
            v["bytes"] = int(part[5:]) << 20
        else:
            raise SystemExit(f"unknown variant part {part!r} in {name!r}")
    if v["rg"] is None:
        raise SystemExit(f"variant {name!r}: give the row-group size (rgN)")
    return v


def split_pixels(order: int, npix: int, hp: np.ndarray, bytes_per_row: float, limit: int | None,
                 max_order: int = 10) -> list[tuple[int, int, int, int]]:
    """(order, npix, first row, end row) of the leaves a source leaf becomes: itself, or (bytes
    limit) its HEALPix children, split while their estimated bytes exceed ``limit``."""
    out = []

    def rec(k: int, n: int) -> None:
        s = 2 * (29 - k)
        i, j = np.searchsorted(hp, [n << s, (n + 1) << s])
        if j == i:
            return
        if limit is not None and (j - i) * bytes_per_row > limit and k < max_order:
            for c in range(4):
                rec(k + 1, 4 * n + c)
        else:
            out.append((k, n, int(i), int(j)))

    rec(order, npix)
    return out


def rewrite_leaf(src: str, order: int, npix: int, dest_root: str, v: dict) -> list[tuple[int, int, int]]:
    """Rewrite one source leaf into ``dest_root`` as variant ``v``; returns [(order, npix, rows)]."""
    from legacylake.etl.layout import leaf_relpath
    from legacylake.etl.task import COMPRESSION, dictionary_columns

    pf = pq.ParquetFile(src)
    schema = pf.schema_arrow
    hp = pq.read_table(src, columns=[HPX])[HPX].to_numpy()
    assert np.all(hp[1:] >= hp[:-1]), f"{src}: rows not sorted by {HPX}"
    bpr = os.path.getsize(src) / max(1, len(hp))
    pieces = split_pixels(order, npix, hp, bpr, v["bytes"])
    rg = v["rg"]
    kw = dict(compression=COMPRESSION[0], compression_level=COMPRESSION[1], write_statistics=True,
              use_dictionary=dictionary_columns(schema))
    if v["pi"]:
        kw.update(write_page_index=True, sorting_columns=[pq.SortingColumn(schema.get_field_index(HPX))],
                  max_rows_per_page=1024)
    out = []
    pos = 0          # rows of the source consumed
    cur = -1
    writer = None
    buf: list[pa.Table] = []
    nbuf = 0

    def flush(final: bool) -> None:
        nonlocal buf, nbuf
        if not buf:
            return
        t = pa.concat_tables(buf)
        n = t.num_rows if final else (t.num_rows // rg) * rg
        if n:
            writer.write_table(t.slice(0, n), row_group_size=rg)
        rest = t.slice(n)
        buf, nbuf = ([rest] if rest.num_rows else []), rest.num_rows

    def open_piece(i: int) -> None:
        nonlocal writer, cur
        if writer is not None:
            flush(True)
            writer.close()
        cur = i
        k, n, a, b = pieces[i]
        path = os.path.join(dest_root, leaf_relpath(k, n))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        writer = pq.ParquetWriter(path, schema, **kw)
        out.append((k, n, b - a))

    for batch in pf.iter_batches(batch_size=65_536, use_threads=False):
        t = pa.Table.from_batches([batch], schema=schema)
        start = 0
        while start < t.num_rows:
            # the piece holding source row pos + start
            i = next(ii for ii, p in enumerate(pieces) if p[2] <= pos + start < p[3])
            if i != cur:
                open_piece(i)
            end = min(t.num_rows, pieces[i][3] - pos)
            buf.append(t.slice(start, end - start))
            nbuf += end - start
            if nbuf >= 2 * rg:
                flush(False)
            start = end
        pos += t.num_rows
    flush(True)
    writer.close()
    return out


def build_variant(cat, v: dict, dest: Path, workers: int) -> Path:
    """Write variant ``v`` of catalog ``cat`` as a plain HATS catalog ``dest``/dr9."""
    from legacylake.etl.hats_meta import _dataset_metadata, _partition_files

    root = dest / "dr9"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    jobs = sorted(zip(cat.files, cat.orders.tolist(), cat.pixels.tolist()), key=lambda j: -os.path.getsize(j[0]))
    parts = []
    with ProcessPoolExecutor(workers) as ex:
        for res in ex.map(_rewrite_job, [(f, int(o), int(p), str(root), v) for f, o, p in jobs]):
            parts += res
    parts.sort(key=lambda p: (p[0], p[1]))
    schema = pq.read_schema(cat.path / "dataset" / "_common_metadata")
    _dataset_metadata(str(root), [(k, n) for k, n, _ in parts], schema)
    _partition_files(str(root), [(k, n) for k, n, _ in parts])
    for name in ("hats.properties", "properties", "point_map.fits"):
        if (cat.path / name).exists():
            shutil.copy(cat.path / name, root / name)
    assert sum(r for _, _, r in parts) == int(cat.properties["hats_nrows"])
    return root


def _rewrite_job(args):
    os.nice(10)
    return rewrite_leaf(*args)


# ---------------------------------------------------------------- measurements

def footer_bytes(path: str) -> tuple[int, int, int, int]:
    """(file bytes, footer bytes (FileMetaData + 8), page-index bytes, row groups) of a leaf."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        fh.seek(size - 8)
        flen = int.from_bytes(fh.read(4), "little")
    md = pq.read_metadata(path)
    last = md.row_group(md.num_row_groups - 1)
    data_end = 0
    for c in range(last.num_columns):
        col = last.column(c)
        start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
        data_end = max(data_end, start + col.total_compressed_size)
    return size, flen + 8, size - 8 - flen - data_end, md.num_row_groups


def evict(files) -> None:
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def clear_caches() -> None:
    from legacylake.query import lake as qlake
    from legacylake.query.spatial import search as qsearch

    qsearch._footer.cache_clear()
    qlake.open_cached.cache_clear()
    qlake._schema.cache_clear()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def med_ms(xs) -> float:
    return statistics.median(xs) * 1e3


def measure(root: Path, name: str, args, centers, spark) -> dict:
    from legacylake.query import catalogs, cone_search, connect
    from legacylake.query.run import query
    from legacylake.query import spark as lspark

    r: dict = {"variant": name, "load_start": load()}
    clear_caches()
    cat = catalogs(root)["dr9"]
    files = list(cat.files)
    fb = [footer_bytes(f) for f in files]
    nrows = int(cat.properties["hats_nrows"])
    data = sum(x[0] for x in fb)
    r.update(files=len(files), rows=nrows, bytes=data, row_groups=sum(x[3] for x in fb),
             max_leaf=max(x[0] for x in fb), footer=sum(x[1] for x in fb), page_index=sum(x[2] for x in fb))
    meta = cat.path / "dataset" / "_metadata"
    r["metadata_file"] = meta.stat().st_size if meta.exists() else 0
    r["footer_pct"] = 100 * (r["footer"] + r["page_index"]) / data
    r["footer_per_row"] = (r["footer"] + r["page_index"]) / nrows

    def sql_cone(con, cols, ra, dec):
        sel = "*" if cols is None else ", ".join(cols)
        return query(con, f"SELECT {sel} FROM cone('dr9', {ra}, {dec}, {ARCMIN})")

    con = connect(root)
    for label, cols in (("all", None), ("3", FEW)):
        warm, warm_sql, cold, cold_sql = [], [], [], []
        for ra, dec in centers:
            st: dict = {}
            n = cone_search(cat, ra, dec, ARCMIN, columns=cols, stats=st).num_rows
            assert sql_cone(con, cols, ra, dec).num_rows == n
            r.setdefault("cone_rg", []).append(st["row_groups_read"])
            r.setdefault("cone_scanned", []).append(st["rows_scanned"])
            for _ in range(args.repeat):
                warm.append(timed(lambda: cone_search(cat, ra, dec, ARCMIN, columns=cols)))
                warm_sql.append(timed(lambda: sql_cone(con, cols, ra, dec)))
        for ra, dec in centers:
            for _ in range(args.cold_repeat):
                evict(files)
                clear_caches()
                c2 = catalogs(root)["dr9"]
                cold.append(timed(lambda: cone_search(c2, ra, dec, ARCMIN, columns=cols)))
                evict(files)
                clear_caches()
                con2 = connect(root)
                cold_sql.append(timed(lambda: sql_cone(con2, cols, ra, dec)))
                con2.close()
        r[f"cone_{label}_warm"], r[f"cone_{label}_cold"] = med_ms(warm), med_ms(cold)
        r[f"sqlcone_{label}_warm"], r[f"sqlcone_{label}_cold"] = med_ms(warm_sql), med_ms(cold_sql)
    clear_caches()
    cat = catalogs(root)["dr9"]

    # full scans, warm: read every leaf once so that the scans below find them in the page cache
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(64 << 20):
                pass
    n_duck = con.sql(COUNT).fetchall()[0][0]
    assert n_duck == nrows
    agg_duck = con.sql(AGG).fetchall()
    n_scan = con.sql(SCAN).fetchall()[0][0]
    r["duck_count"] = med_ms([timed(lambda: con.sql(COUNT).fetchall()) for _ in range(3)])
    r["duck_scan"] = med_ms([timed(lambda: con.sql(SCAN).fetchall()) for _ in range(3)])
    r["duck_agg"] = med_ms([timed(lambda: con.sql(AGG).fetchall()) for _ in range(3)])
    con.close()
    fresh = []
    for _ in range(3):   # a new connection: footers not in DuckDB's metadata cache (files in the page cache)
        con = connect(root)
        fresh.append(timed(lambda: con.sql(COUNT).fetchall()))
        con.close()
    r["duck_count_fresh"] = med_ms(fresh)

    if spark is not None:
        for mode in ("default", "lake"):
            for key in lspark.read_options(root):
                spark.conf.unset(key)
            if mode == "lake":
                lspark.register_lake(spark, root)
            else:
                df = spark.read.option("mergeSchema", "false").parquet(*files)
                df.createOrReplaceTempView("dr9")
            r[f"spark_splits_{mode}"] = spark.table("dr9").rdd.getNumPartitions()
            assert spark.sql(COUNT).collect()[0]["n"] == nrows
            reps = 1 if mode == "default" and r["spark_splits_default"] > 4 * len(files) else args.spark_repeat
            r[f"spark_count_{mode}"] = med_ms([timed(lambda: spark.sql(COUNT).collect()) for _ in range(reps)])
            assert spark.sql(SCAN).collect()[0]["n"] == n_scan
            r[f"spark_scan_{mode}"] = med_ms([timed(lambda: spark.sql(SCAN).collect()) for _ in range(reps)])
            got = sorted((x["type"], x["n"]) for x in spark.sql(AGG).collect())
            assert got == sorted((x[0], x[1]) for x in agg_duck)
            r[f"spark_agg_{mode}"] = med_ms([timed(lambda: spark.sql(AGG).collect()) for _ in range(reps)])
        for key in lspark.read_options(root):
            spark.conf.unset(key)

    if args.lsdb_repeat:
        import lsdb

        lc = lsdb.open_catalog(str(root), columns="all")
        lw = []
        for ra, dec in centers:
            lc.cone_search(ra, dec, ARCMIN * 3600).compute()
            lw += [timed(lambda: lc.cone_search(ra, dec, ARCMIN * 3600).compute()) for _ in range(args.lsdb_repeat)]
        r["lsdb_cone"] = med_ms(lw)
    r["load_end"] = load()
    return r


def interleaved_cones(roots: dict[str, Path], centers, repeat: int) -> None:
    """Warm 1-arcmin cones (ours), all columns and 3, the variants interleaved call by call so
    that the load of the shared machine hits all of them alike; medians over centres x repeats."""
    from legacylake.query import catalogs, cone_search

    cats = {n: catalogs(r)["dr9"] for n, r in roots.items()}
    times: dict = {(n, c): [] for n in cats for c in ("all", "3")}
    for n, cat in cats.items():   # warm: footers cached, pages in the page cache
        for ra, dec in centers:
            cone_search(cat, ra, dec, ARCMIN)
    loads = [load()]
    for _ in range(repeat):
        for ra, dec in centers:
            for n, cat in cats.items():
                for label, cols in (("all", None), ("3", FEW)):
                    times[(n, label)].append(timed(lambda: cone_search(cat, ra, dec, ARCMIN, columns=cols)))
    loads.append(load())
    first = next(iter(cats))
    print(f"\ninterleaved warm 1' cones, {repeat} rounds x {len(centers)} centres (load {loads[0]}-{loads[1]})")
    print("| variant | footers, % of leaf bytes | all columns: median (p25-p75) | vs first | 3 columns: median (p25-p75) |"
          "\n|---|---|---|---|---|")
    for n in cats:
        fb = [footer_bytes(f) for f in cats[n].files]
        pct = 100 * sum(x[1] + x[2] for x in fb) / sum(x[0] for x in fb)
        q = {c: np.percentile(np.array(times[(n, c)]) * 1e3, [25, 50, 75]) for c in ("all", "3")}
        b = np.median(times[(first, "all")]) * 1e3
        print(f"| {n} | {pct:.3f}% | **{q['all'][1]:.1f} ms** ({q['all'][0]:.1f}-{q['all'][2]:.1f}) | {q['all'][1] / b:.2f}x | "
              f"{q['3'][1]:.1f} ms ({q['3'][0]:.1f}-{q['3'][2]:.1f}) |", flush=True)


def make_spark():
    from pyspark.sql import SparkSession

    from legacylake.query import spark as lspark

    s = (SparkSession.builder.master("local[2]").appName("layout_sizing")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
         .config("spark.driver.memory", "4g").getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    lspark.register(s)
    return s


def print_table(rows: list[dict], base: str | None) -> None:
    b = next((r for r in rows if r["variant"] == base), rows[0])
    print("\n| variant | leaves, row groups, biggest leaf | footers (+ page index): % of leaf bytes, bytes/row; "
          "_metadata | 1' cone, all columns, warm / cold (warm vs first) | 1' cone, 3 columns, warm / cold | "
          "same cones in DuckDB SQL: all warm / cold; 3 warm / cold | row groups read, rows scanned per cone | "
          "lsdb 1' cone, all columns (warm) | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['files']}, {r['row_groups']:,}, {r['max_leaf'] / 2**20:,.0f} MiB | "
              f"**{r['footer_pct']:.3f}%** ({r['footer'] / 2**20:.1f} + {r['page_index'] / 2**20:.1f} MiB), "
              f"{r['footer_per_row']:.2f} B; {r['metadata_file'] / 2**20:.1f} MiB | "
              f"**{r['cone_all_warm']:.1f}** / {r['cone_all_cold']:.1f} ms ({r['cone_all_warm'] / b['cone_all_warm']:.2f}x) | "
              f"{r['cone_3_warm']:.1f} / {r['cone_3_cold']:.1f} ms | "
              f"{r['sqlcone_all_warm']:.1f} / {r['sqlcone_all_cold']:.1f}; {r['sqlcone_3_warm']:.1f} / "
              f"{r['sqlcone_3_cold']:.1f} ms | {statistics.median(r['cone_rg']):.0f}, "
              f"{statistics.median(r['cone_scanned']):,.0f} | "
              f"{r.get('lsdb_cone', float('nan')):.0f} ms ({r.get('lsdb_cone', float('nan')) / r['cone_all_warm']:.0f}x ours) | "
              f"{r['load_start']}-{r['load_end']} |")
    print("\n| variant | DuckDB count(*): cached footers / new connection | DuckDB scan count (flux_r > 0) | "
          "DuckDB GROUP BY type agg | Spark, 128 MB splits: count / scan count / agg (splits) | "
          "Spark, lake read options: count / scan count / agg (splits) | Spark (lake options) / DuckDB: count (new "
          "connection) / scan count / agg |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "spark_count_lake" not in r:
            sp = "- | - | -"
        else:
            sp = " | ".join(f"{r[f'spark_count_{m}'] / 1e3:.2f} / {r[f'spark_scan_{m}'] / 1e3:.2f} / "
                            f"{r[f'spark_agg_{m}'] / 1e3:.2f} s ({r[f'spark_splits_{m}']})" for m in ("default", "lake"))
            sp += (f" | **{r['spark_count_lake'] / r['duck_count_fresh']:.1f}x** / "
                   f"**{r['spark_scan_lake'] / r['duck_scan']:.1f}x** / {r['spark_agg_lake'] / r['duck_agg']:.1f}x")
        print(f"| {r['variant']} | {r['duck_count']:.0f} / {r['duck_count_fresh']:.0f} ms | {r['duck_scan']:.0f} ms | "
              f"{r['duck_agg']:.0f} ms | {sp} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lake", type=Path, default=Path("/tmp/sizing_sim2500/lake"))
    ap.add_argument("--variants", default="etl,rg8192,rg16384,rg65536,rg8192+pi,rg65536+pi,rg8192+bytes256")
    ap.add_argument("--work", type=Path, default=Path("/tmp/sizing_variants"))
    ap.add_argument("--repeat", type=int, default=15, help="warm cone calls per centre")
    ap.add_argument("--cold-repeat", type=int, default=2, help="cold cone calls per centre")
    ap.add_argument("--lsdb-repeat", type=int, default=3, help="warm lsdb cones per centre (0: skip lsdb)")
    ap.add_argument("--spark-repeat", type=int, default=2, help="Spark runs per query (0: skip Spark)")
    ap.add_argument("--centers", type=int, default=3)
    ap.add_argument("--sim-bricks", type=int, default=2500, help="the lake's --sim-bricks (cone centres inside its box)")
    ap.add_argument("--workers", type=int, default=2, help="processes rewriting leaves")
    ap.add_argument("--keep", action="store_true", help="keep the variant copies")
    ap.add_argument("--interleave-only", action="store_true",
                    help="only interleaved warm cones over the variants (kept, or reused with --reuse)")
    ap.add_argument("--reuse", action="store_true", help="reuse variant copies already in --work")
    ap.add_argument("--json", type=Path, default=None, help="append each variant's figures here (JSON lines)")
    args = ap.parse_args()

    from legacylake.query import catalogs

    cat = catalogs(args.lake)["dr9"]
    side = 0.25 * math.sqrt(args.sim_bricks)
    rng = np.random.default_rng(7)  # bench/query.py's centres
    centers = [(float(rng.uniform(151, 150 + side - 1)), float(rng.uniform(1, side - 1))) for _ in range(args.centers)]
    print(f"lake {args.lake}: {cat.properties['hats_nrows']} rows x {len(cat.schema)} columns, {len(cat.files)} leaves; "
          f"machine: 2 cores, 24 GiB, shared (load {load()}); centres {[(round(a, 3), round(d, 3)) for a, d in centers]}",
          flush=True)
    if args.interleave_only:
        roots = {}
        for name in args.variants.split(","):
            if name == "etl":
                roots[name] = args.lake / "dr9"
            elif args.reuse and (args.work / name / "dr9" / "partition_info.csv").exists():
                roots[name] = args.work / name / "dr9"
            else:
                t0 = time.perf_counter()
                roots[name] = build_variant(cat, parse_variant(name), args.work / name, args.workers)
                print(f"{name}: written in {time.perf_counter() - t0:.0f} s (load {load()})", flush=True)
        interleaved_cones(roots, centers, args.repeat)
        if not args.keep:
            for name, root in roots.items():
                if name != "etl":
                    shutil.rmtree(root.parent)
        return
    spark = make_spark() if args.spark_repeat else None
    rows = []
    for name in args.variants.split(","):
        v = parse_variant(name)
        if name == "etl":
            root = args.lake / "dr9"
        elif args.reuse and (args.work / name / "dr9" / "partition_info.csv").exists():
            root = args.work / name / "dr9"
        else:
            t0 = time.perf_counter()
            root = build_variant(cat, v, args.work / name, args.workers)
            print(f"{name}: written in {time.perf_counter() - t0:.0f} s (load {load()})", flush=True)
        r = measure(root, name, args, centers, spark)
        rows.append(r)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(r) + "\n")
        print_table([r], None)
        if name != "etl" and not args.keep:
            shutil.rmtree(args.work / name)
    print("\nall variants (ratios to the first):")
    print_table(rows, rows[0]["variant"])
    if spark is not None:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
