"""How much of a node's event loop a migration's background work may take (issue 11, Performance).

Theory of operation. A migration's copy (on the source), stream apply (on the
target) and cleanup (on whichever side holds leftovers) run in bounded chunks
on the node's one event loop, between client commands. Yielding once after
every chunk was not enough: under load the migration kept the loop busy all
the time, and two things starved.

- Client commands: one needs several turns of the loop (read, WAL durable,
  reply) and the migration took a chunk in every one of them.
- The WAL's writer thread: it needs the GIL to start each write and to report
  each fsync, and a thread waiting for a GIL that the loop never gives up
  waits a whole switch interval (5 ms) every time. Every client write waits
  for an fsync, so the WAL's group commits slowed tenfold (other slots kept
  22-60% of their throughput on the source and the target).

:class:`LoopShare` bounds a task's migration work in two ways. Chunks run
back to back for at most ``slice_ms`` of the loop (a chunk can be tiny: a
slot of a few keys, one streamed write), so the loop is never held longer
than a slice and a chunk. Then the task rests ``held * (1 - share) / share``
ms, keeping to ``share`` of the loop's wall-clock time: client commands run,
the loop can wait for IO and the writer thread gets the GIL at once. The rest
is measured, not fixed: a slice slowed down by load rests longer. It is
capped, so one slow chunk (a page fault, a GC pass) does not stall the
migration for long. The shell measures the times; this decides.

The price: an idle node also migrates at ``share`` of its full speed. The
loop cannot tell an idle turn from one in which the writer thread waits for
the GIL, so resting only when other tasks are ready would not spare the WAL.
"""

from dataclasses import dataclass

from trionode import limits


@dataclass(frozen=True, slots=True)
class LoopShare:
    """The migration's share of one event loop, for one task that runs chunks of its work."""

    share: float = limits.migration_loop_share
    slice_ms: float = limits.migration_slice_ms
    rest_ms_max: float = limits.migration_rest_ms_max

    def rest_ms(self, held_ms: float) -> float | None:
        """After chunks that held the loop for ``held_ms`` since the last rest: None to run the next
        chunk at once (the slice is not used up), else how long to rest now."""
        assert 0 < self.share <= 1 and held_ms >= 0, (self.share, held_ms)
        if held_ms < self.slice_ms:
            return None
        return min(self.rest_ms_max, held_ms * (1 - self.share) / self.share)
