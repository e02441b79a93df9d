"""Running a migration's chunks on the event loop within their share (``core/migration/pacing.py``)."""

import time
from collections.abc import Callable
from typing import TypeVar

import trio

from trionode.core.migration.pacing import LoopShare

T = TypeVar("T")


class Pacer:
    """One task's chunks of migration work: run back to back for a slice, then a rest."""

    def __init__(self, share: LoopShare | None = None) -> None:
        self.share = share or LoopShare()
        self.held_ms = 0.0  # the loop time the chunks took since the last rest

    async def run(self, chunk: Callable[[], T]) -> T:
        """Run ``chunk`` now; rest after it if the slice is used up."""
        started = time.perf_counter()
        result = chunk()
        self.held_ms += (time.perf_counter() - started) * 1000
        rest_ms = self.share.rest_ms(self.held_ms)
        if rest_ms is not None:
            self.held_ms = 0.0
            await trio.sleep(rest_ms / 1000)
        return result
