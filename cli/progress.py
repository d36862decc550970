"""Feedback for long steps: tqdm bars on stderr (only on a terminal) and a one-line notice when
numba has to compile kernels that are not in its on-disk cache yet (first run only).

``bar(total, desc, enabled)``: a tqdm bar on stderr; ``enabled=False`` (quiet options) or a
stderr that is not a TTY (CI logs, pipes) gives a silent bar, so logs stay small.

``uncached_kernels(modules)``: the ``cache=True`` numba kernels of those modules none of whose
kernels has a usable entry in numba's cache index yet (numba's own index file and its source
stamp check, so a module whose source changed counts as uncached). A module counts as compiled
as soon as one of its kernels is cached: helpers called only from other kernels are compiled into
their callers and never get an index of their own, and a few kernels are not used by every command.
``numba_notice(modules)`` prints one line to stderr when there are any, with a rough estimate of
the compile time (measured: the demo's first run takes about 20 s longer on 2 cores).
"""

from __future__ import annotations

import importlib
import sys

#: Rough compile time per kernel module, seconds (2-core machine: the demo's 16 modules, about 20 s).
SECONDS_PER_MODULE = 1.5

#: The kernel modules each demo step compiles on first use.
PHOTOMETRY_KERNELS = ("legacylake.photometry.model.render_kernels", "legacylake.photometry.model.normal_kernels")
SIMULATE_KERNELS = tuple(f"legacylake.photometry.sim.kernels.{k}" for k in (
    "truth", "randoms", "fields", "apflux", "blend", "dchisq", "disks", "healpix", "lc", "pack",
    "pairs", "record", "select", "tan"))
XMATCH_KERNELS = ("legacylake.query.crossmatch.kernels",)


def bar(total: int | None, desc: str, enabled: bool = True, unit: str = "it"):
    """A tqdm bar on stderr, silent when ``enabled`` is False or stderr is not a terminal."""
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                disable=None if enabled else True)  # None: tqdm disables itself when not a TTY


def uncached_kernels(modules) -> list[str]:
    """Names (module.function) of the ``cache=True`` kernels of those ``modules`` that have no kernel
    in numba's cache yet."""
    from numba.core.dispatcher import Dispatcher
    out = []
    for name in modules:
        todo, cached_any = [], False
        mod = importlib.import_module(name)
        for attr, obj in sorted(vars(mod).items()):
            if not isinstance(obj, Dispatcher) or getattr(obj, "__module__", name) != name:
                continue
            cache = getattr(obj, "_cache", None)
            cache_file = getattr(cache, "_cache_file", None)
            if cache_file is None:  # cache=False: compiled every run, nothing to tell
                continue
            try:
                cached = bool(cache_file._load_index())  # {} when absent or stale (source changed)
            except Exception:  # pragma: no cover - numba internals changed: say nothing rather than guess
                cached = True
            cached_any |= cached
            if not cached:
                todo.append(f"{name}.{attr}")
        if not cached_any:
            out += todo
    return out


def numba_notice(modules, file=None) -> int:
    """Print "compiling numba kernels (first run only, ~N s)..." to stderr if any kernel of
    ``modules`` is not in numba's cache; returns the number of such kernels."""
    todo = uncached_kernels(modules)
    if todo:
        nmod = len({k.rsplit(".", 1)[0] for k in todo})
        secs = max(1, round(SECONDS_PER_MODULE * nmod))
        print(f"compiling numba kernels (first run only, ~{secs} s)...",
              file=file or sys.stderr, flush=True)
    return len(todo)
