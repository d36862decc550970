"""SIGKILL a real `legacylake etl build` process at several points; the next build must end
with the lake a clean build makes (same rows, same (release, brickid, objid) set, verify OK,
valid HATS)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from legacylake.catalogs_schema.random_table import write_random_bricks
from legacylake.etl import build, verify
from legacylake.etl.manifest import load
from legacylake.etl.testdata import patch_bricks

from _lake import dataset_dir

NAMES = patch_bricks(10, 210.0, 15.0)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("etl_resume")
    first = write_random_bricks(d / "in", NAMES[:4], 150)
    second = write_random_bricks(d / "in", NAMES[4:], 150)
    clean = str(d / "clean")
    build(first, clean, "c", threshold=350, highest_order=9, workers=1)
    build(first + second, clean, "c", workers=1)
    return d, first, second, _state(os.path.join(clean, "c"))


def _state(cat):
    import pyarrow.dataset as pds
    man = load(cat)
    t = pds.dataset(dataset_dir(cat), format="parquet").to_table(
        columns=["release", "brickid", "objid"])
    keys = sorted(zip(*(t.column(c).to_pylist() for c in ("release", "brickid", "objid"))))
    parts = {k: v["rows"] for k, v in man["partitions"].items()}
    return keys, parts


def _cli(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "legacylake", "etl", "build", *args, "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_equal_to_clean(lake, clean_state):
    from hats.io.validation import is_valid_catalog
    cat = os.path.join(lake, "c")
    keys, parts = _state(cat)
    ckeys, cparts = clean_state
    assert keys == ckeys
    assert len(keys) == len(set(keys))
    assert parts == cparts
    rep = verify(lake, "c")
    assert rep.ok, rep.problems
    assert is_valid_catalog(cat, strict=True)


@pytest.mark.parametrize("point", ["leaf", "tasks-done", "margins", "snapshot", "renamed", "pointer-written", "published"])
def test_sigkill_at_named_point_then_resume(inputs, tmp_path, point):
    d, first, second, clean_state = inputs
    lake = str(tmp_path / "lake")
    build(first, lake, "c", threshold=350, highest_order=9, workers=1)
    env = dict(os.environ, LEGACYLAKE_ETL_CRASH_AT=point)
    p = _cli([*first, *second, "--lake", lake, "--catalog", "c", "--workers", "1"], env)
    p.communicate(timeout=300)
    assert p.returncode == -9, f"crash point {point} not reached"
    # a reader in between sees a consistent catalog: old or new, never half
    assert verify(lake, "c").ok
    s = build([*first, *second], lake, "c", workers=1)
    assert s.ok
    _check_equal_to_clean(lake, clean_state)


def test_sigkill_at_random_times_then_resume(inputs, tmp_path):
    d, first, second, clean_state = inputs
    lake = str(tmp_path / "lake")
    build(first, lake, "c", threshold=350, highest_order=9, workers=1)
    for delay in (1.5, 3.0):
        # workers=2: the pool's worker processes must die with the killed parent
        p = _cli([*first, *second, "--lake", lake, "--catalog", "c", "--workers", "2"])
        time.sleep(delay)
        p.kill()
        p.communicate(timeout=300)
    s = build([*first, *second], lake, "c", workers=1)
    assert s.ok
    _check_equal_to_clean(lake, clean_state)
