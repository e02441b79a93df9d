"""The simplest shells that run the replication drivers over a simulated disk.

Theory of operation
-------------------
:class:`PrimaryShell` carries out a :class:`PrimaryDriver`'s actions and
:class:`ReplicaShell` a :class:`ReplicaDriver`'s: the very drivers the node
runs (``io/replication.py``), so every replication decision (what to stream,
when a snapshot may go, heartbeats, the fence, ISR proposals, the
acknowledged offset, and on the replica side order, marker, acks, timers) is
the drivers'. Neither sends anything itself: methods return the messages to
send (and the primary the commands to propose), and the data plane
(data_plane.py) puts them on the simulated network. What is left here:

- the primary's snapshot of a full sync is the log's prefix ``1..offset``,
  cut into chunks of ``SNAPSHOT_CHUNK_ITEMS_MAX`` effects;
- a new (or restarted) primary persists :func:`promotion_history` before it
  writes;
- a replica tells its driver what its disk holds durably
  (:meth:`ReplicaShell.ack_point`, which a planted bug overrides), and seeds
  ``sync_id_base`` anew at every process start;
- both publish the drivers' ``AckUpTo`` to the store's acknowledged offset
  (``DataDisk.acked_offset``), and a replica's driver starts from it, as
  ``io/replication.py`` starts it from ``DataStore.acked_offset``.
"""

from collections.abc import Callable
from typing import Any

from trionode.core.cluster.state import Shard
from trionode.core.replication.messages import Ack, Records, ReplMessage, SnapshotChunk, SyncRequest
from trionode.core.replication.primary import PrimaryTracker
from trionode.core.replication.primary_driver import (
    ACCEPTED,
    REFUSED,
    Acked,
    AckUpTo,
    CutSnapshot,
    PrimaryAction,
    PrimaryDriver,
    Propose,
    SendSnapshotChunk,
    StreamRecords,
    promotion_history,
)
from trionode.core.replication.primary_driver import Send as PrimarySend
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
FENCE_RETRY_MS = 300  # a restarted primary re-proposes its isr_fence this often until it commits
SYNC_ID_STRIDE = 1_000_000  # sync ids of one process start: incarnation * stride + 1, + 2, ...
SYNC_RETRY_MS = 100  # an unanswered sync request is sent again (ten 10 ms steps)
SILENCE_MS = 400  # a session that heard nothing this long is started again

Outgoing = tuple[str, ReplMessage]  # (to, message)


class PrimaryShell:
    """Carries out a :class:`PrimaryDriver`'s actions on a :class:`DataDisk` (as ``io/replication.py`` does)."""

    def __init__(self, node_id: str, disk: DataDisk, shard: Shard, lag_timeout_ms: int) -> None:
        assert shard.primary_id == node_id
        self.id, self.disk = node_id, disk
        history = promotion_history(disk.history, shard.epoch, len(disk.log))
        if history is not None:
            disk.history = history  # persisted before the first write
        self.driver = PrimaryDriver(shard.id, node_id, shard.epoch, disk.history.copy(), disk.log_start,
                                    disk.durable, appended=len(disk.log), records_per_msg_max=RECORDS_PER_MSG_MAX,
                                    fence_retry_ms=FENCE_RETRY_MS, lag_timeout_ms=lag_timeout_ms)  # fmt: skip
        self.snapshots: dict[str, tuple[int, list[Effect]]] = {}  # replica -> (sync_id, a full sync's cut)
        self.proposals: list[dict[str, Any]] = []  # commands the driver asked to propose, not yet taken
        self.acked = 0  # the driver's acknowledged offset, as its AckUpTo actions published it
        self.reported_hw = 0  # the highest watermark the checker saw (it keeps it monotonic)
        self.acks = 0  # replica acks the driver accepted
        self.execute(self.driver.on_config(shard.epoch, shard.primary_id, shard.replica_ids, shard.isr_ids,
                                           shard.isr_version))  # fmt: skip

    @property
    def tracker(self) -> PrimaryTracker:
        return self.driver.tracker

    def write(self, effects: list[Effect]) -> None:
        self.disk.append(effects)

    def fsync(self) -> None:
        self.disk.fsync()

    def on_log(self, now_ms: int) -> list[Outgoing]:
        """Tell the driver what the disk holds: the acknowledged offset may move."""
        disk = self.disk
        return self.execute(self.driver.on_log(disk.log_start, len(disk.log), disk.durable, now_ms))

    def receive(self, msg: ReplMessage, now_ms: int) -> list[Outgoing]:
        if isinstance(msg, SyncRequest):
            self.snapshots.pop(msg.replica_id, None)  # a new session: a cut held for the old one is no use
            out = self.on_log(now_ms)  # the driver answers from what the disk holds now
            return out + self.execute(self.driver.on_sync_request(msg, now_ms))
        assert isinstance(msg, Ack), msg
        return self.execute(self.driver.on_ack(msg, now_ms))

    def on_applied(self, cmd: dict[str, Any], accepted: bool, config: ShardConfig) -> None:
        """A committed command was applied: adopt the configuration, and tell the driver what became of ``cmd``."""
        self.execute(self.driver.on_config(**config.config_args()))
        self.execute(self.driver.on_proposal_result(cmd, ACCEPTED if accepted else REFUSED))

    def stream_to(self, replica_id: str, msgs_max: int, heartbeat: bool) -> list[Outgoing]:
        return self.execute(self.driver.stream_to(replica_id, heartbeat, batches_max=msgs_max, chunks_max=msgs_max))

    def tick(self, now_ms: int) -> list[dict[str, Any]]:
        """Time passed: the commands to propose (the fence, ISR changes)."""
        self.execute(self.driver.tick(now_ms))
        out, self.proposals = self.proposals, []
        return out

    def execute(self, actions: list[PrimaryAction]) -> list[Outgoing]:
        disk, out, epoch, shard_id = self.disk, [], self.driver.epoch, self.tracker.shard_id
        for action in actions:
            match action:
                case PrimarySend(to=to, msg=msg):
                    out.append((to, msg))
                case CutSnapshot(to=to, sync_id=sync_id, offset=offset):
                    items = disk.log[:offset]  # the simulation's snapshot items are the effects 1..offset
                    self.snapshots[to] = (sync_id, items)
                    self.driver.on_snapshot_cut(to, sync_id, max(1, -(-len(items) // SNAPSHOT_CHUNK_ITEMS_MAX)))
                case SendSnapshotChunk(to=to, sync_id=sync_id, offset=offset, seq=seq, last=last):
                    held_sync_id, items = self.snapshots[to]
                    assert held_sync_id == sync_id and len(items) == offset, (held_sync_id, sync_id, offset)
                    lo = seq * SNAPSHOT_CHUNK_ITEMS_MAX
                    chunk = items[lo : lo + SNAPSHOT_CHUNK_ITEMS_MAX]
                    out.append((to, SnapshotChunk(shard_id, epoch, offset, seq, chunk, last, sync_id)))
                case StreamRecords(to=to, sync_id=sync_id, first_offset=first, last_offset=last, acked_offset=hw):
                    out.append((to, Records(shard_id, epoch, first, disk.log[first - 1 : last], hw, sync_id)))
                case Propose(command=cmd):
                    self.proposals.append(cmd)
                case AckUpTo(offset=offset):
                    self.acked = offset
                    disk.publish_acked(offset)
                case Acked():
                    self.acks += 1
        return out


Outbound = ReplMessage | AnswerFence  # to the primary, or a fencing round's answer to the leader


class ReplicaShell:
    """Carries out a :class:`ReplicaDriver`'s actions on a :class:`DataDisk` (as ``io/replication.py`` does).

    Its methods return what to send: replication messages for the primary and, after a fencing
    round, the :class:`AnswerFence` for the leader, which the caller routes.
    """

    def __init__(self, node_id: str, disk: DataDisk, incarnation: int, now_ms: int,
                 shard_id: str = SHARD_ID) -> None:  # fmt: skip
        self.id, self.disk = node_id, disk
        self.driver = ReplicaDriver(shard_id, node_id, disk.fence_epoch, disk.history, len(disk.log), now_ms,
                                    sync_id_base=incarnation * SYNC_ID_STRIDE, loading_marker=disk.loading_marker,
                                    acked_offset=disk.acked_offset,  # the store's: recovery's plan, or a role's
                                    truncate_floor=disk.snapshot_offset,  # what only a snapshot holds
                                    sync_retry_ms=SYNC_RETRY_MS, silence_ms=SILENCE_MS)  # fmt: skip
        # The nemesis's crash point: once it answers True for an action just carried out, the
        # process is dead (``crashed``): nothing after it runs, and the plane crashes the node.
        self.crash_after: Callable[[ReplicaAction], bool] | None = None
        self.crashed = False

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
            if self.crashed:
                return []
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
                case AckUpTo(offset=offset):
                    disk.publish_acked(offset)
            self.crashed = self.crash_after is not None and self.crash_after(action)
        if self.crashed:
            return []
        assert len(disk.log) == self.rs.log_end or disk.loading_marker, (len(disk.log), self.rs.log_end)
        return out
