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
    main_files = [f for f in files if not f.name.endswith(("-lc.fits", "-ex.fits"))]
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
    # rebuild from the sweeps into ONE catalog: the same primary rows with the same values. A brick
    # on a box edge has rows in two sweeps (as in the survey's own sweeps); etl build accepts that
    # for sweep files of disjoint boxes
    back = tmp / "back"
    s = build([str(f) for f in main_files], str(back), "all", workers=1)
    assert s.ok and not s.rejects, s.rejects
    assert main(["etl", "verify", "--lake", str(back), "--catalog", "all"]) == 0
    seen: dict[int, int] = {}
    for f in main_files:
        for b in np.unique(fitsio.read(str(f), columns=["BRICKID"])["BRICKID"]).tolist():
            seen[b] = seen.get(b, 0) + 1
    straddle = max(seen.values()) > 1
    sweep_cols = [c.name for c in model(f"{release}-sweep").columns
                  if c.name in catalogs(lake)[name].schema.names and c.name != "brick_primary"]
    has_primary = "brick_primary" in catalogs(lake)[name].schema.names  # (a lake of sweeps has none)
    want = _lake_table(lake, name, sweep_cols + ["brick_primary"] * has_primary)
    if has_primary:
        assert not all(want["brick_primary"].to_pylist())  # the export has something to drop
        want = want.filter(want["brick_primary"])
    want = want.select(sweep_cols)
    got = _lake_table(back, "all", sweep_cols)
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
    _check_three_file_sets(corner, "dr9", out)


def _subset_lake(lake: Path, dest: Path) -> None:
    """A lake of the corner bricks only (the test lake also has pole bricks)."""
    from legacylake.query.synthlake import write_fits_bricks
    from _query_lake import lake_bricks

    near0 = [b for b in lake_bricks() if b[4] in "pm" and abs(int(b[5:8])) < 10]
    write_fits_bricks(dest.parent / "corner_fits", near0, 400, seed=3)
    s = build(str(dest.parent / "corner_fits"), str(dest), "dr9", threshold=2000, row_group_rows=300, workers=1)
    assert s.ok


def _check_three_file_sets(lake: Path, name: str, out: Path) -> None:
    """Main, light-curve and extra files of each box: the same rows in the same order, and
    together every column of the catalog with the lake's values."""
    cat = catalogs(lake)[name]
    got: dict[str, list] = {}
    for f in sorted((out / "9.0").glob("sweep-*.fits")):
        lc = out / "9.0-lightcurves" / f.name.replace(".fits", "-lc.fits")
        ex = out / "9.0-extra" / f.name.replace(".fits", "-ex.fits")
        tabs = [fitsio.read(str(p), ext="SWEEP") for p in (f, lc, ex)]
        ids = [[t[c].tolist() for c in ("RELEASE", "BRICKID", "OBJID")] for t in tabs]
        assert ids[0] == ids[1] == ids[2] and len(ids[0][0])
        for t in tabs:
            for c in t.dtype.names:
                if not (t is not tabs[0] and c in ("RELEASE", "BRICKID", "OBJID")):
                    got.setdefault(c.lower(), []).append(t[c])
    got = {c: np.concatenate(v) for c, v in got.items()}
    order = np.lexsort((got["objid"], got["brickid"]))
    lake_cols = [c for c in cat.schema.names if c not in ("_healpix_29", "brick_primary")]
    want = _lake_table(lake, name, lake_cols + ["brick_primary"])
    want = want.filter(want["brick_primary"])
    # every catalog column comes back, except optional ones NULL in every row (absent from the inputs)
    missing = set(lake_cols) - set(got)
    assert all(want[c].null_count == want.num_rows for c in missing), sorted(missing)[:5]
    assert {c for c in got if c.startswith("apflux")} and "nea_g" in got  # extras are there
    assert len(order) == want.num_rows > 0
    for c in sorted(set(lake_cols) - missing):
        a, b = got[c][order], np.asarray(want[c].to_pylist())
        if a.dtype.kind == "U":
            a, b = np.char.rstrip(a), np.char.rstrip(b.astype(str))
        np.testing.assert_array_equal(a, b, err_msg=c)


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


def test_sweeps_sharing_bricks_replace_and_refuse(query_lake, tmp_path):
    """One catalog from sweep files that split bricks on a box edge: replacing one file keeps the
    other files' rows of the shared bricks; a brick under two paths that are not sweeps of
    disjoint boxes is still refused."""
    import shutil

    corner = tmp_path / "corner_lake"
    _subset_lake(query_lake, corner)
    out = tmp_path / "sweeps"
    export_sweeps(corner, "dr9", out, box=(350, 360, -5, 5))
    export_sweeps(corner, "dr9", out, box=(0, 10, -5, 5))
    src = out / "9.0"
    lake = tmp_path / "lake"
    assert build(str(src), str(lake), "s", workers=1).ok

    def per_brick(files) -> dict[int, int]:
        n: dict[int, int] = {}
        for f in files:
            for b in fitsio.read(str(f), columns=["BRICKID"])["BRICKID"].tolist():
                n[b] = n.get(b, 0) + 1
        return n

    def lake_per_brick() -> dict[int, int]:
        t = _lake_table(lake, "s", ["brickid", "objid"])
        b, c = np.unique(t["brickid"].to_numpy(), return_counts=True)
        return dict(zip(b.tolist(), c.tolist()))

    a, b = src / "sweep-000m005-010p000.fits", src / "sweep-000p000-010p005.fits"
    shared = set(per_brick([a])) & set(per_brick([b]))
    assert shared  # bricks on Dec 0 have rows in both boxes
    # replace a with a version lacking its first half: b's rows of the shared bricks stay
    rows, hdr = fitsio.read(str(a), ext="SWEEP", header=True)
    a.unlink()
    fitsio.write(str(a), rows[len(rows) // 2:], extname="SWEEP", header=hdr)
    s = build(str(src), str(lake), "s", workers=1)
    assert s.ok and s.replaced == [str(a)], (s.rejects, s.replaced)
    assert lake_per_brick() == per_brick(sorted(src.glob("sweep-*.fits")))
    assert main(["etl", "verify", "--lake", str(lake), "--catalog", "s"]) == 0
    # the same rows under a name that gives no box: the shared bricks are refused
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(b, other / "copy-of-a-sweep.fits")
    s = build([str(other / "copy-of-a-sweep.fits")], str(lake), "s", workers=1)
    assert [p for p, _ in s.rejects] == [str(other / "copy-of-a-sweep.fits")]
    assert "the same brick under two paths" in s.rejects[0][1]
    # a file named for a box its rows are not in: its bricks cannot be shared either
    wrong = other / "sweep-020m005-030p000.fits"
    shutil.copy(b, wrong)
    s = build([str(wrong)], str(lake), "s", workers=1)
    assert [p for p, _ in s.rejects] == [str(wrong)]
    assert any("outside the box its name gives" in n for n in s.notes)
    assert lake_per_brick() == per_brick(sorted(src.glob("sweep-*.fits")))
