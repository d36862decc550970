"""One writer per catalog: an OS lock (``flock``) on ``LAKE/NAME/legacylake/lock``.

The kernel releases the lock when its holder exits or is killed, so a lock is never stale.
The holder writes who it is (pid, host, command, start time) to ``lock.json`` beside it;
that file is only read to name the holder in the error of a second writer. On NFS, Linux
maps ``flock`` to byte-range locks held by the server (NFSv4), which also die with the
holder's lease.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import sys
import time

from legacylake.errors import UserError

from legacylake.etl.layout import state_dir


class CatalogLocked(UserError):
    """Another process holds the catalog's writer lock (exit status 2)."""


def _holder(info_path: str) -> str:
    for _ in range(20):   # the holder writes lock.json just after taking the lock
        try:
            with open(info_path) as fh:
                h = json.load(fh)
            return (f"pid {h.get('pid')} on {h.get('host')} since {h.get('started')} "
                    f"({h.get('command', '?')})")
        except (OSError, ValueError):
            time.sleep(0.05)
    return "another process (its lock.json is unreadable)"


class CatalogLock:
    """Context manager holding the writer lock of ``catalog_dir``.

    ``wait=False``: raise :class:`CatalogLocked` at once, naming the holder; ``wait=True``:
    block until the holder is done (a line on stderr says whom it waits for)."""

    def __init__(self, catalog_dir: str, wait: bool = False, command: str = "etl"):
        self.catalog_dir, self.wait, self.command = catalog_dir, wait, command
        self.path = os.path.join(state_dir(catalog_dir), "lock")
        self.info = os.path.join(state_dir(catalog_dir), "lock.json")
        self._fd: int | None = None

    def __enter__(self) -> "CatalogLock":
        while True:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    who = _holder(self.info)
                    if not self.wait:
                        raise CatalogLocked(f"{self.catalog_dir}: another writer holds the catalog: {who}; "
                                            "run again when it is done, or pass --wait") from None
                    print(f"waiting for the writer lock of {self.catalog_dir} ({who})", file=sys.stderr)
                    fcntl.flock(fd, fcntl.LOCK_EX)
                # the holder may have removed the catalog (and its lock file) before letting go:
                # the lock is only ours if the path still names the file we locked
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if same:
                break
            os.close(fd)
        self._fd = fd
        tmp = f"{self.info}.tmp{os.getpid()}"
        with open(tmp, "w") as fh:
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                       "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")},
                      fh)
        os.replace(tmp, self.info)
        return self

    def release_and_remove(self) -> None:
        """Remove the lock files, then let go (used when the catalog folder is removed)."""
        for p in (self.info, self.path):
            try:
                os.remove(p)
            except OSError:
                pass
        self.__exit__()

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            try:
                os.remove(self.info)
            except OSError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
