"""``__version__`` of the installed distribution, importable on its own (``legacylake._version``).

Modules take the version from here rather than from the package's ``__init__``: when Python
starts in the folder that holds the clone (named ``legacylake``), that folder shadows the package
as a namespace package whose ``__init__`` never runs (see README, Install).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("legacylake")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
