"""Test hooks of a build: SIGKILL (or pause) the building process at a named point, for the
fault-injection tests and ``bench/etl_reliability.py``."""

from __future__ import annotations

import os
import time

#: Named points where a test may SIGKILL ($LEGACYLAKE_ETL_CRASH_AT=name) or pause
#: ($LEGACYLAKE_ETL_PAUSE_AT=name:seconds) a build.
CRASH_POINTS = ("leaf", "tasks-done", "margins", "snapshot", "renamed", "pointer-written", "published")


def crash_point(name: str) -> None:
    """Test hook: SIGKILL this process at the named point when $LEGACYLAKE_ETL_CRASH_AT says so,
    or sleep there when $LEGACYLAKE_ETL_PAUSE_AT does (see :data:`CRASH_POINTS`)."""
    if os.environ.get("LEGACYLAKE_ETL_CRASH_AT") == name:
        import signal
        os.kill(os.getpid(), signal.SIGKILL)
    pause = os.environ.get("LEGACYLAKE_ETL_PAUSE_AT", "")
    if pause.split(":")[0] == name:
        time.sleep(float(pause.split(":")[1]))
