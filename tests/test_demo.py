"""The README's first command: `legacylake demo` runs the chain and leaves its products."""

import subprocess
import sys

import lsdb
import pyarrow.parquet as pq


def test_demo_runs_the_chain_twice(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "legacylake", "demo", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    for text in ["Photometry from pixels", "completeness at S/N > 8", "Simulate DR9 Tractor catalogs", "Build the HATS lake", "cone('dr9'",
                 "no_maskbits(maskbits, 'BRIGHT,GALAXY,CLUSTER')", "nest4096", "Gaia stars matched", "Try next"]:
        assert text in r.stdout, text
    assert (out / "sky_density.png").stat().st_size > 10_000
    assert (out / "colour_magnitude.png").stat().st_size > 10_000
    cat = lsdb.open_catalog(out / "lake" / "dr9")
    assert len(cat.compute()) > 25_000  # 6 simulated bricks (~4,500 rows each) + 3 measured centres
    df = cat.compute()
    for brick in ("1503p022", "1501p022", "1506p022"):  # measured from pixels (their centres only)
        assert f"{brick}: " in r.stdout, brick
        # the counts say what they count: all rows, and those away from the imaged edge
        line = next(ln for ln in r.stdout.splitlines() if f"{brick}: " in ln)
        assert "sources in the catalog" in line and "px inside the imaged edge" in line, line
        assert 50 < (df.brickname == brick).sum() < 1500, brick
    matches = pq.read_table(out / "gaia_x_dr9.parquet")
    assert matches.num_rows > 100
    # simulated catalogs carry the Gaia source_id as ref_id; the pixel brick refits only G <= 18 stars as references
    same = matches.column("source_id").to_numpy() == matches.column("ref_id").to_numpy()
    assert same.mean() > 0.9
    # a second run ingests nothing new and ends the same
    r2 = subprocess.run(cmd, capture_output=True, text=True)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "nothing to do" in r2.stdout and "9 unchanged" in r2.stdout
    # kernels compiled by the first run are in numba's cache: no compile notice the second time
    assert "compiling numba kernels" not in r2.stderr
    assert len(lsdb.open_catalog(out / "lake" / "dr9").compute()) == len(cat.compute())
