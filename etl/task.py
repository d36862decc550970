"""What a write task is (:class:`Task`: input sources and the leaves they feed), the settings
leaves are written with (codec, row-group size), and the write processes' memory hygiene."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

#: Rows per Parquet row group. A 1-arcmin cone with all 181 columns decodes one group, so its
#: latency follows the size; every group adds ~18 KB of footer that DuckDB, Spark and lsdb parse.
#: On the 11.8M-row simulated DR9 lake (bench/layout_sizing.py, bench/RESULTS.md "Layout
#: sizing"): warm cone 10.5 / 16.3 / 23.0 / 28.7 ms at 2,048 / 4,096 / 6,144 / 8,192 rows,
#: footers 0.72 / 0.37 / 0.25 / 0.20% of the leaf bytes. 4,096 is the largest size that keeps the
#: cone within its 20 ms target; it halves the footers of 2,048 (their 0.2% target needs 8,192).
ROW_GROUP_ROWS = 4_096


#: Order of the point map (row counts per cell) the tasks return.
POINT_MAP_ORDER = 8  # default order of the per-leaf row counts


#: LZ4 (written as Parquet's LZ4_RAW codec, read by pyarrow, DuckDB, polars, Spark >= 3.4):
#: leaves decode 1.6-1.7x faster than with zstd level 1 and write with ~1/3 less CPU, for
#: files ~18% larger (bench/RESULTS.md, "query ... round 2"). A cone with all columns is
#: decode-bound, so decode speed is what the lake is tuned for.
COMPRESSION = ("lz4", None)


#: FITS files a task reads ahead of the one it merges.
PREFETCH = 2


#: Bytes of rows a task may hold for a later input before it spills the rows needed last.
PENDING_BYTES = 128 << 20


#: Rows per spill shard (each shard covers a narrow _healpix_29 range, loaded back whole).
SPILL_ROWS = 2048


def tune_malloc() -> None:
    """glibc malloc: a fixed mmap threshold (256 KiB) so large freed buffers go back to the
    OS instead of staying in the heap, trim above 1 MiB, at most 2 arenas (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 10)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 20)     # M_TRIM_THRESHOLD
        libc.mallopt(-8, 2)           # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def release_memory() -> None:
    """Hand freed heap memory back to the OS (after each leaf)."""
    try:
        pa.default_memory_pool().release_unused()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns dictionary encoded: the strings (type, brickname, ref_cat, wise_coadd_id).
    Dictionary encoding of numeric columns cost ~50% more write time for no gain on our
    benchmark files."""
    out = []
    for f in schema:
        t = f.type
        if pa.types.is_string(t):
            out.append(f.name)
    return out


class InputFileError(Exception):
    """An error about one input file (``path`` attribute); picklable, so that a worker process
    can raise it and the build re-raise it."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path

    def __reduce__(self):   # raised in a worker process, re-raised in the build's
        return type(self), (self.path, str(self))


class FootprintError(InputFileError):
    """Rows of an input file fall outside the sky area planned for it (``path`` attribute)."""


@dataclass
class Source:
    kind: str                    # "fits" or "parquet"
    path: str
    footprint: np.ndarray | None = None   # FOOTPRINT_ORDER cells (fits)
    exclude_bricks: list = field(default_factory=list)   # brickids dropped (parquet)
    exclude_boxes: list = field(default_factory=list)    # ((ra1, ra2, dec1, dec2), brickids): rows dropped
    hash_it: bool = False        # compute the content hash while reading (one task per file)
    lower: int | None = None     # smallest _healpix_29 of its rows (shard)


@dataclass
class Task:
    task_id: int
    leaves: list                 # [(order, npix)] in nested order
    sources: list                # [Source]
    model: str
    staging: str                 # directory for finished leaf files
    row_group_rows: int = ROW_GROUP_ROWS
    point_map_order: int = POINT_MAP_ORDER
    pending_bytes: int = PENDING_BYTES
    source_models: dict = field(default_factory=dict)   # path -> data model, files mapped to ``model``
    margin_order: int | None = None   # route edge rows to the margins of other partitions
    partitions: list = field(default_factory=list)      # [(order, npix)] of the whole new catalog


def leaf_name(order: int, npix: int) -> str:
    return f"Norder{order}_Npix{npix}.parquet"
