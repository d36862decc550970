"""Lazy package namespaces: a package's public names are imported on first use, so that
``import legacylake.etl.cli`` (and ``legacylake --help``) does not import numpy, pyarrow,
DuckDB and the rest of the stack.

``attach(__name__, {"build": "legacylake.etl.build:build", "bricks": "legacylake.catalogs_schema.bricks"})``
in a package's ``__init__`` makes ``from package import build`` import ``legacylake.etl.build``
then and return its ``build``. A function exported under the name of a submodule (``etl.build``,
``etl.verify``, ``catalogs_schema.validate``) stays the function after the submodule is imported.
"""

from __future__ import annotations

import importlib
import sys
import types


def attach(package: str, exports: dict[str, str]) -> None:
    """Make ``package`` export ``exports`` (name -> ``"module"`` or ``"module:attribute"``) lazily."""
    mod = sys.modules[package]
    mod.__all__ = list(exports)

    class LazyPackage(types.ModuleType):
        def __getattr__(self, name: str):
            target = exports.get(name)
            if target is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            modname, _, attr = target.partition(":")
            value = importlib.import_module(modname)
            if attr:
                value = getattr(value, attr)
            types.ModuleType.__setattr__(self, name, value)
            return value

        def __setattr__(self, name: str, value) -> None:
            # the import system binds a submodule to its parent's attribute of the same name;
            # an exported function of that name must win
            if isinstance(value, types.ModuleType) and ":" in exports.get(name, ""):
                return
            types.ModuleType.__setattr__(self, name, value)

        def __dir__(self):
            return sorted(set(super().__dir__()) | set(exports))

    mod.__class__ = LazyPackage
