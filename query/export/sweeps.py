"""``export_sweeps``: a lake catalog as the survey's DR9 sweep files.

The sky is cut into 10 x 5 degree boxes (36 in RA x 36 in Dec; reference section 6.1); each
box holds the ``brick_primary`` rows with ``ramin <= ra < ramax`` and ``decmin <= dec < decmax``
in ``OUT/<V>/sweep-<RA>{p|m}<DEC>-<RA>{p|m}<DEC>.fits`` (HDU ``SWEEP``, the columns of the
catalog's ``drN-sweep`` model with their FITS types, upper-case names, ``BRICK_PRIMARY`` not
written), the light-curve columns (``lc_*``) with RELEASE, BRICKID, OBJID in
``OUT/<V>-lightcurves/sweep-...-lc.fits``, and every other column of the catalog's Tractor model
(apertures, ``nea``, ...) with RELEASE, BRICKID, OBJID in ``OUT/<V>-extra/sweep-...-ex.fits``;
``<V>`` is ``9.0`` for DR9 (``N.0`` for DRN). The three files of a box hold the same rows in the
same order.

Streaming: one box at a time, one leaf's row groups at a time (the box's pruned plan); memory
is bounded by a leaf's row groups in the box. Each file is written under ``NAME.tmp`` and
renamed when complete. Rows are in the lake's HEALPix order within a file. All from one
snapshot of the catalog (resolved once, when the export starts).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq

from legacylake.catalogs_schema.columns import model
from legacylake.catalogs_schema.sweeps import EXTRA_SUFFIX, LIGHTCURVE_SUFFIX, boxes, in_box, sweep_name
from legacylake.errors import UserError
from legacylake.query.export.fitswrite import FitsAppender
from legacylake.query.lake import Catalog, catalogs
from legacylake.query.spatial.regions import Region
from legacylake.query.spatial.search import footer, plan

#: Identity columns repeated in the light-curve and extra files.
ID_COLUMNS = ("release", "brickid", "objid")


@dataclass
class SweepSummary:
    """What an export wrote: file -> rows, and the rows in all."""

    files: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(v for k, v in self.files.items()
                   if not k.endswith((f"{LIGHTCURVE_SUFFIX}.fits", f"{EXTRA_SUFFIX}.fits")))


def _models(cat: Catalog):
    dm = cat.properties.get("legacylake_data_model", "dr9-tractor")
    release = dm.split("-")[0]
    try:
        sweep = model(f"{release}-sweep")
    except (KeyError, ValueError):
        raise UserError(f"catalog {cat.name}: no sweep data model for {release} (its model is {dm})") from None
    names = set(cat.schema.names)
    missing = [c.name for c in sweep.columns if c.required and c.name not in names]
    if missing:
        raise UserError(f"catalog {cat.name} lacks column(s) {', '.join(missing[:8])} of {sweep.name}; cannot write sweeps")
    if "brick_primary" not in names and not dm.endswith("-sweep"):  # a lake of sweeps: primary rows only
        raise UserError(f"catalog {cat.name} has no brick_primary column; sweeps hold brick_primary rows only")
    empty = _all_null(cat)  # optional columns the inputs lacked: not written (as in the input files)
    main = [c for c in sweep.columns if c.name in names and c.name != "brick_primary"
            and not (c.name in empty and not c.required)]
    tractor = model(dm) if dm.endswith("-tractor") else None
    lc = [tractor[n] for n in cat.schema.names
          if n.startswith("lc_") and tractor is not None and n in tractor and n not in empty]
    lc = [tractor[n] for n in ID_COLUMNS] + lc if lc else []
    done = {c.name for c in main} | {c.name for c in lc} | {"brick_primary"}
    ex = [tractor[n] for n in cat.schema.names
          if tractor is not None and n in tractor and n not in done and n not in empty]
    ex = [tractor[n] for n in ID_COLUMNS] + ex if ex else []
    return sweep, main, lc, ex, release


def _all_null(cat: Catalog) -> set[str]:
    """Columns NULL in every row of the catalog (from the leaves' footer statistics)."""
    nulls: dict[str, int] = {}
    rows = 0
    for path in cat.files:
        md = footer(path)[0]
        rows += md.num_rows
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            for i in range(rg.num_columns):
                c = rg.column(i)
                st = c.statistics
                name = c.path_in_schema.split(".")[0]
                n = st.null_count if st is not None and st.has_null_count else 0
                nulls[name] = nulls.get(name, 0) + n  # a NULL fixed-size list counts once
    return {n for n, k in nulls.items() if rows and k == rows}


def _occupied(cat: Catalog) -> set[tuple[int, int, int, int]]:
    """Sweep boxes that can hold rows of the catalog: those meeting some row group's ra/dec
    range (footer statistics), so the export plans no empty box."""
    occ: set[tuple[int, int, int, int]] = set()
    for path in cat.files:
        md = footer(path)[0]
        names = [md.schema.column(i).name for i in range(md.num_columns)]
        ira, idec = names.index("ra"), names.index("dec")
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            a, d = rg.column(ira).statistics, rg.column(idec).statistics
            if a is None or d is None or not (a.has_min_max and d.has_min_max):
                return set(boxes())
            r1, r2 = (a.min, a.max) if 0 <= a.min <= a.max < 360 else (0, 360)   # (ra is taken mod 360)
            occ.update(boxes((r1, r2, d.min, d.max)))
    return occ


def _export_box(cat: Catalog, box: tuple[int, int, int, int], out: str, models=None) -> dict[str, int]:
    sweep, main, lc, ex, release = models or _models(cat)
    ra1, dec1, ra2, dec2 = box
    version = f"{release[2:]}.0"
    name = sweep_name(*box)
    files = {os.path.join(out, version, name): main}
    if lc:
        files[os.path.join(out, f"{version}-lightcurves", sweep_name(*box, LIGHTCURVE_SUFFIX))] = lc
    if ex:
        files[os.path.join(out, f"{version}-extra", sweep_name(*box, EXTRA_SUFFIX))] = ex
    hdr = {"SURVEY": "LS", "DATAMODL": sweep.name, "RAMIN": ra1, "RAMAX": ra2, "DECMIN": dec1, "DECMAX": dec2}
    writers = {p: FitsAppender(p, cols, "SWEEP", hdr) for p, cols in files.items()}
    for p in files:
        os.makedirs(os.path.dirname(p), exist_ok=True)
    has_primary = "brick_primary" in cat.schema.names
    want = list(dict.fromkeys(["ra", "dec"] + ["brick_primary"] * has_primary
                              + [c.name for cols in files.values() for c in cols]))
    try:
        for path, rgs in plan(cat, Region.box(ra1, ra2, max(dec1, -90), min(dec2, 90))).files:
            t = pq.ParquetFile(path, metadata=footer(path)[0]).read_row_groups(rgs, columns=want)
            primary = t["brick_primary"].to_numpy(zero_copy_only=False).astype(bool) if has_primary else True
            keep = primary & in_box(t["ra"].to_numpy(), t["dec"].to_numpy(), (ra1, ra2, dec1, dec2))
            if keep.any():
                t = t.filter(keep)
                for p, w in writers.items():
                    w.append(t, f"{path} -> {os.path.basename(p)}")
        return {p: w.close() for p, w in writers.items() if w.rows}
    except BaseException:
        for w in writers.values():
            w.abort()
        raise


def export_sweeps(lake: str | os.PathLike, catalog: str, out: str | os.PathLike,
                  box: tuple[float, float, float, float] | None = None, workers: int = 1) -> SweepSummary:
    """Write the sweep files of ``lake/catalog`` under ``out`` (see the module docstring).
    ``box`` = (RA1, RA2, DEC1, DEC2) deg limits the export to the sweep boxes it overlaps
    (whole boxes are written). ``workers`` processes write different boxes."""
    cats = catalogs(lake)
    if catalog not in cats:
        raise UserError(f"unknown catalog {catalog!r} in {lake}; catalogs: {', '.join(cats)}")
    cat = cats[catalog]  # one snapshot for the whole export
    models = _models(cat)  # once (it reads every leaf's footer); fails early, naming the column
    if box is not None:
        a, b, d1, d2 = box
        if not (0 <= a < b <= 360 and -90 <= d1 < d2 <= 90):
            raise UserError(f"--box {a} {b} {d1} {d2}: need 0 <= RA1 < RA2 <= 360 and -90 <= DEC1 < DEC2 <= 90")
    occ = _occupied(cat)
    todo = [bx for bx in boxes(box) if bx in occ]
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    summary = SweepSummary()
    if workers and workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for res in pool.map(_export_box, [cat] * len(todo), todo, [out] * len(todo), [models] * len(todo)):
                summary.files.update(res)
    else:
        for bx in todo:
            summary.files.update(_export_box(cat, bx, out, models))
    return summary
