"""``export_tractor``: a lake catalog as per-brick ``tractor/<AAA>/tractor-<brick>.fits`` files
in the catalog's data model (the survey's folder layout), rows in objid order.

Each brick is read from the leaves its (0.1-degree padded) footprint touches, keeping the rows
with its ``brickid`` (a Tractor catalog also holds the non-primary sources just outside its
brick), and written under ``NAME.tmp`` then renamed. Columns: the model's columns the catalog
has (optional columns NULL in every row, absent from the inputs, are left out); names in
lower case for a tractor model (as the survey's Tractor files), upper case for a sweep model.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from legacylake.catalogs_schema import bricks as grid
from legacylake.catalogs_schema.columns import model
from legacylake.errors import UserError
from legacylake.query.export.fitswrite import records
from legacylake.query.export.sweeps import _all_null
from legacylake.query.lake import Catalog, catalogs
from legacylake.query.spatial.regions import Region
from legacylake.query.spatial.search import footer, plan

#: Padding of a brick's footprint when looking for its rows, deg.
PAD_DEG = 0.1


def _brick_ids(cat: Catalog, names: list[str] | None) -> list[int]:
    if names:
        out = []
        for n in names:
            try:
                out.append(grid.brickname_to_id(n) if not str(n).isdigit() else int(n))
            except KeyError as exc:
                raise UserError(str(exc).strip('"')) from None
        return out
    ids: set[int] = set()
    for f in cat.files:
        ids.update(np.unique(pq.read_table(f, columns=["brickid"])["brickid"].to_numpy()).tolist())
    return sorted(ids)


def _brick_rows(cat: Catalog, brickid: int, columns: list[str]) -> pa.Table:
    b = grid.brick(brickid)
    d1, d2 = max(b["dec1"] - PAD_DEG, -90.0), min(b["dec2"] + PAD_DEG, 90.0)
    r1, r2 = (b["ra1"] - PAD_DEG) % 360.0, (b["ra2"] + PAD_DEG) % 360.0
    if d1 <= -89.5 or d2 >= 89.5 or b["ra2"] - b["ra1"] + 2 * PAD_DEG >= 360:
        r1, r2 = 0.0, 360.0
    pieces = []
    for path, rgs in plan(cat, Region.box(r1, r2, d1, d2)).files:
        t = pq.ParquetFile(path, metadata=footer(path)[0]).read_row_groups(rgs, columns=columns)
        keep = t["brickid"].to_numpy() == brickid
        if keep.any():
            pieces.append(t.filter(keep))
    if not pieces:
        return pa.schema([cat.schema.field(c) for c in columns]).empty_table()
    t = pa.concat_tables(pieces)
    return t.sort_by([("objid", "ascending")])


def export_tractor(lake: str | os.PathLike, catalog: str, out: str | os.PathLike,
                   bricks: list[str] | None = None) -> dict[str, int]:
    """Write ``out/tractor/<AAA>/tractor-<brick>.fits`` for each brick of ``lake/catalog`` (or the
    named ``bricks``); returns file -> rows. Bricks without rows are not written."""
    cats = catalogs(lake)
    if catalog not in cats:
        raise UserError(f"unknown catalog {catalog!r} in {lake}; catalogs: {', '.join(cats)}")
    cat = cats[catalog]  # one snapshot for the whole export
    dm = model(cat.properties.get("legacylake_data_model", "dr9-tractor"))
    empty = _all_null(cat)
    have = set(cat.schema.names)
    cols = [c for c in dm.columns if c.name in have and not (c.name in empty and not c.required)]
    missing = [c.name for c in dm.columns if c.required and c.name not in have]
    if missing:
        raise UserError(f"catalog {catalog} lacks column(s) {', '.join(missing[:8])} of {dm.name}")
    upper = dm.name.endswith("-sweep")
    written: dict[str, int] = {}
    for bid in _brick_ids(cat, bricks):
        t = _brick_rows(cat, bid, [c.name for c in cols])
        if t.num_rows == 0:
            continue
        name = grid.brickid_to_name(bid)
        path = os.path.join(os.fspath(out), "tractor", name[:3], f"tractor-{name}.fits")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rec = records(cols, t, f"brick {name}")
        if not upper:
            rec.dtype.names = [n.lower() for n in rec.dtype.names]
        import fitsio

        tmp = path + ".tmp"
        try:
            fitsio.write(tmp, rec, units=[c.unit for c in cols], clobber=True,
                         header=[{"name": "BRICKNAM", "value": name}, {"name": "BRICKID", "value": bid}])
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        written[path] = t.num_rows
    return written
