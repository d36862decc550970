import subprocess
import sys

import astropy.units as u
import fitsio
import numpy as np
import pyarrow as pa
import pytest

from legacylake.catalogs_schema import (
    FITBITS, MASKBITS, MODEL_NAMES, UnknownBitError, constants, detect, model, table_header, validate,
)


def test_models_cover_the_releases():
    assert len(model("dr9-tractor").columns) == 181
    dr4, dr8, dr9, dr10 = (model(f"{r}-tractor") for r in ["dr4", "dr8", "dr9", "dr10"])
    assert dr4["type"].width == 4 and dr9["type"].width == 3
    assert "shapeexp_r" in dr4 and "fracdev" in dr4 and "maskbits" not in dr4
    assert dr4["lc_flux_w1"].shape == (7,) and dr9["lc_flux_w1"].shape == (15,)
    assert "maskbits" in dr8 and "shapedev_r" in dr8 and "shape_r" not in dr8
    assert "sersic" in dr9 and "fitbits" in dr9 and "gaia_phot_g_mean_mag" in dr9
    assert dr10["maskbits"].fits_type == "int32" and dr9["maskbits"].fits_type == "int16"
    assert "flux_i" in dr10 and "flux_i" not in dr9
    assert not dr4["flux_u"].required  # all-zero u/i/Y columns of real DR4 files are accepted
    assert "brick_primary" not in model("dr9-sweep")


def test_every_column_has_unit_description_and_types():
    for name in MODEL_NAMES:
        m = model(name)
        assert len(set(m.names)) == len(m.names)
        for c in m.columns:
            assert c.description and c.name == c.name.lower()
            if c.unit:
                u.Unit(c.unit)
            assert name.split("-")[0] in c.releases
        schema = m.arrow_schema()
        assert schema.field("ra").metadata[b"unit"] == b"deg"
    dr9 = model("dr9-tractor")
    assert dr9["apflux_g"].arrow_type == pa.list_(pa.float32(), 8)
    assert dr9["release"].arrow_type == pa.int16()
    assert dr9["brick_primary"].arrow_type == pa.bool_()
    assert dr9["type"].arrow_type == pa.string()
    assert dr9["flux_g"].unit == "nanomaggy" and u.Unit(dr9["flux_ivar_g"].unit) == u.nanomaggy ** -2
    assert dr9["lc_flux_w1"].tform == "15E"


def test_bitmasks():
    assert MASKBITS.mask("BRIGHT,GALAXY,CLUSTER") == 2 | 4096 | 8192
    assert MASKBITS.mask(["bright", "medium"]) == 2 | 2048
    assert MASKBITS.decode(4098) == ["BRIGHT", "GALAXY"]
    assert FITBITS.value("ITERATIVE") == 8192
    with pytest.raises(UnknownBitError) as exc:
        MASKBITS.mask("BRIGHT,NOPE")
    assert "NOPE" in str(exc.value) and "CLUSTER" in str(exc.value)
    assert MASKBITS.any_set(np.array([0, 2, 4096, 1]), "BRIGHT,GALAXY").tolist() == [False, True, True, False]


def test_constants():
    assert constants.release_info(9010).region == "S" and constants.release_info(9011).region == "N"
    assert constants.release_info(8000).data_release == "dr8"
    assert constants.photsys(10000) == "S"
    with pytest.raises(KeyError):
        constants.release_info(1234)
    assert abs(constants.mw_transmission(0.1, "g") - 10 ** (-0.4 * 3.214 * 0.1)) < 1e-12
    assert abs(10 ** (-constants.WISE_VEGA_TO_AB["w1"] / 2.5) - 0.083253) < 1e-5
    assert len(constants.APERTURE_RADII_OPTICAL_ARCSEC) == model("dr9-tractor")["apflux_g"].shape[0]
    assert len(constants.APERTURE_RADII_WISE_ARCSEC) == model("dr9-tractor")["apflux_w1"].shape[0]
    assert abs(constants.mask_radius_arcsec(13) - 21.3) < 0.1


def test_real_dr8_files_detected_and_valid(shared_data):
    files = sorted((shared_data / "desitarget").glob("*.fits"))
    assert len(files) == 6
    for f in files:
        header, _ = table_header(f)
        det = detect(header)
        assert det.release == "dr8"
        rep = validate(header)
        assert rep.ok, rep.lines()
        assert detect(fitsio.read(f)).release == "dr8"


def _write_table(path, model_name, drop=None, retype=None, n=3):
    m = model(model_name)
    cols = []
    for c in m.columns:
        if not c.required or c.name == drop:
            continue
        dt = c.numpy_dtype if not c.is_string else np.dtype(f"S{c.width}")
        if c.name == retype:
            dt = np.dtype("f8")
        cols.append((c.name.upper(), dt, c.shape) if c.shape else (c.name.upper(), dt))
    arr = np.zeros(n, dtype=cols)
    fitsio.write(str(path), arr, clobber=True)
    return path


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_synthetic_tables_detect_as_their_model(tmp_path, name):
    f = _write_table(tmp_path / "t.fits", name)
    header, _ = table_header(f)
    assert detect(header).model == name
    assert validate(header, name).ok


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "legacylake", *args], capture_output=True, text=True)


def test_schema_check_cli(tmp_path, shared_data):
    good = _write_table(tmp_path / "good.fits", "dr9-tractor")
    r = _cli("schema", "check", str(good))
    assert r.returncode == 0 and "dr9" in r.stdout and "tractor" in r.stdout
    bad = _write_table(tmp_path / "missing.fits", "dr9-tractor", drop="flux_ivar_r")
    r = _cli("schema", "check", str(bad), "--model", "dr9-tractor")
    assert r.returncode != 0 and "missing column: flux_ivar_r" in r.stdout
    assert "FAILED: 1 of 1 file(s)" in r.stderr and "FAILED" not in r.stdout  # the verdict of a failed check on stderr
    bad = _write_table(tmp_path / "retyped.fits", "dr9-tractor", retype="nobs_g")
    r = _cli("schema", "check", str(bad))
    assert r.returncode != 0 and "mistyped column: nobs_g" in r.stdout and "int16" in r.stdout
    r = _cli("schema", "check", str(shared_data / "desitarget" / "tractor-3301m002.fits"))
    assert r.returncode == 0 and "dr8" in r.stdout
    r = _cli("schema", "check", str(shared_data / "desitarget" / "not_a_tractor_file.txt"))
    # an unreadable file is an error: on stderr, nothing on stdout, exit 1
    assert r.returncode != 0 and "not a FITS file" in r.stderr and "Traceback" not in r.stdout + r.stderr
    assert r.stdout.strip() == ""


def test_schema_show_and_bricks_cli(tmp_path):
    r = _cli("schema", "show", "dr9-tractor")
    assert r.returncode == 0 and "flux_g" in r.stdout and "nanomaggy" in r.stdout
    r = _cli("schema", "show", "dr99")
    assert r.returncode == 2 and "valid:" in r.stderr and "Traceback" not in r.stderr
    r = _cli("bricks", "lookup", "244.7", "12.0")
    assert r.returncode == 0 and "2447p120" in r.stdout and "400014" in r.stdout
    r = _cli("bricks", "lookup", "10", "95")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    out = tmp_path / "bricks.fits"
    r = _cli("bricks", "export", str(out))
    assert r.returncode == 0
    data = fitsio.read(str(out))
    assert len(data) == 662174
    assert set(data.dtype.names) >= {"brickname", "brickid", "brickq", "brickrow", "brickcol",
                                     "ra", "dec", "ra1", "ra2", "dec1", "dec2"}


def test_every_subcommand_has_help():
    from legacylake.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        r = _cli(name, "--help")
        assert r.returncode == 0 and "usage" in r.stdout, name
