"""The ``legacylake`` command: one entry point, subcommands registered by each package.

Each package exposes ``register(subparsers)`` in its ``cli`` module; a subcommand's handler
is stored as ``func`` in its parser defaults and returns an exit status (0 = success).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from legacylake.errors import UserError

#: Modules whose ``register(subparsers)`` adds subcommands, in help order.
COMMAND_MODULES = (
    "legacylake.demo",
    "legacylake.catalogs_schema.cli",
    "legacylake.photometry.cli",
    "legacylake.etl.cli",
    "legacylake.query.cli",
    "legacylake.query.export.cli",
)


class _Version(argparse.Action):
    """``--version``: the installed version, looked up only when asked for."""

    def __call__(self, parser, namespace, values, option_string=None):
        from legacylake._version import __version__

        print(f"legacylake {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="legacylake",
        description="Legacy Surveys Tractor catalogs: data model, simulation, photometry, "
        "HATS Parquet lake, SQL and crossmatch.",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    register_modules(sub, COMMAND_MODULES)
    return parser


def register_modules(sub: argparse._SubParsersAction, names) -> None:
    """Call ``register(sub)`` of each named module (a missing module is an error, not a silent gap)."""
    for name in names:
        importlib.import_module(name).register(sub)


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
