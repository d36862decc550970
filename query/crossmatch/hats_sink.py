"""Writing a crossmatch result into the lake as a new HATS catalog (``into_lake=NAME``).

The result is partitioned by the EXTERNAL positions (the external RA/Dec columns of the
output, which become the catalog's ``hats_col_ra`` / ``hats_col_dec``; ``_healpix_29`` is
computed from them and written first, rows sorted by it). The tiling reuses the lake
catalog's partitions where the external position lies inside one; a position outside the lake
footprint goes to the coarsest HEALPix pixel (order <= the lake's deepest) that overlaps no
lake partition, so leaves never overlap. A leaf above ``max_rows`` rows is split into its
children (as hats-import does), so leaves stay small.

Rows are streamed: each written chunk is routed to its leaf's bucket, buckets are spilled to
Arrow IPC files in the staging directory past a memory budget, and each leaf is assembled,
sorted and written one at a time at the end. Everything is written under
``LAKE/.NAME.tmp-<pid>`` and renamed to ``LAKE/NAME`` only when complete (atomic);
``_metadata``, ``_common_metadata`` and ``partition_info.csv`` come from hats' own writers.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from legacylake.errors import UserError
from legacylake.query.crossmatch.io import HP_COL, Lake

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_target(lake_root: Path, name: str) -> Path:
    """``lake_root/name`` if ``name`` is a plain catalog name not yet in the lake."""
    if not _NAME_RE.match(name or ""):
        raise UserError(f"--into-lake {name!r}: give a plain catalog name (letters, digits, _ . -)")
    dest = lake_root / name
    if dest.exists():
        raise UserError(f"{dest}: already exists; choose another --into-lake name or remove it")
    return dest


def output_pixels(hp29: np.ndarray, lk: Lake) -> tuple[np.ndarray, np.ndarray]:
    """(order, pixel) of the output leaf of each ``_healpix_29`` (see the module doc)."""
    n = lk.lo29.shape[0]
    i = np.searchsorted(lk.lo29, hp29, side="right") - 1
    inside = (i >= 0) & (hp29 < lk.hi29[np.maximum(i, 0)])
    order = np.where(inside, lk.orders[np.maximum(i, 0)], -1)
    pix = np.where(inside, lk.pixels[np.maximum(i, 0)], -1)
    todo = np.flatnonzero(~inside)
    deepest = int(lk.orders.max())
    for o in range(deepest + 1):
        if todo.size == 0:
            break
        s = 2 * (29 - o)
        p = hp29[todo] >> s
        lo, hi = p << s, (p + 1) << s
        j = np.searchsorted(lk.hi29, lo, side="right")
        overlaps = (j < n) & (lk.lo29[np.minimum(j, n - 1)] < hi)
        ok = ~overlaps
        order[todo[ok]] = o
        pix[todo[ok]] = p[ok]
        todo = todo[~ok]
    assert todo.size == 0  # at the deepest lake order, a pixel outside the lake overlaps nothing
    return order, pix


class HatsSink:
    """Sink of crossmatch chunks that writes ``lake_root/name`` as a HATS catalog."""

    def __init__(self, lake_root: Path, name: str, schema: pa.Schema, ra_col: str, dec_col: str,
                 lk: Lake, properties: dict, budget: int = 64 << 20, max_rows: int = 1_000_000,
                 row_group_rows: int = 100_000):
        from legacylake.query.crossmatch.buckets import _Buckets

        self.dest = check_target(lake_root, name)
        self.name = name
        self.ra_col, self.dec_col = ra_col, dec_col
        self.lk = lk
        self.properties = properties
        self.max_rows = max_rows
        self.row_group_rows = row_group_rows
        self.schema = schema  # what write() receives (the plain crossmatch output)
        fields = [f for f in schema if f.name != HP_COL]
        self.file_schema = pa.schema([pa.field(HP_COL, pa.int64())] + fields, metadata=schema.metadata)
        self.stage = lake_root / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(self.stage, ignore_errors=True)
        (self.stage / "dataset").mkdir(parents=True)
        (self.stage / ".spill").mkdir()
        self.buckets = _Buckets(budget, self.stage / ".spill")
        self.rows = 0
        self.leaves: list[tuple[int, int, int]] = []

    def write(self, t: pa.Table) -> None:
        from legacylake.query.crossmatch.buckets import healpix29

        if t.num_rows == 0:
            return
        t = t.select(self.schema.names).cast(self.schema)
        ra = pc.cast(t.column(self.ra_col), pa.float64()).to_numpy(zero_copy_only=False) % 360.0
        dec = pc.cast(t.column(self.dec_col), pa.float64()).to_numpy(zero_copy_only=False)
        hp = healpix29(ra, dec)
        if HP_COL in t.schema.names:
            t = t.drop([HP_COL])
        t = t.add_column(0, HP_COL, pa.array(hp, pa.int64()))
        order, pix = output_pixels(hp, self.lk)
        key = pix * 32 + order
        srt = np.argsort(key, kind="stable")
        key = key[srt]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        ends = np.r_[starts[1:], key.size]
        for a, b in zip(starts, ends):
            self.buckets.add(int(key[a]), t.take(srt[a:b]))
        self.rows += t.num_rows

    def _write_leaf(self, order: int, pix: int, t: pa.Table) -> None:
        d = self.stage / "dataset" / f"Norder={order}" / f"Dir={(pix // 10000) * 10000}"
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, d / f"Npix={pix}.parquet", row_group_size=self.row_group_rows,
                       compression="zstd", write_statistics=True)
        self.leaves.append((order, pix, t.num_rows))

    def _emit(self, order: int, pix: int, t: pa.Table) -> None:
        """Write pixel (order, pix) with rows ``t`` (sorted by _healpix_29), split if too big."""
        if t.num_rows <= self.max_rows or order >= 29:
            self._write_leaf(order, pix, t)
            return
        hp = t.column(HP_COL).to_numpy()
        s = 2 * (29 - order - 1)
        bounds = np.searchsorted(hp, [((4 * pix + c) << s) for c in range(5)])
        for c in range(4):
            if bounds[c + 1] > bounds[c]:
                self._emit(order + 1, 4 * pix + c, t.slice(bounds[c], bounds[c + 1] - bounds[c]))

    def close(self, ok: bool = True) -> None:
        if not ok:
            shutil.rmtree(self.stage, ignore_errors=True)
            return None
        try:
            if self.rows == 0:
                raise UserError(f"the crossmatch gave no rows; nothing written to {self.dest}")
            for key in self.buckets.keys():
                t = self.buckets.pop(key).cast(self.file_schema)
                t = t.take(pc.sort_indices(t, [(HP_COL, "ascending")]))
                self._emit(key % 32, key // 32, t)
                del t
            shutil.rmtree(self.stage / ".spill")
            self._write_metadata()
            if self.dest.exists():
                raise UserError(f"{self.dest}: appeared while the crossmatch ran; result left in {self.stage}")
            os.rename(self.stage, self.dest)
        except BaseException:
            if not self.dest.exists():
                shutil.rmtree(self.stage, ignore_errors=True)
            raise
        return None

    def _write_metadata(self) -> None:
        from hats.catalog import PartitionInfo, TableProperties
        from hats.io.parquet_metadata import write_parquet_metadata
        from hats.pixel_math import HealpixPixel

        from legacylake._version import __version__

        pq.write_metadata(self.file_schema, self.stage / "dataset" / "_common_metadata")
        write_parquet_metadata(self.stage)
        leaves = sorted(self.leaves)
        PartitionInfo.from_healpix([HealpixPixel(o, p) for o, p, _ in leaves]).write_to_file(
            self.stage / "partition_info.csv")
        props = TableProperties(
            catalog_name=self.name, catalog_type="object", total_rows=self.rows,
            ra_column=self.ra_col, dec_column=self.dec_col, healpix_column=HP_COL, healpix_order=29,
            hats_max_rows=self.max_rows, npix_suffix=".parquet",
            moc_sky_fraction=f"{sum(4.0 ** -o / 12 for o, _, _ in leaves):.6f}",
            hats_builder=f"legacylake {__version__} xmatch",
            hats_creation_date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M%Z"),
            legacylake_partitioned_by="external positions",
            **self.properties,
        )
        props.to_properties_file(self.stage)
