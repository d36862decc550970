"""Small input sets for tests and demos: schema-valid random Tractor files on a compact patch.

>>> paths = patch_files(tmp_path, nbricks=6, rows=200)  # doctest: +SKIP
"""

from __future__ import annotations

import os

import numpy as np

from legacylake.catalogs_schema import bricks
from legacylake.catalogs_schema.random_table import write_random_bricks


def patch_bricks(nbricks: int, ra: float = 150.0, dec: float = 10.0) -> list[str]:
    """Names of the ``nbricks`` bricks nearest (ra, dec) (deg), nearest first."""
    g = bricks.grid()
    sel = np.where((np.abs(g["dec"] - dec) < 3.0))[0]
    dra = (g["ra"][sel] - ra + 180.0) % 360.0 - 180.0
    d2 = (dra * np.cos(np.deg2rad(dec))) ** 2 + (g["dec"][sel] - dec) ** 2
    return [str(n) for n in g["brickname"][sel[np.argsort(d2)][:nbricks]]]


def patch_files(outdir: str | os.PathLike, nbricks: int = 6, rows: int = 200, ra: float = 150.0,
                dec: float = 10.0, model_name: str = "dr9-tractor", seed: int = 0) -> list[str]:
    """Write ``tractor/<AAA>/tractor-<brick>.fits`` for a compact patch of bricks; paths."""
    return write_random_bricks(outdir, patch_bricks(nbricks, ra, dec), rows, model_name, seed)
