"""run-brick end to end on each real test brick of ../shared/data, called as the survey's own
pipeline tests call them (legacypipe py/test/runbrick_test.py), and checked on the result:
DR9 data model, the survey test's expectations, Gaia stars found and where, per-exposure flux
consistency, reference masks and flags. What a brick's data cannot show is asserted as such
(see bench/RESULTS.md "run-brick on the survey's real test bricks")."""

import os

import fitsio
import numpy as np
import pytest

from legacylake.catalogs_schema import FITBITS, MASKBITS
from legacylake.main import main


def _run(shared_data, tmp_path_factory, folder, args):
    d = str(shared_data / folder)
    out = str(tmp_path_factory.mktemp(folder))
    assert main(["photometry", "run-brick", *args, "--images", d, "--out", out]) == 0
    return d, out


def _catalog(out, name):
    path = os.path.join(out, "tractor", name[:3], f"tractor-{name}.fits")
    return path, fitsio.read(path)


def _schema_ok(path, capsys):
    capsys.readouterr()
    assert main(["schema", "check", path]) == 0
    assert "conforms to dr9-tractor" in capsys.readouterr().out


def _types(c):
    return np.char.strip(c["TYPE"].astype(str))


@pytest.fixture(scope="module")
def tc6(shared_data, tmp_path_factory):
    return _run(shared_data, tmp_path_factory, "legacypipe-testcase6",
                ["--brick", "1102p240", "--zoom", "500", "600", "650", "750"])


@pytest.fixture(scope="module")
def tc9(shared_data, tmp_path_factory):
    return _run(shared_data, tmp_path_factory, "legacypipe-testcase9",
                ["--radec", "9.1228", "3.3975", "--width", "100", "--height", "100"])


@pytest.fixture(scope="module")
def mzls(shared_data, tmp_path_factory):
    return _run(shared_data, tmp_path_factory, "legacypipe-mzlsbass3",
                ["--brick", "2173p350", "--zoom", "100", "200", "100", "200"])


def test_testcase3_zoom(shared_data, tmp_path, capsys):
    """testcase3 as the survey runs it (--zoom 1020 1070 2775 2815): two sources, the galaxy a
    DEV/SER at the survey test's position, the other a point source; no Gaia star in the box."""
    from legacylake.photometry.brick import validate_real as v
    d, out = str(shared_data / "legacypipe-testcase3"), str(tmp_path)
    assert main(["photometry", "run-brick", "--brick", "2447p120", "--zoom", "1020", "1070", "2775", "2815",
                 "--images", d, "--out", out]) == 0
    path, c = _catalog(out, "2447p120")
    _schema_ok(path, capsys)
    t = _types(c)
    assert len(c) == 2 and sorted(t)[1] == "PSF" and sorted(t)[0] in ("DEV", "SER")
    g = int(np.flatnonzero(t != "PSF")[0])
    assert abs(c["RA"][g] - 244.77973) < 1e-5 and abs(c["DEC"][g] - 12.07234) < 2e-5
    assert np.all((c["BX"] >= 1019.5) & (c["BX"] < 1069.5) & (c["BY"] >= 2774.5) & (c["BY"] < 2814.5))
    h = fitsio.read_header(path, ext=1)
    assert (h["ZOOMX0"], h["ZOOMX1"], h["ZOOMY0"], h["ZOOMY1"]) == (1020, 1070, 2775, 2815)
    data = v.load(d, out, "2447p120")
    assert v.gaia_recovery(d, out, "2447p120", data=data)["n_gaia"] == 0
    fc = v.flux_consistency(d, out, "2447p120", data=data)
    # the point source's fluxes on each exposure (8 exposures, 3 bands) agree within the noise
    assert len(fc["rows"]) == 3 and fc["pooled"]["5-100"]["chi2_dof"] < 3.0, fc["pooled"]


def test_testcase6_bright_star(tc6, capsys):
    """testcase6 (merged PsfEx tables): as in the survey's test, two sources, both point
    sources because a Tycho-2 star (here matched to its Gaia star) is in the blob; the star
    carries its Gaia identity and the bright-star flags, its neighbour the masks and forced PSF."""
    from legacylake.photometry.brick import validate_real as v
    d, out = tc6
    path, c = _catalog(out, "1102p240")
    _schema_ok(path, capsys)
    t = _types(c)
    assert len(c) == 2 and set(t) == {"PSF"} and np.all(c["RELEASE"] == 9010)
    star = int(np.flatnonzero(np.char.strip(c["REF_CAT"].astype(str)) == "G2")[0])
    other = 1 - star
    assert c["REF_ID"][star] == 869663330491814144
    fb = FITBITS.mask("GAIA,TYCHO2,BRIGHT,MEDIUM,GAIA_POINTSOURCE,FORCED_POINTSOURCE")
    assert c["FITBITS"][star] & fb == fb
    assert c["MASKBITS"][star] & MASKBITS.mask("BRIGHT,MEDIUM,SATUR_G,SATUR_R,SATUR_Z") == MASKBITS.mask(
        "BRIGHT,MEDIUM,SATUR_G,SATUR_R,SATUR_Z")
    assert c["MASKBITS"][other] & MASKBITS.mask("BRIGHT,MEDIUM") == MASKBITS.mask("BRIGHT,MEDIUM")
    assert c["FITBITS"][other] & FITBITS.mask("FORCED_POINTSOURCE") and not c["FITBITS"][other] & FITBITS.mask("GAIA")
    # Gaia: the one G < 20 star in the box is found
    data = v.load(d, out, "1102p240")
    rec = v.gaia_recovery(d, out, "1102p240", data=data)
    assert rec["n_gaia"] == 1 and rec["n_found"] == 1
    # its position fitted freely on the DECam exposures: offset to Gaia at their epochs. The
    # star is saturated (G = 10.5: core and bleed masked in all 6 exposures), so only its
    # wings constrain it: measured 56 mas (bench/RESULTS.md); unsaturated stars: testcase9.
    off = v.gaia_offsets(d, out, "1102p240", data=data)["decam"]
    assert off["n"] == 1 and off["median_mas"] < 100, off


def test_testcase9_large_galaxy(tc9, capsys):
    """testcase9 as a custom brick (--radec 9.1228 3.3975 --width 100 --height 100): the SGA
    galaxy is fitted (the survey's test: SER, ref_cat L3), carries GALAXY / LARGEGALAXY; the Gaia
    star at its centre is a DUP row; sources inside the ellipse are forced point sources."""
    d, out = tc9
    name = "custom-009122p03397"
    path, c = _catalog(out, name)
    assert path.endswith(os.path.join("tractor", "cus", f"tractor-{name}.fits"))
    _schema_ok(path, capsys)
    t = _types(c)
    rc = np.char.strip(c["REF_CAT"].astype(str))
    assert np.all(np.char.strip(c["BRICKNAME"].astype(str)) == name) and np.all(c["BRICKID"] == -1)
    gal = np.flatnonzero(rc == "L3")
    dup = np.flatnonzero(t == "DUP")
    assert len(gal) == 1 and len(dup) == 1
    g, u = int(gal[0]), int(dup[0])
    assert c["REF_ID"][g] == 156622 and t[g] == "SER" and c["SHAPE_R"][g] > 1.0
    assert c["MASKBITS"][g] & MASKBITS.mask("GALAXY") and c["FITBITS"][g] & FITBITS.mask("LARGEGALAXY")
    assert rc[u] == "G2" and c["REF_ID"][u] == 2553710077287337728 and c["OBJID"][u] == len(c) - 1
    assert c["FLUX_R"][u] == 0 and c["FLUX_IVAR_R"][u] == 0 and c["FITBITS"][u] & FITBITS.mask("GAIA")
    # the galaxy's fitted centre against its Gaia nucleus (DECam astrometry through the ccdraoff/decoff)
    off = np.hypot((c["RA"][g] - c["RA"][u]) * np.cos(np.deg2rad(c["DEC"][u])), c["DEC"][g] - c["DEC"][u]) * 3.6e6
    assert off < 50, off
    inside = (c["MASKBITS"] & MASKBITS.mask("GALAXY")) != 0
    others = inside & (rc == "") & (t != "DUP")
    assert np.all(t[others] == "PSF") and np.all(c["FITBITS"][others] & FITBITS.mask("FORCED_POINTSOURCE"))
    assert not np.any(inside & ~np.isin(np.arange(len(c)), np.r_[gal, dup]) & (t != "PSF"))
    assert np.all(c["BRICK_PRIMARY"])


def test_mzls_bass_cameras(mzls, capsys):
    """mzlsbass3: 90Prime g, r and Mosaic3 z (older per-CCD PsfEx with header keywords, a
    header-serialised constant sky, images in counts/s) give one catalog whose point sources
    agree between exposures; positions agree between the cameras within their noise. The
    folder holds no Gaia catalogue (only Tycho-2, none near the box): no Gaia offsets here."""
    from legacylake.photometry.brick import validate_real as v
    d, out = mzls
    path, c = _catalog(out, "2173p350")
    _schema_ok(path, capsys)
    assert len(c) >= 2 and np.all(c["NOBS_G"] >= 2) and np.all(c["NOBS_R"] >= 2) and np.all(c["NOBS_Z"] == 2)
    assert np.all(c["RELEASE"] == 9011)          # DR9 north: 90Prime + Mosaic3
    psf = _types(c) == "PSF"
    assert psf.sum() >= 2
    # measured in every band of both cameras (flux ivars from the calibrated weight maps)
    for b in "GRZ":
        assert np.all(c["FLUX_IVAR_" + b] > 0)
        assert np.max(c["FLUX_" + b] * np.sqrt(c["FLUX_IVAR_" + b])) > 4
    data = v.load(d, out, "2173p350")
    assert sorted({e.camera for e in data[2]}) == ["90prime", "mosaic"]
    assert v.gaia_recovery(d, out, "2173p350", data=data)["n_gaia"] == 0
    fc = v.flux_consistency(d, out, "2173p350", data=data)
    assert len(fc["rows"]) >= 4 and fc["pooled"]["5-100"]["chi2_dof"] < 2.0, fc["pooled"]
    cam = v.gaia_offsets(d, out, "2173p350", data=data, gaia_only=False, min_sn=5)
    for r in cam["90prime"]["offsets_mas"]:      # 90Prime S/N 5-12: sigma ~ FWHM / (2.35 S/N)
        sig = 1800.0 / (2.35 * r[3])
        assert np.hypot(r[1], r[2]) < 3 * np.sqrt(2) * sig, cam
    assert cam["mosaic"]["n"] >= 2
