"""``legacylake etl verify``: check a catalog's current snapshot against its manifest and
the HATS layout.

Checks: per-brick row counts equal the manifest's; no duplicate (release, brickid, objid);
every row inside its partition's pixel and rows sorted by ``_healpix_29``; partition files,
``partition_info.csv``, ``_metadata`` and ``hats.properties`` agree with the manifest; the
margin catalog holds exactly the rows of the other partitions in each partition's margin
ring (recomputed from the ``_healpix_29`` of every row).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq

from legacylake.catalogs_schema.sweeps import disjoint
from legacylake.etl import layout
from legacylake.etl import manifest as mf
from legacylake.etl.healpix import pixel_range


@dataclass
class VerifyReport:
    catalog_dir: str
    problems: list = field(default_factory=list)
    rows: int = 0
    partitions: int = 0
    bricks: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"catalog {self.catalog_dir}: {self.rows:,} rows, {self.partitions} partitions, "
               f"{self.bricks} bricks"]
        out += [f"MISMATCH: {p}" for p in self.problems]
        out.append("verify: OK" if self.ok else f"verify: FAILED ({len(self.problems)} problem(s))")
        return out


def verify(lake: str, catalog: str, max_problems: int = 50) -> VerifyReport:
    """Verify ``lake/catalog``; problems are listed in the report (nothing raised for them)."""
    from legacylake.etl.upgrade import needs_upgrade

    cat_dir = os.path.abspath(os.path.join(os.fspath(lake), catalog))
    rep = VerifyReport(cat_dir)
    if not os.path.isdir(os.fspath(lake)):
        rep.problems.append(f"{lake}: no such lake")
        return rep
    snap = layout.resolve(cat_dir)
    if snap is None or not os.path.exists(snap.manifest_path):
        rep.problems.append(f"{cat_dir}: no published snapshot with a legacylake manifest"
                            + (" (old single-folder layout: run legacylake etl upgrade)" if needs_upgrade(cat_dir)
                               else " (not built by legacylake etl build)"))
        return rep
    man = mf.read(snap.manifest_path)
    cat = snap.primary
    rep.catalog_dir = f"{cat_dir} (snapshot v{snap.version:06d})"
    parts = {mf.parse_key(k): v for k, v in man["partitions"].items()}
    rep.partitions = len(parts)

    # files on disk vs manifest
    on_disk = set()
    ds = os.path.join(cat, "dataset")
    for root, _, names in os.walk(ds):
        for n in names:
            if n.startswith("Npix=") and n.endswith(".parquet"):
                order = int(os.path.basename(os.path.dirname(root)).split("=")[1])
                on_disk.add((order, int(n[5:-8])))
    for p in sorted(on_disk - set(parts)):
        rep.problems.append(f"partition file {snap.leaf(*p)} is not in the manifest")
    for p in sorted(set(parts) - on_disk):
        rep.problems.append(f"partition {p[0]}/{p[1]} of the manifest has no file")

    # partition_info.csv and _metadata
    try:
        with open(os.path.join(cat, "partition_info.csv")) as fh:
            rows = [l.strip().split(",") for l in fh.read().split("\n")[1:] if l.strip()]
        pinfo = {(int(a), int(b)) for a, b in rows}
        if pinfo != set(parts):
            rep.problems.append(f"partition_info.csv lists {len(pinfo)} partitions, manifest {len(parts)}")
    except OSError:
        rep.problems.append("partition_info.csv is missing")
    try:
        md = pq.read_metadata(os.path.join(ds, "_metadata"))
        md_rows: dict[str, int] = {}
        for i in range(md.num_row_groups):
            rg = md.row_group(i)
            fp = rg.column(0).file_path
            md_rows[fp] = md_rows.get(fp, 0) + rg.num_rows
        for p, v in parts.items():
            rel = os.path.relpath(snap.leaf(*p), ds)
            if md_rows.get(rel, 0) != v["rows"]:
                rep.problems.append(f"_metadata has {md_rows.get(rel, 0)} rows for {rel}, manifest {v['rows']}")
    except OSError:
        rep.problems.append("dataset/_metadata is missing or unreadable")
    try:
        props = dict(l.split("=", 1) for l in open(os.path.join(cat, "hats.properties")).read().splitlines()
                     if "=" in l and not l.startswith("#"))
        total = sum(v["rows"] for v in parts.values())
        if int(props.get("hats_nrows", -1)) != total:
            rep.problems.append(f"hats.properties hats_nrows={props.get('hats_nrows')}, manifest {total}")
    except OSError:
        rep.problems.append("hats.properties is missing")

    # rows: inside their pixel, sorted, per-brick counts, duplicates
    keys, prints = [], []
    brick_counts: dict[int, int] = {}
    margin_expect = _MarginCount(man, parts)
    for p in sorted(set(parts) & on_disk):
        path = snap.leaf(*p)
        try:
            t = pq.read_table(path, columns=_KEY_COLUMNS)
        except Exception as exc:
            rep.problems.append(f"{path}: unreadable ({exc})")
            continue
        hp = t.column("_healpix_29").to_numpy()
        lo, hi = pixel_range(*p)
        rep.rows += t.num_rows
        if t.num_rows != parts[p]["rows"]:
            rep.problems.append(f"{path}: {t.num_rows} rows, manifest {parts[p]['rows']}")
        out = int(((hp < lo) | (hp >= hi)).sum())
        if out:
            rep.problems.append(f"{path}: {out} rows outside pixel Norder={p[0]} Npix={p[1]}")
        if len(hp) > 1 and np.any(np.diff(hp) < 0):
            rep.problems.append(f"{path}: rows not sorted by _healpix_29")
        margin_expect.add(p, hp)
        keys.append(_keys(t))
        prints.append(_fingerprint(t))
        bid = t.column("brickid").to_numpy(zero_copy_only=False).astype(np.int64)
        b, c = np.unique(bid, return_counts=True)
        for bb, cc in zip(b.tolist(), c.tolist()):
            brick_counts[bb] = brick_counts.get(bb, 0) + cc
    primary = None
    if keys:
        k = np.concatenate(keys)
        order = np.argsort(k, kind="stable")
        primary = (k[order], np.concatenate(prints)[order])
        k = primary[0]
        dup = k[1:][k[1:] == k[:-1]]
        if len(dup):
            d = int(dup[0])
            rep.problems.append(f"{len(dup)} duplicate (release, brickid, objid), e.g. "
                                f"({d >> 48}, {(d >> 24) & 0xFFFFFF}, {d & 0xFFFFFF})")
    expected: dict[int, int] = {}
    owners: dict[int, str] = {}
    boxes: dict[int, list] = {}
    for path, e in man["files"].items():
        if e.get("status") != "ingested":
            continue
        box = tuple(e["box"]) if e.get("box") else None
        for b, c in e["bricks"].items():
            b = int(b)
            if b in owners and not all(disjoint(box, other) for other in boxes[b]):
                rep.problems.append(f"brick {b} ingested from two files: {owners[b]} and {path}")
            owners[b] = path
            boxes.setdefault(b, []).append(box)
            expected[b] = expected.get(b, 0) + c
    rep.bricks = len(brick_counts)
    for b in sorted(set(expected) | set(brick_counts)):
        if expected.get(b, 0) != brick_counts.get(b, 0):
            rep.problems.append(f"brick {b}: {brick_counts.get(b, 0)} rows in the catalog, "
                                f"manifest {expected.get(b, 0)} (from {owners.get(b, '?')})")
    if margin_expect.m is not None:
        _check_margin(snap, man, margin_expect, rep, primary)
    del rep.problems[max_problems:]
    return rep


_KEY_COLUMNS = ["_healpix_29", "release", "brickid", "objid", "ra", "dec"]


def _keys(t) -> np.ndarray:
    """(release, brickid, objid) packed in one int64 per row."""
    rel = t.column("release").to_numpy(zero_copy_only=False).astype(np.int64)
    bid = t.column("brickid").to_numpy(zero_copy_only=False).astype(np.int64)
    oid = t.column("objid").to_numpy(zero_copy_only=False).astype(np.int64)
    return (rel << 48) | (bid << 24) | (oid & 0xFFFFFF)


def _fingerprint(t) -> np.ndarray:
    """A per-row int64 from its position bits and ``_healpix_29`` (a margin row must carry
    the same values as the row it copies)."""
    ra = t.column("ra").to_numpy(zero_copy_only=False).astype(np.float64).view(np.int64)
    dec = t.column("dec").to_numpy(zero_copy_only=False).astype(np.float64).view(np.int64)
    return ra ^ (dec * 31) ^ t.column("_healpix_29").to_numpy()


class _MarginCount:
    """Rows each partition's margin must hold, counted from every row's ``_healpix_29``."""

    def __init__(self, man: dict, parts: dict):
        from legacylake.etl.margin import PartitionMap

        self.m = man.get("margin_order")
        self.pmap = PartitionMap(parts) if self.m is not None else None
        self.count = np.zeros(len(parts), dtype=np.int64)

    def add(self, leaf, hp: np.ndarray) -> None:
        from legacylake.etl.margin import route_edge_rows

        if self.m is None:
            return
        _, targets = route_edge_rows(hp, leaf, self.pmap, self.m)
        self.count += np.bincount(targets, minlength=len(self.count))


def _check_margin(snap, man: dict, expect: _MarginCount, rep: VerifyReport, primary=None) -> None:
    from legacylake.etl.margin import in_cells, ring

    if snap.margin is None or not os.path.isdir(snap.margin):
        rep.problems.append(f"{snap.catalog_dir}: the snapshot has no margin catalog")
        return
    listed = {mf.parse_key(k): v for k, v in (man.get("margin_partitions") or {}).items()}
    for i, leaf in enumerate(expect.pmap.leaves):
        want = int(expect.count[i])
        path = snap.margin_leaf(*leaf)
        have = 0
        if os.path.exists(path):
            t = pq.read_table(path, columns=_KEY_COLUMNS)
            hp = t.column("_healpix_29").to_numpy()
            have = t.num_rows
            lo, hi = pixel_range(*leaf)
            if np.any((hp >= lo) & (hp < hi)):
                rep.problems.append(f"{path}: margin rows inside their own partition")
            if not np.all(in_cells(hp, ring(leaf[0], leaf[1], expect.m), expect.m)):
                rep.problems.append(f"{path}: margin rows outside the partition's margin ring")
            k = _keys(t)
            if len(np.unique(k)) != len(k):
                rep.problems.append(f"{path}: duplicate rows in the margin")
            if primary is not None:
                i = np.minimum(np.searchsorted(primary[0], k), len(primary[0]) - 1)
                stale = int(np.sum((primary[0][i] != k) | (primary[1][i] != _fingerprint(t))))
                if stale:
                    rep.problems.append(f"{path}: {stale} margin rows differ from (or are missing in) the catalog")
        if have != want:
            rep.problems.append(f"margin of partition {leaf[0]}/{leaf[1]}: {have} rows, expected {want} "
                                f"(recomputed from the partitions' rows)")
        if listed.get(leaf, 0) != have:
            rep.problems.append(f"margin of partition {leaf[0]}/{leaf[1]}: manifest lists {listed.get(leaf, 0)} "
                                f"rows, file has {have}")
