"""Paths inside a catalog's current snapshot, for tests."""

from __future__ import annotations

import os

from legacylake.etl import layout


def hats_dir(cat: str | os.PathLike) -> str:
    """The HATS catalog folder of the catalog's current snapshot."""
    d = layout.hats_dir(cat)
    assert d is not None, f"{cat}: no published snapshot"
    return d


def dataset_dir(cat: str | os.PathLike) -> str:
    return os.path.join(hats_dir(cat), "dataset")


def leaf_path(cat: str | os.PathLike, order: int, npix: int) -> str:
    """A leaf of the catalog's current snapshot."""
    return os.path.join(hats_dir(cat), layout.leaf_relpath(order, npix))
