"""``legacylake export tractor`` (issue 17, item 2): FITS -> lake -> FITS gives identical values
for every column, on simulated DR9 bricks across the sweep-box corner at RA 0, Dec 0 and on the
survey's real DR8 files."""

from __future__ import annotations

from pathlib import Path

import fitsio
import numpy as np

from legacylake.catalogs_schema.columns import model
from legacylake.etl import build
from legacylake.main import main
from legacylake.query.export.tractor import export_tractor
from legacylake.query.synthlake import write_fits_bricks


def _same(src: Path, got: Path, dm: str) -> None:
    """Every column of ``src`` in ``got`` with identical values, typed as the data model ``dm``
    (the FITS type of the source where it follows the model: desitarget's DR8 files store
    gaia_astrometric_params_solved as signed bytes where the model says uint8)."""
    a, b = fitsio.read(str(src)), fitsio.read(str(got))
    order = np.argsort(a[a.dtype.names[[n.upper() for n in a.dtype.names].index("OBJID")]], kind="stable")
    a = a[order]
    an = {n.lower(): n for n in a.dtype.names}
    bn = {n.lower(): n for n in b.dtype.names}
    assert set(bn) == set(an), set(an) ^ set(bn)
    assert len(a) == len(b) > 0
    for n in an:
        x, y = a[an[n]], b[bn[n]]
        if x.dtype.kind in "SU":  # trailing blanks of a FITS string are padding (FITS standard)
            x, y = np.char.rstrip(x), np.char.rstrip(y)
        else:
            assert y.dtype.newbyteorder("=") == model(dm)[n].numpy_dtype, (n, y.dtype)
            assert x.dtype.newbyteorder("=") == y.dtype.newbyteorder("=") or (x.dtype.kind in "iu" and y.dtype.kind in "iu"), (n, x.dtype, y.dtype)
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), n


def test_round_trip_simulated_dr9(tmp_path):
    names = ["3598m002", "3598p002", "0001m002", "0001p002"]  # the four bricks at the RA 0, Dec 0 corner
    src = write_fits_bricks(tmp_path / "fits", names, 300, seed=11)
    s = build(str(tmp_path / "fits"), str(tmp_path / "lake"), "dr9", threshold=500, workers=1)
    assert s.ok and s.total_rows == 1200
    out = tmp_path / "out"
    assert main(["export", "tractor", "--lake", str(tmp_path / "lake"), "--catalog", "dr9", "--out", str(out)]) == 0
    for p in map(Path, src):
        got = out / "tractor" / p.parent.name / p.name
        assert got.is_file(), got
        _same(p, got, "dr9-tractor")
    # tractor files have lower-case columns; --bricks picks one
    one = export_tractor(tmp_path / "lake", "dr9", tmp_path / "one", bricks=["0001p002"])
    assert [Path(k).name for k in one] == ["tractor-0001p002.fits"]
    assert fitsio.FITS(next(iter(one)))[1].get_colnames()[0] == "release"


def test_round_trip_real_dr8(shared_data, tmp_path):
    src = shared_data / "desitarget"
    files = [src / f for f in ("tractor-3301m002.fits", "tractor-3301m007.fits", "tractor-3303p000.fits")]
    s = build([str(f) for f in files], str(tmp_path / "lake"), "dr8", workers=1)
    assert s.ok
    w = export_tractor(tmp_path / "lake", "dr8", tmp_path / "out")
    assert sorted(Path(k).name for k in w) == sorted(f.name for f in files)
    for f in files:
        _same(f, tmp_path / "out" / "tractor" / "330" / f.name, "dr8-sweep")


def test_bad_brick(tmp_path, capsys):
    write_fits_bricks(tmp_path / "fits", ["0001p002"], 50, seed=1)
    build(str(tmp_path / "fits"), str(tmp_path / "lake"), "dr9", workers=1)
    assert main(["export", "tractor", "--lake", str(tmp_path / "lake"), "--catalog", "dr9", "--out",
                 str(tmp_path / "o"), "--bricks", "nonsense"]) == 2
    assert "unknown brick name 'nonsense'" in capsys.readouterr().err
