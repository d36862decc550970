"""A realistic synthetic Legacy Surveys sky: truth, per-brick Tractor catalogs, external catalogs.

Python API::

    from legacylake.photometry.sim.catalog import truth_sky, simulate_brick, write_bricks, write_external
    t = truth_sky(150.0, 150.5, 2.0, 2.5, seed=0)        # truth sources (sky.TRUTH_DTYPE)
    cat = simulate_brick("1501p020", release="dr9")      # structured array, dr9-tractor columns
    paths = write_bricks("out", ["1501p020"], "dr9", seed=0)   # tractor/150/tractor-1501p020.fits
    write_external("gaia.parquet", "gaia", (150, 150.5, 2, 2.5), seed=0)

Truth generation (:mod:`legacylake.photometry.sim.sky`) is separate from the catalog "measurement"
(:mod:`legacylake.photometry.sim.measure`), so image rendering can use the same truth.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Sequence

import numpy as np

from legacylake.catalogs_schema import bricks, model
from legacylake.catalogs_schema.constants import (
    APERTURE_RADII_OPTICAL_ARCSEC, APERTURE_RADII_WISE_ARCSEC, DCHISQ_MODELS, WISE_VEGA_TO_AB)

from legacylake.photometry.model.selection import select_type
from legacylake.photometry.sim.fitswriter import write_blocks
from legacylake.photometry.sim.measure import measure_brick, simulate_brick
from legacylake.photometry.sim.records import catalog_dtype
from legacylake.photometry.sim.refstars import gaia_measure, gaia_source_id, tycho_only
from legacylake.photometry.sim.rng import normals, seed_key, uniforms
from legacylake.photometry.sim.sky import DEFAULT_DENSITY, TRUTH_DTYPE, truth_sky

__all__ = ["truth_sky", "simulate_brick", "write_bricks", "write_external", "brick_path",
           "bricks_for_box", "random_bricks", "select_type", "catalog_dtype", "TRUTH_DTYPE",
           "DEFAULT_DENSITY", "gaia_catalog", "sdss_catalog"]


def brick_path(outdir: str | os.PathLike, brickname: str) -> str:
    """``<outdir>/tractor/<AAA>/tractor-<brick>.fits``."""
    return os.path.join(os.fspath(outdir), "tractor", brickname[:3], f"tractor-{brickname}.fits")


def bricks_for_box(ra1: float, ra2: float, dec1: float, dec2: float) -> list[str]:
    """Names of the bricks overlapping the box (deg; ra1 > ra2 wraps), in brickid order."""
    ids = bricks.bricks_in_box(ra1, ra2, dec1, dec2)
    return [str(n) for n in bricks.grid()["brickname"][np.sort(ids) - 1]]


def random_bricks(n: int, seed: int = 0, dec_range: tuple[float, float] = (-20.0, 80.0)) -> list[str]:
    """``n`` distinct bricks drawn at random (seeded) within a DR9-like Dec range, brickid order."""
    g = bricks.grid()
    ok = np.flatnonzero((g["dec"] >= dec_range[0]) & (g["dec"] <= dec_range[1]))
    if n > len(ok):
        raise ValueError(f"only {len(ok)} bricks in Dec {dec_range}, asked for {n}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 424242])
    pick = np.sort(rng.choice(ok, size=n, replace=False))
    return [str(x) for x in g["brickname"][pick]]


def _header_cards(release_id: int | None, brickname: str, release: str, seed: int, density,
                  b: dict | None = None) -> list[tuple]:
    b = bricks.brick(brickname) if b is None else b
    cards = [("BRICKNAM", brickname, "brick name"), ("BRICKID", int(b["brickid"]), "brick id"),
             ("RAMIN", float(b["ra1"])), ("RAMAX", float(b["ra2"])),
             ("DECMIN", float(b["dec1"])), ("DECMAX", float(b["dec2"])),
             ("SIMULATD", True, "legacylake synthetic sky, not survey data"),
             ("SIMSEED", int(seed), "simulation seed"),
             ("SIMDENS", float(density if density is not None else DEFAULT_DENSITY), "truth density /deg2 at the NGP")]
    if release_id is not None:  # written when the brick has rows
        cards.insert(0, ("RELEASE", int(release_id)))
    for i, name in enumerate(DCHISQ_MODELS[release]):
        cards.append((f"DCHISQ_{i}", name, "dchisq model"))
    for i, r in enumerate(APERTURE_RADII_OPTICAL_ARCSEC):
        cards.append((f"APRAD{i}", float(r), "aperture radius, arcsec"))
    if release == "dr9":
        for i, r in enumerate(APERTURE_RADII_WISE_ARCSEC):
            cards.append((f"WAPRAD{i}", float(r), "WISE aperture radius, arcsec"))
    for i, band in enumerate(("w1", "w2", "w3", "w4"), 1):
        cards.append((f"WISEAB{i}", float(WISE_VEGA_TO_AB[band]), "WISE Vega to AB, mag"))
    return cards


def write_brick(outdir: str | os.PathLike, brickname: str, release: str = "dr9", seed: int = 0,
                density: float | None = None) -> tuple[str, int]:
    """Simulate and write one brick; returns (path, rows)."""
    rel = release.lower()
    dm = model(f"{rel}-tractor")
    recs = measure_brick(brickname, rel, seed, density)
    path = brick_path(outdir, brickname)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_blocks(path, recs.dtype, recs.n, recs.blocks(), dm,
                 _header_cards(recs.release_id, brickname, rel, seed, density, recs.brick))
    return path, recs.n


def _write_one(args):
    return write_brick(*args)


def write_bricks(outdir: str | os.PathLike, bricknames: Sequence[str], release: str = "dr9", seed: int = 0,
                 density: float | None = None, workers: int = 1,
                 progress: Callable[[int], None] | None = None) -> list[tuple[str, int]]:
    """Write ``tractor/<AAA>/tractor-<brick>.fits`` for each brick (upper-case columns, atomic).

    Returns [(path, rows)] in the order of ``bricknames``. ``progress(rows)`` is called per brick.
    """
    for name in bricknames:
        bricks.brick(name)  # raise early on an unknown name
    jobs = [(outdir, name, release, seed, density) for name in bricknames]
    out = []
    if workers <= 1:
        it: Iterable = map(_write_one, jobs)
        pool = None
    else:
        import multiprocessing as mp
        pool = mp.get_context("fork").Pool(workers)
        it = pool.imap(_write_one, jobs, chunksize=2)
    try:
        for res in it:
            out.append(res)
            if progress:
                progress(res[1])
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return out


# ---------------------------------------------------------------- external catalogs
GAIA_EPOCH = 2016.0


def gaia_catalog(ra1: float, ra2: float, dec1: float, dec2: float, seed: int = 0,
                 density: float | None = None) -> dict[str, np.ndarray]:
    """A Gaia-like catalog (epoch 2016.0) of the truth stars and bright quasars in the box.

    Columns: source_id (int64; equals the Tractor ref_id of the same star), ra, dec (deg, at
    2016.0), ra_error, dec_error (mas), pmra, pmdec, pmra_error, pmdec_error (mas/yr),
    parallax, parallax_error (mas), ref_epoch, phot_g/bp/rp_mean_mag, phot_g_mean_flux_over_error,
    astrometric_excess_noise (mas), truth_uid (the simulation's source uid).
    """
    t = truth_sky(ra1, ra2, dec1, dec2, seed, density)
    t = t[t["in_gaia"] & ~tycho_only(t, seed)]  # Tycho-2 stars without a Gaia match are not in Gaia
    m = gaia_measure(t, seed, 11, GAIA_EPOCH, err_scale=0.7)
    return {
        "source_id": gaia_source_id(t["uid"], t["ra"], t["dec"]),
        "ra": m["ra"], "dec": m["dec"],
        "ra_error": m["pos_err_mas"], "dec_error": m["pos_err_mas"],
        "pmra": m["pmra"], "pmdec": m["pmdec"], "pmra_error": m["pm_err"], "pmdec_error": m["pm_err"],
        "parallax": m["parallax"], "parallax_error": m["parallax_err"],
        "ref_epoch": np.full(len(t), GAIA_EPOCH),
        "phot_g_mean_mag": m["g"], "phot_bp_mean_mag": m["bp"], "phot_rp_mean_mag": m["rp"],
        "phot_g_mean_flux_over_error": m["g_foe"], "astrometric_excess_noise": m["aen"],
        "truth_uid": t["uid"],
    }


def sdss_catalog(ra1: float, ra2: float, dec1: float, dec2: float, seed: int = 0,
                 density: float | None = None) -> dict[str, np.ndarray]:
    """An SDSS-like spectroscopic catalog: main-sample galaxies (r < 17.77), luminous red
    galaxies (r < 19.5, g-r > 1.3), quasars (g < 22, 60%) and a few stars, with specobjid,
    ra, dec (deg), z, zerr, class ('GALAXY', 'QSO', 'STAR'), truth_uid."""
    t = truth_sky(ra1, ra2, dec1, dec2, seed, density)
    key = seed_key(seed, 12)
    u = uniforms(t["uid"], key, 0, 2)
    rmag = 22.5 - 2.5 * np.log10(np.maximum(t["flux_r"], 1e-30))
    gmag = 22.5 - 2.5 * np.log10(np.maximum(t["flux_g"], 1e-30))
    gal, qso, star = t["kind"] == 1, t["kind"] == 2, t["kind"] == 0
    pick = (gal & ((rmag < 17.77) | ((rmag < 19.5) & (gmag - rmag > 1.3))) & (u[:, 0] < 0.92)) | \
           (qso & (gmag < 22.0) & (u[:, 0] < 0.6)) | (star & (rmag < 19.0) & (u[:, 0] < 0.05))
    t = t[pick]
    z = normals(t["uid"], key, 2, 3)
    cls = np.where(t["kind"] == 1, "GALAXY", np.where(t["kind"] == 2, "QSO", "STAR"))
    zerr = np.where(t["kind"] == 2, 5e-4, np.where(t["kind"] == 1, 2e-5, 1e-5)) * (1.0 + np.abs(z[:, 2]))
    zz = np.where(t["kind"] == 0, 0.0, t["redshift"]) + zerr * z[:, 0]
    cosd = np.maximum(np.cos(np.deg2rad(t["dec"])), 1e-6)
    h = uniforms(t["uid"], key, 9, 1)
    return {
        "specobjid": (np.int64(1) << 60) | (h * (1 << 58)).astype(np.int64),
        "ra": np.mod(t["ra"] + 0.1 / 3600 * z[:, 1] / cosd, 360.0),
        "dec": t["dec"] + 0.1 / 3600 * z[:, 2],
        "z": zz, "zerr": zerr, "class": cls,
        "truth_uid": t["uid"],
    }


_EXTERNAL = {"gaia": gaia_catalog, "sdss": sdss_catalog}
_UNITS = {"ra": "deg", "dec": "deg", "ra_error": "mas", "dec_error": "mas", "pmra": "mas/yr",
          "pmdec": "mas/yr", "pmra_error": "mas/yr", "pmdec_error": "mas/yr", "parallax": "mas",
          "parallax_error": "mas", "ref_epoch": "yr", "phot_g_mean_mag": "mag",
          "phot_bp_mean_mag": "mag", "phot_rp_mean_mag": "mag", "astrometric_excess_noise": "mas"}


def write_external(path: str | os.PathLike, kind: str, box: tuple[float, float, float, float],
                   seed: int = 0, density: float | None = None) -> int:
    """Write a gaia/sdss external catalog over ``box`` (ra1, ra2, dec1, dec2) to Parquet; returns rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if kind not in _EXTERNAL:
        raise ValueError(f"unknown external catalog kind {kind!r}; valid: {', '.join(_EXTERNAL)}")
    cols = _EXTERNAL[kind](*box, seed=seed, density=density)
    fields, arrays = [], []
    for name, v in cols.items():
        a = pa.array(v.astype(str) if v.dtype.kind == "U" else v)
        meta = {"unit": _UNITS[name]} if name in _UNITS else None
        fields.append(pa.field(name, a.type, metadata=meta))
        arrays.append(a)
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata={
        "legacylake.simulated": kind, "legacylake.seed": str(seed)}))
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return table.num_rows
