"""run-brick on real Community Pipeline images (legacypipe testcase3) and the Gaia check."""

import os

import fitsio
import numpy as np
import pytest

from legacylake.main import main

BRICK = "2447p120"


@pytest.fixture(scope="module")
def tc3(shared_data, tmp_path_factory):
    d = str(shared_data / "legacypipe-testcase3")
    out = str(tmp_path_factory.mktemp("tc3"))
    assert main(["photometry", "run-brick", BRICK, "--images", d, "--out", out]) == 0
    return d, out


def test_remap_dq():
    from legacylake.catalogs_schema import ANYMASK
    from legacylake.photometry.brick.cp import remap_dq
    dq = np.zeros((6, 6), np.int16)
    dq[1, 1], dq[1, 2], dq[1, 3], dq[2, 2], dq[3, 3], dq[4, 4] = 1, 2, 6, 5, 7, 8
    dq[2, 4], dq[3, 2] = 3, 4          # interior saturated pixel and bleed
    dq[0, 5] = 3                       # saturated pixel on the edge -> EDGE
    m = remap_dq(dq)
    assert m[1, 1] == m[1, 2] == m[1, 3] == ANYMASK.mask("BADPIX")
    assert m[2, 2] == ANYMASK.mask("CR") and m[3, 3] == ANYMASK.mask("TRANS")
    assert m[4, 4] == 0                # DECam ignores code 8 (streaks)
    assert m[2, 4] == ANYMASK.mask("SATUR") and m[3, 2] == ANYMASK.mask("BLEED")
    assert m[0, 5] == ANYMASK.mask("EDGE") and m[0, 0] == 0


def test_cp_exposures(shared_data):
    from legacylake.photometry.brick.cp import load_cp_exposures, read_ccds
    d = str(shared_data / "legacypipe-testcase3")
    exps = load_cp_exposures(d)
    ccds = read_ccds(d)
    assert len(exps) == len(ccds) == 8 and sorted({e.band for e in exps}) == ["g", "r", "z"]
    for e, c in zip(exps, ccds):
        assert e.sky == "spline"
        # the PsfEx model at the cut-out centre has the CCD table's psfnorm
        assert abs(e.psfnorm - c["psfnorm"]) < 1e-4 * c["psfnorm"]
        # nmgy: the ivar-weighted noise matches the table's sig1; sky-subtracted background near 0
        assert 0.5 < np.median(1 / np.sqrt(e.image.ivar[e.image.ivar > 0])) / e.sig1 < 1.5
        corner = np.r_[e.image.data[:8, :8].ravel(), e.image.data[-8:, -8:].ravel()]
        assert abs(np.median(corner)) < 3 * e.sig1
        assert 0.6 < e.fwhm < 1.6 and e.mjd > 56000


def test_testcase3_catalog(tc3, capsys):
    d, out = tc3
    path = os.path.join(out, "tractor", BRICK[:3], f"tractor-{BRICK}.fits")
    assert main(["schema", "check", path]) == 0
    assert "conforms to dr9-tractor" in capsys.readouterr().out
    c = fitsio.read(path)
    types = np.char.strip(c["TYPE"].astype(str))
    assert 1 <= len(c) <= 5
    # the bright galaxy in the middle of the cut-outs
    big = np.argmax(c["FLUX_R"])
    assert types[big] in ("REX", "EXP", "DEV", "SER") and c["SHAPE_R"][big] > 0.5
    assert c["FLUX_R"][big] * np.sqrt(c["FLUX_IVAR_R"][big]) > 100
    assert c["NOBS_G"][big] == 3 and c["NOBS_R"][big] == 2 and c["NOBS_Z"][big] == 3
    assert np.all(c["PSFDEPTH_Z"] > 0) and np.all(c["FITBITS"][big] == 0)


def test_testcase3_exposures_agree(tc3):
    """Each CCD alone puts the bright sources where the catalog does (WCS) with the same flux
    (zero points): the cut-outs hold no Gaia star to compare with."""
    from legacylake.photometry.brick.validate import gaia_check, per_exposure_check
    d, out = tc3
    rows = per_exposure_check(d, out, BRICK)
    assert len(rows) >= 8
    off = np.hypot([r["d_east"] for r in rows], [r["d_north"] for r in rows])
    assert np.median(off) < 0.1 and off.max() < 0.2, off
    ratio = np.array([r["flux_ratio"] for r in rows])
    assert np.all(np.abs(ratio - 1) < 0.1), ratio
    assert gaia_check(d, out, BRICK)["n_gaia"] == 0


def test_gaia_check_simulated(tmp_path):
    """Gaia stars of a small simulated low-latitude region line up with the catalog's point sources."""
    from legacylake.catalogs_schema import bricks
    from legacylake.photometry.brick.validate import gaia_check
    brick = bricks.brickname_of(280.0, 0.0)
    img, out = str(tmp_path / "img"), str(tmp_path / "out")
    assert main(["simulate", "images", "--brick", brick, "--out", img, "--size", "200", "--nexp", "1",
                 "--seed", "1"]) == 0
    assert main(["photometry", "run-brick", brick, "--images", img, "--out", out]) == 0
    g = gaia_check(img, out, brick)
    assert g["n_gaia"] >= 2 and g["n_matched"] == g["n_gaia"], g
    assert g["median_offset_arcsec"] < 0.1, g
    assert g["n_dmag_r"] >= 2 and np.isfinite(g["dmag_scatter_r"]), g


def test_testcase3_dr4(shared_data, tmp_path, capsys):
    """--model-set dr4 writes the DR4 data model with the DR4 rule set's types."""
    d = str(shared_data / "legacypipe-testcase3")
    assert main(["photometry", "run-brick", BRICK, "--images", d, "--out", str(tmp_path), "--model-set", "dr4"]) == 0
    path = os.path.join(str(tmp_path), "tractor", BRICK[:3], f"tractor-{BRICK}.fits")
    assert main(["schema", "check", path]) == 0
    assert "conforms to dr4-tractor" in capsys.readouterr().out
    c, h = fitsio.read(path, header=True)
    assert h["DCHISQ_1"].strip() == "SIMP" and h["DCHISQ_4"].strip() == "COMP"
    assert "MASKBITS" not in c.dtype.names and c["LC_FLUX_W1"].shape[1] == 7
    t = np.char.strip(c["TYPE"].astype(str))
    assert set(t) <= {"PSF", "SIMP", "DEV", "EXP", "COMP"} and np.all(c["RELEASE"] == 4000)
    big = np.argmax(c["FLUX_R"])
    assert t[big] in ("DEV", "EXP", "COMP")
    assert c["SHAPEDEV_R"][big] + c["SHAPEEXP_R"][big] > 0.5
    assert c["FRACDEV"][big] == {"DEV": 1.0, "EXP": 0.0}.get(t[big], c["FRACDEV"][big])


def test_to_dr4_types():
    from legacylake.photometry.brick.dr4 import to_dr4
    from legacylake.photometry.sim.records import catalog_dtype
    c9 = np.zeros(4, catalog_dtype("dr9"))
    c9["shape_r"], c9["shape_e1"], c9["shape_r_ivar"] = [0, 1.0, 2.0, 3.0], [0, 0.1, 0.2, 0.3], 5.0
    c9["flux_r"] = [1, 2, 3, 4]
    d4 = to_dr4(c9, ["SIMP", "EXP", "DEV", "COMP"], np.array([1.0, 1.0, 4.0, 2.5]))
    assert list(d4["type"]) == ["SIMP", "EXP", "DEV", "COMP"] and np.all(d4["flux_r"] == [1, 2, 3, 4])
    assert d4["shapeexp_r"][0] == 0.45 and d4["shapeexp_r_ivar"][0] == 0
    assert d4["shapeexp_r"][1] == 1.0 and d4["shapedev_r"][1] == 0 and d4["fracdev"][1] == 0
    assert d4["shapedev_r"][2] == 2.0 and d4["shapeexp_r"][2] == 0 and d4["fracdev"][2] == 1
    assert d4["shapedev_r"][3] == d4["shapeexp_r"][3] == 3.0 and d4["fracdev"][3] == 0.5
