"""Planning a build: find the input files, inspect their headers, and lay out the partitions.

Nothing here reads table rows of a Tractor file named for its brick: the footprint and the
row-count estimate come from the brick grid and NAXIS2. Files whose sky area cannot be
known from their name (sweeps, oddly named files) have their ra/dec/brickid columns read.
"""

from __future__ import annotations

import functools
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from legacylake.catalogs_schema import detect, model, validate
from legacylake.catalogs_schema.sweeps import in_box, sweep_box
from legacylake.etl.fitstable import FitsLayoutError, check_complete, columns_from_raw, iter_raw, layout
from legacylake.etl.healpix import (FOOTPRINT_ORDER, brick_from_name, brick_footprint, brick_histogram, good_positions,
                      healpix29, pixel_range, shift)

FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fits.fz")
_BRICK_RE = re.compile(r"tractor-(\d{4}[pm]\d{3})\.fits", re.I)


class Reject(Exception):
    """An input file that cannot be ingested; the message names the file and the reason."""


@dataclass
class InputFile:
    """One input file and what planning learnt about it."""

    path: str
    size: int
    mtime_ns: int
    hash: str = ""
    rows: int = 0
    model: str = ""
    brickid: int | None = None          # for a Tractor file named for its brick
    exact: bool = False                 # footprint from the data rather than the brick grid
    footprint: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # FOOTPRINT_ORDER cells
    histogram: dict = field(default_factory=dict)   # estimated rows per cell at the plan order
    bricks: dict = field(default_factory=dict)      # brickid -> rows (exact files only)
    box: tuple | None = None            # (ra1, ra2, dec1, dec2) deg of a sweep file holding only that box
    notes: list = field(default_factory=list)


def discover(sources: list[str]) -> tuple[list[str], list[str]]:
    """(files, skipped): files named directly, and FITS files found under directories.

    Files under a directory that do not look like FITS by name are skipped (listed)."""
    files, skipped = [], []
    for src in sources:
        src = os.fspath(src)
        if os.path.isdir(src):
            for root, dirs, names in os.walk(src):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for n in sorted(names):
                    p = os.path.join(root, n)
                    (files if n.lower().endswith(FITS_SUFFIXES) else skipped).append(p)
        else:
            files.append(src)
    seen, out = set(), []
    for f in files:
        a = os.path.abspath(f)
        if a not in seen:
            seen.add(a)
            out.append(a)
    return out, skipped


class _Header:
    """A read-only header-like mapping (catalogs_schema treats plain dicts as column types)."""

    def __init__(self, cards: dict):
        self.cards = cards

    def get(self, key, default=None):
        return self.cards.get(key, default)

    def __contains__(self, key) -> bool:
        return key in self.cards

    def __getitem__(self, key):
        return self.cards[key]

    def __setitem__(self, key, value):
        self.cards[key] = value


@functools.lru_cache(maxsize=256)
def _classify(signature: tuple) -> tuple[str, tuple, tuple, tuple, tuple]:
    """(model, missing, mistyped, extra, too wide) for a header signature ((TTYPE, TFORM,
    TDIM?, TZERO?), ...); too wide: (TTYPE, TFORM, model width) of string columns wider than
    the model's ``char[N]``."""
    hdr = _Header({"TFIELDS": len(signature)})
    for i, (tt, tf, td, tz) in enumerate(signature, 1):
        hdr[f"TTYPE{i}"], hdr[f"TFORM{i}"] = tt, tf
        if td is not None:
            hdr[f"TDIM{i}"] = td
        if tz is not None:
            hdr[f"TZERO{i}"] = tz
    det = detect(hdr)
    rep = validate(hdr, det.model)
    dm = model(det.model)
    wide = []
    for tt, tf, _, _ in signature:
        col, tf = dm.get(tt.strip().lower()), tf.strip()
        digits = tf[:len(tf) - len(tf.lstrip("0123456789"))]
        if col is not None and col.is_string and tf[len(digits):len(digits) + 1] == "A" \
                and int(digits or 1) > col.width:
            wide.append((tt.strip(), tf, col.width))
    return det.model, tuple(rep.missing), tuple(rep.mistyped), tuple(rep.extra), tuple(wide)


def inspect_file(path: str, plan_order: int, known: dict | None = None) -> InputFile:
    """Header checks, data model, content hash and footprint of one input file.

    ``known``: the manifest entry of this path; if size and mtime match, its hash is reused.
    Raises :class:`Reject` naming the file and the reason."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise Reject(f"{path}: cannot read ({exc.strerror})") from None
    f = InputFile(path, st.st_size, st.st_mtime_ns)
    try:
        lay = layout(path)
        check_complete(lay)
    except FitsLayoutError as exc:
        raise Reject(str(exc)) from None
    except OSError as exc:
        raise Reject(f"{path}: cannot read ({exc.strerror})") from None
    h = lay.header
    sig = tuple((str(h.get(f"TTYPE{i}", "")), str(h.get(f"TFORM{i}", "")), h.get(f"TDIM{i}"), h.get(f"TZERO{i}"))
                for i in range(1, int(h.get("TFIELDS", 0)) + 1))
    try:
        model_name, missing, mistyped, extra, wide = _classify(sig)
    except ValueError as exc:
        raise Reject(f"{path}: {exc}") from None
    if missing:
        raise Reject(f"{path}: missing required column(s) {', '.join(missing)} of {model_name}")
    if mistyped:
        n, exp, got = mistyped[0]
        raise Reject(f"{path}: column {n} is {got}, {model_name} requires {exp}")
    if wide:
        n, tform, width = wide[0]
        raise Reject(f"{path}: column {n} is {tform}, the {model_name} model allows at most {width} "
                     f"characters")
    if extra:
        f.notes.append(f"{path}: extra columns not in {model_name} are not ingested: {', '.join(extra)}")
    f.model = model_name
    f.rows = lay.nrows
    if known and known.get("size") == f.size and known.get("mtime_ns") == f.mtime_ns and known.get("hash"):
        f.hash = known["hash"]
    # otherwise the write task that reads the file computes its hash from the same bytes
    m = _BRICK_RE.search(os.path.basename(path))
    name = m.group(1).lower() if m else str(h.get("BRICKNAM", "")).strip().lower()
    if model_name.endswith("tractor") and name:
        b = brick_from_name(name)
        if b is not None:
            f.brickid = int(b["brickid"])
            f.footprint = brick_footprint(b)
            f.histogram = brick_histogram(b, f.rows, plan_order) if f.rows else {}
            f.bricks = {f.brickid: f.rows}
            return f
    exact_footprint(f, plan_order, lay)
    return f


def exact_footprint(f: InputFile, plan_order: int, lay=None) -> None:
    """Footprint, histogram and per-brick counts of a file from its ra/dec/brickid columns."""
    try:
        lay = lay or layout(f.path)
        ra, dec, bid = [], [], []
        for raw in iter_raw(lay, 200_000):
            d = columns_from_raw(lay, raw, columns={"ra", "dec", "brickid"})
            ra.append(d["ra"]), dec.append(d["dec"]), bid.append(d["brickid"])
    except FitsLayoutError as exc:
        raise Reject(str(exc)) from None
    ra = np.concatenate(ra) if ra else np.zeros(0)
    dec = np.concatenate(dec) if dec else np.zeros(0)
    bid = np.concatenate(bid) if bid else np.zeros(0, np.int32)
    good = good_positions(ra, dec)
    hp = healpix29(ra[good], dec[good])
    f.exact = True
    f.footprint = np.unique(hp >> shift(FOOTPRINT_ORDER))
    cells, cnt = np.unique(hp >> shift(plan_order), return_counts=True)
    f.histogram = {int(c): float(k) for c, k in zip(cells, cnt)}
    b, bcnt = np.unique(bid[good], return_counts=True)
    f.bricks = {int(x): int(k) for x, k in zip(b, bcnt)}
    f.brickid = None
    box = sweep_box(f.path) if f.model.endswith("-sweep") else None
    if box is not None:
        outside = int((~in_box(ra[good], dec[good], box)).sum())
        if outside:
            f.notes.append(f"{f.path}: {outside} row(s) outside the box its name gives "
                           f"(RA {box[0]:g}..{box[1]:g}, Dec {box[2]:g}..{box[3]:g}); its bricks "
                           f"cannot be shared with other sweep files")
            box = None
    f.box = box


def inspect_all(paths: list[str], plan_order: int, known: dict, workers: int = 4,
                progress=None) -> tuple[list[InputFile], list[tuple[str, str]]]:
    """Inspect files in threads; returns (good files, rejects as (path, message))."""
    good, rejects = [], []

    def one(p):
        try:
            return inspect_file(p, plan_order, known.get(p)), None
        except Reject as exc:
            return None, (p, str(exc))

    with ThreadPoolExecutor(max(1, workers)) as ex:
        for res, rej in ex.map(one, paths):
            if rej:
                rejects.append(rej)
            else:
                good.append(res)
            if progress is not None:
                progress.update(1)
    return good, rejects


# ---------------------------------------------------------------- partitioning

def plan_leaves(hist: dict[int, float], plan_order: int, threshold: int, highest_order: int,
                existing: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """Leaf pixels (order, npix): existing leaves are kept (split into children when their
    estimated rows exceed ``threshold``); new sky gets pixels split top-down while above
    ``threshold`` down to ``highest_order``. ``hist`` is rows per cell at ``plan_order``."""
    cells = np.array(sorted(hist), dtype=np.int64)
    counts = np.array([hist[c] for c in cells], dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(counts)])

    def count(order: int, npix: int) -> float:
        s = 2 * (plan_order - order)
        lo, hi = npix << s, (npix + 1) << s
        i, j = np.searchsorted(cells, [lo, hi])
        return float(csum[j] - csum[i])

    def nonempty(order: int, npix: int) -> bool:
        s = 2 * (plan_order - order)
        lo, hi = npix << s, (npix + 1) << s
        i, j = np.searchsorted(cells, [lo, hi])
        return j > i

    ex_ranges = sorted(pixel_range(k, n) for k, n in existing)
    ex_lo = np.array([r[0] for r in ex_ranges], dtype=np.int64)

    def contains_existing(order: int, npix: int) -> bool:
        lo, hi = pixel_range(order, npix)
        i = np.searchsorted(ex_lo, lo)
        return i < len(ex_lo) and ex_lo[i] < hi

    out: list[tuple[int, int]] = []

    def split(order: int, npix: int) -> None:
        if count(order, npix) > threshold and order < highest_order:
            for c in range(4):
                if nonempty(order + 1, 4 * npix + c):
                    split(order + 1, 4 * npix + c)
        else:
            out.append((order, npix))

    def new_sky(order: int, npix: int) -> None:
        if (order, npix) in existing:
            split(order, npix)
            return
        if contains_existing(order, npix):
            for c in range(4):
                new_sky(order + 1, 4 * npix + c)
            return
        if not nonempty(order, npix):
            return
        if count(order, npix) <= threshold or order >= highest_order:
            out.append((order, npix))
        else:
            for c in range(4):
                new_sky(order + 1, 4 * npix + c)

    for base in range(12):
        new_sky(0, base)
    return sorted(out, key=lambda p: pixel_range(*p)[0])
