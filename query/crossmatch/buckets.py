"""Per-partition buckets of external rows (spilled to disk past a memory budget) and the
HEALPix cell arithmetic of the crossmatch: the match order for a radius, order-29 indices,
the 3x3 cells around a row."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def _as_float(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), np.float64)


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
