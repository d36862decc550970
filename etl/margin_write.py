"""Write margin leaves: a job per group of partitions, each margin gathered from the edge
rows the write tasks routed to it (Arrow IPC shards) and from the edge row groups of the
neighbouring leaves this build did not rewrite."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from legacylake.etl.healpix import shift
from legacylake.etl.margin import PartitionMap, in_cells, ring, ring_ranges
from legacylake.etl.read import HEALPIX_COLUMN, lake_schema
from legacylake.etl.snapshot import start_writeback


@dataclass
class MarginItem:
    leaf: tuple                  # (order, npix) of the partition whose margin this is
    out: str                     # margin leaf path to write
    shards: list = field(default_factory=list)   # IPC files of rows routed by write tasks
    reads: list = field(default_factory=list)    # leaf files to read the ring rows from


@dataclass
class MarginJob:
    job_id: int
    items: list                  # [MarginItem]
    m: int                       # margin order
    model: str
    row_group_rows: int


def read_ring_rows(path: str, cells: np.ndarray, m: int, schema: pa.Schema | None = None) -> pa.Table:
    """Rows of the leaf file ``path`` whose order-``m`` cell is in ``cells`` (sorted), reading
    only the row groups whose ``_healpix_29`` statistics meet those cells."""
    lo, hi = ring_ranges(cells, m)
    pf = pq.ParquetFile(path)
    md = pf.metadata
    ci = pf.schema_arrow.get_field_index(HEALPIX_COLUMN)
    groups = []
    for g in range(md.num_row_groups):
        st = md.row_group(g).column(ci).statistics
        if st is None or not st.has_min_max:
            groups.append(g)
            continue
        j = np.searchsorted(hi, st.min, side="right")
        if j < len(lo) and lo[j] <= st.max:
            groups.append(g)
    if not groups:
        return (schema or pf.schema_arrow).empty_table()
    t = pf.read_row_groups(groups, use_threads=False)
    t = t.filter(pa.array(in_cells(t.column(HEALPIX_COLUMN).to_numpy(), cells, m)))
    return t.cast(schema) if schema is not None else t


def _read_ipc(path: str) -> pa.Table:
    import pyarrow.ipc as ipc

    with pa.memory_map(path) as src:
        return ipc.open_file(src).read_all()


def run_margin_job(job: MarginJob) -> dict:
    """Write the margin leaves of ``job``; returns {"margin_leaves": {(order, npix): rows}}
    (leaves with no rows are not written)."""
    import pyarrow.compute as pc

    from legacylake.etl.task import COMPRESSION, dictionary_columns

    schema = lake_schema(job.model)
    out: dict = {}
    for it in job.items:
        parts = [_read_ipc(p).cast(schema) for p in it.shards]
        if it.reads:
            cells = ring(it.leaf[0], it.leaf[1], job.m)
            parts += [read_ring_rows(p, cells, job.m, schema) for p in it.reads]
        parts = [p for p in parts if p.num_rows]
        if not parts:
            continue
        t = pa.concat_tables(parts)
        t = t.take(pc.sort_indices(t.column(HEALPIX_COLUMN)))
        os.makedirs(os.path.dirname(it.out), exist_ok=True)
        pq.write_table(t, it.out, row_group_size=job.row_group_rows, compression=COMPRESSION[0],
                       compression_level=COMPRESSION[1], write_statistics=True,
                       use_dictionary=dictionary_columns(schema))
        start_writeback(it.out)
        out[tuple(it.leaf)] = t.num_rows
        del parts, t
    return {"margin_leaves": out}


def write_margins(root: str, catalog: str, cur, old_man: dict, new_man: dict, settings: dict, final: list,
                  written: set, changed_cells: np.ndarray, results: list, runner,
                  row_group_rows: int) -> tuple[str, int]:
    """Write the margin catalog of the snapshot assembled at ``root``.

    A partition's margin is rebuilt when the partition is new (or split) or when rows in its
    margin ring may have changed: the ring meets ``changed_cells`` (the footprint cells, at
    ``FOOTPRINT_ORDER``, of the files this build adds or replaces). Rows come from the write
    tasks' shards (``results``) for leaves this build wrote (``written``) and from the edge
    row groups of the other neighbours. Every other margin is hard-linked from the current
    snapshot ``cur`` (a neighbour rewritten with the same rows in the ring gives the same
    margin). Records ``margin_order`` and ``margin_partitions`` in ``new_man``. Returns
    (folder name, margin leaves written)."""
    from legacylake.etl import layout
    from legacylake.etl import manifest as mf
    from legacylake.etl.hats_meta import write_margin_metadata
    from legacylake.etl.healpix import FOOTPRINT_ORDER
    from legacylake.etl.snapshot import link_or_copy

    arcsec, m = settings["margin_arcsec"], settings["margin_order"]
    mname = layout.margin_name(catalog, arcsec)
    mdir = os.path.join(root, mname)
    os.makedirs(mdir, exist_ok=True)
    pmap = PartitionMap(final)
    old_parts = old_man.get("margin_partitions") or {}
    reuse = (cur is not None and cur.margin is not None and old_man.get("margin_order") == m
             and os.path.basename(cur.margin) == mname)
    ch = np.unique(np.asarray(changed_cells, np.int64))
    ch_lo, ch_hi = ch << shift(FOOTPRINT_ORDER), (ch + 1) << shift(FOOTPRINT_ORDER)
    old_leaves = {mf.parse_key(k) for k in old_man.get("partitions", {})}
    shards: dict = {}
    for r in results:
        for leaf, path, _ in r.get("margin", []):
            shards.setdefault(tuple(leaf), []).append(path)
    items, parts = [], {}
    for leaf in final:
        cells = ring(leaf[0], leaf[1], m)
        own = pmap.owner(cells << shift(m))
        neigh = {pmap.leaves[i] for i in np.unique(own[own >= 0])}
        lo, hi = cells << shift(m), (cells + 1) << shift(m)
        j = np.searchsorted(ch_lo, hi, side="left") - 1     # last changed cell starting below hi
        hit = bool(np.any((j >= 0) & (ch_hi[np.maximum(j, 0)] > lo))) if len(ch_lo) else False
        out = os.path.join(mdir, layout.leaf_relpath(*leaf))
        key = mf.pixel_key(*leaf)
        if reuse and not hit and leaf in old_leaves:
            if key in old_parts:
                link_or_copy(cur.margin_leaf(*leaf), out)
                parts[leaf] = old_parts[key]
            continue
        items.append(MarginItem(leaf, out, shards.get(leaf, []),
                                [os.path.join(root, catalog, layout.leaf_relpath(*s))
                                 for s in sorted(neigh) if s not in written]))
    n_written = 0
    if items:
        n_jobs = max(1, min(len(items), 2 * runner.workers))
        jobs = [MarginJob(j, items[j::n_jobs], m, settings["model"], row_group_rows) for j in range(n_jobs)]
        for r in runner.run(run_margin_job, jobs, "write margins"):
            for leaf, rows in r["margin_leaves"].items():
                parts[tuple(leaf)] = rows
                n_written += 1
    new_man["margin_order"] = m
    new_man["margin_partitions"] = {mf.pixel_key(*l): int(v) for l, v in sorted(parts.items())}
    write_margin_metadata(mdir, mname, f"../{catalog}", parts, lake_schema(settings["model"]), arcsec, m)
    return mname, n_written
