"""Crossmatch results written into the lake as HATS (into_lake) and run on Dask (scheduler)."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import astropy.units as u
from astropy.coordinates import SkyCoord

from legacylake.errors import UserError
from legacylake.main import main
from legacylake.query.crossmatch import XmatchStats, healpix29, xmatch
from legacylake.query.crossmatch.hats_sink import output_pixels
from legacylake.query.crossmatch.io import Lake
from legacylake.query.crossmatch.testing import random_lake_table, write_test_lake

xm_mod = importlib.import_module("legacylake.query.crossmatch.partitions")  # where the per-partition task lives


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    """A lake of 20,000 rows around RA=0 (many small partitions) and an external catalog:
    4,000 rows near lake rows (some across partition edges), 1,000 far outside the lake."""
    rng = np.random.default_rng(21)
    n = 20_000
    lake = random_lake_table(rng, n)
    ra, dec = lake.column("ra").to_numpy(), lake.column("dec").to_numpy()
    root = tmp_path_factory.mktemp("xlk")
    write_test_lake(lake, root, "dr9", max_rows=1500)
    m = 4000
    idx = rng.choice(n, m, replace=False)
    c = SkyCoord(ra[idx] * u.deg, dec[idx] * u.deg).directional_offset_by(
        rng.uniform(0, 6.3, m) * u.rad, rng.uniform(0, 3.0, m) * u.arcsec)
    far_ra, far_dec = rng.uniform(0, 360, 1000), np.degrees(np.arcsin(rng.uniform(-1, 1, 1000)))
    ext = pa.table({"src_id": np.arange(m + 1000, dtype=np.int64),
                    "ra": np.r_[c.ra.deg, far_ra], "dec": np.r_[c.dec.deg, far_dec],
                    "mag": rng.uniform(12, 21, m + 1000).astype(np.float32)})
    return root, lake, ext


def _key(t) -> np.ndarray:
    b = t.column("brickid").to_numpy(zero_copy_only=False)
    b = np.where(np.isnan(b.astype(float)), -1, b).astype(np.int64)
    return np.sort(t.column("src_id").to_numpy() * 10**6 + b)


def _leaves(cat):
    return sorted(cat.glob("dataset/Norder=*/Dir=*/Npix=*.parquet"))


@pytest.mark.parametrize("mode", ["all", "nearest"])
def test_into_lake_is_a_valid_hats_catalog(sky, mode):
    import hats
    import lsdb
    from hats.io.validation import is_valid_catalog

    root, lake, ext = sky
    name = f"xm_{mode}"
    ref = xmatch(ext, root, "dr9", radius_arcsec=2.0, mode=mode, keep_unmatched=True)
    st = XmatchStats()
    got = xmatch(ext, root, "dr9", radius_arcsec=2.0, mode=mode, keep_unmatched=True, into_lake=name,
                 memory_budget=50_000, batch_rows=700, stats=st)  # tiny budget: buckets spill
    assert got is st and st.out == str(root / name) and st.output_rows == ref.num_rows
    cat = root / name
    assert is_valid_catalog(cat, strict=True)
    assert not [p for p in os.listdir(root) if p.startswith(".")]  # no staging left
    h = hats.read_hats(cat)
    assert h.catalog_info.ra_column == "ra" and h.catalog_info.total_rows == ref.num_rows
    assert len(h.get_healpix_pixels()) > 10
    df = lsdb.open_catalog(cat).compute()
    t = pa.Table.from_pandas(df, preserve_index=False)
    assert t.num_rows == ref.num_rows and np.array_equal(_key(t), _key(ref))
    # leaves: _healpix_29 first, sorted, inside the leaf's pixel, computed from the external ra/dec
    ref_hp = healpix29(ext.column("ra").to_numpy(), ext.column("dec").to_numpy())
    seen = 0
    for f in _leaves(cat):
        o = int(f.parent.parent.name.split("=")[1])
        p = int(f.name.split("=")[1].split(".")[0])
        leaf = pq.read_table(f)
        assert leaf.schema.names[0] == "_healpix_29"
        hp = leaf.column("_healpix_29").to_numpy()
        assert np.all(hp[1:] >= hp[:-1]) and np.all(hp >> (2 * (29 - o)) == p)
        assert np.array_equal(hp, ref_hp[leaf.column("src_id").to_numpy()])
        seen += leaf.num_rows
    assert seen == ref.num_rows
    # the rows far outside the lake (keep_unmatched) are in leaves that overlap no lake partition
    lk = Lake.open(root, "dr9")
    out = Lake.open(root, name)
    a = np.searchsorted(lk.hi29, out.lo29, side="right")
    overlap = (a < lk.lo29.size) & (lk.lo29[np.minimum(a, lk.lo29.size - 1)] < out.hi29)
    assert (~overlap).sum() > 5 and np.all(np.diff(out.lo29) > 0) and np.all(out.lo29[1:] >= out.hi29[:-1])
    # the new catalog is itself a lake catalog we can crossmatch
    again = xmatch(ext.slice(0, 500), root, name, radius_arcsec=1e-3, columns=["src_id"])
    assert np.array_equal(again.column("src_id").to_numpy(), again.column("src_id_lake").to_numpy())


def test_output_pixels_disjoint_from_lake_and_cover_points(sky):
    root, _, _ = sky
    lk = Lake.open(root, "dr9")
    rng = np.random.default_rng(2)
    ra, dec = rng.uniform(-5, 5, 50_000) % 360, rng.uniform(-5, 5, 50_000)
    hp = healpix29(ra, dec)
    o, p = output_pixels(hp, lk)
    assert np.all(hp >> (2 * (29 - o)) == p)  # every point in its leaf
    pairs = np.unique(np.stack([o, p]), axis=1)
    lo = pairs[1] << (2 * (29 - pairs[0]))
    hi = (pairs[1] + 1) << (2 * (29 - pairs[0]))
    srt = np.argsort(lo)
    assert np.all(lo[srt][1:] >= hi[srt][:-1])  # leaves never overlap each other
    inside = (np.searchsorted(lk.lo29, hp, side="right") - 1)
    inside = (inside >= 0) & (hp < lk.hi29[np.maximum(inside, 0)])
    assert inside.any() and (~inside).any()


def test_into_lake_refuses_existing_name_and_cleans_up_on_failure(sky, monkeypatch):
    root, lake, ext = sky
    with pytest.raises(UserError, match="already exists"):
        xmatch(ext, root, "dr9", radius_arcsec=1.0, into_lake="dr9")
    with pytest.raises(UserError, match="plain catalog name"):
        xmatch(ext, root, "dr9", radius_arcsec=1.0, into_lake="../x")
    with pytest.raises(UserError, match="not both"):
        xmatch(ext, root, "dr9", radius_arcsec=1.0, into_lake="x", out=root / "x.parquet")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(xm_mod, "_partition_task", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        xmatch(ext, root, "dr9", radius_arcsec=1.0, into_lake="broken")
    assert not (root / "broken").exists()
    assert not [p for p in os.listdir(root) if p.startswith(".")]


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        yield c


@pytest.mark.parametrize("mode", ["all", "nearest"])
def test_scheduler_gives_identical_results(sky, cluster, mode):
    root, lake, ext = sky
    local = xmatch(ext, root, "dr9", radius_arcsec=2.0, mode=mode, keep_unmatched=True, batch_rows=900)
    dist = xmatch(ext, root, "dr9", radius_arcsec=2.0, mode=mode, keep_unmatched=True, batch_rows=900,
                  scheduler=cluster.scheduler_address)
    assert local.num_rows > 4000
    assert dist.equals(local)  # same rows in the same order


def test_cli_into_lake_with_scheduler(sky, cluster, tmp_path, capsys):
    import hats

    root, lake, ext = sky
    pq.write_table(ext, tmp_path / "ext.parquet")
    rc = main(["xmatch", str(tmp_path / "ext.parquet"), "--lake", str(root), "--catalog", "dr9",
               "--radius", "1.5", "--nearest", "--into-lake", "cli_xm", "--scheduler", cluster.scheduler_address])
    assert rc == 0
    assert f"wrote {root / 'cli_xm'}" in capsys.readouterr().out
    h = hats.read_hats(root / "cli_xm")
    ref = xmatch(ext, root, "dr9", radius_arcsec=1.5)
    assert h.catalog_info.total_rows == ref.num_rows
    rc = main(["xmatch", str(tmp_path / "ext.parquet"), "--lake", str(root), "--catalog", "dr9",
               "--radius", "1.5", "--nearest", "--into-lake", "cli_xm"])
    err = capsys.readouterr().err
    assert rc == 2 and "already exists" in err and "Traceback" not in err
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        rc = main(["xmatch", str(tmp_path / "ext.parquet"), "--lake", str(root), "--catalog", "dr9", "--radius",
                   "1.5", "--nearest", "--into-lake", "never", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot connect to the Dask scheduler" in err and not (root / "never").exists()


def test_lake_epoch_from_properties_or_clear_message(sky, tmp_path):
    from legacylake.query.crossmatch import propagate

    root, lake, ext = sky
    sub = lake.slice(0, 2000)
    write_test_lake(sub, tmp_path, "ep", max_rows=500, properties={"legacylake_epoch": "2016.0"})
    rng = np.random.default_rng(4)
    pmra, pmdec = rng.normal(0, 300, 2000), rng.normal(0, 300, 2000)
    ra0, dec0 = propagate(sub.column("ra").to_numpy(), sub.column("dec").to_numpy(), pmra, pmdec, -16.0)
    t = pa.table({"ra": ra0, "dec": dec0, "pmra": pmra, "pmdec": pmdec, "ref_epoch": np.full(2000, 2000.0)})
    res = xmatch(t, tmp_path, "ep", radius_arcsec=0.01, epoch_from="ref_epoch", pm_cols=["pmra", "pmdec"])
    assert res.num_rows == 2000  # moved to the lake's recorded epoch, 2016.0
    with pytest.raises(UserError, match=r"records no epoch \(no legacylake_epoch/epoch key in its "
                                        r"hats.properties or Parquet metadata\).*--epoch-to YEAR"):
        xmatch(t, root, "dr9", radius_arcsec=1, epoch_from="ref_epoch", pm_cols=["pmra", "pmdec"])
