"""Sky regions for spatial search (cone, box, polygon), their spherical geometry, and their
cover by HEALPix order-29 index ranges that prune files and row groups."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from legacylake.errors import UserError

#: Approximate size of a HEALPix cell at order 0, deg (sqrt(4 pi / 12) rad).
_CELL0_DEG = math.degrees(math.sqrt(4 * math.pi / 12))
HPX_COL = "_healpix_29"


#: Most ranges kept for row-group pruning (coarser coverage beyond that).
_MAX_RANGES = 4096


#: Row-group pruning uses coverage cells this many orders finer than Region.depth() (cells
#: ~1/32 of the region's size): a leaf's row groups are small runs of the _healpix_29 curve,
#: so coarse cells would keep row groups that lie wholly outside the region.
_FINER = 3


@dataclass(frozen=True)
class Region:
    """A sky region: kind ``cone`` (ra, dec, radius), ``box`` (ra1, ra2, dec1, dec2) or
    ``polygon`` (vertices as (n, 2) ra, dec)."""

    kind: str
    params: tuple = field(default_factory=tuple)

    # --- construction with validation (UserError on bad input)
    @staticmethod
    def cone(ra: float, dec: float, radius: float) -> "Region":
        ra, dec, radius = float(ra), float(dec), float(radius)
        _check_dec(dec)
        if not np.isfinite(ra):
            raise UserError(f"cone: ra {ra} is not finite")
        if not radius > 0 or not np.isfinite(radius):
            raise UserError(f"cone: radius must be > 0 deg (got {radius})")
        if radius >= 180:
            raise UserError(f"cone: radius must be < 180 deg (got {radius})")
        return Region("cone", (ra % 360.0, dec, radius))

    @staticmethod
    def box(ra1: float, ra2: float, dec1: float, dec2: float) -> "Region":
        ra1, ra2, dec1, dec2 = map(float, (ra1, ra2, dec1, dec2))
        for d in (dec1, dec2):
            _check_dec(d)
        if not (np.isfinite(ra1) and np.isfinite(ra2)):
            raise UserError("box: ra1 and ra2 must be finite")
        if dec1 >= dec2:
            raise UserError(f"box: need dec1 < dec2 (got {dec1} >= {dec2})")
        full = abs(ra2 - ra1) >= 360.0
        a, b = ra1 % 360.0, ra2 % 360.0
        if full or a == b:
            a, b = 0.0, 360.0
        return Region("box", (a, b, dec1, dec2))

    @staticmethod
    def polygon(vertices) -> "Region":
        v = np.asarray(vertices, dtype=np.float64)
        if v.ndim == 1:
            if len(v) % 2:
                raise UserError("polygon: need pairs of ra dec")
            v = v.reshape(-1, 2)
        if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
            raise UserError("polygon: need at least 3 vertices (ra dec pairs)")
        if not np.all(np.isfinite(v)):
            raise UserError("polygon: vertices must be finite")
        for d in v[:, 1]:
            _check_dec(d)
        v = v.copy()
        v[:, 0] %= 360.0
        c, cosr = _cap(v)
        if not np.isfinite(cosr) or cosr <= 1e-6:
            raise UserError("polygon: must fit within a hemisphere (vertices too far apart)")
        return Region("polygon", tuple((float(a), float(b)) for a, b in v))

    # --- exact row test (numpy)
    def contains(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Boolean array: rows inside the region (exact)."""
        ra = np.asarray(ra, dtype=np.float64)
        dec = np.asarray(dec, dtype=np.float64)
        if self.kind == "cone":
            ra0, dec0, r = self.params
            return ang_sep(ra, dec, ra0, dec0) <= r
        if self.kind == "box":
            a, b, d1, d2 = self.params
            ra = np.mod(ra, 360.0)
            in_dec = (dec >= d1) & (dec <= d2)
            if b == 360.0 and a == 0.0:
                return in_dec
            in_ra = (ra >= a) & (ra <= b) if a <= b else (ra >= a) | (ra <= b)
            return in_dec & in_ra
        return _winding(np.asarray(self.params), ra, dec)

    # --- exact row test (SQL text over columns ra, dec)
    def sql_predicate(self, ra: str = "ra", dec: str = "dec") -> str:
        if self.kind == "cone":
            ra0, dec0, r = self.params
            return f"ang_sep({ra}, {dec}, {ra0!r}, {dec0!r}) <= {r!r}"
        if self.kind == "box":
            a, b, d1, d2 = self.params
            dp = f"{dec} BETWEEN {d1!r} AND {d2!r}"
            if a == 0.0 and b == 360.0:
                return dp
            r = f"((({ra} % 360.0) + 360.0) % 360.0)"
            rp = f"{r} BETWEEN {a!r} AND {b!r}" if a <= b else f"({r} >= {a!r} OR {r} <= {b!r})"
            return f"({dp} AND {rp})"
        c, cosr = _cap(np.asarray(self.params))
        c = [float(x) for x in c]
        terms = []
        px = f"(cos(radians({dec})) * cos(radians({ra})))"
        py = f"(cos(radians({dec})) * sin(radians({ra})))"
        pz = f"sin(radians({dec}))"
        for A, B in _edges(np.asarray(self.params)):
            C = [float(x) for x in np.cross(A, B)]
            AB = float(A @ B)
            A, B = [float(x) for x in A], [float(x) for x in B]
            terms.append(
                f"atan2({C[0]!r} * {px} + {C[1]!r} * {py} + {C[2]!r} * {pz}, "
                f"{AB!r} - ({A[0]!r} * {px} + {A[1]!r} * {py} + {A[2]!r} * {pz}) * "
                f"({B[0]!r} * {px} + {B[1]!r} * {py} + {B[2]!r} * {pz}))")
        cap = f"{c[0]!r} * {px} + {c[1]!r} * {py} + {c[2]!r} * {pz} >= {cosr!r}"
        return f"({cap} AND abs({' + '.join(terms)}) > pi())"

    # --- HEALPix coverage
    def coverage(self, depth: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(depths, ipix) of HEALPix cells covering the region (a superset), MOC-style."""
        import astropy.units as u
        import cdshealpix.nested as hn
        from astropy.coordinates import Latitude, Longitude

        d = self.depth() if depth is None else depth
        if self.kind == "cone":
            ra0, dec0, r = self.params
            ipix, dep, _ = hn.cone_search(Longitude(ra0 * u.deg), Latitude(dec0 * u.deg), r * u.deg, d)
            return dep.astype(np.int64), ipix.astype(np.int64)
        if self.kind == "box":
            a, b, d1, d2 = self.params
            # cdshealpix 0.9 zone_search with lon_min exactly 0 (and lon_max < 180) misses cells
            # inside the zone: start such zones a hair west of RA 0 instead (a superset)
            zones = [(0.0, 180.0), (180.0, 0.0)] if (a == 0.0 and b == 360.0) else [(a or 360.0 - 1e-7, b)]
            deps, pixs = [], []
            for lo, hi in zones:
                ipix, dep, _ = hn.zone_search(Longitude(lo * u.deg), Latitude(d1 * u.deg),
                                              Longitude(hi * u.deg), Latitude(d2 * u.deg), d)
                deps.append(dep.astype(np.int64))
                pixs.append(ipix.astype(np.int64))
            dep, ipix = np.concatenate(deps), np.concatenate(pixs)
            # the zone's upper edges are exclusive and rows may sit exactly on them: add neighbours
            return _dilate(dep, ipix, d)
        v = np.asarray(self.params)
        try:
            ipix, dep, _ = hn.polygon_search(Longitude(v[:, 0] * u.deg), Latitude(v[:, 1] * u.deg), d)
        except Exception as exc:  # cdshealpix rejects self-intersecting / degenerate polygons
            raise UserError(f"polygon: cdshealpix cannot cover it ({exc})") from None
        return _dilate(dep.astype(np.int64), ipix.astype(np.int64), d)

    def size_deg(self) -> float:
        """A characteristic size of the region, deg."""
        if self.kind == "cone":
            return 2 * self.params[2]
        if self.kind == "box":
            a, b, d1, d2 = self.params
            w = (b - a) % 360.0 or 360.0
            return max(d2 - d1, w * max(math.cos(math.radians(max(abs(d1), abs(d2)))), 0.01))
        v = np.asarray(self.params)
        c, cosr = _cap(v)
        return 2 * float(np.degrees(np.arccos(np.clip(cosr, -1, 1))))

    def depth(self) -> int:
        """Coverage depth: cells about a quarter of the region's size (orders 0..20)."""
        size = max(self.size_deg(), 1e-7)
        return int(np.clip(math.ceil(math.log2(4 * _CELL0_DEG / size)), 0, 20))


def _check_dec(dec: float) -> None:
    if not (np.isfinite(dec) and -90.0 <= dec <= 90.0):
        raise UserError(f"dec {dec} outside [-90, 90] deg")


def ang_sep(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Angular separation (haversine), deg."""
    r1, d1, r2, d2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (ra1, dec1, ra2, dec2))
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.minimum(1.0, np.sqrt(h))))


def _unit(ra, dec) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)


def polygon_area_deg2(ra, dec) -> float:
    """Area (deg^2) of the spherical polygon with great-circle edges through the vertices
    (``ra``, ``dec`` in deg, in order, either orientation): the sum of the signed spherical
    excesses of the fan of triangles from the first vertex (Van Oosterom and Strackee), taken as
    the smaller of the two sides the boundary divides the sphere into."""
    v = _unit(np.asarray(ra, np.float64), np.asarray(dec, np.float64))
    a, b, c = v[0], v[1:-1], v[2:]
    num = np.einsum("j,ij->i", a, np.cross(b, c))
    den = 1.0 + b @ a + np.einsum("ij,ij->i", b, c) + c @ a
    area = abs(float(np.sum(2.0 * np.arctan2(num, den))))
    area = min(area, 4.0 * math.pi - area)
    return area * (180.0 / math.pi) ** 2


def _edges(v: np.ndarray):
    u = _unit(v[:, 0], v[:, 1])
    return [(u[i], u[(i + 1) % len(u)]) for i in range(len(u))]


def _cap(v: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre unit vector, cos radius) of a cap holding the polygon (radius + 1e-9 deg margin)."""
    u = _unit(v[:, 0], v[:, 1])
    c = u.sum(axis=0)
    norm = np.linalg.norm(c)
    if norm < 1e-12:
        return c, float("nan")
    c = c / norm
    rho = np.degrees(np.arccos(np.clip(u @ c, -1, 1))).max()
    return c, float(np.cos(np.radians(min(rho + 1e-9, 180.0))))


def _winding(v: np.ndarray, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Spherical point-in-polygon (great-circle edges): |sum of edge angles seen from P| > pi,
    within the polygon's cap (which rules out the mirror image around the antipode)."""
    p = _unit(ra, dec)
    c, cosr = _cap(v)
    total = np.zeros(len(p))
    for A, B in _edges(v):
        total += np.arctan2(p @ np.cross(A, B), A @ B - (p @ A) * (p @ B))
    return (np.abs(total) > np.pi) & (p @ c >= cosr)


def _dilate(dep: np.ndarray, ipix: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Add the neighbours (at ``depth``) of the boundary cells."""
    import cdshealpix.nested as hn

    edge = ipix[dep == depth]
    if len(edge) == 0:
        return dep, ipix
    nb = hn.neighbours(edge.astype(np.uint64), depth).astype(np.int64).ravel()
    nb = np.unique(nb[nb >= 0])
    return np.concatenate([dep, np.full(len(nb), depth)]), np.concatenate([ipix, nb])


def ranges29(dep: np.ndarray, ipix: np.ndarray) -> np.ndarray:
    """Merged half-open ``_healpix_29`` ranges [lo, hi) (shape (n, 2)) of HEALPix cells."""
    if len(ipix) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    shift = 2 * (29 - dep.astype(np.int64))
    lo = ipix.astype(np.int64) << shift
    hi = (ipix.astype(np.int64) + 1) << shift
    order = np.argsort(lo)
    lo, hi = lo[order], hi[order]
    # merge overlapping / touching ranges
    run_hi = np.maximum.accumulate(hi)
    start = np.r_[True, lo[1:] > run_hi[:-1]]
    idx = np.flatnonzero(start)
    out_lo = lo[idx]
    out_hi = np.maximum.reduceat(hi, idx)
    return np.stack([out_lo, out_hi], axis=1)


def overlaps(ranges: np.ndarray, lo: np.ndarray, hi_incl: np.ndarray) -> np.ndarray:
    """Which closed intervals [lo, hi_incl] overlap any half-open range of ``ranges`` (sorted)."""
    if len(ranges) == 0:
        return np.zeros(len(lo), dtype=bool)
    # the first range whose end is > lo must start at <= hi
    j = np.searchsorted(ranges[:, 1], np.asarray(lo), side="right")
    ok = j < len(ranges)
    out = np.zeros(len(lo), dtype=bool)
    out[ok] = ranges[j[ok], 0] <= np.asarray(hi_incl)[ok]
    return out


def region_ranges(region: Region, finer: int = _FINER) -> np.ndarray:
    """``_healpix_29`` ranges covering ``region`` with cells ``finer`` orders below
    :meth:`Region.depth` (coarsened until at most _MAX_RANGES)."""
    d = min(region.depth() + finer, 20)
    while True:
        r = ranges29(*region.coverage(d))
        if len(r) <= _MAX_RANGES or d == 0:
            return r
        d -= 1
