"""The truth sky: stars, galaxies and quasars drawn per sky cell from a seeded generator.

Cells are the bricks' unique RA/Dec boxes, each split into 8 x 8 sub-cells. A sub-cell's
source count comes from ``default_rng([seed, brickid])``; each source's position and
properties come from a hash of (seed, uid) (:mod:`legacylake.photometry.sim.rng`), so a source is the same
whichever region is asked for. ``uid = brickid << 24 | sub << 16 | k`` (sub 0..63 faint
sub-cells, 64 the cell's bright stars and large galaxies, 65 its star clusters).

Fluxes are AB nanomaggies as they arrive at the telescope (Galactic extinction applied,
``ebv`` given); positions are at epoch 2015.5; proper motions in mas/yr, parallax in mas,
sizes (half-light radius) in arcsec.
"""

from __future__ import annotations

import functools

import numpy as np

from legacylake.catalogs_schema.constants import GAIA_BPRP_RANGE, GAIA_TO_DECAM

from legacylake.catalogs_schema import bricks
from legacylake.catalogs_schema.constants import EXTINCTION_R, NANOMAGGY_ZEROPOINT, WISE_VEGA_TO_AB

from legacylake.photometry.sim.kernels.truth import COLUMNS, MORPHS, truth_columns
from legacylake.photometry.sim.rng import eval_fields, normals, seed_key, uniforms, unit_vectors

NSUB = 8  # sub-cells per cell side
BRIGHT_SUB, CLUSTER_SUB = 64, 65
TRUTH_EPOCH = 2015.5

# Populations: (magnitude band range, cumulative slope alpha of log N(<m), count per deg^2
# at the North Galactic Pole for the default density). Stars use Gaia G, others r.
FAINT_GAL = (17.0, 25.0, 0.33, 80_000.0)
FAINT_QSO = (16.0, 24.5, 0.35, 700.0)
FAINT_STAR = (17.5, 25.0, 0.12, 2_600.0)
BRIGHT_STAR = (9.0, 17.5, 0.30, 160.0)
BRIGHT_GAL = (12.0, 17.0, 0.50, 30.0)
CLUSTER_PROB = 0.004  # star clusters per cell at the pole (x the star-count factor)
#: default truth density at the Galactic pole, per deg^2 (what --density scales)
DEFAULT_DENSITY = FAINT_GAL[3] + FAINT_QSO[3] + FAINT_STAR[3]
#: Gaia extinction A / E(B-V) of G, BP, RP (Casagrande & VandenBerg 2018, a simulation choice):
#: truth Gaia magnitudes are observed ones, reddened with the same ebv as the DECam/WISE fluxes
GAIA_EXTINCTION = {"g": 2.740, "bp": 3.374, "rp": 2.035}


# ICRS -> Galactic rotation (rows: x, y, z of the Galactic frame in ICRS).
_GAL = np.array([[-0.0548755604162154, -0.8734370902348850, -0.4838350155487132],
                 [0.4941094278755837, -0.4448296299600112, 0.7469822444972189],
                 [-0.8676661490190047, -0.1980763734312015, 0.4559837761750669]])

TRUTH_DTYPE = np.dtype([
    ("uid", "i8"), ("ra", "f8"), ("dec", "f8"), ("kind", "i1"), ("morph", "U3"),
    ("sersic", "f4"), ("shape_r", "f4"), ("shape_e1", "f4"), ("shape_e2", "f4"),
    ("flux_g", "f4"), ("flux_r", "f4"), ("flux_i", "f4"), ("flux_z", "f4"),
    ("flux_w1", "f4"), ("flux_w2", "f4"), ("flux_w3", "f4"), ("flux_w4", "f4"),
    ("ebv", "f4"), ("pmra", "f4"), ("pmdec", "f4"), ("parallax", "f4"), ("epoch", "f4"),
    ("in_gaia", "?"), ("gaia_g", "f4"), ("gaia_bp", "f4"), ("gaia_rp", "f4"), ("redshift", "f4"),
])
KIND_NAMES = ("star", "galaxy", "qso")
BANDS = ("g", "r", "i", "z", "w1", "w2", "w3", "w4")


def sin_gal_b(xyz: np.ndarray) -> np.ndarray:
    """sin(Galactic latitude) of (n, 3) ICRS unit vectors."""
    g = _GAL[2]  # element-wise (not BLAS): a source's value must not depend on its neighbours in the array
    return xyz[..., 0] * g[0] + xyz[..., 1] * g[1] + xyz[..., 2] * g[2]


def _sin_gal_b_radec(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """:func:`sin_gal_b` of ``unit_vectors(ra, dec)`` (deg) with the same operations, without
    building the (n, 3) vectors."""
    r, d = np.deg2rad(ra), np.deg2rad(dec)
    c = np.cos(d)
    g = _GAL[2]
    return (c * np.cos(r)) * g[0] + (c * np.sin(r)) * g[1] + np.sin(d) * g[2]


def star_factor(sinb: np.ndarray) -> np.ndarray:
    """Star counts relative to the Galactic pole: rises ~15x towards the plane."""
    return ((1.12) / (np.abs(sinb) + 0.12)) ** 1.2


def ebv_at(xyz: np.ndarray, seed: int, ra: np.ndarray, dec: np.ndarray, sinb: np.ndarray | None = None,
           dense: np.ndarray | None = None) -> np.ndarray:
    """A dust-like E(B-V) field, mag, at unit vectors ``xyz`` = (ra, dec) deg: cosec|b| law
    times a smooth log-normal modulation (``sinb``: sin_gal_b(xyz) if already known; ``dense``:
    the compact points, see :func:`legacylake.photometry.sim.kernels.fields.grid_fields`)."""
    f = eval_fields(ra, dec, seed, [(101, 0.2, 8.0)], dense=dense)[:, 0]
    sinb = sin_gal_b(xyz) if sinb is None else sinb
    return np.minimum(0.018 / (np.abs(sinb) + 0.04) * np.exp(0.35 * f), 3.0)


def _mag_draw(u: np.ndarray, lo, hi, alpha) -> np.ndarray:
    """Inverse CDF of N(<m) ~ 10^(alpha m) on [lo, hi)."""
    a, b = 10.0 ** (alpha * np.asarray(lo)), 10.0 ** (alpha * np.asarray(hi))
    return np.log10(a + u * (b - a)) / alpha


def cells_near(ra1: float, ra2: float, dec1: float, dec2: float, margin: float = 0.0) -> np.ndarray:
    """Brick ids (cells) whose box overlaps [ra1, ra2] x [dec1, dec2] grown by ``margin`` deg.

    ``ra1 > ra2`` wraps through RA 0. Works row by row (cheap for small boxes).
    """
    dec_c, ncol, offset = bricks._rows()  # noqa: SLF001 - the grid's own row table
    d1, d2 = max(dec1 - margin, -90.0), min(dec2 + margin, 90.0)
    r_lo = int(np.clip(np.floor((d1 + 90.125) / 0.25), 0, bricks.NROWS - 1))
    r_hi = int(np.clip(np.floor((d2 + 90.125) / 0.25), 0, bricks.NROWS - 1))
    cosd = np.cos(np.deg2rad(min(max(abs(d1), abs(d2)), 89.99)))
    width = (ra2 - ra1) % 360.0 if ra1 != ra2 else 0.0
    if ra1 > ra2 or (ra1 == 0 and ra2 == 360):
        width = 360.0 if (ra1 == 0 and ra2 == 360) else width
    mra = margin / cosd
    full = width + 2 * mra >= 360.0 or max(abs(d1), abs(d2)) >= 89.9
    out = []
    for row in range(r_lo, r_hi + 1):
        n = int(ncol[row])
        if full or n == 1:
            out.append(offset[row] + np.arange(n) + 1)
            continue
        w = 360.0 / n
        c_lo = int(np.floor((ra1 - mra) / w))
        c_hi = int(np.floor((ra1 + width + mra) / w))
        span = np.arange(c_lo, c_hi + 1)
        cols = np.arange(n) if len(span) >= n else np.sort(span % n)  # distinct: a sort is the unique
        out.append(offset[row] + cols + 1)
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


class CellSources:
    """Positions (and what is needed to draw the rest) of a set of candidate sources."""

    def __init__(self, uid, ra, dec, pop, mlo, mhi, alpha):
        self.uid, self.ra, self.dec = uid, ra, dec
        self.pop, self.mlo, self.mhi, self.alpha = pop, mlo, mhi, alpha

    def take(self, sel) -> "CellSources":
        return CellSources(*(a[sel] for a in (self.uid, self.ra, self.dec, self.pop,
                                              self.mlo, self.mhi, self.alpha)))

    @staticmethod
    def concat(parts: list["CellSources"]) -> "CellSources":
        if not parts:
            z = np.zeros(0)
            return CellSources(z.astype(np.int64), z, z, z.astype(np.int8), z, z, z)
        return CellSources(*(np.concatenate([getattr(p, k) for p in parts])
                             for k in ("uid", "ra", "dec", "pop", "mlo", "mhi", "alpha")))


def _density_scale(density: float | None) -> float:
    return 1.0 if density is None else float(density) / DEFAULT_DENSITY


_CELL_CACHE: dict = {}


def _cell_plan(seed: int, scale: float, cid: int) -> tuple[np.ndarray, np.ndarray]:
    """Geometry, population fractions and counts of one cell (a generator seeded by the cell):
    (ra1, ra2, s1, s2, star fraction, star+galaxy fraction, n bright stars, n bright, RA width
    and sin(dec) height of a sub-cell), sub-cell counts. Cached: neighbouring bricks share cells."""
    ck = (seed, scale, cid)
    hit = _CELL_CACHE.get(ck)
    if hit is not None:
        return hit
    g = bricks.grid()
    i = cid - 1
    ra1, ra2 = float(g["ra1"][i]), float(g["ra2"][i])
    dec1, dec2 = max(float(g["dec1"][i]), -90.0), min(float(g["dec2"][i]), 90.0)
    s1, s2 = np.sin(np.deg2rad(dec1)), np.sin(np.deg2rad(dec2))
    area = (ra2 - ra1) * (s2 - s1) * 180.0 / np.pi
    xyz_c = unit_vectors(np.array([(ra1 + ra2) / 2]), np.array([(dec1 + dec2) / 2]))
    sf = float(star_factor(sin_gal_b(xyz_c))[0])
    lam_s = FAINT_STAR[3] * sf * scale
    lam_g, lam_q = FAINT_GAL[3] * scale, FAINT_QSO[3] * scale
    lam_f = lam_s + lam_g + lam_q
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(cid)])
    counts = rng.poisson(lam_f * area / NSUB**2, NSUB * NSUB)
    nb_star = rng.poisson(BRIGHT_STAR[3] * sf * area)
    nb_gal = rng.poisson(BRIGHT_GAL[3] * area)
    if counts.max(initial=0) >= 65536:
        raise ValueError(f"density too high: {counts.max()} sources in a sub-cell of brick {cid}")
    row = np.array([ra1, ra2, s1, s2, lam_s / lam_f, (lam_s + lam_g) / lam_f, nb_star, nb_star + nb_gal,
                    (ra2 - ra1) / NSUB, (s2 - s1) / NSUB])
    if len(_CELL_CACHE) > 4096:
        _CELL_CACHE.clear()
    _CELL_CACHE[ck] = (row, counts)
    return row, counts


def cell_sources(cellids, seed: int, density: float | None = None, subcell_keep=None,
                 bright: bool = True, faint: bool = True) -> CellSources:
    """Candidate truth sources of cells (brick ids): uid, position, population.

    ``subcell_keep(ra_lo, ra_hi, dec_lo, dec_hi) -> bool array`` restricts the faint
    sub-cells generated (positions of the others are never drawn).
    """
    key = seed_key(seed, 1)
    scale = _density_scale(density)
    cellids = np.asarray(cellids, dtype=np.int64)
    nc = len(cellids)
    # per cell: geometry, densities and counts (a generator seeded by the cell), as before
    C = np.zeros((nc, 10))  # ra1, ra2, s1, s2, lam_s/lam_f, (lam_s+lam_g)/lam_f, nb_star, nb
    counts = np.zeros((nc, NSUB * NSUB), np.int64)
    for c, cid in enumerate(cellids):
        C[c], counts[c] = _cell_plan(int(seed), scale, int(cid))
    parts, order = [], []
    if faint and nc:
        # every (cell, sub-cell) at once, in the order cell, sub-cell, k
        sub = np.tile(np.arange(NSUB * NSUB), nc)
        cix = np.repeat(np.arange(nc), NSUB * NSUB)
        if subcell_keep is not None:
            ra1, s1, wr, ws = C[cix, 0], C[cix, 2], C[cix, 8], C[cix, 9]
            si, sj = sub % NSUB, sub // NSUB
            dlo = np.rad2deg(np.arcsin(np.clip(s1 + sj * ws, -1, 1)))
            dhi = np.rad2deg(np.arcsin(np.clip(s1 + (sj + 1) * ws, -1, 1)))
            ok = subcell_keep(ra1 + si * wr, ra1 + (si + 1) * wr, dlo, dhi)
            sub, cix = sub[ok], cix[ok]
        n = counts[cix, sub]
        if n.sum():
            s_of = np.repeat(sub, n)
            c_of = np.repeat(cix, n)
            k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
            uid = (cellids[c_of] << 24) | (s_of.astype(np.int64) << 16) | k
            u = uniforms(uid, key, 0, 3)
            Cs = np.take(C, c_of, axis=0)
            ra = Cs[:, 0] + (s_of % NSUB + u[:, 0]) * Cs[:, 8]
            dec = np.rad2deg(np.arcsin(np.clip(Cs[:, 2] + (s_of // NSUB + u[:, 1]) * Cs[:, 9], -1, 1)))
            pop = np.where(u[:, 2] < Cs[:, 4], 0, np.where(u[:, 2] < Cs[:, 5], 1, 2))
            pops = np.array([FAINT_STAR[:3], FAINT_GAL[:3], FAINT_QSO[:3]], np.float64)  # by pop: lo, hi, alpha
            lo, hi, al = np.take(pops[:, 0], pop), np.take(pops[:, 1], pop), np.take(pops[:, 2], pop)
            parts.append(CellSources(uid, ra, dec, pop.astype(np.int8), lo, hi, al))
            order.append(2 * c_of)
    nb = C[:, 7].astype(np.int64)
    if bright and nb.sum():
        c_of = np.repeat(np.arange(nc), nb)
        k = np.arange(nb.sum()) - np.repeat(np.cumsum(nb) - nb, nb)
        uid = (cellids[c_of] << 24) | (BRIGHT_SUB << 16) | k
        u = uniforms(uid, key, 0, 2)
        Cs = C[c_of]
        ra = Cs[:, 0] + u[:, 0] * (Cs[:, 1] - Cs[:, 0])
        dec = np.rad2deg(np.arcsin(np.clip(Cs[:, 2] + u[:, 1] * (Cs[:, 3] - Cs[:, 2]), -1, 1)))
        pop = np.where(k < Cs[:, 6], 0, 1).astype(np.int8)
        lo = np.where(pop == 0, BRIGHT_STAR[0], BRIGHT_GAL[0])
        hi = np.where(pop == 0, BRIGHT_STAR[1], BRIGHT_GAL[1])
        al = np.where(pop == 0, BRIGHT_STAR[2], BRIGHT_GAL[2])
        parts.append(CellSources(uid, ra, dec, pop, lo, hi, al))
        order.append(2 * c_of + 1)
    cs = CellSources.concat(parts)
    if len(parts) == 2:  # cell by cell, faint before bright (as the sources are numbered)
        key = np.concatenate(order)  # small non-negative ints: int16 keys get numpy's stable radix sort
        cs = cs.take(np.argsort(key.astype(np.int16) if key.max(initial=0) < 32768 else key, kind="stable"))
    return cs


def star_clusters(cellids, seed: int) -> np.ndarray:
    """Star clusters (CLUSTER masks) of cells: structured array of ra, dec, radius (arcsec)."""
    key = seed_key(seed, 2)
    g = bricks.grid()
    cid = np.asarray(cellids, dtype=np.int64)
    i = cid - 1
    xyz = unit_vectors(g["ra"][i], g["dec"][i])
    p = CLUSTER_PROB * star_factor(sin_gal_b(xyz))
    uid = (cid << 24) | (CLUSTER_SUB << 16)
    u = uniforms(uid, key, 0, 5)
    has = u[:, 0] < p
    out = np.zeros(int(has.sum()), dtype=[("ra", "f8"), ("dec", "f8"), ("radius", "f4")])
    out["ra"] = g["ra1"][i][has] + u[has, 1] * (g["ra2"][i][has] - g["ra1"][i][has])
    out["dec"] = np.clip(g["dec1"][i][has] + u[has, 2] * 0.25, -90, 90)
    out["radius"] = 30.0 + 150.0 * u[has, 3]
    return out


def _vega_ab(band: str) -> float:
    return WISE_VEGA_TO_AB[band]


def make_truth(cs: CellSources, seed: int, with_sinb: bool = False, dense: np.ndarray | None = None):
    """All truth properties (TRUTH_DTYPE) of candidate sources ``cs``; with ``with_sinb`` also
    sin(Galactic latitude) of each (computed on the way). ``dense``: the sources close together
    (a brick's), the others being few and scattered (the same values either way)."""
    key = seed_key(seed, 1)
    n = len(cs.uid)
    t = np.zeros(n, dtype=TRUTH_DTYPE)
    t["uid"], t["ra"], t["dec"], t["kind"] = cs.uid, cs.ra, cs.dec, cs.pop
    t["epoch"] = TRUTH_EPOCH
    if n == 0:
        return (t, np.zeros(0)) if with_sinb else t
    u = uniforms(cs.uid, key, 3, 6)  # magnitude, morphology, angle, ellipticity, misc
    z = normals(cs.uid, key, 10, 8)
    m = _mag_draw(u[:, 0], cs.mlo, cs.mhi, cs.alpha)
    sinb = _sin_gal_b_radec(cs.ra, cs.dec)
    ebv = ebv_at(None, seed, cs.ra, cs.dec, sinb, dense=dense)
    t["ebv"] = ebv
    out, morph = truth_columns(np.ascontiguousarray(cs.pop), m, u, z, ebv, *_truth_constants())
    for j, name in enumerate(COLUMNS):
        t[name] = out[:, j]
    t["morph"] = _MORPHS[morph]
    return (t, sinb) if with_sinb else t


_MORPHS = np.array(MORPHS, dtype="U3")


@functools.cache
def _truth_constants() -> tuple:
    """(poly, bprp, vega, ext, zp, gext) arguments of :func:`legacylake.photometry.sim.kernels.truth.truth_kernel`."""
    k = max(len(GAIA_TO_DECAM[b]) for b in ("g", "r", "z"))
    poly = np.zeros((3, k))  # zero-padded high powers: Horner's rule gives the same values
    for j, b in enumerate(("g", "r", "z")):
        poly[j, :len(GAIA_TO_DECAM[b])] = GAIA_TO_DECAM[b]
    return (poly, np.array(GAIA_BPRP_RANGE, np.float64),
            np.array([WISE_VEGA_TO_AB[b] for b in ("w1", "w2", "w3", "w4")], np.float64),
            np.array([EXTINCTION_R[b] for b in BANDS], np.float64), float(NANOMAGGY_ZEROPOINT),
            np.array([GAIA_EXTINCTION[b] for b in ("g", "bp", "rp")], np.float64))


def truth_sky(ra1: float, ra2: float, dec1: float, dec2: float, seed: int = 0,
              density: float | None = None) -> np.ndarray:
    """Truth sources with ra1 <= ra < ra2, dec1 <= dec < dec2 (deg; ra1 > ra2 wraps), as a
    TRUTH_DTYPE structured array: the same sources whatever region is asked."""
    cells = cells_near(ra1, ra2, dec1, dec2)
    cs = cell_sources(cells, seed, density)
    ra = np.mod(cs.ra, 360.0)
    in_ra = (ra >= ra1) & (ra < ra2) if ra1 <= ra2 else (ra >= ra1) | (ra < ra2)
    sel = in_ra & (cs.dec >= dec1) & (cs.dec < dec2)
    return make_truth(cs.take(sel), seed)
