"""etl build: the catalog is a valid HATS catalog with the lake's schema conventions."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from legacylake.catalogs_schema import model
from legacylake.etl import build, verify
from legacylake.etl.healpix import healpix29, pixel_range
from legacylake.etl.manifest import load
from legacylake.etl.read import read_fits_table
from legacylake.etl.testdata import patch_files

from _lake import dataset_dir, leaf_path

NBRICKS, ROWS = 10, 300


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    d = tmp_path_factory.mktemp("etl_build")
    paths = patch_files(d / "in", NBRICKS, ROWS)
    s = build([str(d / "in")], str(d / "lake"), "dr9", threshold=700, highest_order=9,
              workers=1, row_group_rows=100)
    return d, paths, s


def _leaves(lake_dir):
    man = load(os.path.join(lake_dir, "dr9"))
    return [tuple(map(int, k.split("/"))) for k in man["partitions"]]


def test_summary_counts_every_row(lake):
    d, paths, s = lake
    assert s.ok and not s.rejects
    assert len(s.ingested) == NBRICKS
    assert s.rows == s.total_rows == NBRICKS * ROWS
    assert s.partitions > 1 and s.bytes_written > 0


def test_hats_valid_and_lsdb_opens(lake):
    import hats
    import lsdb
    from hats.io.validation import is_valid_catalog

    d, _, s = lake
    cat = str(d / "lake" / "dr9")
    assert is_valid_catalog(cat, strict=True)
    hc = hats.read_hats(cat)   # a collection: the current snapshot and its margin
    assert hc.main_catalog.catalog_info.total_rows == s.total_rows
    assert len(hc.get_healpix_pixels()) == s.partitions
    margin = hats.read_hats(hc.default_margin_catalog_dir)
    assert margin.catalog_info.catalog_type == "margin" and margin.catalog_info.margin_threshold == 10.0
    assert margin.catalog_info.total_rows == s.margin_rows > 0
    lc = lsdb.open_catalog(cat, columns=["ra", "dec", "flux_g"])
    assert lc.margin is not None and len(lc.margin.compute()) == s.margin_rows
    df = lc.compute()
    assert len(df) == NBRICKS * ROWS


def test_adaptive_partitions_respect_threshold(lake):
    d, _, _ = lake
    man = load(str(d / "lake" / "dr9"))
    orders = {tuple(map(int, k.split("/")))[0] for k in man["partitions"]}
    assert max(orders) <= 9
    for k, v in man["partitions"].items():
        order = int(k.split("/")[0])
        if order < 9:
            # the plan estimates rows from the brick grid; actual counts stay near the threshold
            assert v["rows"] <= 1.5 * 700, (k, v["rows"])
    # pixels are disjoint
    ranges = sorted(pixel_range(*map(int, k.split("/"))) for k in man["partitions"])
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:]))


def test_leaf_rows_sorted_inside_pixel_and_row_groups_prune(lake):
    d, _, _ = lake
    for order, npix in _leaves(d / "lake"):
        path = leaf_path(str(d / "lake" / "dr9"), order, npix)
        pf = pq.ParquetFile(path)
        assert pf.schema_arrow.names[0] == "_healpix_29"
        t = pf.read(columns=["_healpix_29", "ra", "dec"])
        hp = t.column("_healpix_29").to_numpy()
        assert np.all(np.diff(hp) >= 0)
        lo, hi = pixel_range(order, npix)
        assert hp.min() >= lo and hp.max() < hi
        np.testing.assert_array_equal(hp, healpix29(t.column("ra").to_numpy(), t.column("dec").to_numpy()))
        # several row groups per leaf, with disjoint increasing _healpix_29 ranges
        md = pf.metadata
        if md.num_rows > 100:
            assert md.num_row_groups >= 2
        stats = [md.row_group(i).column(0).statistics for i in range(md.num_row_groups)]
        assert all(s.has_min_max for s in stats)
        assert all(a.max <= b.min for a, b in zip(stats, stats[1:]))


def test_schema_conventions(lake):
    import pyarrow as pa

    d, paths, _ = lake
    order, npix = _leaves(d / "lake")[0]
    schema = pq.read_schema(leaf_path(str(d / "lake" / "dr9"), order, npix))
    dm = model("dr9-tractor")
    assert schema.names == ["_healpix_29"] + dm.names
    assert all(n == n.lower() for n in schema.names)
    assert schema.field("dchisq").type == pa.list_(pa.float32(), 5)
    assert schema.field("apflux_g").type == pa.list_(pa.float32(), 8)
    assert schema.field("nobs_g").type == pa.int16()
    assert schema.field("brick_primary").type == pa.bool_()
    assert schema.field("release").type == pa.int16()
    meta = schema.field("flux_g").metadata
    assert meta[b"unit"] == dm["flux_g"].unit.encode()
    assert meta[b"description"] == dm["flux_g"].description.encode()
    fmeta = schema.metadata
    assert fmeta[b"legacylake.data_model"] == b"dr9-tractor"
    assert fmeta[b"legacylake.release"] == b"dr9"
    assert b"legacylake.version" in fmeta


def test_values_round_trip_from_fits(lake):
    """Every row of every input file is in the lake with identical values (strings stripped)."""
    import fitsio
    import pyarrow.dataset as pds

    d, paths, _ = lake
    ds = pds.dataset(dataset_dir(d / "lake" / "dr9"), format="parquet", partitioning="hive")
    lakeT = ds.to_table(columns=["brickid", "objid", "type", "flux_g", "apflux_r", "brick_primary", "nobs_z"])
    key = lakeT.column("brickid").to_numpy().astype(np.int64) * 100000 + lakeT.column("objid").to_numpy()
    order = np.argsort(key)
    raw = fitsio.read(paths[3])
    bid = int(raw["BRICKID"][0])
    sel = order[np.searchsorted(key[order], bid * 100000 + raw["OBJID"].astype(np.int64))]
    np.testing.assert_array_equal(lakeT.column("flux_g").to_numpy()[sel], raw["FLUX_G"])
    np.testing.assert_array_equal(lakeT.column("nobs_z").to_numpy()[sel], raw["NOBS_Z"])
    np.testing.assert_array_equal(lakeT.column("brick_primary").to_numpy(zero_copy_only=False)[sel],
                                  raw["BRICK_PRIMARY"])
    ap = np.stack(lakeT.column("apflux_r").to_numpy(zero_copy_only=False)[sel])
    np.testing.assert_array_equal(ap, raw["APFLUX_R"])
    types = np.array(lakeT.column("type").to_pylist())[sel]
    assert list(types) == [t.strip() for t in raw["TYPE"]]


def test_astropy_reads_units(lake):
    from astropy.table import Table
    import astropy.units as u

    d, _, _ = lake
    order, npix = _leaves(d / "lake")[0]
    t = Table.read(leaf_path(str(d / "lake" / "dr9"), order, npix))
    assert t["flux_g"].unit == u.Unit("nanomaggy")
    assert t["ra"].unit == u.deg
    assert t["dchisq"].shape[1:] == (5,)
    assert t.meta["data_model"] == "dr9-tractor"


def test_verify_passes(lake):
    d, _, _ = lake
    rep = verify(str(d / "lake"), "dr9")
    assert rep.ok, rep.problems
    assert rep.rows == NBRICKS * ROWS and rep.bricks == NBRICKS


def test_read_fits_table_strips_and_sorts():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = patch_files(d, 1, 50)[0]
        t = read_fits_table(p, "dr9-tractor")
        assert t.num_rows == 50
        assert set(t.column("type").to_pylist()) <= {"PSF", "REX", "EXP", "DEV", "SER"}
        hp = t.column("_healpix_29").to_numpy()
        assert np.all(np.diff(hp) >= 0)


def test_process_pool_build_equals_in_process(tmp_path):
    paths = patch_files(tmp_path / "in", 6, 200, ra=40.0, dec=-5.0)
    s1 = build(paths, str(tmp_path / "a"), "c", threshold=500, highest_order=9, workers=1)
    s2 = build(paths, str(tmp_path / "b"), "c", threshold=500, highest_order=9, workers=2)
    assert s1.rows == s2.rows == 1200
    m1, m2 = load(str(tmp_path / "a" / "c")), load(str(tmp_path / "b" / "c"))
    assert {k: v["rows"] for k, v in m1["partitions"].items()} == {k: v["rows"] for k, v in m2["partitions"].items()}
    for k in m1["partitions"]:
        o, n = map(int, k.split("/"))
        ta = pq.read_table(leaf_path(str(tmp_path / "a" / "c"), o, n))
        tb = pq.read_table(leaf_path(str(tmp_path / "b" / "c"), o, n))
        assert ta.equals(tb)


def test_each_file_read_once_and_spill_gives_same_lake(tmp_path, monkeypatch):
    """Bricks on the seam between two tasks are read once (handed over as shards), and a
    task forced to spill its held rows to disk writes the same leaves as one that does not."""
    import legacylake.etl.task as W

    paths = patch_files(tmp_path / "in", 9, 300, ra=40.0, dec=-5.0)
    s1 = build(paths, str(tmp_path / "a"), "c", threshold=400, highest_order=9, workers=2,
               row_group_rows=128)
    assert s1.ok and s1.rows == 9 * 300
    assert s1.seam_files > 0                 # some bricks feed two tasks ...
    assert s1.file_reads == len(paths)       # ... yet every file is read exactly once
    assert s1.spilled_rows == 0
    monkeypatch.setattr(W.Task.__init__, "__defaults__",
                        tuple(20_000 if d == W.PENDING_BYTES else d for d in W.Task.__init__.__defaults__))
    s2 = build(paths, str(tmp_path / "b"), "c", threshold=400, highest_order=9, workers=1,
               row_group_rows=128)
    assert s2.spilled_rows > 0 and s2.file_reads == len(paths)
    assert verify(str(tmp_path / "b"), "c").ok
    m1, m2 = load(str(tmp_path / "a" / "c")), load(str(tmp_path / "b" / "c"))
    assert m1["partitions"].keys() == m2["partitions"].keys()
    for k in m1["partitions"]:
        o, n = map(int, k.split("/"))
        ta = pq.read_table(leaf_path(str(tmp_path / "a" / "c"), o, n))
        tb = pq.read_table(leaf_path(str(tmp_path / "b" / "c"), o, n))
        assert ta.equals(tb)
    assert not os.path.exists(os.path.join(str(tmp_path / "b" / "c"), "legacylake", "staging"))
