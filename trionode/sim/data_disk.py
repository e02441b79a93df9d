"""One node's data disk in the data-plane simulation: a WAL of effects with an unsynced tail.

Theory of operation
-------------------
A shard's records are effects (lists of byte strings) at dense offsets 1..N.
A :class:`DataDisk` holds them in ``log`` (``log[o - 1]`` is offset ``o``); the
first ``durable`` of them survive any crash, the rest sit in the page cache.
A crash keeps the durable prefix and, like a real page cache, perhaps some of
the unsynced records after it (whole records: torn bytes are the WAL codec's
business, exercised by the Raft half of the simulator); the rest is lost.
What a restart finds on disk is durable from then on.

Metadata is written with write-temp, fsync, rename, so it is durable at once:
the epoch history, the fence epoch, the full-sync "loading" marker and the
first offset the WAL still holds (``log_start``). A truncation is durable at
once too (ftruncate, fsync).

A compaction at offset N takes three durable steps, as io/data_store.py's
``compact`` does, and a crash may fall between any two: the snapshot of N is
written as a pending file (``pending_snapshot``; a crash leaves it unused),
installed (``snapshot_offset``: what recovery loads), and only then the WAL
segments before N + 1 go (``log_start``). The snapshot's contents are the
in-memory log's prefix: the simulation tracks only where the files reach.
Recovery needs the WAL to start no later than just past the snapshot
(``recover`` stops the node otherwise); ``wal_gap`` reports a disk that broke it.

A node that crashes with the loading marker set comes back empty, marker kept:
its data was a half-loaded snapshot or a half-done cut, and the replication
driver reports it ``loading`` until a sync completes (DESIGN §5.2, S5).

``cut_to`` is the shortest the log was cut to since the checker last looked
(None: not cut), so the checker can compare logs incrementally (data_checks.py);
``cuts`` counts the cuts, so a keyspace built from the log knows when to rebuild
(kv_workload.py).

Invariants: ``0 <= durable <= len(log)``; ``1 <= log_start <= len(log) + 1``;
``snapshot_offset <= durable``.
"""

import random
from dataclasses import dataclass, field

from trionode.core.replication.history import EpochHistory

Effect = list[bytes]


@dataclass(slots=True)
class DataDisk:
    log: list[Effect] = field(default_factory=list)
    durable: int = 0  # Invariant: <= len(log); only fsync raises it, only truncate lowers it.
    history: EpochHistory = field(default_factory=EpochHistory)  # as persisted
    fence_epoch: int = 1  # as persisted
    loading_marker: bool = False  # persisted: a full sync is under way, the local data is junk
    log_start: int = 1  # the first offset the WAL still holds
    snapshot_offset: int = 0  # the installed snapshot's offset (0: none)
    pending_snapshot: int | None = None  # a snapshot written but not installed yet
    cut_to: int | None = None  # the shortest the log was cut to since the checker last looked
    cuts: int = 0  # how many times records were cut off: a keyspace built from the log is stale once it moves

    def append(self, effects: list[Effect]) -> None:
        self.log.extend(effects)

    def fsync(self) -> None:
        self.durable = len(self.log)

    def truncate(self, offset: int) -> None:
        """Cut the log back to ``offset``, durably."""
        assert offset >= 0
        self.cuts += offset < len(self.log)
        del self.log[offset:]
        self.durable = min(self.durable, offset)
        self.log_start = min(self.log_start, offset + 1)
        self.snapshot_offset = min(self.snapshot_offset, offset)  # only 0 goes below it: discard
        self.pending_snapshot = None
        self.cut_to = offset if self.cut_to is None else min(self.cut_to, offset)

    def write_pending_snapshot(self, offset: int) -> None:
        """Compaction's first step: the snapshot of ``offset``, written beside the installed one."""
        assert self.snapshot_offset <= offset <= self.durable, (self.snapshot_offset, offset, self.durable)
        self.pending_snapshot = offset

    def install_snapshot(self) -> None:
        """Compaction's second step: rename the pending snapshot over the installed one."""
        assert self.pending_snapshot is not None
        self.snapshot_offset, self.pending_snapshot = self.pending_snapshot, None

    def remove_log_before(self, offset: int) -> None:
        """Compaction's last step: delete the WAL segments that end before ``offset``."""
        assert offset <= len(self.log) + 1, (offset, len(self.log))
        self.log_start = max(self.log_start, offset)

    def compact(self, offset: int) -> None:
        """All of a compaction at ``offset``, with no crash between its steps."""
        self.write_pending_snapshot(offset)
        self.install_snapshot()
        self.remove_log_before(offset + 1)

    def wal_gap(self) -> tuple[int, int] | None:
        """(WAL start, snapshot offset) if records between them are on no file: recovery refuses such a disk."""
        return (self.log_start, self.snapshot_offset) if self.log_start > self.snapshot_offset + 1 else None

    def discard(self) -> None:
        """Drop every record and the history (a full sync starts, or a loading node restarts)."""
        self.truncate(0)
        self.history = EpochHistory()
        self.log_start = 1
        self.snapshot_offset = 0

    def crash(self, rng: random.Random, keep_unsynced_probability: float) -> int:
        """Lose the page cache (perhaps not all of it); returns the records lost."""
        before = len(self.log)
        self.pending_snapshot = None  # recovery never loads a pending snapshot
        if self.loading_marker:
            self.discard()
            return before
        kept = self.durable
        if kept < before and rng.random() < keep_unsynced_probability:
            kept = rng.randint(kept, before)
        self.truncate(kept)
        self.durable = kept  # what the restart finds is on disk
        self.history.truncate_after(kept)
        assert self.durable == len(self.log)
        return before - kept
