"""legacylake: Legacy Surveys Tractor catalogs as a HATS Parquet lake, with SQL and photometry."""

from ._version import __version__  # noqa: F401  (one place: legacylake._version)
