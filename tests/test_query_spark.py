"""The function library in local Spark SQL gives DuckDB's answers on the test lake."""

from __future__ import annotations

import numpy as np
import pytest

from _query_lake import query_lake  # noqa: F401  (fixture)
from legacylake.catalogs_schema import UnknownBitError
from legacylake.query import connect
from legacylake.query import spark as lspark

QUERY = """
SELECT brickid, objid, flux_to_mag(flux_g) AS m, mag_err(flux_r, flux_ivar_r) AS me, snr(flux_z, flux_ivar_z) AS s,
       dered_mag(flux_g, mw_transmission_g) AS dm, mw_transmission(ebv, 'z') AS mwt, extinction(ebv, 'w1') AS ext,
       asinh_mag(flux_g, flux_ivar_g) AS am, wise_vega_to_ab(flux_w2, 'w2') AS wab, shape_ba(shape_e1, shape_e2) AS ba,
       shape_phi(shape_e1, shape_e2) AS phi, depth_mag(psfdepth_r) AS dep, brickid_of(ra, dec) AS bid,
       brickname_of(ra, dec) AS bname, glon(ra, dec) AS l, glat(ra, dec) AS b, random_id(release, brickid, objid) AS rid,
       maskbit_names(maskbits) AS bits, healpix_of(ra, dec, 10) AS h10, ang_sep(ra, dec, 0.0, 0.0) AS sep,
       g_r, nest4096, ring256, q3c_radial_query(ra, dec, 0.0, 0.0, 0.2) AS inq, q3c_dist(ra, dec, 1.0, 1.0) AS qd,
       ls_id, htm9, elon, elat, q3c_ang2ipix(ra, dec) AS qpix, q3c_ellipse_query(ra, dec, 0.0, 0.0, 0.2, 0.5, 30.0) AS inell,
       q3c_join(ra, dec, 0.01, 0.01, 0.3) AS qj
FROM dr9_derived
WHERE no_maskbits(maskbits, 'BRIGHT,GALAXY,CLUSTER') AND has_fitbits(fitbits, 'GAIA,TYCHO2') AND snr(flux_r, flux_ivar_r) > 1
ORDER BY brickid, objid
"""


@pytest.fixture(scope="module")
def spark():
    import os
    import sys

    from pyspark.sql import SparkSession

    # Python UDF workers run this interpreter (not whatever python3 is first on PATH, which may
    # hold another install of legacylake)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    s = (SparkSession.builder.master("local[1]").appName("legacylake-test")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1")
         .config("spark.driver.memory", "1g").getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


def test_spark_matches_duckdb(spark, query_lake):
    names = lspark.register(spark)
    assert "has_maskbits" in names and "brickname_of" in names
    lspark.register_lake(spark, query_lake)
    got = lspark.sql(spark, QUERY).toPandas()
    con = connect(query_lake)
    want = con.sql(QUERY).to_arrow_table().to_pandas()
    con.close()
    assert len(got) == len(want) > 20
    for c in want.columns:
        a, b = got[c].to_numpy(), want[c].to_numpy()
        if c == "bits":
            assert [list(x) for x in a] == [list(x) for x in b]
        elif want[c].dtype.kind in "fc" or c in ("m", "me", "dm", "am", "dep", "g_r"):
            np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=1e-12, atol=1e-12, equal_nan=True,
                                       err_msg=c)
        else:
            np.testing.assert_array_equal(a, b, err_msg=c)


def test_fold_names():
    assert lspark.fold_names("WHERE has_maskbits(maskbits, 'BRIGHT,GALAXY')") == "WHERE ((maskbits & 4098) != 0)"
    assert lspark.fold_names("no_wisemask(wisemask_w1, 'bright')") == "((wisemask_w1 & 1) = 0)"
    with pytest.raises(UnknownBitError, match="GALAXXY.*valid names"):
        lspark.fold_names("has_maskbits(maskbits, 'GALAXXY')")


def test_register_lake_reads_one_snapshot_of_a_collection(spark, tmp_path):
    """On a lake built by the ETL (a collection of snapshots) the Spark views read the snapshot
    current when they were registered, whatever a later build publishes."""
    from legacylake.etl import build
    from legacylake.etl.testdata import patch_files

    paths = patch_files(tmp_path / "in", 6, 120, ra=20.0, dec=-3.0)
    lake = str(tmp_path / "lake")
    build(paths[:4], lake, "c", threshold=200, highest_order=9, workers=1)
    assert lspark.register_lake(spark, lake) == ["c", "c_derived"]
    assert spark.sql("SELECT count(*) AS n FROM c").collect()[0]["n"] == 480
    build(paths, lake, "c", workers=1)
    assert spark.sql("SELECT count(*) AS n FROM c_derived").collect()[0]["n"] == 480
    lspark.register_lake(spark, lake)
    assert spark.sql("SELECT count(*) AS n FROM c").collect()[0]["n"] == 720


def test_register_lake_reads_each_leaf_as_one_split(spark, tmp_path, monkeypatch):
    """register_lake sets the split size to at least the biggest leaf (2 GiB floor), so that no
    leaf is cut into several Spark tasks that each parse its whole footer (bench/RESULTS.md,
    "Layout sizing")."""
    import os

    from legacylake.etl import build
    from legacylake.etl.testdata import patch_files
    from legacylake.query import catalogs

    paths = patch_files(tmp_path / "in", 4, 300, ra=20.0, dec=-3.0)
    lake = str(tmp_path / "lake")
    build(paths, lake, "c", threshold=400, highest_order=9, workers=1)
    files = catalogs(lake)["c"].files
    assert len(files) >= 2
    biggest = max(os.path.getsize(f) for f in files)
    keys = ("spark.sql.files.maxPartitionBytes", "spark.sql.files.minPartitionNum")
    try:
        assert lspark.read_options(lake) == {keys[0]: str(2 << 30), keys[1]: "1"}
        monkeypatch.setattr(lspark, "MIN_PARTITION_BYTES", 1)   # the floor off: the biggest leaf decides
        assert lspark.read_options(lake)[keys[0]] == str(biggest)
        spark.conf.set(keys[0], "4096")   # a split size that would cut every leaf
        spark.conf.set("spark.sql.files.openCostInBytes", "0")
        lspark.register_lake(spark, lake)
        assert spark.conf.get(keys[0]) == str(biggest)
        assert spark.table("c").rdd.getNumPartitions() <= len(files)
        assert spark.sql("SELECT count(*) AS n FROM c").collect()[0]["n"] == 1200
    finally:
        for k in keys + ("spark.sql.files.openCostInBytes",):
            spark.conf.unset(k)
