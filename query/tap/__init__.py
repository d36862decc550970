"""An IVOA TAP 1.1 service over the lake (``legacylake serve``): ADQL to DuckDB, VOTable out.

Owns: :mod:`.adql` (the ADQL dialect for sqlglot, translation), :mod:`.geometry` (ADQL
geometry on the syntax tree), :mod:`.engine` (snapshots, pruned region reads, crossmatch
joins, timeouts), :mod:`.schema` (TAP_SCHEMA and VOSI tables from ``catalogs_schema``),
:mod:`.votable` (result formats, error documents, uploads), :mod:`.uws` (async jobs on disk),
:mod:`.vosi` (capabilities, availability, DALI examples), :mod:`.landing` (the HTML page) and
:mod:`.app` (the Starlette application).

May import: :mod:`legacylake.query.lake`, :mod:`legacylake.query.sql`,
:mod:`legacylake.query.spatial`, :mod:`legacylake.query.crossmatch`,
:mod:`legacylake.catalogs_schema`, :mod:`legacylake.etl`, :mod:`legacylake.errors`.
"""
