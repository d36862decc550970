"""Bad input: each bad file gets one line naming it and the reason, goes into the rejects,
the good files are ingested, and the exit status is non-zero; no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import fitsio
import numpy as np
import pytest

from legacylake.catalogs_schema.random_table import random_brick_table
from legacylake.etl import build, verify
from legacylake.etl.testdata import patch_bricks, patch_files

from _lake import dataset_dir


def _write(path, arr):
    arr = arr.copy()
    arr.dtype.names = [n.upper() for n in arr.dtype.names]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fitsio.write(str(path), arr, clobber=True)
    return str(path)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("etl_bad")
    names = patch_bricks(9, 250.0, 30.0)
    good = patch_files(d / "good", 2, 100, ra=250.0, dec=30.0)
    files = {}
    # truncated: a valid file cut in the middle of its table
    src = patch_files(d / "tmp", 1, 300, ra=250.0, dec=30.0)[0]
    data = open(src, "rb").read()
    files["truncated"] = str(d / "bad" / f"tractor-{names[2]}.fits")
    os.makedirs(d / "bad", exist_ok=True)
    open(files["truncated"], "wb").write(data[: len(data) // 2])
    # corrupt: garbage over the table header
    files["corrupt"] = str(d / "bad" / f"tractor-{names[3]}.fits")
    open(files["corrupt"], "wb").write(data[:2880] + os.urandom(2880) + data[5760:])
    # not FITS
    files["text"] = str(d / "bad" / "notes.txt")
    open(files["text"], "w").write("not a catalog\n")
    # a required column missing
    arr = random_brick_table(names[4], 50)
    files["missing"] = _write(d / "bad" / f"tractor-{names[4]}.fits",
                              arr[[n for n in arr.dtype.names if n != "flux_g"]])
    # a column of the wrong type
    arr = random_brick_table(names[5], 50)
    dt = [(n, "f8" if n == "flux_r" else arr.dtype.fields[n][0]) for n in arr.dtype.names]
    files["mistyped"] = _write(d / "bad" / f"tractor-{names[5]}.fits", arr.astype(dt))
    # non-finite and out-of-range positions in an otherwise good file
    arr = random_brick_table(names[6], 60)
    arr["ra"][:3] = np.nan
    arr["dec"][3] = 95.0
    arr["ra"][4] = np.inf
    files["badpos"] = _write(d / "bad" / f"tractor-{names[6]}.fits", arr)
    # zero rows: legitimate
    files["empty"] = _write(d / "bad" / f"tractor-{names[7]}.fits", random_brick_table(names[7], 0))
    return d, good, files


def test_rejects_named_and_good_files_ingested(bad_inputs, tmp_path):
    d, good, files = bad_inputs
    s = build(good + list(files.values()), str(tmp_path / "lake"), "c", workers=1)
    rej = dict(s.rejects)
    assert not s.ok
    for key in ("truncated", "corrupt", "text", "missing", "mistyped", "badpos"):
        assert files[key] in rej, key
        line = rej[files[key]]
        assert "\n" not in line and files[key] in line
    assert "truncated" in rej[files["truncated"]]
    assert "not a FITS file" in rej[files["text"]]
    assert "flux_g" in rej[files["missing"]]
    assert "flux_r" in rej[files["mistyped"]] and "float64" in rej[files["mistyped"]]
    assert "5 row(s)" in rej[files["badpos"]]
    assert files["empty"] not in rej
    assert s.bad_position_rows == 5
    # good rows are in: 2 x 100 good files + 55 good rows of the bad-position file
    assert s.total_rows == 255
    assert set(s.ingested) == set(good) | {files["badpos"], files["empty"]}
    rep = verify(str(tmp_path / "lake"), "c")
    assert rep.ok, rep.problems


def test_cli_bad_input_exit_status_no_traceback(bad_inputs, tmp_path):
    d, good, files = bad_inputs
    r = subprocess.run([sys.executable, "-m", "legacylake", "etl", "build", *good, files["text"],
                        files["truncated"], "--lake", str(tmp_path / "lake"), "--catalog", "c",
                        "--workers", "1", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr + r.stdout
    lines = [l for l in r.stderr.splitlines() if l.startswith("rejected:")]
    assert len(lines) == 2
    assert "rows: 200 ingested" in r.stdout


def test_real_desitarget_files(shared_data, tmp_path):
    """The survey's own DR8 test files (sweep-like 96-column layout) and its non-FITS files."""
    src = shared_data / "desitarget"
    lake = str(tmp_path / "lake")
    s = build([str(src)], lake, "dr8", workers=1)
    # a directory walk skips files not named *.fits; named explicitly, they are rejected
    assert len(s.skipped) == 2 and s.ok
    assert len(s.ingested) == 6 and s.total_rows == 36
    s2 = build([str(src / "not_a_tractor_file.txt"), str(src / "not_a_sweep_file.txt")], lake, "dr8", workers=1)
    assert len(s2.rejects) == 2 and all("not a FITS file" in r for _, r in s2.rejects)
    rep = verify(lake, "dr8")
    assert rep.ok, rep.problems
    import pyarrow.dataset as pds
    t = pds.dataset(dataset_dir(os.path.join(lake, "dr8")), format="parquet").to_table(columns=["type", "release"])
    assert set(t.column("type").to_pylist()) <= {"PSF", "REX", "EXP", "DEV", "COMP", "SER"}
    assert set(t.column("release").to_pylist()) == {8000}


def test_real_desitarget_truncated_copy(shared_data, tmp_path):
    src = shared_data / "desitarget" / "tractor-3301m002.fits"
    bad = tmp_path / "tractor-3301m002.fits"
    bad.write_bytes(src.read_bytes()[:-2000])
    s = build([str(bad), str(shared_data / "desitarget" / "tractor-3303p000.fits")],
              str(tmp_path / "lake"), "c", workers=1)
    assert [p for p, _ in s.rejects] == [str(bad)] and "truncated" in s.rejects[0][1]
    assert s.total_rows == 6
