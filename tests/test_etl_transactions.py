"""The lake as a transactional HATS collection: snapshots published atomically, one writer,
readers that see the old or the new catalog and never anything between (SIGKILL included),
margins that make lsdb's crossmatch exact, history, vacuum and upgrade."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from legacylake.catalogs_schema.random_table import write_random_bricks
from legacylake.etl import build, history, layout, vacuum, verify
from legacylake.fault_trials import cli_build, count_rows, hats_valid, lake_state, run_trials
from legacylake.etl.lock import CatalogLock
from legacylake.etl.testdata import patch_bricks

NAMES = patch_bricks(14, 35.0, 2.0)
ROWS = 200


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("etl_tx")
    paths = write_random_bricks(d / "in", NAMES, ROWS, seed=3)
    return d, paths


def _base(tmp_path, paths, n=6):
    lake = str(tmp_path / "lake")
    s = build(paths[:n], lake, "c", threshold=250, highest_order=9, workers=1)
    assert s.ok and s.snapshot == 1
    return lake


# ------------------------------------------------------------------ one writer

def test_second_writer_exits_2_naming_the_holder(inputs, tmp_path):
    d, paths = inputs
    lake = _base(tmp_path, paths)
    cat = os.path.join(lake, "c")
    before = lake_state(cat)
    with CatalogLock(cat, command="test holder"):
        t0 = time.monotonic()
        p = cli_build(paths[:8], lake, "c")
        out, err = p.communicate(timeout=120)
        assert p.returncode == 2
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert f"pid {os.getpid()}" in lines[0] and socket.gethostname() in lines[0]
        assert "since" in lines[0] and "test holder" in lines[0] and "--wait" in lines[0]
        assert time.monotonic() - t0 < 60          # at once: it does not wait for the holder
        # --wait: blocks until the holder lets go, then builds
        w = cli_build(paths[:8], lake, "c", extra=["--wait"])
        time.sleep(3.0)
        assert w.poll() is None
    out, err = w.communicate(timeout=300)
    assert w.returncode == 0, err
    assert "waiting for the writer lock" in err and f"pid {os.getpid()}" in err
    assert lake_state(cat) != before and count_rows(lake, "c") == 8 * ROWS
    assert verify(lake, "c").ok


def test_two_concurrent_builds(inputs, tmp_path):
    """Two builds on one catalog at once: one runs, the other exits 2 at once and changes
    nothing; with --wait both run, one after the other, and the lake holds both."""
    d, paths = inputs
    lake = _base(tmp_path, paths)
    env = dict(os.environ, LEGACYLAKE_ETL_PAUSE_AT="tasks-done:4")
    a = cli_build(paths[:8], lake, "c", env=env)
    b = cli_build(paths[:6] + paths[8:10], lake, "c", env=env)
    ra, rb = a.communicate(timeout=300), b.communicate(timeout=300)
    codes = sorted([a.returncode, b.returncode])
    assert codes == [0, 2], (ra, rb)
    loser = ra if a.returncode == 2 else rb
    assert "another writer holds the catalog" in loser[1] and "Traceback" not in loser[1]
    assert count_rows(lake, "c") == 8 * ROWS and verify(lake, "c").ok
    a = cli_build(paths[:10], lake, "c", env=env, extra=["--wait"])
    b = cli_build(paths[:6] + paths[10:12], lake, "c", env=env, extra=["--wait"])
    assert a.wait(timeout=300) == 0 and b.wait(timeout=300) == 0
    assert count_rows(lake, "c") == 12 * ROWS
    rep = verify(lake, "c")
    assert rep.ok, rep.problems
    assert [h.version for h in history(os.path.join(lake, "c"))] == [1, 2, 3, 4]


# ------------------------------------------------------------------ readers

def test_reader_loop_during_three_builds_sees_only_whole_snapshots(inputs, tmp_path):
    d, paths = inputs
    lake = _base(tmp_path, paths)
    allowed = {6 * ROWS, 8 * ROWS, 10 * ROWS, 12 * ROWS}
    script = (f"from legacylake.etl import build\n"
              f"p = {json.dumps(paths)}\n"
              "for n in (8, 10, 12):\n"
              f"    assert build(p[:n], {lake!r}, 'c', workers=2).ok\n")
    seen, errors = [], []
    done = threading.Event()

    def read_loop():
        from legacylake.query import cone_search, open_catalog
        while not done.is_set():
            try:
                seen.append(count_rows(lake, "c"))
                cat = open_catalog(os.path.join(lake, "c"))
                n = sum(pq.read_metadata(f).num_rows for f in cat.files)
                if n not in allowed:
                    errors.append(f"leaf footers of snapshot {cat.snapshot}: {n} rows")
                cone_search(lake, 35.0, 2.0, 0.05, columns=["ra", "dec"])
            except Exception as exc:  # any error a reader meets is a failure
                errors.append(f"{exc.__class__.__name__}: {exc}")

    t = threading.Thread(target=read_loop)
    t.start()
    try:
        p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    finally:
        time.sleep(0.5)
        done.set()
        t.join()
    assert p.returncode == 0, p.stderr
    assert not errors, errors[:5]
    assert set(seen) <= allowed, sorted(set(seen) - allowed)
    assert len(set(seen)) >= 2 and len(seen) > 10     # reads happened while the builds ran
    assert count_rows(lake, "c") == 12 * ROWS


def test_a_connection_keeps_its_snapshot(inputs, tmp_path):
    from legacylake.query import connect

    d, paths = inputs
    lake = _base(tmp_path, paths)
    con = connect(lake)
    assert build(paths[:8], lake, "c", workers=1).ok
    assert con.sql("SELECT count(*) FROM c").fetchall()[0][0] == 6 * ROWS     # still the old snapshot
    assert count_rows(lake, "c") == 8 * ROWS                                    # a new connection: the new one
    con.close()


def test_sigkill_at_random_moments_readers_see_old_or_new(inputs, tmp_path):
    """20 builds killed with SIGKILL (10 at random times, 10 at random times inside the
    commit), each followed by a read before any rerun, then a rerun equal to a clean build."""
    d, paths = inputs
    base = _base(tmp_path / "base", paths, n=8)
    trials = run_trials(base, str(tmp_path / "work"), "c", paths[:11], n_random=10, n_commit=10, seed=7)
    assert len(trials) == 20
    assert sum(t.killed for t in trials) >= 15
    # most commit-mode kills land while the process still runs (the window is the clean run's;
    # on a loaded machine a rerun's commit can end sooner, so not all 10)
    assert sum(t.mode == "commit" and t.killed for t in trials) >= 6
    for t in trials:
        assert t.state in ("old", "new"), t
        assert t.hats_valid, t
        assert t.equal_after_rerun and t.rows_lost == 0, t
    assert {t.state for t in trials} == {"old", "new"}   # kills landed before and after the commit


# ------------------------------------------------------------------ margins

def test_lsdb_crossmatch_finds_every_pair_brute_force_finds(inputs, tmp_path):
    import astropy.units as u
    import lsdb
    import pandas as pd
    from astropy.coordinates import SkyCoord

    d, paths = inputs
    lake = str(tmp_path / "lake")
    build(paths[:10], lake, "c", threshold=120, highest_order=9, workers=2)
    build(paths, lake, "c", workers=2)   # an incremental build maintains the margins
    cat = os.path.join(lake, "c")
    snap = layout.resolve(cat)
    right = pd.concat([pq.read_table(f, columns=["ra", "dec", "objid", "brickid"]).to_pandas()
                       for f in sorted(glob.glob(os.path.join(snap.primary, "dataset", "*", "*", "*.parquet")))])
    assert len(right) == len(paths) * ROWS
    rng = np.random.default_rng(1)
    n = 6000
    k = rng.integers(0, len(right), n)
    r = np.sqrt(rng.uniform(0, 1, n)) * 9.0 / 3600.0         # within 9" of a lake row
    phi = rng.uniform(0, 2 * np.pi, n)
    left = pd.DataFrame({"id": np.arange(n),
                         "ra": right["ra"].to_numpy()[k] + r * np.cos(phi) / np.cos(np.radians(right["dec"].to_numpy()[k])),
                         "dec": right["dec"].to_numpy()[k] + r * np.sin(phi)})
    radius = 10.0
    i, j, _, _ = SkyCoord(left["ra"].to_numpy() * u.deg, left["dec"].to_numpy() * u.deg).search_around_sky(
        SkyCoord(right["ra"].to_numpy() * u.deg, right["dec"].to_numpy() * u.deg), radius * u.arcsec)
    brute = len(i)
    lcat = lsdb.from_dataframe(left, ra_column="ra", dec_column="dec", catalog_name="left",
                               partition_rows=500, highest_order=11)
    rcat = lsdb.open_catalog(cat, columns=["ra", "dec", "objid", "brickid"])
    assert rcat.margin is not None and len(rcat.get_healpix_pixels()) > 20
    got = len(lcat.crossmatch(rcat, radius_arcsec=radius, n_neighbors=50, suffixes=("_l", "_r")).compute())
    assert got == brute
    # without the margin lsdb misses pairs across partition edges: the check has teeth
    bare = lsdb.open_catalog(snap.primary, columns=["ra", "dec", "objid", "brickid"])
    with pytest.warns(Warning):
        missed = len(lcat.crossmatch(bare, radius_arcsec=radius, n_neighbors=50, suffixes=("_l", "_r")).compute())
    assert missed < brute


def test_margin_option_fixed_by_first_build(inputs, tmp_path):
    from legacylake.errors import UserError

    d, paths = inputs
    lake = str(tmp_path / "lake")
    s = build(paths[:4], lake, "c", threshold=250, highest_order=9, margin_arcsec=5.0, workers=1)
    assert os.path.basename(layout.resolve(os.path.join(lake, "c")).margin) == "c_5arcs"
    with pytest.raises(UserError, match="margin-arcsec 5"):
        build(paths[:6], lake, "c", margin_arcsec=10.0, workers=1)
    with pytest.raises(UserError, match="not deeper than the partitions"):
        build(paths[:4], str(tmp_path / "other"), "c", highest_order=10, margin_arcsec=120.0, workers=1)
    assert s.ok and verify(lake, "c").ok


# ------------------------------------------------------------------ snapshots

def test_history_vacuum_and_shared_leaves(inputs, tmp_path):
    from legacylake.main import main

    d, paths = inputs
    lake = _base(tmp_path, paths)
    cat = os.path.join(lake, "c")
    far = write_random_bricks(tmp_path / "far", patch_bricks(2, 200.0, -30.0), ROWS, seed=9)
    s2 = build(paths[:6] + far, lake, "c", workers=1)          # far away: old leaves unchanged
    assert s2.leaves_linked > 0
    old = layout.snapshot_dir(cat, 1)
    new = layout.resolve(cat)
    linked = 0
    for f in glob.glob(os.path.join(new.primary, "dataset", "*", "*", "*.parquet")):
        twin = os.path.join(old, "c", os.path.relpath(f, new.primary))
        if os.path.exists(twin):
            assert os.path.samefile(f, twin)     # a hard link, not a copy
            linked += 1
    assert linked == s2.leaves_linked
    build(paths[:7] + far, lake, "c", workers=1)
    h = history(cat)
    assert [x.version for x in h] == [1, 2, 3] and h[-1].current
    assert h[0].files_added == 6 and h[1].files_added == 2 and h[2].files_added == 1
    assert h[1].rows == 8 * ROWS and h[1].bytes_written < h[1].bytes
    assert main(["etl", "history", "--lake", lake, "--catalog", "c"]) == 0
    con_rows = count_rows(lake, "c")
    assert main(["etl", "vacuum", "--lake", lake, "--catalog", "c", "--keep", "1"]) == 0
    assert layout.snapshot_versions(cat) == [3]
    assert count_rows(lake, "c") == con_rows and verify(lake, "c").ok and hats_valid(cat)
    assert [x.present for x in history(cat)] == [False, False, True]
    removed, freed = vacuum(cat, keep=2)
    assert removed == [] and freed == 0
    assert main(["etl", "vacuum", "--lake", lake, "--catalog", "c", "--keep", "0"]) == 2


def _make_old_layout(cat: str) -> None:
    """Turn a collection into the single-folder layout of legacylake 0.1 (what upgrade reads)."""
    snap = layout.resolve(cat)
    man = json.load(open(snap.manifest_path))
    for n in ("hats.properties", "properties", "partition_info.csv", "point_map.fits"):
        shutil.copy(os.path.join(snap.primary, n), os.path.join(cat, n))
    shutil.copytree(os.path.join(snap.primary, "dataset"), os.path.join(cat, "dataset"))
    old = {k: man[k] for k in ("catalog", "model", "threshold", "highest_order", "files", "partitions")}
    old["format"] = 1
    json.dump(old, open(os.path.join(cat, "legacylake", "manifest.json"), "w"))
    shutil.rmtree(os.path.join(cat, "snapshots"))
    os.remove(os.path.join(cat, "collection.properties"))


def _rows(cat: str) -> list:
    t = pq.read_table(os.path.join(layout.hats_dir(cat), "dataset"), columns=["brickid", "objid", "flux_g"])
    return sorted(zip(*(t.column(c).to_pylist() for c in t.column_names)))


def test_upgrade_old_layout_loses_nothing(inputs, tmp_path):
    from legacylake.main import main

    d, paths = inputs
    lake = _base(tmp_path, paths, n=8)
    cat = os.path.join(lake, "c")
    want = _rows(cat)
    _make_old_layout(cat)
    # an unfinished commit of the old layout: its journal is replayed by the upgrade
    leaf = sorted(glob.glob(os.path.join(cat, "dataset", "*", "*", "*.parquet")))[0]
    staged = os.path.join(cat, "legacylake", "staging", "x.parquet")
    os.makedirs(os.path.dirname(staged))
    os.replace(leaf, staged)
    man = json.load(open(os.path.join(cat, "legacylake", "manifest.json")))
    json.dump({"moves": [[staged, leaf]], "deletes": [], "manifest": man},
              open(os.path.join(cat, "legacylake", "journal.json"), "w"))
    assert main(["etl", "upgrade", "--lake", lake]) == 0
    assert layout.is_collection(cat) and not os.path.exists(os.path.join(cat, "hats.properties"))
    assert not os.path.exists(os.path.join(cat, "dataset"))
    assert _rows(cat) == want
    rep = verify(lake, "c")
    assert rep.ok, rep.problems
    assert hats_valid(cat) and history(cat)[0].note.startswith("upgraded")
    assert main(["etl", "upgrade", "--lake", lake, "--catalog", "c"]) == 0   # a second time: nothing to do
    # a build upgrades an old catalog by itself
    _make_old_layout(cat)
    s = build(paths[:9], lake, "c", workers=1)
    assert s.ok and count_rows(lake, "c") == 9 * ROWS and verify(lake, "c").ok


# ------------------------------------------------------------------ hardening

def test_no_valid_input_creates_no_catalog(tmp_path):
    from legacylake.main import main

    bad = tmp_path / "tractor-0001p000.fits"
    bad.write_bytes(b"not a FITS file at all" * 100)
    lake = tmp_path / "lake"
    lake.mkdir()
    assert main(["etl", "build", str(bad), "--lake", str(lake), "--catalog", "c", "--quiet"]) == 1
    assert not (lake / "c").exists()
    s = build([str(tmp_path / "missing.fits")], str(lake), "c", workers=1)
    assert not s.ok and not (lake / "c").exists()


def test_verify_on_a_missing_lake_says_so(tmp_path, capsys):
    from legacylake.main import main

    assert main(["etl", "verify", "--lake", str(tmp_path / "nope"), "--catalog", "c"]) == 2
    assert "no such lake" in capsys.readouterr().err
    assert main(["etl", "history", "--lake", str(tmp_path), "--catalog", "c"]) == 2
    assert "no such catalog" in capsys.readouterr().err


_FULL_DISK = r'''
import json, os, sys
from legacylake.etl import build, layout
from legacylake.fault_trials import count_rows, lake_state
from legacylake.main import main
paths, lake = json.loads(sys.argv[1]), sys.argv[2]
assert build(paths[:2], lake, "c", threshold=250, highest_order=9, workers=1).ok
before = lake_state(os.path.join(lake, "c"))
rc = main(["etl", "build", *paths, "--lake", lake, "--catalog", "c", "--workers", "1", "--quiet"])
after = lake_state(os.path.join(lake, "c"))
print(json.dumps({"rc": rc, "same": before.keys() == after.keys() and all(before[k].equals(after[k]) for k in before),
                  "staging": os.path.exists(layout.staging_root(os.path.join(lake, "c"))),
                  "snapshots": layout.snapshot_versions(os.path.join(lake, "c")),
                  "rows": count_rows(lake, "c")}))
'''


def test_disk_full_leaves_the_catalog_unchanged(inputs, tmp_path):
    """On a real full filesystem (a small tmpfs in a private mount namespace): one line, exit 2,
    staging removed, the published snapshot untouched."""
    d, paths = inputs
    mnt = tmp_path / "small"
    mnt.mkdir()
    script = tmp_path / "full.py"
    script.write_text(_FULL_DISK)
    # the second build needs far more than the tmpfs has left after the first
    cmd = (f"mount -t tmpfs -o size=6m none {mnt} && "
           f"{sys.executable} {script} '{json.dumps(paths)}' {mnt}/lake")
    p = subprocess.run(["unshare", "-rm", "sh", "-c", cmd], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["rc"] == 2 and res["same"] and not res["staging"] and res["snapshots"] == [1]
    assert res["rows"] == 2 * ROWS
    err = [l for l in p.stderr.splitlines() if "error" in l]
    assert len(err) == 1 and "no space left" in err[0] and "unchanged" in err[0], p.stderr
    assert "Traceback" not in p.stderr


def test_verify_checks_margin_rows_against_the_catalog(inputs, tmp_path):
    import pyarrow as pa
    import pyarrow.compute as pc

    d, paths = inputs
    lake = _base(tmp_path, paths)
    cat = os.path.join(lake, "c")
    assert verify(lake, "c").ok
    snap = layout.resolve(cat)
    f = sorted(glob.glob(os.path.join(snap.margin, "dataset", "*", "*", "*.parquet")))[0]
    t = pq.read_table(f)
    ra = t.column("ra").to_numpy().copy()
    ra[0] += 1e-9                                   # a stale copy of one row
    pq.write_table(t.set_column(t.schema.get_field_index("ra"), "ra", pa.array(ra)), f + ".tmp")
    os.replace(f + ".tmp", f)
    rep = verify(lake, "c")
    assert not rep.ok and any("margin rows differ" in p for p in rep.problems), rep.problems
    pq.write_table(t.filter(pc.greater(pa.array(np.arange(t.num_rows)), 0)), f + ".tmp")   # one row missing
    os.replace(f + ".tmp", f)
    rep = verify(lake, "c")
    assert any("expected" in p for p in rep.problems), rep.problems
