"""Step a node's wall clock, not its monotonic clock: loaded by the clock-step drill's nodes only.

The drill puts this directory first on the node's ``PYTHONPATH`` and names a
file in ``TRIONODE_DRILL_CLOCK_FILE``; Python imports ``sitecustomize`` at
start-up. From then on ``time.time()`` and ``time.time_ns()`` return the real
wall clock plus the offset in that file (milliseconds, a float; re-read at
most every 20 ms of monotonic time, so a new offset is a step). Monotonic
time, sleeps and lock timeouts are untouched: that is what a step of the
system clock (``date -s``, an NTP step) does to a running process.

Why not libfaketime (Debian's ``faketime``): preloaded into Python 3.11 on
Debian 12 it makes ``time.sleep`` fail with EINVAL when monotonic time is left
alone (``FAKETIME_DONT_FAKE_MONOTONIC=1``), and otherwise hangs timed lock
waits (``Lock.acquire(timeout=...)``), which trio's worker threads use. This
shim needs no root and no preload, and steps exactly the clock reads a
trionode node makes.
"""

import os
import time

_PATH = os.environ.get("TRIONODE_DRILL_CLOCK_FILE", "")
_REREAD_NS = 20_000_000
_real_time_ns = time.time_ns
_cache = [0, 0]  # [monotonic ns of the next read, offset ns]


def _offset_ns() -> int:
    now = time.monotonic_ns()
    if now >= _cache[0]:
        _cache[0] = now + _REREAD_NS
        try:
            with open(_PATH, encoding="ascii") as fh:
                _cache[1] = int(float(fh.read().strip() or 0) * 1_000_000)
        except (OSError, ValueError):
            pass  # keep the last offset: the drill replaces the file atomically
    return _cache[1]


def _time_ns() -> int:
    return _real_time_ns() + _offset_ns()


def _time() -> float:
    return _time_ns() / 1e9


if _PATH:
    time.time_ns = _time_ns
    time.time = _time
