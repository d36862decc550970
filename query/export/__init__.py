"""The survey's own file products written back from a lake: sweep files (:mod:`.sweeps`) and
per-brick Tractor catalogs (:mod:`.tractor`).

Owns: :mod:`.sweeps` (``export_sweeps``: 10 x 5 degree boxes of ``brick_primary`` rows as
FITS with HDU ``SWEEP`` in the catalog's sweep data model, light curves split off), :mod:`.tractor` (``export_tractor``: ``tractor/<AAA>/tractor-<brick>.fits``) and
:mod:`.fitswrite` (columns of the data model as FITS arrays, streamed, temp name then rename).

May import: :mod:`legacylake.query.lake`, :mod:`legacylake.query.spatial` (the box plan),
:mod:`legacylake.catalogs_schema`, :mod:`legacylake.errors`.
"""
