"""Streamed dataset/_metadata: the same bytes as pyarrow's in-memory append_row_groups."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import pytest

from legacylake.etl.parquet_footer import write_metadata_streaming


def _files(d, sizes, rg):
    rng = np.random.default_rng(0)
    out = []
    for k, n in enumerate(sizes):
        t = pa.table({
            "_healpix_29": np.sort(rng.integers(0, 2**40, n)),
            "flux": pa.FixedSizeListArray.from_arrays(pa.array(rng.random(n * 3, dtype=np.float32)), 3),
            "type": pa.array(rng.choice(["PSF", "REX", "DEV"], n)),
            "primary": rng.random(n) > 0.5,
        }).replace_schema_metadata({"legacylake.data_model": "test"})
        p = os.path.join(d, f"Norder=3/Dir=0/Npix={k}.parquet")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        pq.write_table(t, p, row_group_size=rg)
        out.append(p)
    return out, t.schema


@pytest.mark.parametrize("sizes,rg", [([300, 50, 420], 100), ([5000, 3000], 200), ([7], 100)])
def test_streamed_metadata_equals_pyarrow_append(tmp_path, sizes, rg):
    files, schema = _files(str(tmp_path), sizes, rg)
    rel = [os.path.relpath(p, tmp_path) for p in files]
    n = write_metadata_streaming(list(zip(files, rel)), str(tmp_path / "_metadata"), schema)
    ref = None
    for p, r in zip(files, rel):
        md = pq.read_metadata(p)
        md.set_file_path(r)
        if ref is None:
            ref = md
        else:
            ref.append_row_groups(md)
    ref.write_metadata_file(str(tmp_path / "_ref"))
    assert (tmp_path / "_metadata").read_bytes() == (tmp_path / "_ref").read_bytes()
    md = pq.read_metadata(tmp_path / "_metadata")
    assert n == md.num_row_groups == sum(-(-s // rg) for s in sizes) and md.num_rows == sum(sizes)
    assert pds.parquet_dataset(str(tmp_path / "_metadata")).to_table().num_rows == sum(sizes)


def test_no_files_writes_schema_only(tmp_path):
    schema = pa.schema([("a", pa.int64())])
    assert write_metadata_streaming([], str(tmp_path / "_metadata"), schema) == 0
    assert pq.read_metadata(tmp_path / "_metadata").num_row_groups == 0


def test_the_tail_is_built_not_parsed(tmp_path, monkeypatch):
    """The bytes after ``row_groups`` are built from the footer's values (metadata in the Arrow
    schema's order, created_by, column orders), so no footer's column chunks are walked in
    Python; a footer they do not match is still parsed, and the result is the same."""
    from legacylake.etl import parquet_footer as F

    files, schema = _files(str(tmp_path), [3000, 2000], 100)
    md = pq.read_metadata(files[0])
    thrift = F._serialize(md)
    learnt = F._Footers()
    learnt.split(thrift)
    assert F.expected_tail(md) == learnt.tail
    walked = []
    real_skip = F._skip
    monkeypatch.setattr(F, "_skip", lambda buf, i, t: walked.append(t) or real_skip(buf, i, t))
    rel = [os.path.relpath(p, tmp_path) for p in files]
    write_metadata_streaming(list(zip(files, rel)), str(tmp_path / "_metadata"), schema)
    built = len(walked)                       # only the fields before row_groups (the schema)
    # a wrong guess falls back to the full parse of a footer and gives the same bytes
    monkeypatch.setattr(F, "expected_tail", lambda md: b"\x01\x00")   # matches no footer
    walked.clear()
    write_metadata_streaming(list(zip(files, rel)), str(tmp_path / "_metadata2"), schema)
    assert len(walked) > 5 * built            # every column chunk of the smaller leaf (20 row groups)
    assert (tmp_path / "_metadata").read_bytes() == (tmp_path / "_metadata2").read_bytes()
