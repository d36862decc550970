"""``legacylake sql``, ``cone``, ``box``, ``polygon``: output files and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from _query_lake import query_lake  # noqa: F401  (fixture)
from legacylake.main import main


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_sql_prints_table_and_summary(query_lake, capsys):
    rc, out, err = run(capsys, "sql", "--lake", str(query_lake),
                       "SELECT brickname, maskbit_names(maskbits) AS bits, mag_r FROM dr9_derived "
                       "WHERE has_maskbits(maskbits, 'BRIGHT') ORDER BY _healpix_29 LIMIT 3")
    assert rc == 0 and "brickname" in out and "BRIGHT" in out
    assert "3 rows, 3 columns" in err


@pytest.mark.parametrize("ext", ["parquet", "csv", "fits"])
def test_sql_out_files(query_lake, tmp_path, capsys, ext):
    path = tmp_path / f"r.{ext}"
    rc, out, _ = run(capsys, "sql", "--lake", str(query_lake), "--out", str(path),
                     "SELECT ra, dec, flux_g, mag_g FROM dr9_derived WHERE snr(flux_g, flux_ivar_g) > 5")
    assert rc == 0 and path.exists() and f"-> {path}" in out
    n = int(out.split()[0])
    assert n > 0
    if ext == "parquet":
        t = pq.read_table(path)
        assert t.num_rows == n and t.schema.field("ra").metadata[b"unit"] == b"deg"
    else:
        t = Table.read(path, format="ascii.csv" if ext == "csv" else "fits")
        assert len(t) == n
        if ext == "fits":
            assert str(t["ra"].unit) == "deg"


def test_cone_box_polygon_commands(query_lake, tmp_path, capsys):
    rc, out, err = run(capsys, "cone", "--lake", str(query_lake), "--catalog", "dr9", "0", "0", "0.1",
                       "--columns", "ra,dec,flux_r", "--where", "flux_r > 0")
    assert rc == 0 and "files" in err and "row groups" in err
    rc, out, err = run(capsys, "box", "--lake", str(query_lake), "359.9", "0.1", "-0.1", "0.1", "--out",
                       str(tmp_path / "b.parquet"))
    assert rc == 0 and pq.read_metadata(tmp_path / "b.parquet").num_rows > 0
    rc, out, err = run(capsys, "polygon", "--lake", str(query_lake), "0", "89.8", "120", "89.8", "240", "89.8")
    assert rc == 0 and "rows" in err


@pytest.mark.parametrize("argv,needle", [
    (["sql", "--lake", "{lake}", "SELECT count(*) FROM dr10"], "dr10"),
    (["sql", "--lake", "{lake}", "SELECT nope FROM dr9"], "nope"),
    (["sql", "--lake", "{lake}", "SELECT count(*) FROM dr9 WHERE has_maskbits(maskbits, 'BRITE')"], "BRITE"),
    (["sql", "--lake", "{lake}", "SELEC 1"], "malformed SQL"),
    (["sql", "--lake", "{lake}", "DROP VIEW dr9"], "read-only"),
    (["sql", "--lake", "{tmp}", "SELECT 1"], "not a lake"),
    (["cone", "--lake", "{lake}", "0", "0", "0"], "radius must be > 0"),
    (["cone", "--lake", "{lake}", "--catalog", "dr10", "0", "0", "1"], "unknown catalog"),
    (["cone", "--lake", "{lake}", "0", "0", "1", "--columns", "ra,nope"], "nope"),
    (["cone", "--lake", "{lake}", "0", "0", "1", "--where", "flux_zz > 0"], "flux_zz"),
    (["sql", "--lake", "{lake}", "SELECT 1", "--out", "{tmp}/x.txt"], "unknown format"),
    (["sql", "--lake", "{lake}", "SELECT * FROM cone('dr10', 0, 0, 1)"], "unknown catalog 'dr10'"),
    (["sql", "--lake", "{lake}", "SELECT * FROM cone('dr9', 0, 0, -1)"], "radius must be > 0"),
    (["sql", "--lake", "{lake}", "SELECT * FROM read_csv('{tmp}/x.csv')"], "only reads the lake's files"),
    (["cone", "--lake", "{tmp}", "0", "0", "1"], "not a lake"),
    (["cone", "--lake", "{lake}", "0", "0", "-0.5"], "radius must be > 0"),
    (["box", "--lake", "{lake}", "0", "1", "2", "1"], "dec1 < dec2"),
    (["polygon", "--lake", "{lake}", "0", "0", "1", "1"], "at least 3 vertices"),
])
def test_bad_input_one_line(query_lake, tmp_path, capsys, argv, needle):
    argv = [a.format(lake=query_lake, tmp=tmp_path) for a in argv]
    rc, out, err = run(capsys, *argv)
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err


def test_unknown_bit_lists_valid_names_in_a_subprocess(query_lake):
    p = subprocess.run([sys.executable, "-m", "legacylake", "sql", "--lake", str(query_lake),
                        "SELECT count(*) FROM dr9 WHERE no_fitbits(fitbits, 'GAIA,TYCHO3')"],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "TYCHO3" in p.stderr and "TYCHO2" in p.stderr and "Traceback" not in p.stderr
    assert len([ln for ln in p.stderr.splitlines() if ln.strip()]) == 1, p.stderr


def test_functions_listing(capsys):
    rc, out, _ = run(capsys, "sql", "--functions")
    assert rc == 0 and "has_maskbits" in out and "flux_to_mag(flux)" in out
