"""legacylake.etl: Tractor/sweep FITS catalogs to a HATS-compatible HEALPix Parquet lake.

>>> from legacylake.etl import build, verify
>>> s = build(["tractor/"], lake="lake", catalog="dr9", threshold=1_000_000)  # doctest: +SKIP
>>> verify("lake", "dr9").ok  # doctest: +SKIP
"""

from legacylake.lazy import attach

#: Public names, imported on first use (keeps the CLI fast).
attach(__name__, {
    "build": "legacylake.etl.build:build",
    "Summary": "legacylake.etl.build:Summary",
    "history": "legacylake.etl.snapshot:history",
    "vacuum": "legacylake.etl.snapshot:vacuum",
    "upgrade": "legacylake.etl.upgrade:upgrade",
    "verify": "legacylake.etl.verify:verify",
    "VerifyReport": "legacylake.etl.verify:VerifyReport",
})
