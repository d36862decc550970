"""Readers other than DuckDB/astropy (issue 17, item 5): the README's polars recipe, pandas with
``attrs["units"]`` and ``legacylake.query.units``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from _query_lake import query_lake  # noqa: F401  (fixture)

from legacylake.errors import UserError
from legacylake.query import open_catalog, query, units
from legacylake.catalogs_schema.columns import column_info

README = Path(__file__).resolve().parents[1] / "README.md"


def _recipe() -> str:
    text = README.read_text()
    m = re.search(r"<!-- polars-recipe -->\s*```python\n(.*?)```", text, re.S)
    assert m, "the README lost its polars recipe"
    return m.group(1)


def test_readme_polars_recipe_runs(query_lake, monkeypatch):
    pl = pytest.importorskip("polars")
    monkeypatch.chdir(query_lake.parent)  # the recipe says "lake/dr9"
    ns: dict = {}
    exec(compile(_recipe(), "README polars recipe", "exec"), ns)
    df, u = ns["df"], ns["u"]
    ref = query(str(query_lake), "SELECT ra, dec, flux_r, mag_r FROM dr9_derived WHERE flux_r > 0 ORDER BY ra, dec")
    got = df.sort(["ra", "dec"])
    assert got.height == ref.num_rows > 0
    np.testing.assert_array_equal(got["ra"].to_numpy(), ref["ra"].to_numpy())
    np.testing.assert_allclose(got["mag_r"].to_numpy(), ref["mag_r"].to_numpy(), rtol=1e-6)
    assert u["ra"] == "deg" and u["flux_r"] == "nanomaggy" and u["mag_r"] == "mag"
    # what does not work, as the README says: the dataset folder itself
    with pytest.raises(Exception):
        pl.read_parquet(str(open_catalog(query_lake / "dr9").path / "dataset") + "/")


def test_pandas_output_carries_units(query_lake):
    df = query(str(query_lake), "SELECT ra, dec, flux_g, mag_g, elon, objid FROM dr9_derived LIMIT 5", output="pandas")
    assert len(df) == 5
    assert df.attrs["units"] == {"ra": "deg", "dec": "deg", "flux_g": column_info("flux_g")[0],
                                 "mag_g": "mag", "elon": "deg"}


def test_units_for_any_reader(query_lake, shared_data, tmp_path):
    u = units(query_lake, "dr9")
    assert u == units(open_catalog(query_lake / "dr9")) == units(query_lake / "dr9")
    for col in ("ra", "flux_ivar_r", "shape_r"):
        assert u[col] == column_info(col)[0], col
    assert u["dered_mag_z"] == "mag" and u["glat"] == "deg" and "objid" not in u
    assert "mag_r" not in units(query_lake, "dr9", derived=False)
    with pytest.raises(UserError, match="unknown catalog 'dr7'"):
        units(query_lake, "dr7")
    # the real DR8 files
    from legacylake.etl import build

    src = shared_data / "desitarget"
    s = build([str(src / "tractor-3301m002.fits")], str(tmp_path / "lake"), "dr8", workers=1)
    assert s.ok
    u8 = units(tmp_path / "lake", "dr8")
    assert u8["ra"] == "deg" and u8["flux_g"] == column_info("flux_g")[0] and u8["mag_g"] == "mag"
