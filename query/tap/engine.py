"""The query engine behind the TAP endpoints: one read-only lake connection per snapshot,
ADQL translation with pruned spatial reads and crossmatch joins, timeouts and row caps.

Each query runs on a cursor of the connection of the lake's snapshot current when the query
starts (all of the query reads that one snapshot); a build that publishes a new snapshot is
seen by the next query.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from legacylake.errors import UserError
from legacylake.query.lake import Catalog, catalogs, parquet_scan, sql_name
from legacylake.query.spatial.regions import HPX_COL
from legacylake.query.spatial.search import first_line, footer, plan, search
from legacylake.query.sql import macros
from legacylake.query.sql.connect import connect
from legacylake.query.tap import schema as tap_schema
from legacylake.query.tap.adql import ADQLError, TableRef, translate

#: Regions estimated at more rows than this are read by DuckDB (pruned files and row groups)
#: rather than gathered into memory by :func:`legacylake.query.spatial.search.search` first.
ARROW_REGION_ROWS = 2_000_000


@dataclass
class Config:
    """Service settings (``legacylake serve`` options)."""

    lake: Path
    max_rows: int = 10_000_000        # hard cap on rows of one result
    default_maxrec: int = 1_000_000   # MAXREC when the request gives none
    timeout: float = 3600.0           # seconds per query (sync and async)
    workers: int = 4                  # queries run at once
    name: str = "legacylake TAP"
    aliases: dict[str, str] = field(default_factory=dict)   # "ls_dr9.tractor" -> "dr9"
    jobs_dir: Path | None = None
    upload_max_rows: int = 100_000
    upload_max_bytes: int = 64 << 20


@dataclass
class Result:
    """A query's rows (Arrow), whether MAXREC cut them, and the translated SQL."""

    table: pa.Table
    overflow: bool
    translation: "object"   # legacylake.query.tap.adql.Translation (its .sql is the DuckDB SQL)
    notes: list[str]
    seconds: float

    @property
    def sql(self) -> str:
        return self.translation.sql


class Snapshot:
    """The lake as one snapshot: its connection, table names and TAP_SCHEMA."""

    def __init__(self, cfg: Config):
        self.cats: dict[str, Catalog] = catalogs(cfg.lake)
        self.con = connect(cfg.lake)
        self.refs: dict[tuple[str, ...], TableRef] = {}
        self.row_counts: dict[str, int] = {}
        for name, cat in self.cats.items():
            if not cat.files:
                continue
            self.refs[(name.lower(),)] = TableRef(sql_name(name), name, False)
            self.refs[(f"{name}_derived".lower(),)] = TableRef(sql_name(name + "_derived"), name, True)
            self.row_counts[name] = _rows(cat)
        for alias, target in cfg.aliases.items():
            parts = tuple(p.lower() for p in alias.split("."))
            tgt = self.refs.get((target.lower(),))
            if tgt is None or tgt.catalog is None:
                raise UserError(f"--alias {alias}={target}: no catalog {target!r} in the lake "
                                f"(catalogs: {', '.join(self.cats)})")
            view = sql_name(target + "_derived")
            if len(parts) == 2:
                self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {sql_name(parts[0])}")
            if len(parts) > 2:
                raise UserError(f"--alias {alias}: use schema.table or table")
            self.con.execute(f"CREATE OR REPLACE VIEW {'.'.join(sql_name(p) for p in parts)} AS SELECT * FROM {view}")
            self.refs[parts] = TableRef(".".join(sql_name(p) for p in parts), tgt.catalog, True)
        self.meta = tap_schema.build(self, cfg)
        tap_schema.install(self.con, self.meta)
        for t in tap_schema.TAP_SCHEMA_TABLES:
            self.refs[("tap_schema", t)] = TableRef(f"TAP_SCHEMA.{t}")
        self.stamp = _stamp(cfg.lake)


def _rows(cat: Catalog) -> int:
    return int(sum(footer(f)[0].num_rows for f in cat.files))


def _stamp(lake: Path) -> tuple:
    """What changes when a build publishes a snapshot (pointer files' identity and times)."""
    out = []
    for p in sorted(Path(lake).iterdir()) if Path(lake).is_dir() else []:
        for name in ("collection.properties", "hats.properties", "partition_info.csv"):
            f = p / name
            try:
                st = f.stat()
                out.append((str(f), st.st_ino, st.st_mtime_ns))
            except OSError:
                pass
    return tuple(out)


class Engine:
    """Runs ADQL on the lake (thread-safe; one DuckDB cursor per query)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self._lock = threading.Lock()
        self._snap = Snapshot(cfg)
        self._names = itertools.count()

    def snapshot(self) -> Snapshot:
        """The current snapshot (reopened when a build has published a new one)."""
        with self._lock:
            if _stamp(self.cfg.lake) != self._snap.stamp:
                self._snap = Snapshot(self.cfg)
            return self._snap

    def run(self, adql: str, maxrec: int | None = None, uploads: dict[str, pa.Table] | None = None,
            timeout: float | None = None, cancel: threading.Event | None = None) -> Result:
        """Rows of ``adql`` (at most ``maxrec``, capped by ``max_rows``); ADQLError on bad queries,
        TimeoutError past ``timeout`` seconds."""
        t0 = time.perf_counter()
        snap = self.snapshot()
        limit = self.cfg.default_maxrec if maxrec is None else maxrec
        limit = max(0, min(int(limit), self.cfg.max_rows))
        cur = snap.con.cursor()
        limit_s = timeout or self.cfg.timeout
        fired, done = threading.Event(), threading.Event()
        stop = _Stop(fired, cancel)   # checked by the pruned reads and crossmatches between files/partitions
        planner = _Planner(self, snap, uploads or {}, stop)

        def on_timeout() -> None:
            fired.set()
            cur.interrupt()

        timer = threading.Timer(limit_s, on_timeout)
        timer.start()   # the limit covers the pruned reads and crossmatches of the translation too
        try:
            tr = translate(adql, planner, limit)
            if tr.direct is not None and limit > 0:   # only columns of a region's (exact) rows: no SQL engine needed
                reg, cols, n = tr.direct
                t = tr.registrations[reg]
                table = pa.table([t[c] for c, _ in cols], names=[o for _, o in cols]).slice(0, n)
                return self._result(table, limit, tr, t0)
            for name, tbl in {**planner.upload_regs, **tr.registrations}.items():
                cur.register(name, tbl)
            if stop.is_set():
                raise InterruptedError("stopped before the SQL ran")
            if cancel is not None:
                threading.Thread(target=_watch, args=(cancel, done, cur), daemon=True).start()
            table = cur.sql(tr.sql).to_arrow_table() if limit > 0 else _empty(cur, tr.sql)
        except UserError:
            raise
        except Exception as exc:  # DuckDB errors: name the column / function from the message
            if fired.is_set():
                raise TimeoutError(f"query ran past the time limit of {limit_s:g} s; run it on /async "
                                   "with a longer EXECUTIONDURATION") from None
            if cancel is not None and cancel.is_set():
                raise InterruptedError("query aborted") from None
            raise ADQLError(_explain(first_line(exc))) from None
        finally:
            timer.cancel()
            done.set()
            cur.close()
        return self._result(table, limit, tr, t0)

    @staticmethod
    def _result(table: pa.Table, limit: int, tr, t0: float) -> Result:
        overflow = table.num_rows > limit
        if overflow:
            table = table.slice(0, limit)
        return Result(table, overflow, tr, tr.notes, time.perf_counter() - t0)


class _Stop:
    """Set when the query's time limit fired or the client aborted (``is_set()``, as an Event)."""

    def __init__(self, fired: threading.Event, cancel: threading.Event | None):
        self.fired, self.cancel = fired, cancel

    def is_set(self) -> bool:
        return self.fired.is_set() or (self.cancel is not None and self.cancel.is_set())


def _watch(cancel: threading.Event, done: threading.Event, cur) -> None:
    """Interrupt ``cur`` when ``cancel`` is set before ``done``."""
    while not done.is_set():
        if cancel.wait(0.1):
            if not done.is_set():
                try:
                    cur.interrupt()
                except Exception:
                    pass
            return


def _empty(cur, sql: str) -> pa.Table:
    return cur.sql(f"SELECT * FROM ({sql}) AS __q LIMIT 0").to_arrow_table()


def _explain(msg: str) -> str:
    """A DuckDB message as a TAP error: the kind of problem first."""
    low = msg.lower()
    if "referenced column" in low or ("column" in low and "not found" in low):
        return "unknown column: " + msg
    if "function" in low and "does not exist" in low:
        return "bad function: " + msg
    if "no function matches" in low or "does not support the supplied arguments" in low:
        return "bad function arguments: " + msg
    return msg


class _Planner:
    """The translator's view of the service for one query (see :class:`legacylake.query.tap.adql.Planner`)."""

    def __init__(self, engine: Engine, snap: Snapshot, uploads: dict[str, pa.Table], stop: _Stop | None = None):
        self.engine, self.snap, self.stop = engine, snap, stop
        self.uploads = {k.lower(): v for k, v in uploads.items()}
        self.upload_regs = {f"__upload_{k}": v for k, v in self.uploads.items()}
        self._n = itertools.count()

    def resolve(self, parts):
        if len(parts) == 2 and parts[0] == "tap_upload":
            tbl = self.uploads.get(parts[1])
            return None if tbl is None else TableRef(f"__upload_{parts[1]}", upload=tbl)
        return self.snap.refs.get(parts)

    def table_names(self):
        names = [".".join(k) for k in self.snap.refs]
        return names + [f"TAP_UPLOAD.{k}" for k in self.uploads]

    def functions(self):
        return frozenset(macros.FUNCTIONS)

    def _source(self, ref: TableRef, name: str, cols: list[str]):
        """``SELECT * FROM name`` as a syntax tree, plus the derived columns for a ``_derived`` view."""
        import sqlglot
        from sqlglot import exp

        q = exp.select("*").from_(name)
        if ref.derived:
            extra = [sqlglot.parse_one(f"{e} AS {n}", read="duckdb")
                     for n, e in macros.derived_columns(cols) if n not in cols]
            q = q.select(*extra, copy=False)
        return q

    def region_source(self, ref, region, columns):
        cat = self.snap.cats[ref.catalog]
        p = plan(cat, region)
        est = sum(footer(f)[0].row_group(g).num_rows for f, gs in p.files for g in gs)
        names = cat.schema.names
        if est > ARROW_REGION_ROWS:
            files = [f for f, _ in p.files]
            if not files:
                return f"SELECT * FROM {ref.sql} WHERE false", {}   # parsed by the translator
            rng = " OR ".join(f"{HPX_COL} BETWEEN {lo} AND {hi - 1}" for lo, hi in p.ranges) or "true"
            base = f"(SELECT * FROM {parquet_scan(files)} WHERE ({rng}) AND {region.sql_predicate()})"
            return self._source(ref, base, names), {}
        cols = None if (columns is None or ref.derived) else \
            [c for c in names if c.lower() in columns or c in ("ra", "dec")]
        rows = search(cat, region, columns=cols, planned=p, cancel=self.stop)
        reg = f"__region_{next(self._n)}"
        return self._source(ref, reg, rows.column_names), {reg: rows}

    def _wanted(self, ref: TableRef, columns) -> list[str]:
        names = self.snap.cats[ref.catalog].schema.names
        cols = names if (columns is None or ref.derived) else \
            [c for c in names if c.lower() in columns or c in ("ra", "dec")]
        return [c for c in cols if c != HPX_COL] + ([HPX_COL] if HPX_COL in cols else [])

    def pair_source(self, ref1, ref2, pos1, pos2, radius_deg, columns):
        """Both halves of the crossmatch of two lake catalogs: ``ref2`` streamed as the external
        catalog (its snapshot's HATS folder) against ``ref1``."""
        from legacylake.query.crossmatch.core import xmatch
        from legacylake.query.crossmatch.result import lake_output_names

        for pos in (pos1, pos2):
            if (pos[0].lower(), pos[1].lower()) != ("ra", "dec"):
                raise ADQLError("a crossmatch join compares the catalogs' ra, dec columns")
        c1, c2 = self.snap.cats[ref1.catalog], self.snap.cats[ref2.catalog]
        cols1, cols2 = self._wanted(ref1, columns), self._wanted(ref2, columns)
        pairs = xmatch(str(c2.path), c1.path, radius_arcsec=radius_deg * 3600.0, mode="all", columns=cols1,
                       external_columns=cols2, force=True, cancel=self.stop)
        key = pa.array(np.arange(pairs.num_rows, dtype=np.int64))
        names1 = lake_output_names(cols1, cols2)  # the lake's names, suffixed only where they collide
        left = pa.table({**{c: pairs[n] for c, n in zip(cols1, names1)}, "__xm_uid_l": key})
        right = pa.table({**{c: pairs[c] for c in cols2}, "__xm_uid_u": key})
        r1, r2 = f"__pairs_{next(self._n)}", f"__pairs_{next(self._n)}"
        return self._source(ref1, r1, cols1), self._source(ref2, r2, cols2), {r1: left, r2: right}

    def xmatch_source(self, ref, upload, lake_pos, up_pos, radius_deg, columns):
        from legacylake.query.crossmatch.core import xmatch
        from legacylake.query.crossmatch.result import lake_output_names

        cat = self.snap.cats[ref.catalog]
        if (lake_pos[0].lower(), lake_pos[1].lower()) != ("ra", "dec"):
            raise ADQLError("a crossmatch join compares the lake's ra, dec with the upload's position")
        up = upload.upload
        lower = {n.lower(): n for n in up.column_names}
        try:
            ura, udec = lower[up_pos[0].lower()], lower[up_pos[1].lower()]
        except KeyError as exc:
            raise ADQLError(f"unknown column {exc.args[0]!r} in the uploaded table") from None
        n = up.num_rows
        ext = pa.table({"__xm_uid_u": pa.array(np.arange(n, dtype=np.int64)),
                        "ra": up[ura].cast(pa.float64()), "dec": up[udec].cast(pa.float64())})
        cols = self._wanted(ref, columns)
        pairs = xmatch(ext, cat.path, radius_arcsec=radius_deg * 3600.0, mode="all",
                       columns=cols, external_columns=["__xm_uid_u"], force=True, cancel=self.stop)
        names = lake_output_names(cols, ["__xm_uid_u"])
        out = pa.table({**{c: pairs[n] for c, n in zip(cols, names)}, "__xm_uid_l": pairs["__xm_uid_u"]})
        reg = f"__xmatch_{next(self._n)}"
        up_name = upload.sql
        keyed = up.append_column("__xm_uid_u", pa.array(np.arange(n, dtype=np.int64)))
        return self._source(ref, reg, cols), {reg: out, up_name: keyed}
