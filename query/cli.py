"""``legacylake sql``, ``cone``, ``box``, ``polygon`` and ``legacylake xmatch ...``: registered by their own modules."""

from __future__ import annotations

import argparse
import importlib

#: Modules in this package with a ``register(subparsers)`` function.
_MODULES = ("legacylake.query.sql_cli", "legacylake.query.xmatch_cli")


def register(sub: argparse._SubParsersAction) -> None:
    for name in _MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        mod.register(sub)
