"""--map-to: a DR9 catalog takes a DR4 Tractor file through the documented mapping; refused without it."""

from __future__ import annotations

import os

import fitsio
import numpy as np
import pyarrow.dataset as pds
import pytest

from legacylake.catalogs_schema.random_table import write_random_bricks
from legacylake.errors import UserError
from legacylake.etl import build, verify
from legacylake.etl.testdata import patch_bricks

from _lake import dataset_dir, hats_dir


def _inputs(tmp_path):
    names = patch_bricks(2, 200.0, 15.0)
    dr9 = write_random_bricks(tmp_path / "dr9", names[:1], 120, "dr9-tractor", seed=3)
    dr4 = write_random_bricks(tmp_path / "dr4", names[1:], 150, "dr4-tractor", seed=4)
    # DR4 types (random tables may not use them all): one of each, plus COMP both ways
    with fitsio.FITS(dr4[0], "rw") as f:
        t = f[1].read()
        types = np.array(["PSF", "SIMP", "DEV", "EXP", "COMP", "COMP"] * 25)[: len(t)]
        t["TYPE"] = types
        t["FRACDEV"][types == "COMP"] = np.tile([0.8, 0.2], 25)[: int((types == "COMP").sum())]
        f[1].write(t, firstrow=0)
    return dr9, dr4


def test_two_models_refused_then_mapped(tmp_path):
    dr9, dr4 = _inputs(tmp_path)
    lake = str(tmp_path / "lake")
    with pytest.raises(UserError, match="--map-to dr9"):
        build(dr9 + dr4, lake, "c", workers=1)
    s = build(dr9 + dr4, lake, "c", workers=1, map_to="dr9")
    assert s.ok and s.total_rows == 270
    assert verify(lake, "c").ok
    cat = os.path.join(lake, "c")
    props = open(os.path.join(hats_dir(cat), "hats.properties")).read()
    assert "legacylake_data_model=dr9-tractor" in props and "dr4,dr9" in props
    tab = pds.dataset(dataset_dir(cat), format="parquet").to_table()
    release = tab["release"].to_numpy()
    old = release < 5000
    assert old.sum() == 150
    src = fitsio.read(dr4[0])
    o = tab["objid"].to_numpy()[old]
    row = {k: tab[k].to_numpy(zero_copy_only=False)[old] for k in ("shape_r", "shape_e1_ivar", "sersic")}
    ty = np.array(tab["type"].to_pylist())[old]
    s_type = np.char.strip(src["TYPE"].astype(str))[o]
    fracdev = src["FRACDEV"][o]
    dev = (s_type == "DEV") | ((s_type == "COMP") & (fracdev >= 0.5))
    exp = (s_type == "EXP") | (s_type == "SIMP") | ((s_type == "COMP") & (fracdev < 0.5))
    assert set(ty) == {"PSF", "REX", "DEV", "EXP"}
    assert (ty[s_type == "SIMP"] == "REX").all() and (ty[dev] == "DEV").all()
    assert np.array_equal(row["shape_r"][dev], src["SHAPEDEV_R"][o][dev])
    assert np.array_equal(row["shape_r"][exp], src["SHAPEEXP_R"][o][exp])
    assert np.array_equal(row["shape_e1_ivar"][exp], src["SHAPEEXP_E1_IVAR"][o][exp])
    assert (row["shape_r"][s_type == "PSF"] == 0).all()
    assert np.array_equal(row["sersic"], np.where(dev, 4.0, np.where(exp, 1.0, 0.0)).astype(np.float32))
    # DR4's 7 light-curve epochs fill the first 7 of 15; the rest are 0
    lc = np.stack(tab["lc_flux_w1"].to_numpy(zero_copy_only=False)[old])
    assert lc.shape == (150, 15) and np.array_equal(lc[:, :7], src["LC_FLUX_W1"][o]) and (lc[:, 7:] == 0).all()
    # columns DR4 lacks are null (never a made-up 0); DR9 rows have them
    assert tab["maskbits"].filter(old).null_count == 150 and tab["maskbits"].filter(~old).null_count == 0
    assert "shapedev_r" not in tab.column_names and "flux_u" not in tab.column_names


def test_map_to_via_cli_and_unknown_mapping(tmp_path):
    from legacylake.main import main

    dr9, dr4 = _inputs(tmp_path)
    lake = str(tmp_path / "lake")
    assert main(["etl", "build", *dr9, *dr4, "--lake", lake, "--catalog", "c", "--workers", "1",
                 "--map-to", "dr9", "--quiet"]) == 0
    # no mapping DR9 -> DR4: refused naming the file and the mappings there are
    with pytest.raises(UserError, match="no mapping from dr9-tractor to dr4-tractor"):
        build(dr9, str(tmp_path / "lake2"), "d", workers=1, map_to="dr4")
