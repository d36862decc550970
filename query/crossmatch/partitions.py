"""The per-partition work of a crossmatch: external rows routed to the lake partitions their
cells touch, each partition read once and matched (numba kernel), and rows shared by
several partitions reduced at the end (``nearest``)."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from legacylake.catalogs_schema.astrometry import propagate
from legacylake.errors import UserError
from legacylake.query.crossmatch import kernels as K_
from legacylake.query.crossmatch.buckets import (
    _DEC,
    _RA,
    _SHARED,
    _XID,
    _as_float,
    _Buckets,
    cells_around,
    healpix29,
)
from legacylake.query.crossmatch.io import HP_COL, External, Lake
from legacylake.query.crossmatch.result import XmatchStats, _Sink


def _release_memory() -> None:
    """Give Arrow's freed buffers back to the OS (mimalloc/jemalloc keep them otherwise)."""
    try:
        pa.default_memory_pool().release_unused()
    except Exception:  # pragma: no cover - pools without the call
        pass


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


def _lake_names(schema: pa.Schema, lake_cols: list[str]) -> list[str]:
    """Output names of the lake columns: the fields before ``sep_arcsec`` in the output schema."""
    return schema.names[len(schema) - len(lake_cols) - 1: len(schema) - 1]


def _lake_null_columns(n: int, lake_cols: list[str], schema: pa.Schema) -> list[pa.Array]:
    return [pa.nulls(n, schema.field(name).type) for name in _lake_names(schema, lake_cols)]


def _unmatched(e: pa.Table, lake_cols: list[str], schema: pa.Schema) -> pa.Table:
    n = e.num_rows
    cols = {name: e.column(name) for name in schema.names[: len(schema) - len(lake_cols) - 1]}
    for name, arr in zip(_lake_names(schema, lake_cols), _lake_null_columns(n, lake_cols, schema)):
        cols[name] = arr
    cols["sep_arcsec"] = pa.nulls(n, pa.float64())
    return pa.table(cols)


def _assemble(e: pa.Table, ei: np.ndarray, lake: pa.Table | None, lj: np.ndarray, sep: np.ndarray,
              lake_cols: list[str], ext_names: list[str], lake_names: list[str],
              extra: dict | None = None) -> pa.Table:
    """External rows ``ei`` side by side with lake rows ``lj`` (-1: NULL lake columns), the lake
    columns named ``lake_names``."""
    cols = {}
    et = e.take(ei)
    for name in ext_names:
        cols[name] = et.column(name)
    if lake is not None:
        mask = lj < 0
        idx = pa.array(np.where(mask, 0, lj), mask=mask)
        for c, name in zip(lake_cols, lake_names):
            cols[name] = lake.column(c).take(idx)
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
    out_names = _lake_names(out_schema, lake_cols)
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
            res["out"].append(_assemble(e, sel, lake, best[sel], sep[sel], lake_cols, ext_names, out_names))
        cand = np.flatnonzero(shared & hit)
        if cand.size:
            res["cand"] = _assemble(e, cand, lake, best[cand], sep[cand], lake_cols, [], out_names,
                                    {_XID: pa.array(xid[cand]), "__d2": pa.array(d2[cand])})
    else:
        counts = K_.count_pairs(ex, ey, ez, lx, ly, lz, lo, hi, chord2)
        i, j, d2 = K_.all_pairs(ex, ey, ez, lx, ly, lz, lo, hi, chord2, counts)
        res["pairs"] = int(i.size)
        hitrow = counts > 0
        res["matched"] = int((hitrow & ~shared).sum())
        if i.size:
            res["out"].append(_assemble(e, i, lake, j, K_.chord2_to_arcsec(d2), lake_cols, ext_names, out_names))
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
            keep = set(_lake_names(sink.schema, lake_cols)) | {"sep_arcsec"}
            for name in c.schema.names:
                if name in keep:
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
