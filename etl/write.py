"""One write task: stream input rows into sorted leaf files for a run of adjacent partitions.

A task owns a contiguous run of leaf pixels (in nested order). Its sources are FITS files
whose footprint meets the run, and (on incremental builds) old leaf files being rewritten.
Each source has a lower bound on the ``_healpix_29`` of its rows in the run (from its
footprint), and sources are consumed in that order: rows below the smallest bound of the
sources not yet read can no longer be preceded by anything, so they are sorted and written.
Memory holds only rows still waiting for a source to be read, never a whole partition.

Each leaf is written as row groups of ``row_group_rows`` consecutive rows of the sorted
order, so each row group covers a narrow ``_healpix_29`` range (a few sub-pixels) and its
min/max statistics let DuckDB skip it.

Memory is bounded: rows held for later (bricks straddling Z-order seams inside the run) are
raw FITS row bytes; above ``pending_bytes`` the rows needed last are spilled to small
hp-sorted shards in the staging directory and loaded back when the merge reaches them.
A FITS file that feeds leaves of several tasks is read once by :func:`split_seam_files`,
which hands each task its rows as such a shard (only seam bricks, never a full copy).
"""

from __future__ import annotations

import heapq
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from legacylake.catalogs_schema.sweeps import in_box
from legacylake.etl.content_hash import hasher_for, new_hasher, record
from legacylake.etl.fitstable import FitsLayoutError, columns_from_raw, iter_raw, layout
from legacylake.etl.healpix import FOOTPRINT_ORDER, healpix29, pixel_range, shift
from legacylake.etl.leaf_writer import _in_ranges, _LeafWriter
from legacylake.etl.mapping import map_columns
from legacylake.etl.read import CHUNK_ROWS, HEALPIX_COLUMN, lake_schema, positions, to_arrow
from legacylake.etl.shards import _layout_key, _merge_raws, _Raw, read_shard, write_shards
from legacylake.etl.task import (PREFETCH, SPILL_ROWS, FootprintError, InputFileError, Source, Task, release_memory,
                                 tune_malloc)


def _lower_bound(cells: np.ndarray, lo: int, hi: int) -> int | None:
    """Smallest order-29 index >= lo and < hi covered by footprint cells, or None."""
    s = shift(FOOTPRINT_ORDER)
    starts = cells << s
    ends = (cells + 1) << s
    i = np.searchsorted(ends, lo, side="right")
    if i >= len(cells) or starts[i] >= hi:
        return None
    return int(max(starts[i], lo))


class _Arrow:
    """Pending rows of an old leaf file: an Arrow table sorted by _healpix_29."""

    def __init__(self, table: pa.Table):
        self.table = table
        self.hp = table.column(HEALPIX_COLUMN).to_numpy()

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    @property
    def nbytes(self) -> int:
        return self.table.nbytes

    def split_at(self, bound: int) -> int:
        return int(np.searchsorted(self.hp, bound, side="left"))

    def head(self, k: int) -> "_Arrow":
        return _Arrow(self.table.slice(0, k))

    def tail(self, k: int) -> "_Arrow":
        return _Arrow(self.table.slice(k))


def content_hash(path: str, like: str | None = None) -> str:
    """The content hash a build records for a FITS file (see :mod:`content_hash`) of its header
    and table bytes (decompressed, for a gzip file; what :func:`_route_fits` hashes while
    reading); with ``like``, made by the algorithm of that earlier record.

    Raises :class:`FitsLayoutError` if the file is not a readable FITS table."""
    h = hasher_for(like) if like else new_hasher()
    lay = layout(path)
    for _ in iter_raw(lay, max(1, (4 << 20) // max(1, lay.rowlen)), h):   # 4 MiB pieces
        pass
    return record(h)


class ReadError(InputFileError):
    """An input file whose table rows cannot be read (``path`` attribute; message names it)."""


def _route_fits(path: str, hash_it: bool, dests: list) -> tuple[dict, list]:
    """Read a FITS file once and route its rows: ``dests`` is [(los, his, lower bound)] of
    leaf runs; returns (row accounting, [sorted raw blocks per destination]).

    Raises :class:`FootprintError` if rows of a run lie below its bound (the plan's), and
    :class:`ReadError` if the file cannot be read to its end (truncated, corrupt gzip)."""
    acc = {"rows": 0, "bad": 0, "written": 0, "bricks": {}}
    out: list[list] = [[] for _ in dests]
    try:
        lay = layout(path)
        key = _layout_key(lay)
        hasher = new_hasher() if hash_it else None
        for raw in iter_raw(lay, CHUNK_ROWS, hasher):
            ra, dec, good = positions(columns_from_raw(lay, raw, {"ra", "dec"}))
            acc["rows"] += len(ra)
            acc["bad"] += int((~good).sum())
            hp = np.full(len(ra), -1, dtype=np.int64)
            hp[good] = healpix29(ra[good], dec[good])
            for d, (los, his, lb) in enumerate(dests):
                sel = np.nonzero(good & _in_ranges(hp, los, his))[0]
                if not len(sel):
                    continue
                sel = sel[np.argsort(hp[sel], kind="stable")]
                hps = hp[sel]
                if hps[0] < lb:
                    raise FootprintError(path, f"{path}: rows outside the sky area planned from its brick")
                block = raw[sel]
                acc["written"] += len(sel)
                b, c = np.unique(columns_from_raw(lay, block, {"brickid"})["brickid"], return_counts=True)
                for bb, cc in zip(b.tolist(), c.tolist()):
                    acc["bricks"][bb] = acc["bricks"].get(bb, 0) + cc
                out[d].append(_Raw(key, lay, block, hps))
        if hasher is not None:
            acc["hash"] = record(hasher)
    except FitsLayoutError as exc:
        raise ReadError(path, str(exc)) from None
    return acc, out


def _load_fits(src: Source, lb: int, los: np.ndarray, his: np.ndarray) -> tuple[dict, list]:
    """Read a FITS source once: (row accounting, sorted raw blocks of its rows in the run)."""
    acc, out = _route_fits(src.path, src.hash_it, [(los, his, lb)])
    return acc, out[0]


@dataclass
class SeamJob:
    """FITS files whose rows feed leaves of several tasks: read once, rows handed to each."""

    job_id: int
    files: list          # [(path, hash_it, [(task_id, los, his, lower bound)])]
    staging: str


def split_seam_files(job: SeamJob) -> dict:
    """Read each file of ``job`` once and write, per task it feeds, its rows in that task's
    leaves as one hp-sorted shard. Returns {"files": {path: accounting},
    "shards": [(task_id, smallest hp, shard path, rows)]}."""
    tune_malloc()
    pa.set_memory_pool(pa.system_memory_pool())
    d = os.path.join(job.staging, "seam")
    os.makedirs(d, exist_ok=True)
    files, shards, failed = {}, [], {}
    for fi, (path, hash_it, dests) in enumerate(job.files):
        try:
            acc, outs = _route_fits(path, hash_it, [(np.asarray(lo, np.int64), np.asarray(hi, np.int64), lb)
                                                    for _, lo, hi, lb in dests])
        except ReadError as exc:   # nothing of the file was handed on: the build rejects it
            failed[path] = str(exc)
            continue
        files[path] = acc
        for (tid, _, _, _), raws in zip(dests, outs):
            if raws:
                prefix = os.path.join(d, f"j{job.job_id}-f{fi}-t{tid}")
                for lo, p, n in write_shards(raws, prefix):
                    shards.append((tid, lo, p, n))
    return {"files": files, "shards": shards, "failed": failed}


def run_task(task: Task) -> dict:
    """Run one write task; returns leaf results, per-file row accounting and point counts.

    A FITS file that cannot be read to its end is left out (``failed``: path -> message; a
    file's rows are handed to the merge only once all of it is read). Raises
    :class:`FootprintError` if a file has rows in this run below its planned bound."""
    tune_malloc()
    schema = lake_schema(task.model)
    # the system allocator hands freed buffers back to the OS (mimalloc keeps them)
    pa.set_memory_pool(pa.system_memory_pool())
    os.makedirs(task.staging, exist_ok=True)
    ranges = [pixel_range(k, n) for k, n in task.leaves]
    los = np.array([r[0] for r in ranges], dtype=np.int64)
    his = np.array([r[1] for r in ranges], dtype=np.int64)
    run_lo, run_hi = int(los[0]), int(his[-1])
    out = _LeafWriter(task, schema)
    files: dict[str, dict] = {}
    failed: dict[str, str] = {}
    heap: list = []
    iters: dict[int, object] = {}
    for idx, src in enumerate(task.sources):
        if src.kind == "fits":
            lb = _lower_bound(np.asarray(src.footprint, dtype=np.int64), run_lo, run_hi)
            heapq.heappush(heap, (run_lo if lb is None else lb, idx))
        elif src.kind == "shard":
            heapq.heappush(heap, (max(run_lo, int(src.lower)), idx))
        else:
            heapq.heappush(heap, (run_lo, idx))
    pending: list = []
    spills: list = []            # heap of (smallest hp, path) of spilled rows
    spill_dir = os.path.join(task.staging, f"spill-{task.task_id}")
    stats = {"peak_pending": 0, "spilled_rows": 0, "spill_files": 0}
    # FITS files and shards are read in the order of their bounds, which is known now: a
    # thread reads (and sorts) the next ones while this one merges and writes (numpy, the
    # file reads and the Parquet encoder release the GIL)
    fits_order = sorted((b, i) for b, i in heap if task.sources[i].kind in ("fits", "shard"))
    fits_order = [i for _, i in fits_order]
    bounds = {i: b for b, i in heap}
    loading: dict = {}
    pool = ThreadPoolExecutor(max_workers=1)

    def _load(i: int):
        src = task.sources[i]
        if src.kind == "shard":
            return None, [read_shard(src.path)]
        return _load_fits(src, bounds[i], los, his)

    def _prefetch() -> None:
        while fits_order and len(loading) < PREFETCH:
            i = fits_order.pop(0)
            loading[i] = pool.submit(_load, i)

    def _pending_bytes() -> int:
        return sum(p.nbytes for p in pending)

    def _maybe_spill() -> None:
        """Above the cap, spill the raw rows needed last until half the cap is held."""
        held = _pending_bytes()
        stats["peak_pending"] = max(stats["peak_pending"], sum(p.num_rows for p in pending))
        if held <= task.pending_bytes:
            return
        raws = [p for p in pending if isinstance(p, _Raw)]
        if not raws:
            return
        hp = np.concatenate([p.hp for p in raws])
        per_row = np.concatenate([np.full(p.num_rows, p.nbytes / max(1, p.num_rows)) for p in raws])
        o = np.argsort(hp)[::-1]
        excess = held - task.pending_bytes // 2
        k = int(np.searchsorted(np.cumsum(per_row[o]), excess)) + 1
        cut = int(hp[o[min(k, len(o)) - 1]])      # spill rows with hp >= cut
        keep, gone = [], []
        for p in pending:
            if not isinstance(p, _Raw):
                keep.append(p)
                continue
            j = p.split_at(cut)
            if j < p.num_rows:
                gone.append(_Raw(p.key, p.lay, p.block[j:], p.hp[j:]))
                if j:
                    keep.append(_Raw(p.key, p.lay, p.block[:j].copy(), p.hp[:j].copy()))
            else:
                keep.append(p)
        if not gone:
            return
        pending[:] = keep
        os.makedirs(spill_dir, exist_ok=True)
        prefix = os.path.join(spill_dir, f"s{stats['spill_files']}")
        for lo, path, n in write_shards(gone, prefix, SPILL_ROWS):
            heapq.heappush(spills, (lo, path))
            stats["spilled_rows"] += n
            stats["spill_files"] += 1
        del gone
        release_memory()

    def flush(bound: int) -> None:
        """Write every row below ``bound``: spilled shards are loaded back as the merge
        reaches their first row, so at most one shard's worth comes back at a time."""
        while True:
            nxt = spills[0][0] if spills else np.iinfo(np.int64).max
            _flush_to(min(bound, nxt))
            if nxt >= bound:
                return
            while spills and spills[0][0] <= nxt:
                pending.append(read_shard(heapq.heappop(spills)[1]))
            stats["peak_pending"] = max(stats["peak_pending"], sum(p.num_rows for p in pending))

    def _flush_to(bound: int) -> None:
        """Write every pending row below ``bound``, at most ~one row group at a time (the
        merged rows are converted to Arrow in slices, so a large release never triples the
        memory it holds)."""
        below = [p.hp[:p.split_at(bound)] for p in pending]
        n = sum(len(b) for b in below)
        if n == 0:
            return
        step = task.row_group_rows
        if n > step:
            allhp = np.sort(np.concatenate(below))
            cuts = [int(x) for x in allhp[step::step]] + [bound]
        else:
            cuts = [bound]
        prev = None
        for cut in cuts:
            if prev is not None and cut <= prev:
                continue
            _flush_below(cut)
            prev = cut

    def _flush_below(bound: int) -> None:
        keep, ready = [], []
        for p in pending:
            k = p.split_at(bound)
            if k:
                ready.append(p.head(k))
            if k < p.num_rows:
                keep.append(p.tail(k))
        pending[:] = keep
        if not ready:
            return
        tables = []
        raws: dict = {}
        for p in ready:
            if isinstance(p, _Raw):
                raws.setdefault(p.key, []).append(p)
            else:
                tables.append(p.table)
        for group in raws.values():
            m = _merge_raws(group)
            cols = columns_from_raw(m.lay, m.block)
            src_model = task.source_models.get(m.lay.path)
            if src_model:
                cols = map_columns(cols, src_model, task.model)
            tables.append(to_arrow(cols, m.hp, schema))
            del m
        t = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if len(tables) > 1:
            t = t.take(pc.sort_indices(t.column(HEALPIX_COLUMN)))
        out.write_sorted(t)

    def _merge_loop() -> None:
        _prefetch()
        while True:
            bound = heap[0][0] if heap else np.iinfo(np.int64).max
            flush(bound)
            if not heap:
                break
            lb, idx = heapq.heappop(heap)
            src = task.sources[idx]
            if src.kind in ("fits", "shard"):
                _prefetch()
                try:
                    acc, raws = loading.pop(idx).result()
                except ReadError as exc:
                    failed[src.path] = str(exc)
                    continue
                if acc is not None:
                    files[src.path] = acc
                pending.extend(raws)
                _maybe_spill()
            else:
                it = iters.get(idx)
                if it is None:
                    pf = pq.ParquetFile(src.path)
                    it = iters[idx] = pf.iter_batches(batch_size=task.row_group_rows)
                batch = next(it, None)
                if batch is None:
                    continue
                t = pa.Table.from_batches([batch]).cast(schema)
                hp = t.column(HEALPIX_COLUMN).to_numpy()
                mask = _in_ranges(hp, los, his)
                if src.exclude_bricks or src.exclude_boxes:
                    bid = t.column("brickid").to_numpy(zero_copy_only=False)
                    if src.exclude_bricks:
                        mask &= ~np.isin(bid, np.asarray(src.exclude_bricks))
                    for box, bricks in src.exclude_boxes:
                        mask &= ~(np.isin(bid, np.asarray(bricks))
                                  & in_box(t.column("ra").to_numpy(), t.column("dec").to_numpy(), box))
                t = t.filter(pa.array(mask))
                if t.num_rows:
                    pending.append(_Arrow(t))
                nxt = int(hp[-1]) if len(hp) else lb
                heapq.heappush(heap, (max(nxt, lb), idx))

    try:
        _merge_loop()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        import shutil
        shutil.rmtree(spill_dir, ignore_errors=True)
    out.finish()
    release_memory()
    return {"task_id": task.task_id, "leaves": out.results, "files": files,
            "margin": out.margin.results if out.margin is not None else [], "failed": failed,
            "peak_pending_rows": stats["peak_pending"], "spilled_rows": stats["spilled_rows"]}
