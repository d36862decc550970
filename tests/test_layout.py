"""The package layout keeps its layering: no import cycle between modules, no import against
the layers (e.g. ``catalogs_schema`` importing ``etl``), no module far over 500 lines, every
folder installed, and the CLI's command table importing none of the scientific stack.

Imports are read from the source (every ``import`` statement, also those inside functions),
so a lazy import that runs against the layering fails here too.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Which legacylake packages each layer may import (besides itself and its own subpackages).
#: The top-level package (``legacylake``: the CLI, the demo, test harnesses) may import anything.
ALLOWED = {
    "legacylake.errors": set(),
    "legacylake.lazy": set(),
    "legacylake._version": set(),
    "legacylake.catalogs_schema": {"legacylake.errors", "legacylake.lazy", "legacylake._version"},
    "legacylake.etl": {"legacylake.catalogs_schema", "legacylake.errors", "legacylake.lazy", "legacylake._version"},
    # query: the lake's catalogs (query.lake) under crossmatch, under SQL, under spatial search;
    # query's own top-level modules (run, the CLIs, spark, synthlake) may use all of them
    "legacylake.query.lake": {"legacylake.etl", "legacylake.errors", "legacylake._version"},
    "legacylake.query.crossmatch": {"legacylake.query.lake", "legacylake.etl", "legacylake.catalogs_schema",
                                    "legacylake.errors", "legacylake.lazy", "legacylake._version"},
    "legacylake.query.sql": {"legacylake.query.lake", "legacylake.query.crossmatch", "legacylake.etl",
                             "legacylake.catalogs_schema", "legacylake.errors", "legacylake.lazy", "legacylake._version"},
    "legacylake.query.spatial": {"legacylake.query.lake", "legacylake.query.sql", "legacylake.etl",
                                 "legacylake.catalogs_schema", "legacylake.errors", "legacylake.lazy", "legacylake._version"},
    "legacylake.query.tap": {"legacylake.query.lake", "legacylake.query.sql", "legacylake.query.spatial",
                             "legacylake.query.crossmatch", "legacylake.etl", "legacylake.catalogs_schema",
                             "legacylake.errors", "legacylake.lazy", "legacylake._version"},
    "legacylake.query": {"legacylake.etl", "legacylake.catalogs_schema", "legacylake.errors", "legacylake.lazy",
                         "legacylake._version", "legacylake.main"},
    # photometry: the image model, under the simulator, under the brick pipeline
    "legacylake.photometry.model": {"legacylake.catalogs_schema", "legacylake.errors", "legacylake.lazy", "legacylake._version"},
    "legacylake.photometry.sim": {"legacylake.photometry.model", "legacylake.catalogs_schema",
                                  "legacylake.errors", "legacylake.lazy", "legacylake._version"},
    "legacylake.photometry.brick": {"legacylake.photometry.model", "legacylake.photometry.sim",
                                    "legacylake.catalogs_schema", "legacylake.errors", "legacylake.lazy", "legacylake._version"},
    "legacylake.photometry": {"legacylake.catalogs_schema", "legacylake.errors", "legacylake.lazy",
                              "legacylake._version", "legacylake.main"},
}

MAX_LINES = 520


def _package_dirs() -> dict[str, Path]:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {pkg: ROOT / d for pkg, d in conf["package-dir"].items()}, conf["packages"]


def _modules() -> dict[str, Path]:
    dirs, _ = _package_dirs()
    mods = {}
    for pkg, d in dirs.items():
        for path in d.rglob("*.py"):
            rel = path.relative_to(d).with_suffix("").parts
            if any(p.startswith((".", "_work")) or p == "__pycache__" for p in rel):
                continue
            name = ".".join((pkg, *rel))
            name = name.removesuffix(".__init__")
            mods[name] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """legacylake modules imported anywhere in the module (resolved to module names)."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t.startswith("legacylake") and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]; counter[0] += 1
        stack.append(root); on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]; counter[0] += 1
                    stack.append(w); on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop(); on.discard(w); comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def _layer(module: str) -> str | None:
    """The most specific layer of ALLOWED that contains ``module`` (None: top level, free)."""
    best = None
    for layer in ALLOWED:
        if module == layer or module.startswith(layer + "."):
            if best is None or len(layer) > len(best):
                best = layer
    return best


def _violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        layer = _layer(mod)
        if layer is None:
            continue
        for dep in sorted(deps):
            own = dep == layer or dep.startswith(layer + ".") or dep == "legacylake"  # __version__
            if own or any(dep == a or dep.startswith(a + ".") for a in ALLOWED[layer]):
                continue
            bad.append(f"{mod} imports {dep} (layer {layer} may import {sorted(ALLOWED[layer]) or 'nothing'})")
    return bad


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_imports_follow_the_layers():
    assert _violations(_graph()) == []


def test_the_checks_catch_a_cycle_and_a_layer_violation():
    g = {"legacylake.catalogs_schema.a": {"legacylake.etl.b"}, "legacylake.etl.b": {"legacylake.catalogs_schema.a"}}
    assert _cycles(g) == [["legacylake.catalogs_schema.a", "legacylake.etl.b"]]
    assert _violations(g) == ["legacylake.catalogs_schema.a imports legacylake.etl.b (layer legacylake.catalogs_schema "
                              "may import ['legacylake._version', 'legacylake.errors', 'legacylake.lazy'])"]
    # a lazy import inside a function counts as well
    graph = _graph()
    assert "legacylake.photometry.brick.cp" in graph["legacylake.photometry.brick.images"]


def test_no_module_far_over_500_lines():
    long = {n: len(p.read_text().splitlines()) for n, p in _modules().items()}
    assert {n: k for n, k in long.items() if k > MAX_LINES} == {}


def test_every_folder_with_modules_is_an_installed_package():
    dirs, packages = _package_dirs()
    folders = {n for n, p in _modules().items() if p.name == "__init__.py"}
    assert folders == set(packages)
    for name in folders:   # each subpackage says what it owns and what it may import
        doc = ast.get_docstring(ast.parse(_modules()[name].read_text()))
        assert doc and len(doc) > 60, name


def test_the_readme_layout_table_lists_every_package_folder():
    """Each row of the README's layout table (folder, import name) is an installed package, and
    every installed package has a row."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Layout"):]
    table = table[: table.index("\n\n", table.index("| folder |"))]
    rows = dict(re.findall(r"^\| `([a-z_/]+)/` \| `(legacylake[a-z_.]*)` \|", table, re.M))
    dirs, packages = _package_dirs()
    assert sorted(rows.values()) == sorted(packages)
    for folder, name in rows.items():
        base = max((p for p in dirs if name == p or name.startswith(p + ".")), key=len)
        where = dirs[base].joinpath(*name[len(base):].split(".")[1:])
        assert where == ROOT / folder, (name, where, folder)
        assert (where / "__init__.py").is_file(), folder


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["etl", "build", "--help"], ["sql", "--help"],
                                  ["photometry", "run-brick", "--help"], ["schema", "check", "--help"]])
def test_cli_help_imports_no_scientific_stack(argv):
    code = ("import sys\nfrom legacylake.main import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('numpy', 'pyarrow', 'duckdb', 'astropy', 'numba', 'pandas', 'fitsio', 'hats')"
            " if m in sys.modules)\nprint('HEAVY', heavy, file=sys.stderr)\n" % (argv,))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert "HEAVY []" in r.stderr, r.stderr[-2000:]


def _subcommands(parser) -> dict:
    """``{name: subparser}`` of an argparse parser's subcommands (empty when it has none)."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_the_readme_names_exists():
    """A command the README shows (``legacylake etl build``) must be in the command table,
    so a renamed module can never silently drop a subcommand."""
    from legacylake.main import build_parser

    top = _subcommands(build_parser())
    named = re.findall(r"(?<!from )(?<!import )\blegacylake ([a-z][a-z-]+)(?: ([a-z][a-z-]+))?", (ROOT / "README.md").read_text())
    assert named
    for cmd, sub in named:
        assert cmd in top, f"README names 'legacylake {cmd}', which the CLI does not have"
        subs = _subcommands(top[cmd])
        if subs and sub and not sub.startswith("-"):
            assert sub in subs, f"README names 'legacylake {cmd} {sub}', which the CLI does not have"
    for name in ("demo", "schema", "bricks", "simulate", "photometry", "etl", "sql", "cone", "box", "polygon",
                 "xmatch"):
        assert name in top
