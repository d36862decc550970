"""legacylake: Legacy Surveys Tractor catalogs as a HATS Parquet lake, with SQL and photometry."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("legacylake")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
