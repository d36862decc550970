"""Hardening of the reader/writer layer (issue 14): truncated or corrupt .fits.gz and .fits.fz
inputs and string columns wider than the data model are one-line per-file rejects while the
good files of the same run are ingested; spill and seam shards are Arrow IPC, never pickle."""

from __future__ import annotations

import ast
import gzip
import os
import shutil
import subprocess
import sys

import fitsio
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

import legacylake.etl as etl_pkg
from legacylake.catalogs_schema import model
from legacylake.catalogs_schema.random_table import random_brick_table, write_random_bricks
from legacylake.etl import build, verify
from legacylake.etl.fitstable import _WIDTH, layout, raw_rows
from legacylake.etl.manifest import load
from legacylake.etl.testdata import patch_bricks
from legacylake.etl.shards import _layout_key, _Raw, read_shard, write_shards

from _lake import dataset_dir, leaf_path

ROWS = 150


def _gzip(src: str, dst: str, keep: float = 1.0, cut_tail: int = 0) -> str:
    """``src`` gzip-compressed into ``dst``, keeping a fraction of the stream or cutting bytes off its end."""
    data = gzip.compress(open(src, "rb").read())
    data = data[:int(len(data) * keep)] if keep < 1 else data[:len(data) - cut_tail]
    open(dst, "wb").write(data)
    return dst


def _fpack_table(src: str, dst: str, tile_rows: int = 64) -> str:
    """``src``'s table as a tile-compressed table in the FITS tiled-table convention that
    ``fpack -table`` writes (``ZTABLE = T``, each column of each tile gzip-compressed, GZIP_1,
    in a ``1QB`` heap column); funpack restores the original table from it (checked by hand)."""
    lay = layout(src)
    raw = raw_rows(lay, 0, lay.nrows)
    cols = []
    for c in lay.columns:
        w = _WIDTH[c.letter] * c.repeat
        tiles = np.empty(len(range(0, lay.nrows, tile_rows)), dtype=object)
        tiles[:] = [np.frombuffer(gzip.compress(raw[t:t + tile_rows, c.offset:c.offset + w].tobytes()), np.uint8)
                    for t in range(0, lay.nrows, tile_rows)]
        cols.append(fits.Column(name=c.name, format="QB()", array=tiles))
    hdu = fits.BinTableHDU.from_columns(cols)
    for i in range(1, len(lay.columns) + 1):
        hdu.header[f"ZFORM{i}"] = lay.header[f"TFORM{i}"]
        hdu.header[f"ZCTYP{i}"] = "GZIP_1"
    hdu.header.update(ZTABLE=True, ZTILELEN=tile_rows, ZNAXIS1=lay.rowlen, ZNAXIS2=lay.nrows, ZPCOUNT=0)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(dst)
    return dst


def _write_widened(path: str, brick: str, column: str, width: int) -> str:
    arr = random_brick_table(brick, 40)
    dt = [(n, f"S{width}" if n == column else arr.dtype.fields[n][0]) for n in arr.dtype.names]
    arr = arr.astype(dt)
    arr.dtype.names = [n.upper() for n in arr.dtype.names]
    fitsio.write(path, arr, clobber=True)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Good plain and .fits.gz bricks, and bad inputs of every kind, each its own brick."""
    d = tmp_path_factory.mktemp("etl_hardening")
    names = patch_bricks(10, 120.0, 20.0)
    plain = write_random_bricks(d / "src", names, ROWS, seed=5)
    os.makedirs(d / "in")
    good = [shutil.copy(p, d / "in") for p in plain[:3]]
    bad = {
        # all of it but the end of the stream: the header decompresses, the table does not
        "gz_truncated": _gzip(plain[4], str(d / "in" / f"tractor-{names[4]}.fits.gz"), keep=0.6),
        # every row decompresses, only the gzip trailer (CRC, length) is missing
        "gz_no_trailer": _gzip(plain[5], str(d / "in" / f"tractor-{names[5]}.fits.gz"), cut_tail=6),
        "fz_table": _fpack_table(plain[6], str(d / "in" / f"tractor-{names[6]}.fits.fz")),
        "brickname_wide": _write_widened(str(d / "in" / f"tractor-{names[8]}.fits"), names[8], "brickname", 100_000),
        "type_wide": _write_widened(str(d / "in" / f"tractor-{names[9]}.fits"), names[9], "type", 4),
    }
    fz = open(_fpack_table(plain[7], str(d / f"{names[7]}.fz")), "rb").read()
    bad["fz_corrupt"] = str(d / "in" / f"tractor-{names[7]}.fits.fz")
    open(bad["fz_corrupt"], "wb").write(fz[:2880] + np.random.default_rng(1).bytes(len(fz) - 2880))
    good_gz = _gzip(plain[3], str(d / "in" / f"tractor-{names[3]}.fits.gz"))
    return d, plain, good, good_gz, bad


REASONS = {
    "gz_truncated": "truncated gzip stream (file ends inside the table)",
    "gz_no_trailer": "truncated gzip stream (file ends after the table, before the end of the gzip stream)",
    "fz_table": "tile-compressed (fpack) binary tables are not supported",
    "fz_corrupt": "truncated or corrupt FITS file",
    "brickname_wide": "column BRICKNAME is 100000A, the dr9-tractor model allows at most "
                      f"{model('dr9-tractor')['brickname'].width} characters",
    "type_wide": f"column TYPE is 4A, the dr9-tractor model allows at most {model('dr9-tractor')['type'].width} characters",
}


def test_bad_compressed_and_wide_inputs_rejected_good_ones_ingested(inputs, tmp_path):
    d, plain, good, good_gz, bad = inputs
    lake = str(tmp_path / "lake")
    bad = {**bad, "gz_truncated": shutil.copy(bad["gz_truncated"], tmp_path)}   # repaired below
    s = build(good + [good_gz] + list(bad.values()), lake, "c", workers=2)
    assert not s.ok
    assert s.write_passes == 1     # files failing in the write phase are dropped in that pass
    # each bad file named once, on one line, with its reason
    assert sorted(p for p, _ in s.rejects) == sorted(bad.values())
    reasons = dict(s.rejects)
    for key, path in bad.items():
        assert reasons[path].startswith(path + ": ") and "\n" not in reasons[path], key
        assert REASONS[key] in reasons[path], (key, reasons[path])
    # every good file is in, the .fits.gz one with the rows of its source
    assert sorted(s.ingested) == sorted(good + [good_gz])
    assert s.total_rows == s.rows == 4 * ROWS
    assert verify(lake, "c").ok
    t = pds.dataset(dataset_dir(os.path.join(lake, "c")), format="parquet").to_table()
    src = fitsio.read(plain[3])
    got = t.filter(pc.equal(t["brickid"], int(src["BRICKID"][0]))).sort_by("objid")
    assert got["objid"].to_pylist() == sorted(src["OBJID"].tolist())
    order = np.argsort(src["OBJID"])
    assert np.array_equal(got["flux_r"].to_numpy(), src["FLUX_R"][order])
    assert got["brickname"].to_pylist() == [b.strip() for b in src["BRICKNAME"][order].tolist()]
    man = load(os.path.join(lake, "c"))
    assert all(man["files"][p]["status"] == "rejected" for p in bad.values())

    # the next build: the repaired .fits.gz is ingested; the good one, touched but unchanged,
    # is recognised by its content hash (header and table bytes, decompressed)
    _gzip(plain[4], bad["gz_truncated"])
    os.utime(good_gz)
    s2 = build(good + [good_gz, bad["gz_truncated"]], lake, "c", workers=1)
    assert s2.ok and s2.ingested == [bad["gz_truncated"]] and not s2.replaced
    assert s2.unchanged == 4 and s2.total_rows == 5 * ROWS
    assert verify(lake, "c").ok


def test_truncated_replacement_keeps_the_old_rows(inputs, tmp_path):
    """A .fits.gz already ingested, then replaced by a truncated copy (found only when its rows
    are read): the build rejects the new copy and keeps the rows of the old one."""
    d, plain, good, good_gz, bad = inputs
    lake = str(tmp_path / "lake")
    gz = str(shutil.copy(good_gz, tmp_path / os.path.basename(good_gz)))
    assert build(good[:2] + [gz], lake, "c", workers=1).ok
    data = open(gz, "rb").read()
    open(gz, "wb").write(data[:-8])   # all rows decompress; the gzip trailer is missing
    s = build(good[:2] + [gz], lake, "c", workers=2)   # nothing else new: no snapshot at all
    assert [p for p, _ in s.rejects] == [gz] and "truncated gzip stream" in s.rejects[0][1]
    assert s.snapshot is None and s.total_rows == 3 * ROWS
    s = build(good + [gz], lake, "c", workers=2)       # with a good new file: written again without it
    assert [p for p, _ in s.rejects] == [gz] and s.ingested == [good[2]]
    assert s.write_passes == 2 and s.total_rows == 4 * ROWS
    t = pds.dataset(dataset_dir(os.path.join(lake, "c")), format="parquet").to_table(columns=["brickid"])
    bid = int(fitsio.read(plain[3], columns=["BRICKID"], rows=[0])["BRICKID"][0])
    assert pc.sum(pc.equal(t["brickid"], bid)).as_py() == ROWS     # the old rows of the replaced brick
    assert verify(lake, "c").ok


def test_cli_one_line_per_bad_file_no_traceback(inputs, tmp_path):
    d, plain, good, good_gz, bad = inputs
    r = subprocess.run([sys.executable, "-m", "legacylake", "etl", "build", *good, bad["gz_truncated"],
                        bad["fz_corrupt"], bad["brickname_wide"], "--lake", str(tmp_path / "lake"),
                        "--catalog", "c", "--workers", "2", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    lines = [l for l in r.stderr.splitlines() if l.startswith("rejected:")]
    assert len(lines) == 3
    for key in ("gz_truncated", "fz_corrupt", "brickname_wide"):
        assert sum(bad[key] in l for l in lines) == 1
        assert sum(REASONS[key] in l for l in lines) == 1
    assert f"rows: {3 * ROWS:,} ingested" in r.stdout


def test_shards_are_arrow_ipc_and_round_trip(tmp_path):
    """Blocks of two FITS layouts, out of order, into shards of 7 rows: each shard is an Arrow
    IPC file of one layout, hp-sorted, with the layout in its metadata; read back (and
    removed), the rows are the same bytes."""
    names = patch_bricks(2, 60.0, 0.0)
    p9 = write_random_bricks(tmp_path / "a", names[:1], 30, "dr9-tractor", seed=1)[0]
    p4 = write_random_bricks(tmp_path / "b", names[1:], 20, "dr4-tractor", seed=2)[0]
    rng = np.random.default_rng(0)
    raws, expect = [], {}
    for p in (p9, p4):
        lay = layout(p)
        block = raw_rows(lay, 0, lay.nrows)
        hp = rng.integers(0, 1 << 50, lay.nrows)
        o = np.argsort(hp)
        half = lay.nrows // 2
        raws += [_Raw(_layout_key(lay), lay, block[o[half:]], hp[o[half:]]),
                 _Raw(_layout_key(lay), lay, block[o[:half]], hp[o[:half]])]
        expect[p] = (block[o], hp[o], _layout_key(lay))
    shards = write_shards(raws, str(tmp_path / "s"), rows_per_shard=7)
    assert sum(n for _, _, n in shards) == 50
    got: dict = {}
    for lo, path, n in shards:
        assert open(path, "rb").read(6) == b"ARROW1"
        with pa.OSFile(path) as f:
            schema = pa.ipc.open_file(f).schema
        assert schema.names == ["_healpix_29", "row"] and schema.field("row").type.byte_width > 0
        r = read_shard(path)
        assert not os.path.exists(path)
        assert r.num_rows == n and int(r.hp[0]) == lo and np.all(np.diff(r.hp) >= 0)
        assert r.key == expect[r.lay.path][2]
        got.setdefault(r.lay.path, []).append(r)
    for p, (block, hp, _) in expect.items():
        rs = sorted(got[p], key=lambda r: int(r.hp[0]))
        assert np.array_equal(np.concatenate([r.hp for r in rs]), hp)
        assert np.array_equal(np.concatenate([r.block for r in rs]), block)


def test_spilled_rows_of_a_mapped_model_give_the_same_lake(tmp_path, monkeypatch):
    """A task forced to spill DR4 rows (mapped to DR9 by source path) and DR9 rows through
    Arrow IPC shards writes the same leaves as one that holds them in memory."""
    import legacylake.etl.task as W

    names = patch_bricks(6, 10.0, 5.0)
    paths = (write_random_bricks(tmp_path / "dr9", names[:3], 200, "dr9-tractor", seed=7)
             + write_random_bricks(tmp_path / "dr4", names[3:], 200, "dr4-tractor", seed=8))
    s1 = build(paths, str(tmp_path / "a"), "c", workers=1, map_to="dr9", row_group_rows=128)
    assert s1.ok and s1.spilled_rows == 0
    monkeypatch.setattr(W.Task.__init__, "__defaults__",
                        tuple(20_000 if d == W.PENDING_BYTES else d for d in W.Task.__init__.__defaults__))
    s2 = build(paths, str(tmp_path / "b"), "c", workers=1, map_to="dr9", row_group_rows=128)
    assert s2.ok and s2.spilled_rows > 0 and s2.total_rows == 6 * 200
    assert verify(str(tmp_path / "b"), "c").ok
    m1, m2 = load(str(tmp_path / "a" / "c")), load(str(tmp_path / "b" / "c"))
    assert m1["partitions"].keys() == m2["partitions"].keys()
    for k in m1["partitions"]:
        o, n = map(int, k.split("/"))
        assert pq.read_table(leaf_path(str(tmp_path / "a" / "c"), o, n)).equals(
            pq.read_table(leaf_path(str(tmp_path / "b" / "c"), o, n)))


def test_no_pickle_in_etl():
    d = os.path.dirname(etl_pkg.__file__)
    for name in sorted(os.listdir(d)):
        if name.endswith(".py"):
            tree = ast.parse(open(os.path.join(d, name)).read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    assert all(a.name.split(".")[0] not in ("pickle", "cPickle", "dill", "cloudpickle")
                               for a in node.names), name
                elif isinstance(node, ast.ImportFrom):
                    assert (node.module or "").split(".")[0] not in ("pickle", "dill", "cloudpickle"), name


def test_shard_write_failure_leaves_no_file(tmp_path, monkeypatch):
    """A shard whose write fails (here: disk full after part of it) leaves no file behind."""
    import errno

    import legacylake.etl.shards as W

    p = write_random_bricks(tmp_path / "a", patch_bricks(1, 80.0, 0.0), 20, seed=1)[0]
    lay = layout(p)
    raws = [_Raw(_layout_key(lay), lay, raw_rows(lay, 0, 20), np.arange(20, dtype=np.int64))]
    real = W._write_shard
    calls = []

    def fail_second(path, *args):
        calls.append(path)
        real(path, *args)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(W, "_write_shard", fail_second)
    with pytest.raises(OSError, match="No space"):
        write_shards(raws, str(tmp_path / "s"), rows_per_shard=8)
    assert len(calls) == 2
    assert sorted(os.listdir(tmp_path)) == ["a", "s-0-0.shard"]   # the first, complete shard only
