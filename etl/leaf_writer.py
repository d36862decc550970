"""Writing one leaf: rows appended in HEALPix order to a Parquet file with the lake's codec
and row-group size (atomically renamed when complete), and the rows near its edges kept for
the margin catalog."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from legacylake.etl.healpix import pixel_range, shift
from legacylake.etl.read import HEALPIX_COLUMN
from legacylake.etl.snapshot import start_writeback
from legacylake.etl.task import COMPRESSION, Task, dictionary_columns, leaf_name, release_memory


class _LeafWriter:
    """Writes sorted rows of consecutive leaves: one open file at a time, fixed-size row groups."""

    def __init__(self, task: Task, schema: pa.Schema):
        self.task, self.schema = task, schema
        self.ranges = [pixel_range(k, n) for k, n in task.leaves]
        self.his = np.array([r[1] for r in self.ranges], dtype=np.int64)
        self.cur = -1
        self.writer = None
        self.buf: list[pa.Table] = []
        self.buf_rows = 0
        self.results: dict = {}
        self.margin = _MarginRows(task) if task.margin_order is not None else None

    def _open(self, i: int) -> None:
        self._close()
        k, n = self.task.leaves[i]
        self.cur = i
        path = os.path.join(self.task.staging, leaf_name(k, n) + ".part")
        self.writer = pq.ParquetWriter(path, self.schema, compression=COMPRESSION[0],
                                       compression_level=COMPRESSION[1], write_statistics=True,
                                       use_dictionary=dictionary_columns(self.schema))
        self.rows = 0
        self.bricks: dict[int, int] = {}
        self.cells: dict[int, int] = {}

    def _flush_buf(self, final: bool) -> None:
        rg = self.task.row_group_rows
        if not self.buf:
            return
        t = pa.concat_tables(self.buf)
        n = (t.num_rows if final else (t.num_rows // rg) * rg)
        if n:
            self.writer.write_table(t.slice(0, n), row_group_size=rg)
        rest = t.slice(n)
        self.buf = [rest] if rest.num_rows else []
        self.buf_rows = rest.num_rows

    def _close(self) -> None:
        if self.writer is None:
            return
        self._flush_buf(final=True)
        self.writer.close()
        k, n = self.task.leaves[self.cur]
        part = os.path.join(self.task.staging, leaf_name(k, n) + ".part")
        if self.rows:
            os.replace(part, part[:-5])
            start_writeback(part[:-5])
            if os.environ.get("LEGACYLAKE_ETL_CRASH_AT") == "leaf":
                import signal
                os.kill(os.getpid(), signal.SIGKILL)
            self.results[(k, n)] = {"rows": self.rows, "file": part[:-5], "bricks": self.bricks,
                                    "cells": {str(c): v for c, v in self.cells.items()}}
        else:
            os.remove(part)
        self.writer = None
        release_memory()

    def write_sorted(self, t: pa.Table) -> None:
        """Append rows sorted by _healpix_29 (all >= anything written before)."""
        if t.num_rows == 0:
            return
        hp = t.column(HEALPIX_COLUMN).to_numpy()
        cuts = np.searchsorted(hp, self.his)  # rows before each leaf's end
        start = 0
        for i in range(max(self.cur, 0), len(self.ranges)):
            end = int(cuts[i])
            if end > start:
                if i != self.cur:
                    self._open(i)
                piece = t.slice(start, end - start)
                if self.margin is not None:
                    self.margin.add(self.task.leaves[i], piece, hp[start:end])
                self.buf.append(piece)
                self.buf_rows += piece.num_rows
                self.rows += piece.num_rows
                b, c = np.unique(piece.column("brickid").to_numpy(zero_copy_only=False), return_counts=True)
                for bb, cc in zip(b.tolist(), c.tolist()):
                    self.bricks[bb] = self.bricks.get(bb, 0) + cc
                pm = hp[start:end] >> shift(self.task.point_map_order)
                u, c = np.unique(pm, return_counts=True)
                for uu, cc in zip(u.tolist(), c.tolist()):
                    self.cells[uu] = self.cells.get(uu, 0) + cc
                if self.buf_rows >= self.task.row_group_rows:
                    self._flush_buf(final=False)
                start = end
            if start >= len(hp):
                break

    def finish(self) -> None:
        self._close()
        if self.margin is not None:
            self.margin.flush()


class _MarginRows:
    """Rows of a task's leaves that belong to other partitions' margins, gathered per target
    partition and written as hp-sorted Arrow IPC shards (``results``: [(target, path, rows)])."""

    #: bytes held before the shards are written
    HOLD_BYTES = 32 << 20

    def __init__(self, task: Task):
        from legacylake.etl.margin import PartitionMap

        self.task = task
        self.pmap = PartitionMap(task.partitions)
        self.m = int(task.margin_order)
        self.held: dict[int, list] = {}
        self.nbytes = 0
        self.seq = 0
        self.results: list = []

    def add(self, leaf, piece: pa.Table, hp: np.ndarray) -> None:
        from legacylake.etl.margin import route_edge_rows

        rows, targets = route_edge_rows(hp, leaf, self.pmap, self.m)
        if not len(rows):
            return
        order = np.argsort(targets, kind="stable")
        rows, targets = rows[order], targets[order]
        sub = piece.take(pa.array(rows))          # one take per piece (181 columns each)
        starts = np.flatnonzero(np.r_[True, np.diff(targets) != 0])
        ends = np.r_[starts[1:], len(rows)]
        for a, b in zip(starts.tolist(), ends.tolist()):
            self.held.setdefault(int(targets[a]), []).append(sub.slice(a, b - a))
        self.nbytes += sub.nbytes
        if self.nbytes > self.HOLD_BYTES:
            self.flush()

    def flush(self) -> None:
        import pyarrow.ipc as ipc

        d = os.path.join(self.task.staging, "margin")
        os.makedirs(d, exist_ok=True)
        for t, parts in sorted(self.held.items()):
            k, n = self.pmap.leaves[t]
            table = pa.concat_tables(parts)
            path = os.path.join(d, f"t{self.task.task_id}-{k}-{n}-{self.seq}.arrow")
            with ipc.new_file(path + ".tmp", table.schema) as w:
                w.write_table(table)
            os.replace(path + ".tmp", path)
            self.results.append(((k, n), path, table.num_rows))
        self.seq += 1
        self.held.clear()
        self.nbytes = 0


def _in_ranges(hp: np.ndarray, los: np.ndarray, his: np.ndarray) -> np.ndarray:
    i = np.searchsorted(los, hp, side="right") - 1
    ok = i >= 0
    ok[ok] = hp[ok] < his[i[ok]]
    return ok
