"""legacylake.etl: Tractor/sweep FITS catalogs to a HATS-compatible HEALPix Parquet lake.

>>> from legacylake.etl import build, verify
>>> s = build(["tractor/"], lake="lake", catalog="dr9", threshold=1_000_000)  # doctest: +SKIP
>>> verify("lake", "dr9").ok  # doctest: +SKIP
"""

from legacylake.etl.build import Summary, build
from legacylake.etl.snapshot import history, vacuum
from legacylake.etl.upgrade import upgrade
from legacylake.etl.verify import VerifyReport, verify

__all__ = ["build", "verify", "upgrade", "history", "vacuum", "Summary", "VerifyReport"]
