"""Crossmatch of the lake with an external catalog, exact at partition edges.

Owns: :mod:`.core` (``xmatch()``), :mod:`.io` (external catalogs: HATS, Parquet, CSV, FITS),
:mod:`.buckets` (cell arithmetic, per-partition buckets), :mod:`.partitions` (the per-partition
match), :mod:`.kernels` (numba distance kernels), :mod:`.result` and :mod:`.hats_sink` (where
pairs go), :mod:`.sqlfuncs` (``xmatch_all``/``xmatch_nearest`` in SQL) and :mod:`.testing`.

May import: :mod:`legacylake.query.lake`, :mod:`legacylake.etl`, :mod:`legacylake.catalogs_schema`,
:mod:`legacylake.errors`; never the SQL or spatial layers.
"""

from legacylake.lazy import attach

#: Public names, imported on first use.
attach(__name__, {
    "xmatch": "legacylake.query.crossmatch.core:xmatch",
    "XmatchStats": "legacylake.query.crossmatch.result:XmatchStats",
    "register_xmatch": "legacylake.query.crossmatch.sqlfuncs:register_xmatch",
    "healpix29": "legacylake.query.crossmatch.buckets:healpix29",
    "match_order": "legacylake.query.crossmatch.buckets:match_order",
    "propagate": "legacylake.catalogs_schema.astrometry:propagate",
})
