"""``units(catalog)``: the units of a lake catalog's columns for any reader (pandas, polars,
DuckDB, Spark), including the ``NAME_derived`` columns."""

from __future__ import annotations

import os

from legacylake.errors import UserError
from legacylake.query.lake import Catalog, catalogs, open_catalog
from legacylake.query.sql import macros
from legacylake.query.sql.connect import units_for


def units(catalog: "Catalog | str | os.PathLike", name: str | None = None, derived: bool = True) -> dict[str, str]:
    """Column name -> unit string (e.g. ``{"ra": "deg", "flux_r": "nanomaggy", "mag_r": "mag"}``).

    ``catalog``: a :class:`Catalog`, a catalog folder, or a lake folder with ``name``. Units come
    from the catalog's Parquet field metadata (written from :mod:`legacylake.catalogs_schema`);
    with ``derived`` the columns of the ``NAME_derived`` view that have a unit are added.
    Columns without a unit (counts, flags, ids) are absent."""
    if isinstance(catalog, Catalog):
        cat = catalog
    elif name is not None:
        cats = catalogs(catalog)
        if name not in cats:
            raise UserError(f"unknown catalog {name!r} in {catalog}; catalogs: {', '.join(cats)}")
        cat = cats[name]
    else:
        cat = open_catalog(catalog)
    out = cat.units()
    if derived:
        names = [n for n, _ in macros.derived_columns(cat.schema.names) if n not in out]
        out.update(units_for(names, {cat.name: cat}))
    return out
