"""``legacylake export sweeps`` (issue 17, item 1): the survey's sweep layout from a lake, checked
by ``schema check`` and by rebuilding a lake from the exported sweeps (same primary rows, same
values), on simulated DR9 bricks straddling the sweep-box corner at RA 0, Dec 0 and on the
survey's real DR8 files."""

from __future__ import annotations

import os
from pathlib import Path

import fitsio
import numpy as np
from _query_lake import query_lake  # noqa: F401  (fixture)

from legacylake.catalogs_schema.columns import model
from legacylake.catalogs_schema.fitsfile import table_header
from legacylake.catalogs_schema.validate import detect, validate
from legacylake.etl import build
from legacylake.main import main
from legacylake.query.export.sweeps import export_sweeps, sweep_name
from legacylake.query.lake import catalogs


def _lake_table(lake: Path, name: str, cols: list[str]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cat = catalogs(lake)[name]
    t = pa.concat_tables([pq.read_table(f, columns=cols) for f in cat.files])
    return t.sort_by([("brickid", "ascending"), ("objid", "ascending")])


def _check_round_trip(lake: Path, name: str, out: Path, tmp: Path, release: str) -> bool:
    files = sorted(out.glob("*/sweep-*.fits"))
    main_files = [f for f in files if not f.name.endswith("-lc.fits")]
    assert main_files
    for f in main_files:
        with fitsio.FITS(str(f)) as fh:
            assert fh[1].get_extname() == "SWEEP"
            hdr = fh[1].read_header()
            cols = fh[1].get_colnames()
        assert "BRICK_PRIMARY" not in cols and all(c == c.upper() for c in cols)
        head = table_header(f)[0]
        assert detect(head).model == f"{release}-sweep"
        assert validate(head, f"{release}-sweep").ok
        data = fitsio.read(str(f), columns=["RA", "DEC"])
        assert np.all((data["RA"] >= hdr["RAMIN"]) & (data["RA"] < hdr["RAMAX"]))
        assert np.all((data["DEC"] >= hdr["DECMIN"]) & (data["DEC"] < hdr["DECMAX"]))
        assert f.name == sweep_name(hdr["RAMIN"], hdr["DECMIN"], hdr["RAMAX"], hdr["DECMAX"])
    # the CLI's schema check accepts every file
    assert main(["schema", "check", *map(str, main_files)]) == 0
    # rebuild from the sweeps: the same primary rows with the same values. One catalog per sweep
    # file: etl build keeps one file per brick, and a brick on a box edge has rows in two sweeps
    # (as in the survey's own sweeps), which it refuses in one catalog (checked below).
    import pyarrow as pa

    back = tmp / "back"
    s = build([str(f) for f in main_files], str(back), "all", workers=1)
    straddle = len(s.rejects) > 0
    assert all("the same brick under two paths" in r for _, r in s.rejects)
    for i, f in enumerate(main_files):
        s = build([str(f)], str(back), f"s{i}", workers=1)
        assert s.ok, s.rejects
    sweep_cols = [c.name for c in model(f"{release}-sweep").columns
                  if c.name in catalogs(lake)[name].schema.names and c.name != "brick_primary"]
    has_primary = "brick_primary" in catalogs(lake)[name].schema.names  # (a lake of sweeps has none)
    want = _lake_table(lake, name, sweep_cols + ["brick_primary"] * has_primary)
    if has_primary:
        assert not all(want["brick_primary"].to_pylist())  # the export has something to drop
        want = want.filter(want["brick_primary"])
    want = want.select(sweep_cols)
    got = pa.concat_tables([_lake_table(back, f"s{i}", sweep_cols) for i in range(len(main_files))])
    got = got.sort_by([("brickid", "ascending"), ("objid", "ascending")])
    assert got.num_rows == want.num_rows > 0
    for c in sweep_cols:
        a, b = got[c].to_pylist(), want[c].to_pylist()
        if isinstance(b[0], str):
            b = [x.rstrip() for x in b]
            a = [x.rstrip() for x in a]
        assert a == b, c
    return straddle


def test_sweeps_of_simulated_dr9_across_a_box_corner(query_lake, tmp_path):
    out = tmp_path / "sweeps"
    assert main(["export", "sweeps", "--lake", str(query_lake), "--catalog", "dr9", "--out", str(out),
                 "--box", "355", "360", "-5", "5"]) == 0
    names = {f.name for f in (out / "9.0").iterdir()}
    # the lake's bricks around RA 0, Dec 0 fall in the boxes either side of Dec 0 left of RA 360
    assert {"sweep-350m005-360p000.fits", "sweep-350p000-360p005.fits"} <= names
    assert not any(n.endswith(".tmp") for n in names)
    # the right-hand side of the corner (RA >= 0) with a second call, two workers
    s = export_sweeps(query_lake, "dr9", out, box=(0, 5, -5, 5), workers=2)
    assert {os.path.basename(p) for p in s.files} >= {"sweep-000m005-010p000.fits", "sweep-000p000-010p005.fits",
                                                      "sweep-000m005-010p000-lc.fits"}
    lc = fitsio.read(str(out / "9.0-lightcurves" / "sweep-000m005-010p000-lc.fits"))
    assert lc.dtype.names[:3] == ("RELEASE", "BRICKID", "OBJID") and "LC_FLUX_W1" in lc.dtype.names
    assert lc["LC_FLUX_W1"].shape[1] == 15
    # drop the pole bricks of the test lake from the comparison: export exactly the corner boxes
    import shutil

    shutil.rmtree(out)
    export_sweeps(query_lake, "dr9", out, box=(350, 360, -5, 5))
    export_sweeps(query_lake, "dr9", out, box=(0, 10, -5, 5))
    corner = tmp_path / "corner_lake"
    _subset_lake(query_lake, corner)
    assert _check_round_trip(corner, "dr9", out, tmp_path, "dr9")  # bricks straddle the corner


def _subset_lake(lake: Path, dest: Path) -> None:
    """A lake of the corner bricks only (the test lake also has pole bricks)."""
    from legacylake.query.synthlake import write_fits_bricks
    from _query_lake import lake_bricks

    near0 = [b for b in lake_bricks() if b[4] in "pm" and abs(int(b[5:8])) < 10]
    write_fits_bricks(dest.parent / "corner_fits", near0, 400, seed=3)
    s = build(str(dest.parent / "corner_fits"), str(dest), "dr9", threshold=2000, row_group_rows=300, workers=1)
    assert s.ok


def test_sweeps_of_the_real_dr8_files(shared_data, tmp_path):
    """desitarget's DR8 test files are sweep-like (no BRICK_PRIMARY): a dr8-sweep lake."""
    src = shared_data / "desitarget"
    lake = tmp_path / "lake"
    s = build([str(src / f) for f in ("tractor-3301m002.fits", "tractor-3301m007.fits", "tractor-3303p000.fits")],
              str(lake), "dr8", workers=1)
    assert s.ok
    out = tmp_path / "sweeps"
    res = export_sweeps(lake, "dr8", out)
    t = _lake_table(lake, "dr8", ["ra", "dec", "brickid", "objid"])
    ra0 = (np.floor(t["ra"].to_numpy() / 10) * 10).astype(int)
    dec0 = (np.floor(t["dec"].to_numpy() / 5) * 5).astype(int)
    want = {sweep_name(a, d, a + 10, d + 5) for a, d in zip(ra0, dec0)}
    assert "sweep-330m005-340p000.fits" in want
    assert {os.path.basename(p) for p in res.files} == want
    assert res.rows == t.num_rows == 18
    _check_round_trip(lake, "dr8", out, tmp_path, "dr8")


def test_bad_input(query_lake, tmp_path, capsys):
    assert main(["export", "sweeps", "--lake", str(query_lake), "--catalog", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown catalog 'nope'" in capsys.readouterr().err
    assert main(["export", "sweeps", "--lake", str(query_lake), "--catalog", "dr9", "--out", str(tmp_path),
                 "--box", "10", "5", "0", "1"]) == 2
    assert "--box" in capsys.readouterr().err
