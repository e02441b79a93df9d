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
written as a pending file (``pending_snapshot``), installed (``snapshot_offset``:
what recovery loads), and only then the WAL segments before N + 1 go
(``log_start``). The snapshot's contents are the in-memory log's prefix: the
simulation tracks only where the files reach.

A crash is followed at once by the restart's recovery (nothing touches a
down node's disk, so what the restart finds is known then): the node's own
rules (core/wal/recovery.py, as io/data_store.py's ``recover`` runs them)
say what it trusts and replays, carried out here on the simulated files. A
node that crashes with the loading marker set comes back empty, marker kept,
and its replication driver reports it ``loading`` until a sync completes
(DESIGN §5.2, S5); a pending snapshot is dropped; the log is rebuilt as the
snapshot's prefix and the replayed WAL records; the epoch history is cut to
the recovered end. A disk the rules refuse (a WAL that starts past the
snapshot's end) keeps their answer in ``refused``: the node cannot restart.

``acked_offset`` is the store's acknowledged offset (io's
``DataStore.acked_offset``), held in memory beside the disk: the restart takes
the plan's (the snapshot header's; every simulated snapshot is a compaction's,
installed once its offset was acknowledged, so the header's is its own
offset), the drivers' ``AckUpTo`` raise it, a cut lowers it to the cut. The
shells start their drivers from it and clients' replies wait for it, as the
node's do.

``cut_to`` is the shortest the log was cut to since the checker last looked
(None: not cut), so the checker can compare logs incrementally (data_checks.py);
``cuts`` counts the cuts, so a keyspace built from the log knows when to rebuild
(kv_workload.py).

Invariants: ``0 <= durable <= len(log)``; ``1 <= log_start <= len(log) + 1``;
``snapshot_offset <= durable``; ``acked_offset <= len(log)``.
"""

import random
from dataclasses import dataclass, field

from trionode.core.replication.history import EpochHistory
from trionode.core.wal import recovery

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
    refused: recovery.CannotStart | None = None  # recovery's answer at the last crash, if it refused the disk
    acked_offset: int = 0  # in memory: what the store takes as acknowledged (see the top)

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
        self.acked_offset = min(self.acked_offset, offset)
        self.pending_snapshot = None
        self.cut_to = offset if self.cut_to is None else min(self.cut_to, offset)

    def publish_acked(self, offset: int) -> None:
        """A driver's ``AckUpTo``: the store's acknowledged offset rises to ``offset`` (never falls)."""
        assert offset <= len(self.log), (offset, len(self.log))
        self.acked_offset = max(self.acked_offset, offset)

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

    def discard(self) -> None:
        """Drop every record and the history (a full sync starts, or a loading node restarts)."""
        self.truncate(0)
        self.history = EpochHistory()
        self.log_start = 1
        self.snapshot_offset = 0

    def crash(self, rng: random.Random, keep_unsynced_probability: float) -> int:
        """Lose the page cache (perhaps not all of it), then recover as the restart will; returns the records lost."""
        before = len(self.log)
        start = recovery.on_start(self.loading_marker, self.pending_snapshot is not None)
        if start.discard_local_data:
            self.discard()  # first: a discarded file's page cache needs no random draw
        if start.drop_pending_snapshot:
            self.pending_snapshot = None
        kept = self.durable
        if kept < len(self.log) and rng.random() < keep_unsynced_probability:
            kept = rng.randint(kept, len(self.log))
        self.truncate(kept)
        self.durable = kept  # what the restart finds is on disk
        self.refused = self.replay()
        assert self.durable == len(self.log)
        return before - len(self.log)

    def replay(self) -> recovery.CannotStart | None:
        """Carry out recovery's plan: the snapshot's records, then the WAL's it replays; None once done."""
        # Every simulated snapshot is a compaction's, whose header says its whole offset was acknowledged.
        plan = recovery.plan(self.snapshot_offset, self.snapshot_offset, self.log_start, len(self.log) + 1)
        if isinstance(plan, recovery.CannotStart):
            return plan
        start = plan.snapshot_offset
        assert plan.replay_from >= self.log_start or plan.replay_from > plan.end, (plan, self.log_start)
        replayed = self.log[plan.replay_from - 1 : plan.end]
        if replayed != self.log[start:]:  # only a wrong plan rewrites what the node holds
            self.cuts += 1
            self.cut_to = start if self.cut_to is None else min(self.cut_to, start)
            self.log[start:] = replayed
        if plan.remove_wal:
            self.remove_log_before(plan.end + 1)
        self.durable = len(self.log)
        self.history.truncate_after(plan.end)
        self.acked_offset = plan.acked  # what the restarted store takes as acknowledged, as io's recover
        return None
