"""pandas, polars, Spark and DuckDB read the dataset/ folder of a catalog's current snapshot
(``open_catalog(LAKE/NAME).path / "dataset"``): right rows and types, and the
hive partition directories (Norder=/Dir=/Npix=) do not clash with any column (hats issues
367 and 368: the leaves hold no Norder/Dir/Npix columns, so a reader's partition columns
are the only ones of those names)."""

from __future__ import annotations

import os

import pytest

from legacylake.etl import build
from legacylake.etl.testdata import patch_files
from legacylake.query import open_catalog

NROWS = 8 * 150


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("etl_readers")
    paths = patch_files(d / "in", 8, 150, ra=10.0, dec=0.0)
    s = build(paths, str(d / "lake"), "cat", threshold=400, highest_order=8, workers=1)
    assert s.partitions > 1
    return str(open_catalog(d / "lake" / "cat").path / "dataset")


def test_no_partition_names_among_columns(dataset):
    import pyarrow.parquet as pq
    schema = pq.read_schema(os.path.join(dataset, "_common_metadata"))
    assert not {"Norder", "Dir", "Npix", "norder", "dir", "npix"} & set(schema.names)


def test_leaves_are_lz4_raw(dataset):
    import glob

    import duckdb
    leaf = glob.glob(os.path.join(dataset, "Norder=*", "Dir=*", "*.parquet"))[0]
    codecs = {r[0] for r in duckdb.sql(f"select distinct compression from parquet_metadata('{leaf}')").fetchall()}
    assert codecs == {"LZ4_RAW"}


def test_pandas(dataset):
    import pandas as pd
    df = pd.read_parquet(dataset)
    assert len(df) == NROWS
    assert str(df["_healpix_29"].dtype) == "int64"
    assert str(df["nobs_g"].dtype) == "int16"
    assert str(df["flux_g"].dtype) == "float32"
    assert df["type"].map(lambda s: s == s.strip()).all()
    # partition directories (Norder=, Dir=) become extra columns of their own, no clash;
    # Npix= is part of the file name, not a directory
    assert {"Norder", "Dir"} <= set(df.columns) and "Npix" not in df.columns
    assert df.groupby("Norder").size().sum() == NROWS


def test_polars(dataset):
    import polars as pl
    df = pl.read_parquet(os.path.join(dataset, "Norder=*", "Dir=*", "*.parquet"), hive_partitioning=True)
    assert df.height == NROWS
    assert df.schema["nobs_g"] == pl.Int16
    assert df.schema["dchisq"] == pl.Array(pl.Float32, 5)
    assert df.schema["brick_primary"] == pl.Boolean
    assert set(df["type"].unique().to_list()) <= {"PSF", "REX", "EXP", "DEV", "SER"}


def test_duckdb(dataset):
    import duckdb
    con = duckdb.connect()
    n, = con.execute(f"select count(*) from read_parquet('{dataset}/**/*.parquet', hive_partitioning=true)").fetchone()
    assert n == NROWS
    t = {r[0]: r[1] for r in con.execute(f"describe select * from read_parquet('{dataset}/**/*.parquet')").fetchall()}
    # Parquet stores FITS arrays as LIST; DuckDB does not restore the fixed size
    assert t["nobs_g"] == "SMALLINT" and t["dchisq"] in ("FLOAT[5]", "FLOAT[]")
    assert t["_healpix_29"] == "BIGINT"


def test_spark(dataset):
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[1]").appName("legacylake-test")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
             .getOrCreate())
    try:
        df = spark.read.parquet(dataset)
        assert df.count() == NROWS
        types = dict(df.dtypes)
        assert types["nobs_g"] == "smallint"
        assert types["flux_g"] == "float"
        assert types["dchisq"] == "array<float>"
        assert types["brick_primary"] == "boolean"
        assert types["Norder"] in ("int", "bigint") and "Npix" not in types
        rows = df.groupBy("Norder", "Dir").count().collect()
        assert sum(r["count"] for r in rows) == NROWS
        # values decoded from the LZ4_RAW pages equal pyarrow's
        import numpy as np
        import pyarrow.dataset as pds
        from pyspark.sql import functions as F
        got = df.agg(F.sum("flux_g").alias("f"), F.sum(F.element_at("dchisq", 2)).alias("d"),
                     F.max("_healpix_29").alias("h")).collect()[0]
        t = pds.dataset(dataset, format="parquet", exclude_invalid_files=True).to_table(
            columns=["flux_g", "dchisq", "_healpix_29"])
        dch = np.stack(t.column("dchisq").to_numpy(zero_copy_only=False))
        assert got["f"] == pytest.approx(float(np.sum(t.column("flux_g").to_numpy(), dtype=np.float64)), rel=1e-9)
        assert got["d"] == pytest.approx(float(np.sum(dch[:, 1], dtype=np.float64)), rel=1e-9)
        assert got["h"] == int(np.max(t.column("_healpix_29").to_numpy()))
    finally:
        spark.stop()
