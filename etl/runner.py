"""Where a build's jobs run: worker processes (one pool for every phase of a build), a Dask
distributed scheduler, or this process; workers die with their parent."""

from __future__ import annotations

import os
import sys


def _die_with_parent(parent: int | None = None) -> None:
    """Worker initializer: on Linux, ask for SIGKILL when the parent process dies, and exit
    at once if it already died while this worker was starting (the signal would never come)."""
    try:
        import ctypes
        import signal
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


class Runner:
    """Runs batches of picklable jobs in worker processes (one pool for all phases of a
    build), on a Dask scheduler, or in this process (``workers`` <= 1)."""

    def __init__(self, workers: int, scheduler: str | None, progress: bool):
        self.workers, self.scheduler, self.progress = workers, scheduler, progress
        self._pool = self._client = None

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def run(self, fn, jobs: list, desc: str) -> list[dict]:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=desc, unit="task", disable=not self.progress, file=sys.stderr)
        results = []
        try:
            if self.scheduler:
                from distributed import Client, as_completed
                if self._client is None:
                    self._client = Client(self.scheduler)
                for fut in as_completed(self._client.map(fn, jobs, pure=False)):
                    results.append(fut.result())
                    bar.update(1)
            # with workers > 1 even a single task runs in a worker process: the same path,
            # and the same per-process memory, whatever the size of the input
            elif self.workers <= 1:
                for t in jobs:
                    results.append(fn(t))
                    bar.update(1)
            else:
                import multiprocessing as mp
                from concurrent.futures import ProcessPoolExecutor
                from concurrent.futures import as_completed as done
                if self._pool is None:
                    self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                                     mp_context=mp.get_context("spawn"),
                                                     initializer=_die_with_parent,
                                                     initargs=(os.getpid(),))
                futs = [self._pool.submit(fn, t) for t in jobs]
                try:
                    for fut in done(futs):
                        results.append(fut.result())
                        bar.update(1)
                except BaseException:
                    for f in futs:
                        f.cancel()
                    raise
        finally:
            bar.close()
        return results
