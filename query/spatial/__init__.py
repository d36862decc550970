"""Spatial search pruned by HEALPix partitions and row groups: cone, box and polygon.

Owns: :mod:`.regions` (regions as HEALPix order-29 ranges, spherical geometry) and
:mod:`.search` (planning which files and row groups to read, ``cone_search`` and friends, and
the ``cone()``/``box()``/``polygon()`` table calls in SQL).

May import: :mod:`legacylake.query.lake`, :mod:`legacylake.query.sql`, :mod:`legacylake.etl`,
:mod:`legacylake.catalogs_schema`, :mod:`legacylake.errors`.
"""
