"""The simplest shells that keep the replication cores' rules, over a simulated disk.

Theory of operation
-------------------
:class:`PrimaryShell` wraps a :class:`PrimaryTracker` for the shard's one epoch;
:class:`ReplicaShell` carries out a :class:`ReplicaDriver`'s actions, the very
driver the node runs (``io/replication.py``). Neither sends anything
itself: methods return the messages to send, and the data plane (data_plane.py)
puts them on the simulated network. What they keep, as the cores' docstrings
ask of a shell:

- the primary streams a record only once it is durable on its own disk (log
  matching), calls ``set_log_end`` before streaming it, answers a full sync
  with a snapshot of its durable log and then the tail, and drops a session
  whose next record the WAL no longer holds (the replica times out and resyncs);
- a restarted primary cuts its history back to its recovered log end and, if
  its epoch's entry went with it, appends ``(epoch, log_end + 1)`` before it
  writes; its fresh tracker acknowledges nothing until the ISR confirms it,
  nor before an ``isr_fence`` it proposed has committed (``fenced``);
- a replica executes the driver's actions in order, tells it what its disk
  holds durably (:meth:`ReplicaShell.ack_point`, which a planted bug
  overrides), and seeds ``sync_id_base`` anew at every process start; every
  replica decision (order, marker, acks, timers) is the driver's.
"""

from dataclasses import dataclass
from typing import Any

from trionode.core.cluster import command
from trionode.core.replication.messages import (
    Records,
    ReplMessage,
    SnapshotChunk,
    SyncRefused,
    SyncReply,
    SyncRequest,
)
from trionode.core.replication.primary import PrimaryTracker
from trionode.core.replication.replica import ReplicaState
from trionode.core.replication.replica_driver import (
    AnswerFence,
    Append,
    InstallSnapshot,
    LoadChunk,
    ReplicaAction,
    ReplicaDriver,
    SaveFence,
    SaveHistory,
    Send,
    SetLoadingMarker,
    Truncate,
)
from trionode.sim.data_config import SHARD_ID, ShardConfig
from trionode.sim.data_disk import DataDisk, Effect

RECORDS_PER_MSG_MAX = 4
SNAPSHOT_CHUNK_ITEMS_MAX = 16
FENCE_RETRY_STEPS = 30  # a restarted primary re-proposes its isr_fence this often until it commits
SYNC_ID_STRIDE = 1_000_000  # sync ids of one process start: incarnation * stride + 1, + 2, ...
SYNC_RETRY_MS = 100  # an unanswered sync request is sent again (ten 10 ms steps)
SILENCE_MS = 400  # a session that heard nothing this long is started again


@dataclass(slots=True)
class Session:
    """The primary's stream to one replica, for one ``sync_id``."""

    sync_id: int
    next_offset: int  # the next record to stream
    snapshot: list[Effect] | None = None  # a full sync's snapshot still to send (records 1..snapshot_offset)
    snapshot_offset: int = 0
    snapshot_seq: int = 0


class PrimaryShell:
    def __init__(self, node_id: str, disk: DataDisk, config: ShardConfig, lag_timeout_ms: int) -> None:
        shard = config.shard
        assert shard.primary_id == node_id
        self.id, self.disk = node_id, disk
        disk.history.truncate_after(len(disk.log))
        if disk.history.last_epoch() != shard.epoch:
            disk.history.append_epoch(shard.epoch, len(disk.log) + 1)  # persisted before the first write
        self.tracker = PrimaryTracker(SHARD_ID, node_id, shard.epoch, disk.history.copy(), disk.log_start,
                                      disk.durable, shard.replica_ids, shard.isr_ids, shard.isr_version,
                                      lag_timeout_ms=lag_timeout_ms)  # fmt: skip
        self.sessions: dict[str, Session] = {}
        self.proposed: dict[str, Any] | None = None  # the last ISR command this tracker asked for
        self.start_isr_version = shard.isr_version  # PrimarySide: fenced once the ISR version moves past it
        self.fence_sent_step: int | None = None
        self.reported_hw = 0  # the highest watermark this tracker reported (the checker keeps it monotonic)

    @property
    def fenced(self) -> bool:
        """An ``isr_fence`` (or any ISR change) committed since this tracker started.

        Until then it acknowledges nothing: an ISR proposal its previous process left in
        flight could still commit and admit a replica that missed writes (sim seed 61).
        """
        return self.tracker.isr_version > self.start_isr_version

    def fence_command(self, now_step: int) -> dict[str, Any] | None:
        """The ``isr_fence`` to propose now (again every ``FENCE_RETRY_STEPS``: it may be lost), or None."""
        if self.fenced or (self.fence_sent_step is not None and now_step - self.fence_sent_step < FENCE_RETRY_STEPS):
            return None
        self.fence_sent_step = now_step
        tracker = self.tracker
        return command("isr_fence", shard_id=SHARD_ID, epoch=tracker.epoch, isr_version=tracker.isr_version)

    def write(self, effects: list[Effect]) -> None:
        self.disk.append(effects)

    def fsync(self, now_ms: int) -> None:
        self.disk.fsync()
        self.tracker.set_log_end(self.disk.durable, now_ms)

    def on_sync_request(self, req: SyncRequest) -> SyncReply | SyncRefused:
        reply = self.tracker.on_sync_request(req, self.disk.log_start, self.disk.durable)
        if isinstance(reply, SyncReply):
            if reply.mode == "partial":
                self.sessions[req.replica_id] = Session(req.sync_id, reply.keep_offset + 1)
            else:
                snap = self.disk.log[: self.disk.durable]
                self.sessions[req.replica_id] = Session(req.sync_id, len(snap) + 1, snap, len(snap))
        return reply

    def isr_changes(self, now_ms: int) -> list[dict[str, Any]]:
        """The tracker's ISR proposals; the last one is remembered for :meth:`on_applied`."""
        commands = self.tracker.isr_changes(now_ms)
        if commands:
            self.proposed = commands[-1]
        return commands

    def on_applied(self, cmd: dict[str, Any], accepted: bool, config: ShardConfig) -> None:
        """A committed command was applied: adopt the configuration; end our proposal if it was refused.

        ``proposal_done`` names only a node, so it is called only when the refused command is the
        tracker's own current proposal: a late duplicate of an earlier command about the same node
        must not end a newer proposal that may still commit.
        """
        self.tracker.set_config(**config.config_args())
        if not accepted and cmd == self.proposed:
            self.tracker.proposal_done(cmd["node_id"])
            self.proposed = None

    def streamable(self) -> int:
        """The last offset that may be streamed: only what is durable here (log matching)."""
        return self.disk.durable

    def wal_keep_from(self, hw: int) -> int:
        """The furthest compaction may move ``log_start``: the ISR may still need ``hw + 1`` on."""
        return hw + 1

    def stream(self, replica_id: str, hw: int, heartbeat: bool) -> ReplMessage | None:
        """The next message of ``replica_id``'s session: a snapshot chunk, records, a heartbeat, or None."""
        sess = self.sessions.get(replica_id)
        if sess is None:
            return None
        if sess.snapshot is not None:
            return self._chunk(sess)
        if sess.next_offset < self.disk.log_start:
            del self.sessions[replica_id]  # compacted away: the replica will time out and resync
            return None
        end = min(self.streamable(), sess.next_offset + RECORDS_PER_MSG_MAX - 1)
        effects = self.disk.log[sess.next_offset - 1 : end]
        if not effects and not heartbeat:
            return None
        msg = Records(SHARD_ID, self.tracker.epoch, sess.next_offset, effects, hw, sess.sync_id)
        sess.next_offset += len(effects)
        return msg

    def _chunk(self, sess: Session) -> SnapshotChunk:
        assert sess.snapshot is not None
        lo = sess.snapshot_seq * SNAPSHOT_CHUNK_ITEMS_MAX
        items = sess.snapshot[lo : lo + SNAPSHOT_CHUNK_ITEMS_MAX]
        last = lo + SNAPSHOT_CHUNK_ITEMS_MAX >= len(sess.snapshot)
        chunk = SnapshotChunk(SHARD_ID, self.tracker.epoch, sess.snapshot_offset, sess.snapshot_seq, items, last,
                              sess.sync_id)  # fmt: skip
        sess.snapshot_seq += 1
        if last:
            sess.snapshot = None
        return chunk


Outbound = ReplMessage | AnswerFence  # to the primary, or a fencing round's answer to the leader


class ReplicaShell:
    """Carries out a :class:`ReplicaDriver`'s actions on a :class:`DataDisk` (as ``io/replication.py`` does).

    Its methods return what to send: replication messages for the primary and, after a fencing
    round, the :class:`AnswerFence` for the leader, which the caller routes.
    """

    def __init__(self, node_id: str, disk: DataDisk, incarnation: int, now_ms: int) -> None:
        self.id, self.disk = node_id, disk
        self.driver = ReplicaDriver(SHARD_ID, node_id, disk.fence_epoch, disk.history, len(disk.log), now_ms,
                                    sync_id_base=incarnation * SYNC_ID_STRIDE, loading_marker=disk.loading_marker,
                                    sync_retry_ms=SYNC_RETRY_MS, silence_ms=SILENCE_MS)  # fmt: skip

    @property
    def rs(self) -> ReplicaState:
        return self.driver.rs

    def receive(self, msg: ReplMessage, now_ms: int) -> list[Outbound]:
        """Hand a primary's message to the driver; the messages to send back."""
        return self.execute(self.driver.on_local_end(len(self.disk.log)) + self.driver.on_message(msg, now_ms))

    def tick(self, now_ms: int) -> list[Outbound]:
        return self.execute(self.driver.tick(now_ms))

    def fence(self, epoch: int, now_ms: int) -> list[Outbound]:
        """The configuration's epoch: fenced durably, a new session if it is news."""
        return self.execute(self.driver.fence(epoch, now_ms))

    def fence_round(self, leader: str, epoch: int, term: int, now_ms: int) -> list[Outbound]:
        """A failover's fencing round: fenced durably, then the answer."""
        return self.execute(self.driver.on_fence_round(leader, epoch, term, now_ms))

    def ack_point(self) -> int:
        """The offset the disk holds durably (a planted bug overrides it)."""
        return self.disk.durable

    def ack(self, now_ms: int) -> list[Outbound]:
        """Tell the driver what is durable: the ack to send, if one is due."""
        return self.execute(self.driver.on_durable(self.ack_point(), now_ms))

    def execute(self, actions: list[ReplicaAction]) -> list[Outbound]:
        disk = self.disk
        out: list[Outbound] = []
        for action in actions:
            match action:
                case SetLoadingMarker(on=on):
                    disk.loading_marker = on
                case Truncate(offset=0):
                    disk.discard()
                case Truncate(offset=offset):
                    disk.truncate(min(offset, len(disk.log)))
                case LoadChunk(items=items):
                    disk.append(items)  # the simulation's snapshot items are the effects 1..offset
                case InstallSnapshot(offset=offset):
                    assert len(disk.log) == offset, (len(disk.log), offset)
                case SaveHistory(history=history):
                    disk.history = history.copy()
                case Append(records=records):
                    for offset, effect in records:
                        assert offset == len(disk.log) + 1, (offset, len(disk.log))
                        disk.append([effect])
                case Send(msg=msg):
                    out.append(msg)
                case SaveFence(epoch=epoch):
                    disk.fence_epoch = epoch
                case AnswerFence():
                    out.append(action)
        assert len(disk.log) == self.rs.log_end or disk.loading_marker, (len(disk.log), self.rs.log_end)
        return out
