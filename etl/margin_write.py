"""Write margin leaves: a job per group of partitions, each margin gathered from the edge
rows the write tasks routed to it (Arrow IPC shards) and from the edge row groups of the
neighbouring leaves this build did not rewrite."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .margin import in_cells, ring, ring_ranges
from .read import HEALPIX_COLUMN, lake_schema


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

    from .write import COMPRESSION, dictionary_columns

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
        out[tuple(it.leaf)] = t.num_rows
        del parts, t
    return {"margin_leaves": out}
