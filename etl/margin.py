"""Margin catalogs: for each partition, the rows of the other partitions near its edge.

A row belongs to the margin of partition Q when its cell at the *margin order* is one of the
cells just outside Q (edge or corner neighbours of Q's cells at that order): the rule of
hats-import. The margin order is the deepest order whose smallest cell (estimated, as hats
does, as the mean size / 1.6) is still at least the margin threshold wide, so every row
within the threshold of Q is in that ring; rows a little further away may be too, which is
harmless for a crossmatch (lsdb adds them to the right partition's rows).

Only rows in the cells on the *inside* edge of their own partition can be in another
partition's margin, so write tasks look at those rows only (:func:`route_edge_rows`), and an
incremental build reads just the edge row groups of partitions it does not rewrite
(:func:`legacylake.etl.margin_write.read_ring_rows`).
"""

from __future__ import annotations

import math

import numpy as np

from legacylake.errors import UserError

from legacylake.etl.healpix import ORDER29, shift

#: Default margin threshold, arcsec (lsdb's crossmatch radius may be up to this).
DEFAULT_MARGIN_ARCSEC = 10.0
#: hats' estimate of (mean cell size) / (smallest distance across a cell).
_MEAN_TO_MIN = 1.6


def margin_order(arcsec: float) -> int:
    """Deepest order whose cells are at least ``arcsec`` across (hats' ``margin2order``)."""
    mean_rad = math.radians(arcsec * _MEAN_TO_MIN / 3600.0)
    return int(min(ORDER29, max(0, math.floor(math.log2(math.sqrt(math.pi / 3) / mean_rad)))))


def check_margin(arcsec: float, highest_order: int) -> int:
    """The margin order for ``arcsec``; UserError if it is not deeper than every partition."""
    if not (arcsec > 0 and math.isfinite(arcsec)):
        raise UserError(f"--margin-arcsec must be a positive number of arcsec (got {arcsec})")
    m = margin_order(arcsec)
    if m <= highest_order:
        raise UserError(f"--margin-arcsec {arcsec:g} needs cells of order {m}, not deeper than the "
                        f"partitions (--highest-order {highest_order}): use a margin below "
                        f"{min_margin_for(highest_order):g} arcsec or a lower --highest-order")
    return m


def min_margin_for(highest_order: int) -> float:
    """Largest threshold (arcsec) whose margin order is deeper than ``highest_order``."""
    size = math.degrees(math.sqrt(math.pi / 3) / 2 ** (highest_order + 1)) * 3600.0
    return size / _MEAN_TO_MIN


def _compact(v: np.ndarray) -> np.ndarray:
    """Even bits of each uint64 packed into the low half (nested index -> one coordinate)."""
    v = v & np.uint64(0x5555555555555555)
    v = (v | (v >> np.uint64(1))) & np.uint64(0x3333333333333333)
    v = (v | (v >> np.uint64(2))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    v = (v | (v >> np.uint64(4))) & np.uint64(0x00FF00FF00FF00FF)
    v = (v | (v >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
    v = (v | (v >> np.uint64(16))) & np.uint64(0x00000000FFFFFFFF)
    return v


def edge_mask(hp: np.ndarray, order: int, npix: int, m: int) -> np.ndarray:
    """True for rows (order-29 indices inside pixel (order, npix)) whose cell at order ``m``
    lies on the pixel's inside edge (the only cells with a neighbour outside the pixel)."""
    d = m - order
    if d <= 0:
        return np.ones(len(hp), dtype=bool)
    local = ((np.asarray(hp, np.int64) >> shift(m)) - (int(npix) << (2 * d))).astype(np.uint64)
    x = _compact(local)
    y = _compact(local >> np.uint64(1))
    top = np.uint64((1 << d) - 1)
    return (x == 0) | (y == 0) | (x == top) | (y == top)


def ring(order: int, npix: int, m: int) -> np.ndarray:
    """Sorted cells at order ``m`` just outside pixel (order, npix) (edges and corners)."""
    import cdshealpix.nested as chp

    edges, corners = chp.external_neighbours(np.array([npix], dtype=np.uint64), order, m - order)
    cells = np.concatenate([np.asarray(edges[0], np.int64), np.asarray(corners[0], np.int64)])
    return np.unique(cells[cells >= 0])


class PartitionMap:
    """The partitions of a catalog as sorted, disjoint order-29 ranges."""

    def __init__(self, leaves):
        leaves = sorted(leaves, key=lambda p: int(p[1]) << shift(int(p[0])))
        self.leaves = [(int(k), int(n)) for k, n in leaves]
        self.lo = np.array([n << shift(k) for k, n in self.leaves], dtype=np.int64)
        self.hi = np.array([(n + 1) << shift(k) for k, n in self.leaves], dtype=np.int64)
        self.index = {p: i for i, p in enumerate(self.leaves)}

    def __len__(self) -> int:
        return len(self.leaves)

    def owner(self, hp29: np.ndarray) -> np.ndarray:
        """Index of the partition holding each order-29 index, -1 where none does."""
        hp29 = np.asarray(hp29, np.int64)
        i = np.searchsorted(self.lo, hp29, side="right") - 1
        ok = (i >= 0) & (hp29 >= 0)
        ok[ok] = hp29[ok] < self.hi[i[ok]]
        return np.where(ok, i, -1)

    def overlaps(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """For each half-open order-29 range, True if it meets any partition."""
        i = np.searchsorted(self.hi, np.asarray(lo, np.int64), side="right")
        ok = i < len(self.lo)
        ok[ok] = self.lo[i[ok]] < np.asarray(hi, np.int64)[ok]
        return ok


def route_edge_rows(hp: np.ndarray, own: tuple[int, int], pmap: PartitionMap, m: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of partition ``own`` (order-29 indices ``hp``) that belong to other partitions'
    margins: (row indices, target partition indices), one pair per (row, target)."""
    import cdshealpix.nested as chp

    rows = np.flatnonzero(edge_mask(hp, own[0], own[1], m))
    if not len(rows):
        return rows, rows
    cells = np.asarray(hp, np.int64)[rows] >> shift(m)
    nb = np.asarray(chp.neighbours(cells.astype(np.uint64), m), dtype=np.int64)   # (n, 9), -1: none
    tgt = pmap.owner(np.where(nb >= 0, nb << shift(m), -1))
    me = pmap.index[(int(own[0]), int(own[1]))]
    r = np.repeat(rows, nb.shape[1])
    t = tgt.ravel()
    keep = (t >= 0) & (t != me)
    key = np.unique(r[keep].astype(np.int64) * len(pmap) + t[keep])
    return key // len(pmap), key % len(pmap)


def ring_ranges(cells: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Merged half-open order-29 ranges of sorted cells at order ``m``."""
    if not len(cells):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    s = shift(m)
    brk = np.flatnonzero(np.diff(cells) != 1) + 1
    starts = cells[np.r_[0, brk]]
    ends = cells[np.r_[brk - 1, len(cells) - 1]] + 1
    return starts << s, ends << s


def in_cells(hp: np.ndarray, cells: np.ndarray, m: int) -> np.ndarray:
    """True for order-29 indices whose order-``m`` cell is in the sorted ``cells``."""
    c = np.asarray(hp, np.int64) >> shift(m)
    i = np.searchsorted(cells, c)
    ok = i < len(cells)
    ok[ok] = cells[i[ok]] == c[ok]
    return ok
