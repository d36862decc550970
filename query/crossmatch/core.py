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
   chord distances in a numba kernel (:mod:`legacylake.query.crossmatch.kernels`).
4. Every lake row lives in exactly one partition, so every pair is found exactly once.
   For ``nearest``, shared rows keep their per-partition best candidates, reduced at the end.

Output: the external columns, the lake columns under their own names (suffixed ``_lake`` only where
an external column has the same name, as TOPCAT renames only duplicates), and ``sep_arcsec``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

from legacylake.catalogs_schema.astrometry import propagate  # noqa: F401 - also legacylake.query.crossmatch.core.propagate
from legacylake.errors import UserError
from legacylake.query.crossmatch import kernels as K_
from legacylake.query.crossmatch.buckets import (
    _Buckets,
    match_order,
)
from legacylake.query.crossmatch.io import Lake, open_external
from legacylake.query.crossmatch.partitions import (
    _finish_shared,
    _partition_external,
    _release_memory,
    _run_partitions,
)
from legacylake.query.crossmatch.result import XmatchStats, _Sink, lake_output_names

DEFAULT_LAKE_COLUMNS = ("release", "brickid", "objid", "ra", "dec")
#: Bytes of external rows buffered in memory before buckets spill to disk.
DEFAULT_MEMORY_BUDGET = 32 << 20
#: Rows per external batch read.
DEFAULT_BATCH_ROWS = 100_000
MAX_RADIUS_ARCSEC = 3600.0


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


# ---------------------------------------------------------------- buckets


# ---------------------------------------------------------------- sink


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
           progress: bool = False, stats: XmatchStats | None = None, cancel=None) -> pa.Table | XmatchStats:
    """Crossmatch ``external`` (path or Arrow/pandas table) with lake catalog ``lake/catalog``.

    ``radius_arcsec``: match radius in arcsec (0 < r; r > 3600 needs ``force``).
    ``mode``: ``"nearest"`` (at most one lake row per external row) or ``"all"`` (every pair).
    ``columns``: lake columns to return (default release, brickid, objid, ra, dec), under their
    own names, suffixed ``_lake`` only where an external column has the same name (so ``ra``,
    ``dec`` of the lake are ``ra_lake``, ``dec_lake`` next to an external ``ra``, ``dec``); ``external_columns``: subset of external columns (default all).
    ``epoch_from`` (column name or year) with ``pm_cols`` = (pmra, pmdec) in mas/yr (pmra
    includes cos dec) move external positions to ``epoch_to`` (a year) before matching.
    Returns a pyarrow Table, or with ``out`` writes Parquet atomically and returns the stats.
    ``into_lake``: instead, write the result as the new HATS catalog ``lake/<into_lake>``
    (partitioned by the external positions, see :mod:`legacylake.query.crossmatch.hats_sink`), streamed
    and atomic; returns the stats. ``scheduler``: a Dask distributed scheduler address (or a
    ``distributed.Client``) to run the per-partition match tasks on (the lake must be on a
    filesystem the workers see); results are identical to the local run, in the same order.
    ``memory_budget`` (bytes) bounds the external rows buffered before spilling to disk.
    ``cancel``: an object with ``is_set()`` (e.g. a :class:`threading.Event`), checked between
    partitions; when set, the crossmatch stops with :class:`InterruptedError` (nothing written).
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
    lake_names = lake_output_names(lake_cols, [f.name for f in ext_fields])
    out_schema = pa.schema(ext_fields + [lake_schema.field(c).with_name(n) for c, n in zip(lake_cols, lake_names)]
                           + [pa.field("sep_arcsec", pa.float64(), metadata={"unit": "arcsec"})])
    ext_names = [f.name for f in ext_fields]

    order = match_order(radius_arcsec)
    st.match_order = order
    chord2 = K_.arcsec_to_chord2(radius_arcsec)
    if into_lake is not None:
        from legacylake.query.crossmatch.hats_sink import HatsSink

        # next to the lake catalog (lake may name the catalog directory itself when catalog is None);
        # for a collection lk.path is its snapshot's folder, so the lake is taken from the arguments
        lake_root = Path(os.fspath(lake)) if catalog else Path(os.fspath(lake)).resolve().parent
        sink = HatsSink(lake_root, into_lake, out_schema, ra_name, dec_name, lk,
                        {"legacylake_xmatch_lake_catalog": catalog or Path(os.fspath(lake)).resolve().name,
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
            if cancel is not None and cancel.is_set():   # checked between partitions
                raise InterruptedError("crossmatch cancelled")
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


# ---------------------------------------------------------------- SQL access


