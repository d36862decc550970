"""``legacylake sql``, ``cone``, ``box``, ``polygon`` and ``xmatch`` and ``serve``: registered by their own modules."""

from __future__ import annotations

import argparse

from legacylake.main import register_modules

#: Modules in this package with a ``register(subparsers)`` function.
_MODULES = ("legacylake.query.sql_cli", "legacylake.query.xmatch_cli", "legacylake.query.serve_cli")


def register(sub: argparse._SubParsersAction) -> None:
    register_modules(sub, _MODULES)
