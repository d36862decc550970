"""``export_sweeps``: a lake catalog as the survey's DR9 sweep files.

The sky is cut into 10 x 5 degree boxes (36 in RA x 36 in Dec; reference section 6.1); each
box holds the ``brick_primary`` rows with ``ramin <= ra < ramax`` and ``decmin <= dec < decmax``
in ``OUT/<V>/sweep-<RA>{p|m}<DEC>-<RA>{p|m}<DEC>.fits`` (HDU ``SWEEP``, the columns of the
catalog's ``drN-sweep`` model with their FITS types, upper-case names, ``BRICK_PRIMARY`` not
written), and the light-curve columns (``lc_*``) with RELEASE, BRICKID, OBJID in
``OUT/<V>-lightcurves/sweep-...-lc.fits``; ``<V>`` is ``9.0`` for DR9 (``N.0`` for DRN).

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
from legacylake.errors import UserError
from legacylake.query.export.fitswrite import FitsAppender
from legacylake.query.lake import Catalog, catalogs
from legacylake.query.spatial.regions import Region
from legacylake.query.spatial.search import footer, plan

#: Sweep boxes: RA width and Dec height, deg (DR9; DR10 uses 5 x 5).
BOX_RA, BOX_DEC = 10, 5
#: Identity columns repeated in the light-curve files.
ID_COLUMNS = ("release", "brickid", "objid")


def _coord(v: int) -> str:
    return f"{'m' if v < 0 else 'p'}{abs(v):03d}"


def sweep_name(ra1: int, dec1: int, ra2: int, dec2: int) -> str:
    """``sweep-320m005-330p000.fits`` for the box RA [320, 330), Dec [-5, 0)."""
    return f"sweep-{ra1:03d}{_coord(dec1)}-{ra2:03d}{_coord(dec2)}.fits"


def boxes(sel: tuple[float, float, float, float] | None = None) -> list[tuple[int, int, int, int]]:
    """Sweep boxes (ra1, dec1, ra2, dec2), deg, overlapping ``sel`` = (RA1, RA2, DEC1, DEC2) (all if None)."""
    out = []
    for ra1 in range(0, 360, BOX_RA):
        for dec1 in range(-90, 90, BOX_DEC):
            if sel is not None:
                a, b, d1, d2 = sel
                if not (ra1 < b and ra1 + BOX_RA > a and dec1 < d2 and dec1 + BOX_DEC > d1):
                    continue
            out.append((ra1, dec1, ra1 + BOX_RA, dec1 + BOX_DEC))
    return out


@dataclass
class SweepSummary:
    """What an export wrote: file -> rows, and the rows in all."""

    files: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(v for k, v in self.files.items() if not k.endswith("-lc.fits"))


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
    return sweep, main, lc, release


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


def _export_box(cat: Catalog, box: tuple[int, int, int, int], out: str, models=None) -> dict[str, int]:
    sweep, main, lc, release = models or _models(cat)
    ra1, dec1, ra2, dec2 = box
    version = f"{release[2:]}.0"
    name = sweep_name(*box)
    files = {os.path.join(out, version, name): main}
    if lc:
        files[os.path.join(out, f"{version}-lightcurves", name.replace(".fits", "-lc.fits"))] = lc
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
            ra = np.mod(t["ra"].to_numpy(), 360.0)
            dec = t["dec"].to_numpy()
            primary = t["brick_primary"].to_numpy(zero_copy_only=False).astype(bool) if has_primary else True
            keep = (primary & (ra >= ra1) & (ra < ra2)
                    & (dec >= dec1) & ((dec < dec2) | (dec2 == 90)))
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
    todo = boxes(box)
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
