"""legacylake: Legacy Surveys Tractor catalogs as a HATS Parquet lake, with SQL and photometry.

Subpackages: :mod:`legacylake.catalogs_schema` (the data model), :mod:`legacylake.etl` (FITS to
the lake), :mod:`legacylake.query` (SQL, spatial search, crossmatch), :mod:`legacylake.photometry`
(image model, simulation, run-brick). Importing this package imports none of them.
"""


def __getattr__(name: str):
    if name == "__version__":  # looked up on use: importlib.metadata costs ~15 ms at startup
        from legacylake._version import __version__

        return __version__
    raise AttributeError(f"module 'legacylake' has no attribute {name!r}")
