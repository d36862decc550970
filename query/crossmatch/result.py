"""Where crossmatch pairs go: the output sink (Arrow table, Parquet file, or a HATS catalog
via :mod:`legacylake.query.crossmatch.hats_sink`) and the run's statistics."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

#: Suffix of a lake column whose name is also an external column's (or ``sep_arcsec``).
LAKE_SUFFIX = "_lake"


def lake_output_names(lake_cols: list[str], ext_names: list[str]) -> list[str]:
    """Output names of the lake columns: their own names, with :data:`LAKE_SUFFIX` appended only
    to the names that collide with an external column or ``sep_arcsec`` (as TOPCAT renames only
    duplicated names): ``ra``, ``dec`` of the lake become ``ra_lake``, ``dec_lake`` when the
    external table has ``ra``, ``dec``; ``release``, ``brickid``, ``objid`` keep their names."""
    taken = set(ext_names) | {"sep_arcsec"}
    return [c + LAKE_SUFFIX if c in taken else c for c in lake_cols]


def xmatch_table_name(radius_arcsec: float, catalog: str, external: str | os.PathLike) -> str:
    """The hosted catalog's name for a pre-crossmatched table: ``x<radius>__<catalog>__<external>``
    with the radius in arcsec, ``.`` written ``p`` (``x1p5__dr9__gaia_source`` for 1.5" with
    ``gaia_source.parquet``), the external catalog's file or folder name without extension,
    lower-cased, other characters than letters, digits and ``_`` as ``_``."""
    import re

    r = f"{float(radius_arcsec):g}".replace(".", "p").replace("-", "m")
    stem = Path(os.fspath(external).rstrip("/")).name.split(".")[0].lower()
    stem = re.sub(r"[^a-z0-9_]", "_", stem) or "external"
    return f"x{r}__{catalog}__{stem}"


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
