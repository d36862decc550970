"""Crossmatch the lake with an external catalog, exact at partition edges.

How it works (no margin cache needed):

1. A HEALPix order ``K`` is chosen so that a disc of the match radius around any point lies
   inside the point's order-``K`` cell and its 8 neighbours (cells at least ~3.3 radii
   wide; checked empirically down to the poles and the base-pixel corners, and in the
   tests against astropy).
2. The external catalog is streamed in batches. Each row goes to every lake partition that
   overlaps one of its 9 cells (its home partition, plus any neighbour partition when it
   lies within a cell of an edge), in per-partition buckets spilled to disk past a memory
   budget. Rows that reach two or more partitions are "shared".
3. Each lake partition is read once (only row groups whose ``_healpix_29`` range touches the
   cells wanted) and matched against its bucket: the lake rows of the 9 cells around each
   external row are found by a sorted search on ``_healpix_29`` and compared with exact
   chord distances in a numba kernel (:mod:`legacylake.query.xmatch_kernels`).
4. Every lake row lives in exactly one partition, so every pair is found exactly once.
   For ``nearest``, shared rows keep their per-partition best candidates, reduced at the end.

Output: the external columns, the lake columns prefixed ``lake_``, and ``sep_arcsec``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from legacylake.catalogs_schema.astrometry import propagate  # noqa: F401 - also legacylake.query.xmatch.propagate
from legacylake.errors import UserError

from legacylake.query import xmatch_kernels as K_
from legacylake.query.xmatch_io import HP_COL, External, Lake, open_external

DEFAULT_LAKE_COLUMNS = ("release", "brickid", "objid", "ra", "dec")
#: Bytes of external rows buffered in memory before buckets spill to disk.
DEFAULT_MEMORY_BUDGET = 32 << 20
#: Rows per external batch read.
DEFAULT_BATCH_ROWS = 100_000
LAKE_PREFIX = "lake_"
MAX_RADIUS_ARCSEC = 3600.0
#: A disc of radius r lies within the 3x3 cells of order K when r <= CELL_FRACTION * cell size
#: (the observed limit is about 0.65; 0.3 leaves a factor 2).
CELL_FRACTION = 0.3
_XID = "__xid"
_RA = "__ra"
_DEC = "__dec"
_SHARED = "__shared"


def match_order(radius_arcsec: float) -> int:
    """Finest HEALPix order whose cells are at least radius / CELL_FRACTION wide (0..29)."""
    need = math.radians(radius_arcsec / 3600.0) / CELL_FRACTION
    for k in range(29, -1, -1):
        if math.sqrt(4 * math.pi / (12 * 4**k)) >= need:
            return k
    return 0


def healpix29(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """Nested HEALPix index at order 29 (int64), as ``_healpix_29`` in the lake."""
    import astropy.units as u
    import cdshealpix.nested as cn
    from astropy.coordinates import Latitude, Longitude

    if len(ra_deg) == 0:
        return np.empty(0, np.int64)
    return cn.lonlat_to_healpix(Longitude(np.asarray(ra_deg, np.float64), unit=u.deg),
                                Latitude(np.asarray(dec_deg, np.float64), unit=u.deg), 29).astype(np.int64)


def cells_around(hp29: np.ndarray, order: int) -> np.ndarray:
    """(N, 9) order-``order`` cells around each point: its own cell and 8 neighbours (-1 = none)."""
    import cdshealpix.nested as cn

    pix = hp29 >> (2 * (29 - order))
    if pix.shape[0] == 0:
        return np.empty((0, 9), np.int64)
    return cn.neighbours(pix.astype(np.uint64), order).astype(np.int64)


@dataclass
class XmatchStats:
    """What a crossmatch did."""

    external_rows: int = 0
    skipped_nonfinite: int = 0
    matched_external: int = 0
    output_rows: int = 0
    pairs: int = 0
    partitions: int = 0
    match_order: int = 0
    seconds: float = 0.0
    out: str | None = None
    notes: list = field(default_factory=list)

    def summary(self) -> str:
        s = (f"{self.external_rows:,} external rows, {self.matched_external:,} matched, "
             f"{self.output_rows:,} output rows over {self.partitions} lake partitions "
             f"in {self.seconds:.1f} s")
        if self.skipped_nonfinite:
            s += f"; {self.skipped_nonfinite:,} rows with non-finite or out-of-range positions skipped"
        if self.out:
            s += f"; wrote {self.out}"
        return s


# ---------------------------------------------------------------- input checks


def _column(schema: pa.Schema, name: str, what: str, source: str) -> str:
    names = schema.names
    if name in names:
        found = name
    else:
        lower = {n.lower(): n for n in names}
        if name.lower() not in lower:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise UserError(f"{source}: no {what} column '{name}' (columns: {shown})")
        found = lower[name.lower()]
    t = schema.field(found).type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        raise UserError(f"{source}: {what} column '{found}' is {t}, not numeric")
    return found


def _as_float(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), np.float64)


# ---------------------------------------------------------------- buckets


class _Buckets:
    """Per-partition lists of Arrow tables, spilled to IPC files past ``budget`` bytes."""

    def __init__(self, budget: int, tmpdir: Path):
        self.budget = budget
        self.tmp = tmpdir
        self.mem: dict[int, list[pa.Table]] = {}
        self.files: dict[int, list[Path]] = {}
        self.nbytes = 0
        self.nflush = 0

    def add(self, key: int, t: pa.Table) -> None:
        if t.num_rows == 0:
            return
        self.mem.setdefault(key, []).append(t)
        self.nbytes += t.nbytes
        if self.nbytes > self.budget:
            self.flush()

    def flush(self) -> None:
        self.nflush += 1
        for key, tabs in self.mem.items():
            f = self.tmp / f"b{key}_{self.nflush}.arrow"
            t = pa.concat_tables(tabs)
            with pa.OSFile(str(f), "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
                w.write_table(t)
            self.files.setdefault(key, []).append(f)
        self.mem.clear()
        self.nbytes = 0

    def keys(self) -> list[int]:
        return sorted(set(self.mem) | set(self.files))

    def pop(self, key: int) -> pa.Table | None:
        tabs = []
        for f in self.files.pop(key, []):
            with pa.memory_map(str(f)) as src:
                tabs.append(pa.ipc.open_file(src).read_all())
            f.unlink()
        mem = self.mem.pop(key, [])
        self.nbytes -= sum(t.nbytes for t in mem)
        tabs.extend(mem)
        if not tabs:
            return None
        return pa.concat_tables(tabs)


# ---------------------------------------------------------------- sink


class _Sink:
    def __init__(self, out: str | os.PathLike | None, schema: pa.Schema):
        self.schema = schema
        self.tables: list[pa.Table] = []
        self.rows = 0
        self.out = Path(os.fspath(out)) if out else None
        self.writer = None
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = self.out.with_name(f".{self.out.name}.tmp{os.getpid()}")
            self.writer = pq.ParquetWriter(str(self.tmp), schema, compression="zstd")

    def write(self, t: pa.Table) -> None:
        if t.num_rows == 0:
            return
        t = t.select(self.schema.names).cast(self.schema)
        self.rows += t.num_rows
        if self.writer is not None:
            self.writer.write_table(t, row_group_size=200_000)
        else:
            self.tables.append(t)

    def close(self, ok: bool = True) -> pa.Table | None:
        if self.writer is not None:
            self.writer.close()
            if ok:
                os.replace(self.tmp, self.out)
            else:
                self.tmp.unlink(missing_ok=True)
            return None
        if not self.tables:
            return self.schema.empty_table()
        return pa.concat_tables(self.tables)


# ---------------------------------------------------------------- main entry


def xmatch(external, lake: str | os.PathLike, catalog: str | None = None, *,
           radius_arcsec: float = 1.0, mode: str = "nearest",
           ra_col: str | None = None, dec_col: str | None = None,
           columns: Sequence[str] | None = None, external_columns: Sequence[str] | None = None,
           keep_unmatched: bool = False,
           epoch_from: str | float | None = None, pm_cols: Sequence[str] | None = None,
           epoch_to: float | None = None,
           out: str | os.PathLike | None = None, into_lake: str | None = None,
           scheduler=None, force: bool = False,
           memory_budget: int = DEFAULT_MEMORY_BUDGET, batch_rows: int = DEFAULT_BATCH_ROWS,
           progress: bool = False, stats: XmatchStats | None = None) -> pa.Table | XmatchStats:
    """Crossmatch ``external`` (path or Arrow/pandas table) with lake catalog ``lake/catalog``.

    ``radius_arcsec``: match radius in arcsec (0 < r; r > 3600 needs ``force``).
    ``mode``: ``"nearest"`` (at most one lake row per external row) or ``"all"`` (every pair).
    ``columns``: lake columns to return (default release, brickid, objid, ra, dec), named
    ``lake_<col>`` in the output; ``external_columns``: subset of external columns (default all).
    ``epoch_from`` (column name or year) with ``pm_cols`` = (pmra, pmdec) in mas/yr (pmra
    includes cos dec) move external positions to ``epoch_to`` (a year) before matching.
    Returns a pyarrow Table, or with ``out`` writes Parquet atomically and returns the stats.
    ``into_lake``: instead, write the result as the new HATS catalog ``lake/<into_lake>``
    (partitioned by the external positions, see :mod:`legacylake.query.xmatch_hats`), streamed
    and atomic; returns the stats. ``scheduler``: a Dask distributed scheduler address (or a
    ``distributed.Client``) to run the per-partition match tasks on (the lake must be on a
    filesystem the workers see); results are identical to the local run, in the same order.
    ``memory_budget`` (bytes) bounds the external rows buffered before spilling to disk.
    """
    if out is not None and into_lake is not None:
        raise UserError("give either out (--out FILE.parquet) or into_lake (--into-lake NAME), not both")
    t0 = time.time()
    st = stats if stats is not None else XmatchStats()
    if mode not in ("nearest", "all"):
        raise UserError(f"mode must be 'nearest' or 'all', not {mode!r}")
    try:
        radius_arcsec = float(radius_arcsec)
    except (TypeError, ValueError):
        raise UserError(f"radius {radius_arcsec!r} is not a number (arcsec)")
    if not (radius_arcsec > 0 and math.isfinite(radius_arcsec)):
        raise UserError(f"radius must be a positive number of arcsec, not {radius_arcsec}")
    if radius_arcsec > MAX_RADIUS_ARCSEC and not force:
        raise UserError(f"radius {radius_arcsec} arcsec is above 1 degree; use --force (force=True) "
                        "if you mean it")
    lk = Lake.open(lake, catalog)
    ext = open_external(external, batch_rows=batch_rows)
    ra_name = _column(ext.schema, ra_col or ext.default_ra or _guess(ext.schema, ("ra", "ra_deg", "raj2000")),
                      "RA", ext.name)
    dec_name = _column(ext.schema, dec_col or ext.default_dec or _guess(ext.schema, ("dec", "dec_deg", "dej2000")),
                       "Dec", ext.name)
    pm = None
    if epoch_from is not None or pm_cols:
        if epoch_from is None or not pm_cols or len(pm_cols) != 2:
            raise UserError("proper motions need both an epoch (--epoch-from COL or year) and "
                            "--pm-cols PMRA,PMDEC")
        if epoch_to is None:
            epoch_to = _lake_epoch(lk)
        pmra_name = _column(ext.schema, pm_cols[0], "proper-motion RA", ext.name)
        pmdec_name = _column(ext.schema, pm_cols[1], "proper-motion Dec", ext.name)
        epoch_name = None
        try:
            epoch_value = float(epoch_from)
        except (TypeError, ValueError):
            epoch_name = _column(ext.schema, str(epoch_from), "epoch", ext.name)
            epoch_value = None
        pm = (pmra_name, pmdec_name, epoch_name, epoch_value, float(epoch_to))

    lake_schema = lk.schema()
    lake_cols = list(columns) if columns else [c for c in DEFAULT_LAKE_COLUMNS if c in lake_schema.names]
    for c in lake_cols:
        if c not in lake_schema.names:
            shown = ", ".join(lake_schema.names[:12])
            raise UserError(f"lake catalog {lk.path.name} has no column '{c}' (columns: {shown}, ...)")
    ext_fields = [f for f in ext.schema if external_columns is None or f.name in external_columns]
    if external_columns is not None:
        missing = set(external_columns) - {f.name for f in ext_fields}
        if missing:
            raise UserError(f"{ext.name}: no column(s) {', '.join(sorted(missing))}")
    if into_lake is not None:
        # the new catalog is partitioned by the external positions: keep them
        keep = {f.name for f in ext_fields} | {ra_name, dec_name}
        ext_fields = [f for f in ext.schema if f.name in keep]
    out_schema = pa.schema(ext_fields + [lake_schema.field(c).with_name(LAKE_PREFIX + c) for c in lake_cols]
                           + [pa.field("sep_arcsec", pa.float64(), metadata={"unit": "arcsec"})])
    ext_names = [f.name for f in ext_fields]

    order = match_order(radius_arcsec)
    st.match_order = order
    chord2 = K_.arcsec_to_chord2(radius_arcsec)
    if into_lake is not None:
        from legacylake.query.xmatch_hats import HatsSink

        # next to the lake catalog (lake may name the catalog directory itself when catalog is None)
        sink = HatsSink(lk.path.parent, into_lake, out_schema, ra_name, dec_name, lk,
                        {"legacylake_xmatch_lake_catalog": lk.path.name,
                         "legacylake_xmatch_mode": mode,
                         "legacylake_xmatch_radius_arcsec": f"{radius_arcsec:g}"},
                        budget=max(1 << 20, memory_budget // 2))
    else:
        sink = _Sink(out, out_schema)
    tmp = Path(tempfile.mkdtemp(prefix="legacylake-xmatch-"))
    ok = False
    try:
        buckets = _Buckets(memory_budget, tmp)
        shared_rows = _Buckets(memory_budget // 4, tmp / "shared")
        (tmp / "shared").mkdir()
        _partition_external(ext, lk, order, ra_name, dec_name, pm, ext_names, buckets, shared_rows,
                            sink, keep_unmatched, lake_cols, st, progress)
        _release_memory()
        if st.external_rows == 0 and st.skipped_nonfinite:
            raise UserError(f"{ext.name}: no row has a finite position in '{ra_name}', '{dec_name}' "
                            f"({st.skipped_nonfinite:,} skipped)")
        candidates: list[pa.Table] = []
        matched_shared: list[np.ndarray] = []
        keys = buckets.keys()
        st.partitions = len(keys)
        args = (lk, order, chord2, mode, lake_cols, ext_names, keep_unmatched, out_schema)
        it: Iterable[dict] = _run_partitions(keys, buckets, args, scheduler)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(keys), desc="xmatch partitions", unit="part")
        for r in it:
            for t in r["out"]:
                sink.write(t)
            if r["cand"] is not None:
                candidates.append(r["cand"])
            if r["matched_shared"] is not None:
                matched_shared.append(r["matched_shared"])
            st.matched_external += r["matched"]
            st.pairs += r["pairs"]
            del r
            _release_memory()
        _finish_shared(shared_rows, candidates, matched_shared, mode, keep_unmatched, lake_cols,
                       ext_names, sink, st)
        ok = True
    finally:
        result = sink.close(ok)
        shutil.rmtree(tmp, ignore_errors=True)
    st.output_rows = sink.rows
    st.seconds = time.time() - t0
    if out is not None or into_lake is not None:
        st.out = str(out) if out is not None else str(sink.dest)
        return st
    return result


def _release_memory() -> None:
    """Give Arrow's freed buffers back to the OS (mimalloc/jemalloc keep them otherwise)."""
    try:
        pa.default_memory_pool().release_unused()
    except Exception:  # pragma: no cover - pools without the call
        pass


def _guess(schema: pa.Schema, names: tuple[str, ...]) -> str:
    lower = {n.lower(): n for n in schema.names}
    for n in names:
        if n in lower:
            return lower[n]
    return names[0]


EPOCH_KEYS = ("legacylake_epoch", "epoch", "hats_epoch")


def _lake_epoch(lk: Lake) -> float:
    """The lake catalog's epoch (decimal year) from hats.properties or the Parquet schema metadata."""
    found = dict(lk.properties)
    try:
        md = lk.schema().metadata or {}
        found.update({k.decode(errors="replace"): v.decode(errors="replace") for k, v in md.items()})
    except Exception:  # unreadable metadata is reported by the read itself
        pass
    for key in EPOCH_KEYS:
        if key in found:
            try:
                return float(found[key])
            except ValueError:
                raise UserError(f"the lake catalog {lk.path.name} has epoch {found[key]!r} ({key}), "
                                "not a year; give --epoch-to YEAR")
    raise UserError(f"the lake catalog {lk.path.name} records no epoch (no legacylake_epoch/epoch key in its "
                    "hats.properties or Parquet metadata), so proper motions have no target epoch: "
                    "give it with --epoch-to YEAR (epoch_to=YEAR)")


def _partition_external(ext: External, lk: Lake, order: int, ra_name: str, dec_name: str, pm,
                        ext_names: list[str], buckets: _Buckets, shared_rows: _Buckets, sink: _Sink,
                        keep_unmatched: bool, lake_cols: list[str], st: XmatchStats, progress: bool) -> None:
    shift = 2 * (29 - order)
    xid0 = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=ext.num_rows, desc="reading external", unit="row", unit_scale=True)
    for b in ext.batches():
        t = pa.Table.from_batches([b])
        if bar is not None:
            bar.update(t.num_rows)
        ra = _as_float(t.column(ra_name))
        dec = _as_float(t.column(dec_name))
        if pm is not None:
            pmra_name, pmdec_name, epoch_name, epoch_value, epoch_to = pm
            ep = _as_float(t.column(epoch_name)) if epoch_name else epoch_value
            ep_ok = np.isfinite(ep) & (ep > 0)  # Gaia/Tycho use 0 for "no epoch"
            dt = np.where(ep_ok, epoch_to - np.where(ep_ok, ep, 0.0), 0.0)
            ra, dec = propagate(ra, dec, _as_float(t.column(pmra_name)), _as_float(t.column(pmdec_name)), dt)
        good = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0)
        nbad = int((~good).sum())
        st.skipped_nonfinite += nbad
        xid = np.arange(xid0, xid0 + t.num_rows, dtype=np.int64)
        xid0 += t.num_rows
        if nbad:
            keep = np.flatnonzero(good)
            t, ra, dec, xid = t.take(keep), ra[keep], dec[keep], xid[keep]
        st.external_rows += t.num_rows
        if t.num_rows == 0:
            continue
        ra = ra % 360.0
        hp = healpix29(ra, dec)
        cells = cells_around(hp, order)
        # partitions overlapping each of the 9 cells
        valid = cells >= 0
        clo = np.where(valid, cells << shift, 0)
        chi = np.where(valid, (cells + 1) << shift, 0)
        a = np.searchsorted(lk.hi29, clo, side="right")
        z = np.searchsorted(lk.lo29, chi, side="left")
        n = np.where(valid, np.maximum(z - a, 0), 0)
        # most rows reach a single partition (all 9 cells inside it): no sort needed for them
        has = n > 0
        amin = np.where(has, a, np.iinfo(np.int64).max).min(axis=1)
        zmax = np.where(has, z, -1).max(axis=1)
        single = np.flatnonzero(zmax - amin == 1)
        multi = np.flatnonzero(zmax - amin > 1)
        nm = n[multi].ravel()
        rows_m = np.repeat(np.repeat(multi, 9), nm)
        offs = np.arange(rows_m.shape[0]) - np.repeat(np.cumsum(nm) - nm, nm)
        parts_m = np.repeat(a[multi].ravel(), nm) + offs
        key = np.sort(rows_m * np.int64(len(lk.lo29)) + parts_m)
        key = key[np.r_[True, key[1:] != key[:-1]]] if key.size else key
        rows = np.concatenate([single, key // len(lk.lo29)])
        parts = np.concatenate([amin[single], key % len(lk.lo29)])
        nparts = np.bincount(rows, minlength=t.num_rows)
        shared = nparts >= 2
        base = t.select(ext_names).append_column(_XID, pa.array(xid)).append_column(
            _RA, pa.array(ra)).append_column(_DEC, pa.array(dec))
        orphan = np.flatnonzero(nparts == 0)
        if keep_unmatched and orphan.size:
            sink.write(_unmatched(base.take(orphan), lake_cols, sink.schema))
        if shared.any():
            shared_rows.add(0, base.take(np.flatnonzero(shared)))
        base = base.append_column(_SHARED, pa.array(shared))
        order_ = np.argsort(parts, kind="stable")
        rows, parts = rows[order_], parts[order_]
        if parts.size == 0:
            continue
        starts = np.flatnonzero(np.r_[True, parts[1:] != parts[:-1]])
        ends = np.r_[starts[1:], parts.size]
        for s0, s1 in zip(starts, ends):
            buckets.add(int(parts[s0]), base.take(rows[s0:s1]))
        del base, t, cells, clo, chi, a, z, n, rows, parts, key, offs, rows_m, parts_m
        _release_memory()
    if bar is not None:
        bar.close()


def _lake_null_columns(n: int, lake_cols: list[str], schema: pa.Schema) -> list[pa.Array]:
    return [pa.nulls(n, schema.field(LAKE_PREFIX + c).type) for c in lake_cols]


def _unmatched(e: pa.Table, lake_cols: list[str], schema: pa.Schema) -> pa.Table:
    n = e.num_rows
    cols = {name: e.column(name) for name in schema.names[: len(schema) - len(lake_cols) - 1]}
    for c, arr in zip(lake_cols, _lake_null_columns(n, lake_cols, schema)):
        cols[LAKE_PREFIX + c] = arr
    cols["sep_arcsec"] = pa.nulls(n, pa.float64())
    return pa.table(cols)


def _assemble(e: pa.Table, ei: np.ndarray, lake: pa.Table | None, lj: np.ndarray, sep: np.ndarray,
              lake_cols: list[str], ext_names: list[str], extra: dict | None = None) -> pa.Table:
    """External rows ``ei`` side by side with lake rows ``lj`` (-1: NULL lake columns)."""
    cols = {}
    et = e.take(ei)
    for name in ext_names:
        cols[name] = et.column(name)
    if lake is not None:
        mask = lj < 0
        idx = pa.array(np.where(mask, 0, lj), mask=mask)
        for c in lake_cols:
            cols[LAKE_PREFIX + c] = lake.column(c).take(idx)
    cols["sep_arcsec"] = pa.array(sep, mask=~np.isfinite(sep))
    if extra:
        for k, v in extra.items():
            cols[k] = v
    return pa.table(cols)


def _run_partitions(keys: list[int], buckets: "_Buckets", args: tuple, scheduler) -> Iterable[dict]:
    """Run :func:`_partition_task` for each key, locally or on Dask; yield results in key order.

    On Dask at most ~2 tasks per worker thread are in flight, so memory stays bounded.
    """
    if scheduler is None:
        for k in keys:
            e = buckets.pop(k)
            yield _partition_task(k, e, *args)
            del e
        return
    from collections import deque

    try:
        from distributed import Client
    except ImportError:  # pragma: no cover
        raise UserError("--scheduler needs the 'distributed' package (pip install distributed)")
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler) if own else scheduler
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"cannot connect to the Dask scheduler {scheduler!r} ({exc})")
    pending: deque = deque()
    try:
        window = max(2, 2 * sum(client.nthreads().values()))
        for k in keys:
            e = buckets.pop(k)
            ef = client.scatter(e)  # data go to a worker directly, not inside the task graph
            pending.append(client.submit(_partition_task, k, ef, *args, pure=False))
            del ef
            del e
            while len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()
        if own:
            client.close()


def _partition_task(k: int, e: pa.Table, lk: Lake, order: int, chord2: float, mode: str,
                    lake_cols: list[str], ext_names: list[str], keep_unmatched: bool,
                    out_schema: pa.Schema) -> dict:
    """Match the external rows ``e`` bucketed to lake partition ``k`` with that partition.

    Returns ``out`` (output tables), ``cand`` (nearest candidates of shared rows, or None),
    ``matched_shared`` (xids of shared rows with a pair, mode all), ``matched``, ``pairs``.
    Runs in a Dask worker with ``scheduler``: only plain arguments, no shared state.
    """
    shift = 2 * (29 - order)
    res = {"out": [], "cand": None, "matched_shared": None, "matched": 0, "pairs": 0}
    # external rows in HEALPix order: the cell searches below then run on nearly sorted keys
    ehp = healpix29(e.column(_RA).to_numpy(), e.column(_DEC).to_numpy())
    srt = np.argsort(ehp)
    e = e.take(srt)
    era = e.column(_RA).to_numpy()
    edec = e.column(_DEC).to_numpy()
    shared = e.column(_SHARED).to_numpy(zero_copy_only=False)
    cells = cells_around(ehp[srt], order)
    del ehp, srt
    # row groups of the lake partition that can hold candidates
    valid = cells >= 0
    u = np.sort(cells[valid])  # (np.unique hashes: much slower here)
    u = u[np.r_[True, u[1:] != u[:-1]]] if u.size else u
    lo29, hi29 = u << shift, (u + 1) << shift
    brk = np.flatnonzero(lo29[1:] != hi29[:-1]) + 1
    rlo = lo29[np.r_[0, brk]] if u.size else lo29
    rhi = hi29[np.r_[brk - 1, u.size - 1]] if u.size else hi29
    want = list(dict.fromkeys([HP_COL, lk.ra_col, lk.dec_col] + lake_cols))
    lake = lk.read(k, want, (rlo, rhi))
    hp = lake.column(HP_COL).to_numpy()
    if hp.size > 1 and np.any(hp[1:] < hp[:-1]):
        srt = np.argsort(hp, kind="stable")
        lake = lake.take(srt)
        hp = hp[srt]
    lx, ly, lz = K_.radec_to_xyz(_as_float(lake.column(lk.ra_col)), _as_float(lake.column(lk.dec_col)))
    lake = lake.select(lake_cols)
    ex, ey, ez = K_.radec_to_xyz(era, edec)
    cellk = hp >> shift
    del hp
    # lake rows of each cell (external rows in HEALPix order: galloping search, cache friendly)
    lo, hi = K_.cell_ranges(cellk, np.ascontiguousarray(cells))
    del cells, valid, cellk
    xid = e.column(_XID).to_numpy()
    if mode == "nearest":
        best, d2 = K_.nearest(ex, ey, ez, lx, ly, lz, lo, hi, chord2)
        sep = np.where(best >= 0, K_.chord2_to_arcsec(np.where(best >= 0, d2, 0.0)), np.nan)
        own = ~shared
        hit = best >= 0
        sel = np.flatnonzero(own & (hit | keep_unmatched))
        res["matched"] = res["pairs"] = int((own & hit).sum())
        if sel.size:
            res["out"].append(_assemble(e, sel, lake, best[sel], sep[sel], lake_cols, ext_names))
        cand = np.flatnonzero(shared & hit)
        if cand.size:
            res["cand"] = _assemble(e, cand, lake, best[cand], sep[cand], lake_cols, [],
                                    {_XID: pa.array(xid[cand]), "__d2": pa.array(d2[cand])})
    else:
        counts = K_.count_pairs(ex, ey, ez, lx, ly, lz, lo, hi, chord2)
        i, j, d2 = K_.all_pairs(ex, ey, ez, lx, ly, lz, lo, hi, chord2, counts)
        res["pairs"] = int(i.size)
        hitrow = counts > 0
        res["matched"] = int((hitrow & ~shared).sum())
        if i.size:
            res["out"].append(_assemble(e, i, lake, j, K_.chord2_to_arcsec(d2), lake_cols, ext_names))
        if keep_unmatched:
            miss = np.flatnonzero(~hitrow & ~shared)
            if miss.size:
                res["out"].append(_unmatched(e.take(miss), lake_cols, out_schema))
        m = xid[hitrow & shared]
        if m.size:
            res["matched_shared"] = m
    return res


def _finish_shared(shared_rows: _Buckets, candidates: list, matched_shared: list, mode: str,
                   keep_unmatched: bool, lake_cols: list[str], ext_names: list[str], sink: _Sink,
                   st: XmatchStats) -> None:
    """Reduce shared rows' candidates (nearest) and emit unmatched shared rows."""
    sh = shared_rows.pop(0)
    if sh is None:
        return
    sh = sh.take(pc.sort_indices(sh, [(_XID, "ascending")]))
    sxid = sh.column(_XID).to_numpy()
    if mode == "nearest":
        matched = np.zeros(0, np.int64)
        if candidates:
            c = pa.concat_tables(candidates)
            c = c.take(pc.sort_indices(c, [(_XID, "ascending"), ("__d2", "ascending")]))
            cx = c.column(_XID).to_numpy()
            first = np.flatnonzero(np.r_[True, cx[1:] != cx[:-1]])
            c = c.take(first)
            matched = c.column(_XID).to_numpy()
            pos = np.searchsorted(sxid, matched)
            t = sh.take(pos).select(ext_names)
            for name in c.schema.names:
                if name.startswith(LAKE_PREFIX) or name == "sep_arcsec":
                    t = t.append_column(name, c.column(name))
            sink.write(t)
            st.matched_external += int(matched.size)
            st.pairs += int(matched.size)
    else:
        matched = np.unique(np.concatenate(matched_shared)) if matched_shared else np.zeros(0, np.int64)
        st.matched_external += int(matched.size)
    if keep_unmatched:
        miss = np.flatnonzero(~np.isin(sxid, matched))
        if miss.size:
            sink.write(_unmatched(sh.take(miss), lake_cols, sink.schema))


# ---------------------------------------------------------------- SQL access


def register_xmatch(con, lake: str | os.PathLike | None = None) -> None:
    """Add crossmatch table macros to a DuckDB connection.

    ``xmatch_all(ext, lake, radius_arcsec)`` and ``xmatch_nearest(ext, lake, radius_arcsec)``
    take the names of two tables or views (as strings): ``ext`` with ``ra``, ``dec`` in degrees,
    ``lake`` with ``_healpix_29``, ``ra``, ``dec``, ``release``, ``brickid``, ``objid`` (a lake
    catalog view). They return the external columns, ``lake_release``, ``lake_brickid``,
    ``lake_objid``, ``lake_ra``, ``lake_dec`` and ``sep_arcsec``, using the same order-K cells
    as :func:`xmatch` (exact at partition edges) with a hash join in DuckDB. With ``lake`` (a
    lake directory), a view is created for each of its catalogs that has no view yet.
    Meant for external tables that fit in memory; use :func:`xmatch` for large ones.
    """
    import duckdb

    T = getattr(duckdb, "sqltypes", None) or duckdb.typing

    def _hp(ra, dec):
        return pa.array(healpix29(pc.cast(ra, pa.float64()).to_numpy(zero_copy_only=False) % 360.0,
                                  pc.cast(dec, pa.float64()).to_numpy(zero_copy_only=False)))

    def _cells(hp, order):
        o = int(order[0].as_py()) if len(order) else 0
        c = cells_around(np.asarray(hp.to_numpy(zero_copy_only=False), np.int64), o)
        flat = pa.array(c.ravel())
        return pa.ListArray.from_arrays(pa.array(np.arange(0, c.size + 1, 9, dtype=np.int32)), flat)

    for name, fn, args, ret in (
        ("xm_hp29", _hp, [T.DOUBLE, T.DOUBLE], T.BIGINT),
        ("xm_cells", _cells, [T.BIGINT, T.INTEGER], duckdb.list_type(T.BIGINT)),
    ):
        try:
            con.remove_function(name)
        except Exception:
            pass
        con.create_function(name, fn, args, ret, type="arrow")
    try:
        con.remove_function("xm_order")
    except Exception:
        pass
    con.create_function("xm_order", lambda r: match_order(float(r)), [T.DOUBLE], T.INTEGER)
    sep = ("degrees(2 * asin(least(1, sqrt(sin(radians(l.dec - e.dec) / 2) ^ 2 + cos(radians(e.dec)) * "
           "cos(radians(l.dec)) * sin(radians(l.ra - e.ra) / 2) ^ 2)))) * 3600")
    body = f"""
        WITH e AS (SELECT *, row_number() OVER () AS __xid FROM query_table(ext) WHERE isfinite(ra) AND isfinite(dec)),
        k AS (SELECT xm_order(radius_arcsec) AS o),
        c AS (SELECT __xid, unnest(xm_cells(xm_hp29(ra, dec), (SELECT o FROM k))) AS __cell FROM e),
        l AS (SELECT _healpix_29 >> (2 * (29 - (SELECT o FROM k))) AS __cell, release, brickid, objid, ra, dec
              FROM query_table(lake)),
        p AS (SELECT e.* EXCLUDE (__xid), e.__xid, l.release AS lake_release, l.brickid AS lake_brickid,
                     l.objid AS lake_objid, l.ra AS lake_ra, l.dec AS lake_dec, {sep} AS sep_arcsec
              FROM c JOIN l USING (__cell) JOIN e ON e.__xid = c.__xid
              WHERE c.__cell >= 0)
    """
    con.execute(f"CREATE OR REPLACE MACRO xmatch_all(ext, lake, radius_arcsec) AS TABLE {body} "
                "SELECT * EXCLUDE (__xid) FROM p WHERE sep_arcsec <= radius_arcsec")
    con.execute(f"CREATE OR REPLACE MACRO xmatch_nearest(ext, lake, radius_arcsec) AS TABLE {body} "
                "SELECT * EXCLUDE (__xid) FROM p WHERE sep_arcsec <= radius_arcsec "
                "QUALIFY row_number() OVER (PARTITION BY __xid ORDER BY sep_arcsec, lake_brickid, lake_objid) = 1")
    if lake is not None:
        from legacylake.query.connect import catalogs, parquet_scan

        existing = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() UNION ALL "
                                              "SELECT table_name FROM duckdb_tables()").fetchall()}
        for name, cat in catalogs(lake).items():   # each catalog's current snapshot
            if cat.files and name not in existing:
                con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM {parquet_scan(cat.files)}')