"""legacylake: Legacy Surveys Tractor catalogs as a HATS Parquet lake, with SQL and photometry.

Subpackages: :mod:`legacylake.catalogs_schema` (the data model), :mod:`legacylake.etl` (FITS to
the lake), :mod:`legacylake.query` (SQL, spatial search, crossmatch), :mod:`legacylake.photometry`
(image model, simulation, run-brick). Importing this package imports none of them.
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("legacylake")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+unknown"


def __getattr__(name: str):
    if name == "__version__":  # looked up on use: importlib.metadata costs ~15 ms at startup
        global __version__
        __version__ = _version()
        return __version__
    raise AttributeError(f"module 'legacylake' has no attribute {name!r}")
