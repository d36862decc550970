"""Pre-crossmatched tables in the hosted catalog's style (issue 17, item 4):
``legacylake xmatch ... --into-lake`` names them ``x<r>__<catalog>__<external>`` and a SQL join
through them on the lake's own release, brickid, objid works."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from legacylake.etl import build
from legacylake.main import main
from legacylake.query import connect, query, xmatch
from legacylake.query.crossmatch.result import xmatch_table_name
from legacylake.query.synthlake import write_fits_bricks


def test_table_name():
    assert xmatch_table_name(1.5, "dr9", "/data/gaia_dr3/gaia_source.parquet") == "x1p5__dr9__gaia_source"
    assert xmatch_table_name(2, "dr10", "cats/Gaia-DR3/") == "x2__dr10__gaia_dr3"


def test_into_lake_table_joins_in_sql(tmp_path, capsys):
    write_fits_bricks(tmp_path / "fits", ["0001m002", "0001p002"], 300, seed=4)
    lake = tmp_path / "lake"
    assert build(str(tmp_path / "fits"), str(lake), "dr9", workers=1).ok
    rows = query(str(lake), "SELECT ra, dec FROM dr9 ORDER BY brickid, objid")
    rng = np.random.default_rng(0)
    pick = rng.choice(rows.num_rows, 80, replace=False)
    ra = rows["ra"].to_numpy()[pick] + rng.normal(0, 0.3, 80) / 3600
    dec = rows["dec"].to_numpy()[pick] + rng.normal(0, 0.3, 80) / 3600
    ext = pa.table({"source_id": np.arange(1000, 1080, dtype=np.int64), "ra": ra, "dec": dec,
                    "phot_g_mean_mag": rng.uniform(15, 20, 80)})
    pq.write_table(ext, tmp_path / "gaia_source.parquet")
    assert main(["xmatch", str(tmp_path / "gaia_source.parquet"), "--lake", str(lake), "--catalog", "dr9",
                 "--radius", "1.5", "--all", "--into-lake", "--no-progress"]) == 0
    assert "JOIN x1p5__dr9__gaia_source x USING (release, brickid, objid)" in capsys.readouterr().out
    con = connect(lake)
    got = query(con, "SELECT t.ls_id, x.source_id, x.sep_arcsec, t.mag_g FROM dr9_derived t "
                     "JOIN x1p5__dr9__gaia_source x USING (release, brickid, objid) ORDER BY t.ls_id, x.source_id")
    ref = xmatch(ext, lake, "dr9", radius_arcsec=1.5, mode="all")
    want = sorted(zip((ref["release"].to_numpy().astype(np.int64) << 40) + (ref["brickid"].to_numpy().astype(np.int64) << 16)
                      + ref["objid"].to_numpy(), ref["source_id"].to_numpy()))
    assert len(want) >= 80
    assert list(zip(got["ls_id"].to_numpy(), got["source_id"].to_numpy())) == [tuple(map(int, w)) for w in want]
    assert np.all(got["sep_arcsec"].to_numpy() <= 1.5)
    cols = query(con, "SELECT * FROM x1p5__dr9__gaia_source LIMIT 1").column_names
    assert {"source_id", "ra", "dec", "release", "brickid", "objid", "ra_lake", "dec_lake", "sep_arcsec"} <= set(cols)
