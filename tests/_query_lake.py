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

    Uses the project's synthetic HATS writer (random DR9 rows with random mask bits, order-6
    partitions, 300-row row groups). When legacylake.etl.build is ready, build from
    catalogs_schema.random_table.write_random_bricks files here instead.
    """
    from legacylake.query.synthlake import make_lake

    lake = root / "lake"
    make_lake(lake, lake_bricks(), rows_per_brick=400, name="dr9", order=6, row_group_size=300, seed=3)
    return lake


@pytest.fixture(scope="session")
def query_lake(tmp_path_factory) -> Path:
    return build_lake(tmp_path_factory.mktemp("query_lake"))
