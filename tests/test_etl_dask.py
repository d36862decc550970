"""--scheduler: the same write tasks run on a Dask distributed cluster (a LocalCluster here)."""

from __future__ import annotations

import pyarrow.parquet as pq

from legacylake.etl import build, verify
from legacylake.etl.manifest import load

from _lake import leaf_path
from legacylake.etl.testdata import patch_files


def test_build_on_local_cluster_equals_local_build(tmp_path):
    from distributed import LocalCluster

    paths = patch_files(tmp_path / "in", 6, 150, ra=300.0, dec=-30.0)
    local = build(paths, str(tmp_path / "a"), "c", threshold=300, highest_order=9, workers=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        s = build(paths, str(tmp_path / "b"), "c", threshold=300, highest_order=9, workers=2,
                  scheduler=cluster.scheduler_address)
    assert s.ok and s.rows == local.rows == 900
    assert verify(str(tmp_path / "b"), "c").ok
    ma, mb = load(str(tmp_path / "a" / "c")), load(str(tmp_path / "b" / "c"))
    assert ma["partitions"].keys() == mb["partitions"].keys()
    for k in ma["partitions"]:
        o, n = map(int, k.split("/"))
        assert pq.read_table(leaf_path(str(tmp_path / "a" / "c"), o, n)).equals(
            pq.read_table(leaf_path(str(tmp_path / "b" / "c"), o, n)))


def test_cli_scheduler_option(tmp_path):
    from distributed import LocalCluster
    from legacylake.main import main

    paths = patch_files(tmp_path / "in", 2, 100, ra=320.0, dec=-30.0)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        rc = main(["etl", "build", *paths, "--lake", str(tmp_path / "lake"), "--catalog", "c",
                   "--scheduler", cluster.scheduler_address, "--quiet"])
    assert rc == 0
    assert verify(str(tmp_path / "lake"), "c").ok
