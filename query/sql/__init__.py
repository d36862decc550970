"""DuckDB SQL over the lake: the read-only connection and the SQL function library.

Owns: :mod:`.connect` (``connect()``: one view per catalog pinned to its snapshot, the
``_derived`` views, the write guards) and :mod:`.macros` (``flux_to_mag``, ``dered_mag``,
``no_maskbits``, ... as DuckDB macros).

May import: :mod:`legacylake.query.lake`, :mod:`legacylake.query.crossmatch` (its table
functions are registered on every connection), :mod:`legacylake.etl`,
:mod:`legacylake.catalogs_schema`, :mod:`legacylake.errors`.
"""
