"""Exactly once: idempotent re-runs, incremental adds, replaced bricks, verify catching damage."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

from legacylake.catalogs_schema.random_table import write_random_bricks
from legacylake.errors import UserError
from legacylake.etl import build, verify

from _lake import dataset_dir, hats_dir, leaf_path
from legacylake.etl.manifest import load
from legacylake.etl.testdata import patch_bricks, patch_files


def _leaf_stats(cat):
    man = load(cat)
    out = {}
    for k in man["partitions"]:
        o, n = map(int, k.split("/"))
        st = os.stat(leaf_path(cat, o, n))
        out[k] = (st.st_ino, st.st_mtime_ns)
    return out


def _all_keys(cat):
    import pyarrow.dataset as pds
    t = pds.dataset(dataset_dir(cat), format="parquet").to_table(columns=["release", "brickid", "objid"])
    return sorted(zip(*(t.column(c).to_pylist() for c in ("release", "brickid", "objid"))))


def test_rerun_changes_nothing(tmp_path):
    paths = patch_files(tmp_path / "in", 6, 150)
    s1 = build([str(tmp_path / "in")], str(tmp_path / "lake"), "c", threshold=300, highest_order=9, workers=1)
    cat = str(tmp_path / "lake" / "c")
    before = _leaf_stats(cat)
    props = os.stat(os.path.join(cat, "collection.properties")).st_mtime_ns
    s2 = build([str(tmp_path / "in")], str(tmp_path / "lake"), "c", workers=1)
    assert s2.nothing_to_do and s2.unchanged == 6 and s2.partitions_written == 0
    assert "nothing to do" in "\n".join(s2.lines())
    assert _leaf_stats(cat) == before
    assert os.stat(os.path.join(cat, "collection.properties")).st_mtime_ns == props
    assert s2.total_rows == s1.total_rows == 900


def test_incremental_add_rewrites_only_touched_partitions(tmp_path):
    a = patch_files(tmp_path / "a", 6, 150, ra=150.0, dec=10.0)
    b = patch_files(tmp_path / "b", 4, 150, ra=200.0, dec=-20.0)  # far away: new partitions only
    lake = str(tmp_path / "lake")
    build(a, lake, "c", threshold=300, highest_order=9, workers=1)
    cat = os.path.join(lake, "c")
    before = _leaf_stats(cat)
    s = build(a + b, lake, "c", workers=1)
    assert len(s.ingested) == 4 and s.unchanged == 6
    after = _leaf_stats(cat)
    for k, v in before.items():
        assert after[k] == v, f"untouched partition {k} was rewritten"
    assert s.total_rows == 1500
    assert verify(lake, "c").ok
    # a neighbour of the first patch touches some of its partitions but not all
    c = write_random_bricks(tmp_path / "c", [patch_bricks(7, 150.0, 10.0)[6]], 150, seed=5)
    s3 = build(c, lake, "c", workers=1)
    after3 = _leaf_stats(cat)
    assert 0 < s3.partitions_written
    kept = [k for k in before if after3.get(k) == before[k]]
    assert kept, "a one-brick add rewrote every old partition"
    assert s3.total_rows == 1650
    rep = verify(lake, "c")
    assert rep.ok, rep.problems
    assert len(_all_keys(cat)) == len(set(_all_keys(cat))) == 1650


def test_growing_partition_splits(tmp_path):
    names = patch_bricks(8, 30.0, 5.0)
    lake = str(tmp_path / "lake")
    p1 = write_random_bricks(tmp_path / "in", names[:2], 150)
    s1 = build(p1, lake, "c", threshold=400, highest_order=9, workers=1)
    p2 = write_random_bricks(tmp_path / "in", names[2:], 150)
    s2 = build(p1 + p2, lake, "c", workers=1)
    assert s2.total_rows == 1200
    assert s2.partitions > s1.partitions
    cat = os.path.join(lake, "c")
    from hats.io.validation import is_valid_catalog
    assert is_valid_catalog(cat, strict=True)
    rep = verify(lake, "c")
    assert rep.ok, rep.problems


def test_changed_brick_replaces_its_rows(tmp_path):
    names = patch_bricks(4, 60.0, 20.0)
    lake = str(tmp_path / "lake")
    paths = write_random_bricks(tmp_path / "in", names, 200, seed=1)
    build(paths, lake, "c", threshold=1000, highest_order=8, workers=1)
    # rewrite one brick with fewer rows and other values
    write_random_bricks(tmp_path / "in", names[:1], 120, seed=2)
    s = build(paths, lake, "c", workers=1)
    assert s.replaced == [paths[0]] and s.unchanged == 3
    assert s.total_rows == 3 * 200 + 120
    rep = verify(lake, "c")
    assert rep.ok, rep.problems
    keys = _all_keys(os.path.join(lake, "c"))
    assert len(keys) == len(set(keys)) == 720


def test_same_brick_under_two_paths_is_rejected(tmp_path):
    names = patch_bricks(2, 80.0, 0.0)
    p = write_random_bricks(tmp_path / "one", names, 100)
    q = write_random_bricks(tmp_path / "two", names[:1], 100)
    lake = str(tmp_path / "lake")
    s = build(p + q, lake, "c", workers=1)
    assert not s.ok
    assert len(s.rejects) == 1 and q[0] in s.rejects[0][1] and p[0] in s.rejects[0][1]
    assert s.total_rows == 200
    # and later, against what the catalog already holds
    s2 = build(q, lake, "c", workers=1)
    assert len(s2.rejects) == 1 and s2.total_rows == 200
    assert verify(lake, "c").ok


def test_two_data_models_refused(tmp_path):
    a = write_random_bricks(tmp_path / "a", patch_bricks(1, 100.0, 0.0), 50, "dr9-tractor")
    b = write_random_bricks(tmp_path / "b", patch_bricks(2, 100.0, 0.0)[1:], 50, "dr10-tractor")
    with pytest.raises(UserError, match="more than one data model"):
        build(a + b, str(tmp_path / "lake"), "c", workers=1)
    build(a, str(tmp_path / "lake"), "c", workers=1)
    with pytest.raises(UserError, match="dr10-tractor"):
        build(b, str(tmp_path / "lake"), "c", workers=1)


def test_verify_names_damage(tmp_path):
    paths = patch_files(tmp_path / "in", 3, 100, ra=120.0, dec=30.0)
    lake = str(tmp_path / "lake")
    build(paths, lake, "c", threshold=10_000, highest_order=8, workers=1)
    cat = os.path.join(lake, "c")
    man = load(cat)
    o, n = map(int, next(iter(man["partitions"])).split("/"))
    path = leaf_path(cat, o, n)
    t = pq.read_table(path)
    # duplicate a row and drop another: counts per brick and duplicates must be reported
    import pyarrow as pa
    bad = pa.concat_tables([t.slice(0, 1), t.slice(0, t.num_rows - 1)])
    pq.write_table(bad, path)
    rep = verify(lake, "c")
    assert not rep.ok
    text = "\n".join(rep.problems)
    assert "duplicate" in text
    assert "brick" in text or "rows" in text


def test_cli_verify_exit_codes(tmp_path, capsys):
    from legacylake.main import main
    paths = patch_files(tmp_path / "in", 2, 80, ra=5.0, dec=5.0)
    lake = str(tmp_path / "lake")
    assert main(["etl", "build", *paths, "--lake", lake, "--catalog", "c", "--workers", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "files: 2 seen, 2 ingested" in out and "rows/s" in out
    assert main(["etl", "verify", "--lake", lake, "--catalog", "c"]) == 0
    os.remove(os.path.join(hats_dir(os.path.join(lake, "c")), "partition_info.csv"))
    assert main(["etl", "verify", "--lake", lake, "--catalog", "c"]) == 1
    assert "partition_info.csv" in capsys.readouterr().out


def test_touched_but_identical_brick_is_unchanged(tmp_path):
    names = patch_bricks(3, 120.0, 30.0)
    lake = str(tmp_path / "lake")
    paths = write_random_bricks(tmp_path / "in", names, 150, seed=4)
    build(paths, lake, "c", threshold=1000, highest_order=8, workers=1)
    cat = os.path.join(lake, "c")
    before = _leaf_stats(cat)
    props = os.stat(os.path.join(cat, "collection.properties")).st_mtime_ns
    recorded = load(cat)["files"][paths[0]]["hash"]
    # the content hash the manifest records is the one content_hash computes
    from legacylake.etl.write import content_hash
    assert content_hash(paths[0]) == recorded
    # same bytes, new modification time (e.g. copied again by rsync without -t)
    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    s = build(paths, lake, "c", workers=1)
    assert s.replaced == [] and s.ingested == [] and s.unchanged == 3 and s.nothing_to_do
    assert _leaf_stats(cat) == before
    assert os.stat(os.path.join(cat, "collection.properties")).st_mtime_ns == props
    # the new mtime is remembered: the next run does not hash the file again
    assert load(cat)["files"][paths[0]]["mtime_ns"] == os.stat(paths[0]).st_mtime_ns
    # one byte of a row changed, same size: replaced
    from legacylake.etl.fitstable import layout
    lay = layout(paths[1])
    off = lay.data_start + next(c.offset for c in lay.columns if c.name.lower() == "flux_g") + 3
    with open(paths[1], "r+b") as fh:
        fh.seek(off)
        b = fh.read(1)
        fh.seek(off)
        fh.write(bytes([b[0] ^ 1]))
    s = build(paths, lake, "c", workers=1)
    assert s.replaced == [paths[1]] and s.unchanged == 2
    assert verify(lake, "c").ok


def test_content_hash_records_of_earlier_versions_still_match(tmp_path):
    """Manifests written before the switch to xxHash3 record BLAKE2b-128 (no prefix): a file
    with those bytes still compares equal (no re-ingest after an upgrade), a changed one not."""
    import hashlib

    from legacylake.etl.dispatch import same_content
    from legacylake.etl.fitstable import iter_raw, layout
    from legacylake.etl.write import content_hash

    path = write_random_bricks(tmp_path, patch_bricks(1, 120.0, 30.0), 200, seed=7)[0]
    h = hashlib.blake2b(digest_size=16)
    for _ in iter_raw(layout(path), 64, h):
        pass
    old = h.hexdigest()
    assert content_hash(path, like=old) == old and same_content(path, old)
    new = content_hash(path)
    assert new.startswith("xxh3-128:") and len(new) == len("xxh3-128:") + 32 and same_content(path, new)
    lay = layout(path)
    with open(path, "r+b") as fh:     # one byte of the last row's ra
        fh.seek(lay.data_start + (lay.nrows - 1) * lay.rowlen + next(c.offset for c in lay.columns if c.name.lower() == "ra"))
        b = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([b[0] ^ 1]))
    assert not same_content(path, old) and not same_content(path, new)
