"""Crossmatch benchmark: legacylake xmatch vs lsdb crossmatch vs astropy match_to_catalog_sky.

Same simulated data for all three (a lake of random positions at DR9-like density, a
Gaia-like external catalog, half of it within 0.5 arcsec of lake rows), radius 1 arcsec,
nearest. Each engine runs in its own subprocess; wall time of the match (opening the inputs,
matching, collecting the pairs; the engine's imports are timed apart and printed beside it),
rows/s (external rows) and peak RSS are measured per engine, in the same run, and the matched
pairs are compared.

    python bench/xmatch.py --lake-rows 2000000 --ext-rows 1000000

With ``--dr9-lake LAKE`` (a catalog ``LAKE/dr9`` built by ``legacylake etl build`` from
``legacylake simulate catalogs``, full DR9 rows) and ``--gaia FILE`` (``legacylake simulate
external --kind gaia`` over the same area), the external catalog is the simulated Gaia
catalog topped up to ``--ext-rows`` with random rows (half within 0.5" of a lake row, half
uniform over the lake's area); lsdb gets the lake's ra, dec, release, brickid, objid through
``lsdb.from_dataframe`` with a 1" margin cache; ours reads the full-width DR9 lake.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def setup(work: Path, lake_rows: int, ext_rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from legacylake.query.crossmatch.testing import write_test_lake

    if (work / "done").exists():
        return
    rng = np.random.default_rng(42)
    area_ra, area_dec = (150.0, 150.0 + 20.0 * lake_rows / 2e6), (-10.0, 10.0)
    ra = rng.uniform(*area_ra, lake_rows)
    dec = np.degrees(np.arcsin(rng.uniform(*np.sin(np.radians(area_dec)), lake_rows)))
    lake = pa.table({"ra": ra, "dec": dec, "release": np.full(lake_rows, 9010, np.int16),
                     "brickid": (np.arange(lake_rows) // 4000).astype(np.int32),
                     "objid": (np.arange(lake_rows) % 4000).astype(np.int32),
                     "flux_r": rng.normal(10, 3, lake_rows).astype(np.float32)})
    write_test_lake(lake, work / "lake", "dr9", max_rows=250_000, row_group_rows=20_000)
    half = ext_rows // 2
    idx = rng.integers(0, lake_rows, half)
    off = rng.uniform(0, 0.5 / 3600, half)
    ang = rng.uniform(0, 2 * np.pi, half)
    era = np.concatenate([ra[idx] + off * np.cos(ang) / np.cos(np.radians(dec[idx])),
                          rng.uniform(*area_ra, ext_rows - half)])
    edec = np.concatenate([dec[idx] + off * np.sin(ang), rng.uniform(*area_dec, ext_rows - half)])
    ext = pa.table({"source_id": np.arange(ext_rows, dtype=np.int64), "ra": era, "dec": edec,
                    "phot_g_mean_mag": rng.uniform(12, 21, ext_rows).astype(np.float32)})
    pq.write_table(ext, work / "ext.parquet")
    # lsdb inputs: both catalogs through lsdb itself, the lake with a 1-arcsec margin cache
    import lsdb

    lsdb.from_dataframe(lake.to_pandas(), ra_column="ra", dec_column="dec", catalog_name="dr9",
                        partition_rows=250_000, margin_threshold=1.0).write_catalog(work / "lsdb_lake", catalog_name="dr9")
    lsdb.from_dataframe(ext.to_pandas(), ra_column="ra", dec_column="dec", catalog_name="ext",
                        partition_rows=250_000, margin_threshold=None).write_catalog(work / "lsdb_ext", catalog_name="ext")
    (work / "done").write_text("ok")


def setup_dr9(work: Path, lake: Path, gaia: Path, ext_rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (work / "done").exists():
        return
    rng = np.random.default_rng(42)
    from legacylake.etl import layout

    files = sorted((Path(layout.hats_dir(lake / "dr9")) / "dataset").glob("Norder=*/Dir=*/Npix=*.parquet"))
    cols = ["ra", "dec", "release", "brickid", "objid"]
    lk = pa.concat_tables(pq.read_table(f, columns=cols) for f in files)
    ra, dec = lk.column("ra").to_numpy(), lk.column("dec").to_numpy()
    g = pq.read_table(gaia)
    keep = ["source_id", "ra", "dec", "pmra", "pmdec", "ref_epoch", "phot_g_mean_mag"]
    g = g.select(keep)
    fill = max(0, ext_rows - g.num_rows)
    half = fill // 2
    idx = rng.integers(0, lk.num_rows, half)
    off = rng.uniform(0, 0.5 / 3600, half)
    ang = rng.uniform(0, 2 * np.pi, half)
    r = fill - half
    era = np.concatenate([ra[idx] + off * np.cos(ang) / np.cos(np.radians(dec[idx])),
                          rng.uniform(ra.min(), ra.max(), r)])
    edec = np.concatenate([dec[idx] + off * np.sin(ang), rng.uniform(dec.min(), dec.max(), r)])
    rand = pa.table({"source_id": np.arange(fill, dtype=np.int64) + 10**18, "ra": era, "dec": edec,
                     "pmra": np.full(fill, np.nan), "pmdec": np.full(fill, np.nan),
                     "ref_epoch": np.full(fill, np.nan), "phot_g_mean_mag": rng.uniform(12, 21, fill)})
    ext = pa.concat_tables([g.cast(rand.schema), rand])
    pq.write_table(ext, work / "ext.parquet")
    (work / "lake").mkdir(exist_ok=True)
    if not (work / "lake" / "dr9").exists():
        os.symlink(lake.resolve() / "dr9", work / "lake" / "dr9")
    import lsdb

    df = lk.to_pandas()
    del lk
    lsdb.from_dataframe(df, ra_column="ra", dec_column="dec", catalog_name="dr9",
                        partition_rows=500_000, margin_threshold=1.0).write_catalog(work / "lsdb_lake", catalog_name="dr9")
    lsdb.from_dataframe(ext.to_pandas(), ra_column="ra", dec_column="dec", catalog_name="ext",
                        partition_rows=250_000, margin_threshold=None).write_catalog(work / "lsdb_ext", catalog_name="ext")
    (work / "done").write_text(f"ok: {g.num_rows} simulated Gaia rows + {fill} random rows")


def _key(brickid, objid) -> np.ndarray:
    return np.asarray(brickid, np.int64) * 100_000 + np.asarray(objid, np.int64)


def import_engine(name: str):
    """Import what engine ``name`` needs (not timed with the match; reported on its own), returns
    the module(s) as a tuple."""
    if name == "ours":
        from legacylake.query.crossmatch import xmatch

        return (xmatch,)
    if name == "lsdb":
        import lsdb

        return (lsdb,)
    import astropy.units as u
    import pyarrow as pa
    import pyarrow.parquet as pq
    from astropy.coordinates import SkyCoord

    from legacylake.etl import layout

    return u, pa, pq, SkyCoord, layout


def run_engine(name: str, work: Path) -> dict:
    """Crossmatch with engine ``name``; seconds of the imports and of the match, separately."""
    t0 = time.perf_counter()
    mods = import_engine(name)
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    if name == "ours":
        (xmatch,) = mods
        res = xmatch(work / "ext.parquet", work / "lake", "dr9", radius_arcsec=1.0, mode="nearest")
        ids = res.column("source_id").to_numpy()
        key = _key(res.column("brickid").to_numpy(), res.column("objid").to_numpy())
        sep = res.column("sep_arcsec").to_numpy()
    elif name == "lsdb":
        (lsdb,) = mods
        left = lsdb.open_catalog(work / "lsdb_ext")
        right = lsdb.open_catalog(work / "lsdb_lake")
        res = left.crossmatch(right, radius_arcsec=1.0, n_neighbors=1, suffixes=("", "_lake")).compute()
        ids = res["source_id"].to_numpy()
        key = _key(res["brickid_lake"].to_numpy(), res["objid_lake"].to_numpy())
        sep = res["_dist_arcsec"].to_numpy()
    else:
        u, pa, pq, SkyCoord, layout = mods
        ext = pq.read_table(work / "ext.parquet")
        leaves = sorted((Path(layout.hats_dir(work / "lake" / "dr9")) / "dataset").glob("Norder=*/*/*.parquet"))
        lake = pa.concat_tables(pq.read_table(f, columns=["ra", "dec", "brickid", "objid"]) for f in leaves)
        j, sep, _ = SkyCoord(ext["ra"].to_numpy() * u.deg, ext["dec"].to_numpy() * u.deg).match_to_catalog_sky(
            SkyCoord(lake["ra"].to_numpy() * u.deg, lake["dec"].to_numpy() * u.deg))
        ok = sep.arcsec <= 1.0
        ids = ext["source_id"].to_numpy()[ok]
        key = _key(lake["brickid"].to_numpy()[j[ok]], lake["objid"].to_numpy()[j[ok]])
        sep = sep.arcsec[ok]
    secs = time.perf_counter() - t0
    o = np.argsort(ids)
    np.save(work / f"pairs_{name}.npy", np.stack([ids[o], key[o]]))
    np.save(work / f"sep_{name}.npy", np.asarray(sep, np.float64)[o])
    return {"seconds": secs, "import_seconds": t_import, "matched": int(ids.size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lake-rows", type=int, default=2_000_000)
    ap.add_argument("--ext-rows", type=int, default=1_000_000)
    ap.add_argument("--work", default="/tmp/legacylake-bench-xmatch")
    ap.add_argument("--engines", default="ours,lsdb,astropy")
    ap.add_argument("--dr9-lake", help="prebuilt lake directory holding catalog dr9 (full DR9 rows)")
    ap.add_argument("--gaia", help="simulated Gaia Parquet file over the lake's area (with --dr9-lake)")
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--setup-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    work = Path(a.work) / (f"dr9_{a.ext_rows}" if a.dr9_lake else f"{a.lake_rows}_{a.ext_rows}")
    if a.engine:
        print(json.dumps(run_engine(a.engine, work)))
        return
    work.mkdir(parents=True, exist_ok=True)
    if a.setup_only:
        if a.dr9_lake:
            setup_dr9(work, Path(a.dr9_lake), Path(a.gaia), a.ext_rows)
        else:
            setup(work, a.lake_rows, a.ext_rows)
        return
    t = time.time()
    # data are made in a child process so that this (parent) process stays small: a child's
    # peak RSS on Linux starts from its parent's at fork time
    extra = ["--dr9-lake", a.dr9_lake, "--gaia", a.gaia] if a.dr9_lake else []
    subprocess.run([sys.executable, __file__, "--setup-only", "--work", a.work, "--lake-rows", str(a.lake_rows),
                    "--ext-rows", str(a.ext_rows)] + extra, check=True, stderr=subprocess.DEVNULL)
    if a.dr9_lake:
        from legacylake.etl.layout import hats_dir, read_properties

        nl = int(read_properties(Path(hats_dir(work / "lake" / "dr9")) / "hats.properties")["hats_nrows"])
        print(f"data: DR9 lake {nl:,} rows (full DR9 rows), external {a.ext_rows:,} rows "
              f"({(work / 'done').read_text().strip()}) (setup {time.time() - t:.0f} s)")
    else:
        print(f"data: lake {a.lake_rows:,} rows, external {a.ext_rows:,} rows (setup {time.time() - t:.0f} s)")
    out = {}
    for eng in a.engines.split(","):
        p = subprocess.Popen([sys.executable, __file__, "--engine", eng, "--work", a.work,
                              "--lake-rows", str(a.lake_rows), "--ext-rows", str(a.ext_rows)] + extra,
                             stdout=subprocess.PIPE, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        r = json.loads(p.stdout.read().strip().splitlines()[-1])
        r["peak_rss_mb"] = ru.ru_maxrss / 1024
        r["rows_per_s"] = a.ext_rows / r["seconds"]
        out[eng] = r
        print(f"{eng:8s} {r['seconds']:7.1f} s  {r['rows_per_s']:12,.0f} ext rows/s  peak RSS "
              f"{r['peak_rss_mb']:7.0f} MB  matched {r['matched']:,}  (imports, not in the time: "
              f"{r['import_seconds']:.1f} s)")
    first = list(out)[0]
    ref = np.load(work / f"pairs_{first}.npy")
    ref_sep = np.load(work / f"sep_{first}.npy")
    for eng in list(out)[1:]:
        other = np.load(work / f"pairs_{eng}.npy")
        same_ext = other.shape == ref.shape and bool(np.array_equal(other[0], ref[0]))
        if not same_ext:
            print(f"{first} vs {eng}: DIFFERENT matched external rows")
            continue
        sep = np.load(work / f"sep_{eng}.npy")
        diff = other[1] != ref[1]
        # a different lake row at the same separation is a tie: the simulated bricks overlap, so
        # the lake holds the same source twice (BRICK_PRIMARY on one copy only)
        ties = diff & np.isclose(sep, ref_sep, rtol=0, atol=1e-6)
        print(f"{first} vs {eng}: same matched external rows, separations equal to 1e-6\" : "
              f"{bool(np.allclose(sep, ref_sep, rtol=0, atol=1e-6))}, different lake row: {int(diff.sum()):,} "
              f"(of which ties at equal separation: {int(ties.sum()):,})")
    if "ours" in out:
        for eng in out:
            if eng != "ours":
                print(f"ours vs {eng}: {out['ours']['rows_per_s'] / out[eng]['rows_per_s']:.2f}x rows/s, "
                      f"{out['ours']['peak_rss_mb'] / out[eng]['peak_rss_mb']:.2f}x peak RSS")


if __name__ == "__main__":
    main()
