"""Schema-valid random catalogs, for tests and benchmarks that need shapes, not physics.

The realistic synthetic sky is :mod:`legacylake.photometry.sim.catalog`; this module only
fills every column of a data model with values of the right type, and positions, brick ids,
object ids and brick_primary that are consistent with the brick grid.
"""

from __future__ import annotations

import os

import numpy as np

from legacylake.catalogs_schema import bricks
from legacylake.catalogs_schema.columns import model


def random_brick_table(brickname: str, n: int, model_name: str = "dr9-tractor", seed: int = 0) -> np.ndarray:
    """A structured array of ``n`` rows of brick ``brickname`` in ``model_name`` (lowercase names).

    Positions are uniform over the brick image's footprint (a little wider than the brick,
    so that some rows are not brick_primary), sorted by RA as the pipeline writes them.
    """
    m = model(model_name)
    b = bricks.brick(brickname)
    rng = np.random.default_rng([seed, int(b["brickid"])])
    dtype = [(c.name, c.numpy_dtype if not c.is_string else f"S{c.width}", c.shape) if c.shape
             else (c.name, c.numpy_dtype if not c.is_string else f"S{c.width}")
             for c in m.columns if c.required]
    out = np.zeros(n, dtype=dtype)
    half = 0.131  # brick image half-width, deg
    dec = np.clip(b["dec"] + rng.uniform(-half, half, n), -90, 90)
    cosd = np.maximum(np.cos(np.deg2rad(dec)), 1e-3)
    ra = np.mod(b["ra"] + rng.uniform(-half, half, n) / cosd, 360.0)
    order = np.argsort(ra)
    ra, dec = ra[order], dec[order]
    for c in m.columns:
        if not c.required:
            continue
        if c.is_string:
            continue
        kind = np.dtype(c.numpy_dtype).kind
        shape = (n, *c.shape)
        if kind == "f":
            out[c.name] = rng.normal(1.0, 1.0, shape)
        elif kind in "iu":
            out[c.name] = rng.integers(0, 3, shape)
        elif kind == "b":
            out[c.name] = rng.random(shape) < 0.5
    out["ra"], out["dec"] = ra, dec
    out["brickid"] = b["brickid"]
    out["brickname"] = b["brickname"]
    out["objid"] = np.arange(n)
    out["type"] = rng.choice(np.array(["PSF", "REX", "EXP", "DEV", "SER"] if m.release != "dr4"
                                      else ["PSF", "SIMP", "EXP", "DEV", "COMP"]), n)
    out["release"] = {"dr4": 4000, "dr8": 8000, "dr9": 9010, "dr10": 10000}[m.release]
    if "brick_primary" in out.dtype.names:
        out["brick_primary"] = bricks.is_primary(ra, dec, b["brickid"])
    for name in out.dtype.names:
        if name.startswith(("mw_transmission_", "flux_ivar_")):
            out[name] = np.abs(out[name]) + 0.1
    return out


def write_random_bricks(outdir: str | os.PathLike, bricknames, rows_per_brick: int = 1000,
                        model_name: str = "dr9-tractor", seed: int = 0) -> list[str]:
    """Write ``tractor/<AAA>/tractor-<brick>.fits`` files (upper-case columns); returns paths."""
    import fitsio

    paths = []
    for name in bricknames:
        arr = random_brick_table(name, rows_per_brick, model_name, seed)
        arr.dtype.names = [n.upper() for n in arr.dtype.names]
        d = os.path.join(os.fspath(outdir), "tractor", name[:3])
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"tractor-{name}.fits")
        fitsio.write(path + ".tmp", arr, clobber=True)
        os.replace(path + ".tmp", path)
        paths.append(path)
    return paths
