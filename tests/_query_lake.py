"""The test lake of the query tests: one place to build it (swap in legacylake.etl.build here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from legacylake.catalogs_schema import bricks


def lake_bricks() -> list[str]:
    """Bricks around RA = 0 on the equator, and at both poles."""
    g = bricks.grid()
    near0 = g["brickname"][bricks.bricks_in_box(359.6, 0.4, -0.3, 0.3) - 1]
    south = g["brickname"][:4]
    north = g["brickname"][-4:]
    return [str(n) for n in np.concatenate([near0, south, north])]


def build_lake(root: Path) -> Path:
    """Write the test lake under ``root`` and return the lake folder (catalog ``dr9``).

    Random DR9 bricks (random fluxes, ivar = 0 cases and random bits of every mask; see
    legacylake.query.synthlake.random_brick_rows) are written as Tractor FITS files and
    ingested by the project's ETL (legacylake.etl.build) with small partitions and 300-row
    row groups. If the ETL is not importable, the synthetic HATS writer stands in.
    """
    from legacylake.query.synthlake import make_lake, write_fits_bricks

    lake = root / "lake"
    try:
        from legacylake.etl import build
    except ImportError:
        make_lake(lake, lake_bricks(), rows_per_brick=400, name="dr9", order=6, row_group_size=300, seed=3)
        return lake
    write_fits_bricks(root / "fits", lake_bricks(), 400, seed=3)
    summary = build(str(root / "fits"), str(lake), "dr9", threshold=2000, row_group_rows=300, workers=1)
    assert not summary.rejects, summary.rejects
    return lake


@pytest.fixture(scope="session")
def query_lake(tmp_path_factory) -> Path:
    return build_lake(tmp_path_factory.mktemp("query_lake"))
