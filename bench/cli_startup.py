"""Start-up time of the ``legacylake`` command against ``python -c pass``, same run.

    python bench/cli_startup.py [--repeat 21] [--baseline-python /path/to/other/venv/bin/python]

Each command runs as its own process (the console script, as a user runs it), interleaved
with ``python -c pass`` so both see the same machine load; medians of wall time are printed,
and the difference to ``python -c pass`` (the target is <= 0.15 s for ``--help``).
``--baseline-python``: also run the console script of another installation (e.g. an older
commit) in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["--version"], ["etl", "build", "--help"], ["sql", "--help"],
            ["photometry", "run-brick", "--help"], ["schema", "check", "--help"])


def _script(python: str) -> str:
    return os.path.join(os.path.dirname(python), "legacylake")


def _time(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, cwd="/")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--baseline-python", default=None)
    a = ap.parse_args()
    py = sys.executable
    runs = {"python -c pass": [py, "-c", "pass"]}
    for c in COMMANDS:
        runs["legacylake " + " ".join(c)] = [py, _script(py), *c]
    if a.baseline_python:
        for c in COMMANDS[:2]:
            runs["baseline: legacylake " + " ".join(c)] = [a.baseline_python, _script(a.baseline_python), *c]
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(2):                      # warm the page cache and .pyc files
        for argv in runs.values():
            _time(argv)
    for i in range(a.repeat):               # interleaved, order rotated each round
        keys = list(runs)
        keys = keys[i % len(keys):] + keys[:i % len(keys)]
        for k in keys:
            times[k].append(_time(runs[k]))
    base = statistics.median(times["python -c pass"])
    print(f"# {a.repeat} interleaved runs each, median wall seconds; machine: {os.cpu_count()} cores")
    print(f"{'command':44s} {'median s':>9s} {'- python -c pass':>17s}")
    for k, v in times.items():
        m = statistics.median(v)
        print(f"{k:44s} {m:9.3f} {m - base:+17.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
