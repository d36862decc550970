"""run-brick on a small simulated region (GalSim images): catalog validity and truth recovery."""

import os

import fitsio
import numpy as np
import pytest

from legacylake.main import main

BRICK = "1501p020"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("rb")
    img, out = str(d / "img"), str(d / "out")
    assert main(["simulate", "images", "--brick", BRICK, "--out", img, "--size", "420", "--seed", "3"]) == 0
    assert main(["photometry", "run-brick", BRICK, "--images", img, "--out", out]) == 0
    return img, out


def test_simulated_layout(run):
    img, _ = run
    names = sorted(os.listdir(os.path.join(img, "images")))
    assert len(names) == 9 and names[0] == f"sim-{BRICK}-g-0.fits"
    with fitsio.FITS(os.path.join(img, "images", names[0])) as f:
        ext = [f[i].get_extname() for i in range(1, len(f))]
        assert ext == ["IVAR", "DQ", "PSF"]
        dq, iv = f["DQ"].read(), f["IVAR"].read()
        assert np.all(iv[dq != 0] == 0) and (dq & 1).any() and (dq & 16).any()   # bad column, cosmic rays
        h = f["IMAGE"].read_header()
        assert h["BAND"] == "g" and h["SIG1"] > 0 and 0.8 < h["PSF_FWHM"] < 2.5
    assert len(fitsio.read(os.path.join(img, f"ccds-{BRICK}.fits"))) == 9
    assert len(fitsio.read(os.path.join(img, f"truth-{BRICK}.fits"))) > 50


def test_catalog_conforms_and_log(run, capsys):
    _, out = run
    path = os.path.join(out, "tractor", BRICK[:3], f"tractor-{BRICK}.fits")
    assert main(["schema", "check", path]) == 0
    assert "conforms to dr9-tractor" in capsys.readouterr().out
    c = fitsio.read(path)
    assert len(c) > 20
    assert np.array_equal(c["OBJID"], np.arange(len(c))) and np.all(np.diff(c["RA"]) >= 0)
    assert np.all(c["FLUX_W1"] == 0) and np.all(c["FLUX_IVAR_W1"] == 0)
    nobs = c["NOBS_G"].astype(int) + c["NOBS_R"] + c["NOBS_Z"]
    assert np.all(nobs >= 1) and np.all(nobs <= 9) and np.mean(c["NOBS_R"] == 3) > 0.5
    assert np.all((c["PSFDEPTH_R"] > 0) == (c["NOBS_R"] > 0)) and np.mean(c["FLUX_IVAR_R"] > 0) > 0.9
    assert set(np.char.strip(c["TYPE"].astype(str))) <= {"PSF", "REX", "EXP", "DEV", "SER"}
    assert np.all(c["BRICK_PRIMARY"] == 1)          # the central region lies inside the brick's unique box
    ok = c["FLUX_R"] > 0
    assert np.all(c["FIBERFLUX_R"][ok] <= c["FIBERTOTFLUX_R"][ok] + 1e-6)
    assert np.all(np.diff(c["APFLUX_R"][:, [0, 7]], axis=1)[c["FLUX_R"] > 5] > 0)  # larger aperture, more flux
    log = open(os.path.join(out, "logs", f"{BRICK}.log")).read()
    for stage in ("load", "detect", "blobs", "fitblobs", "derived", "write"):
        assert f"stage {stage}:" in log
    assert "WISE: no unWISE images" in log and "blob 1:" in log


def test_truth_recovery(run):
    from legacylake.photometry.brick_validate import validate
    img, out = run
    v = validate(img, out, BRICK)
    assert v["n_truth_sn8"] >= 15 and v["completeness_sn8"] >= 0.9, v
    assert v["purity"] >= 0.95, v
    assert v["n_sn50"] >= 1 and v["star_galaxy_sn50"] == 1.0, v
    v = validate(img, out, BRICK, sg_sn=20.0)   # a larger sample at S/N > 20 on this small region
    assert v["n_sn50"] >= 5 and v["star_galaxy_sn50"] >= 0.8, v


def test_bad_inputs(tmp_path):
    from legacylake.errors import UserError
    with pytest.raises(UserError, match="no images"):
        from legacylake.photometry.runbrick import run_brick
        run_brick(BRICK, str(tmp_path), str(tmp_path / "o"), progress=False)
    assert main(["photometry", "run-brick", "nosuch", "--images", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert main(["simulate", "images", "--brick", "nosuch", "--out", str(tmp_path)]) == 2


def test_workers_same_catalog(run, tmp_path):
    """Two processes fitting blobs give the same catalog as one."""
    img, out = run
    assert main(["photometry", "run-brick", BRICK, "--images", img, "--out", str(tmp_path), "--workers", "2"]) == 0
    a = fitsio.read(os.path.join(out, "tractor", BRICK[:3], f"tractor-{BRICK}.fits"))
    b = fitsio.read(os.path.join(str(tmp_path), "tractor", BRICK[:3], f"tractor-{BRICK}.fits"))
    assert len(a) == len(b)
    for col in ("RA", "DEC", "TYPE", "FLUX_R", "FLUX_IVAR_R", "DCHISQ", "APFLUX_G", "FIBERFLUX_Z", "MASKBITS"):
        assert np.array_equal(a[col], b[col]), col


def test_catalog_through_etl_and_query(run, tmp_path):
    """The run-brick catalog goes through `legacylake etl build` and a cone query unchanged."""
    from legacylake.catalogs_schema import bricks
    from legacylake.query import connect, query
    _, out = run
    path = os.path.join(out, "tractor", BRICK[:3], f"tractor-{BRICK}.fits")
    lake = str(tmp_path / "lake")
    assert main(["etl", "build", path, "--lake", lake, "--catalog", "dr9", "--workers", "1", "--quiet"]) == 0
    c = fitsio.read(path)
    b = bricks.brick(BRICK)
    con = connect(lake)
    t = query(con, f"SELECT * FROM cone('dr9', {b['ra']}, {b['dec']}, 1.0) ORDER BY objid")
    assert t.num_rows == len(c)
    got = {n.lower(): t.column(n) for n in t.column_names}
    for name in c.dtype.names:
        col = got[name.lower()]
        want = c[name]
        if want.dtype.kind == "S":
            assert [s.rstrip() for s in col.to_pylist()] == [s.decode().rstrip() for s in want], name
        elif want.ndim > 1:
            assert np.array_equal(np.array(col.to_pylist(), dtype=want.dtype), want), name
        else:
            assert np.array_equal(col.to_numpy(zero_copy_only=False).astype(want.dtype), want), name
