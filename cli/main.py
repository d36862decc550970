"""The ``legacylake`` command: one entry point, subcommands registered by each package.

Each package exposes ``register(subparsers)`` in its ``cli`` module; a subcommand's handler
is stored as ``func`` in its parser defaults and returns an exit status (0 = success).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ._version import __version__
from .errors import UserError

#: Modules whose ``register(subparsers)`` adds subcommands, in help order.
COMMAND_MODULES = (
    "legacylake.demo",
    "legacylake.catalogs_schema.cli",
    "legacylake.photometry.cli",
    "legacylake.etl.cli",
    "legacylake.query.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="legacylake",
        description="Legacy Surveys Tractor catalogs: data model, simulation, photometry, "
        "HATS Parquet lake, SQL and crossmatch.",
    )
    parser.add_argument("--version", action="version", version=f"legacylake {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    register_modules(sub, COMMAND_MODULES)
    return parser


def register_modules(sub: argparse._SubParsersAction, names) -> None:
    """Call ``register(sub)`` of each named module that exists (absent modules are skipped)."""
    for name in names:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        mod.register(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)  # no command: an error (exit 2), so the help goes to stderr
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"legacylake {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
