"""The replication shell: streams a shard's effects from its primary to its replicas.

The cores decide (``core/replication``); this module moves bytes and time:

* On the **primary**, a :class:`PrimaryDriver` decides everything (sync
  answers, what to stream and when: only durable records, a full sync's
  snapshot once its offset is durable here; heartbeats, the ISR fence, ISR
  proposals) and owns the acknowledged offset; :class:`PrimarySide` carries
  its actions out: bus messages from the backlog or a keyspace cut, Raft
  proposals, and :meth:`DataStore.publish_acked`, which answers client writes
  and makes reads visible. Every ``repl_tick_ms`` it streams and ticks.
* On a **replica**, a :class:`ReplicaDriver` decides everything (sessions,
  in-place truncation, full resync under the loading marker, acks, timers)
  and owns the acknowledged offset there too; :meth:`ReplicaSide.execute`
  only carries its actions out, as the simulator's ``ReplicaShell`` does.
  Timers run on the monotonic clock (:func:`monotonic_ms`).

The node's epoch history is durable in ``data-history`` and is written before
any record of a new epoch (DESIGN §5.2).
"""

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from trionode import limits
from trionode.core.cluster.state import ClusterState
from trionode.core.replication.messages import (
    Ack,
    Records,
    ReplWireError,
    SnapshotChunk,
    SyncRequest,
    from_wire,
    to_wire,
)
from trionode.core.replication.primary_driver import (
    ACCEPTED,
    REFUSED,
    UNKNOWN,
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
from trionode.io.history_file import load_fence, load_history, save_fence, save_history
from trionode.io.logs import Sampled

log = logging.getLogger("trionode.repl")

BUS_KINDS = ("repl",)


def monotonic_ms() -> int:
    """Replication timers run on trio's clock: monotonic, so a wall-clock step cannot fire or stall them."""
    return int(trio.current_time() * 1000)


class PrimarySide:
    """This node is the primary of ``shard_id`` at ``epoch``: carries out its :class:`PrimaryDriver`'s actions."""

    def __init__(self, repl: "Replication", shard_id: str, epoch: int) -> None:
        self.repl = repl
        self.shard_id = shard_id
        self.epoch = epoch
        log_start, applied, durable = self._log_state()
        self.driver = PrimaryDriver(
            shard_id, repl.node_id, epoch, repl.history.copy(), log_start, durable, appended=applied
        )
        self.snapshots: dict[str, tuple[int, list[Any]]] = {}  # replica -> (sync_id, a full sync's chunks)
        self.proposals: list[dict[str, Any]] = []  # commands to propose, started by the next tick

    def _log_state(self) -> tuple[int, int, int]:
        """(first offset the backlog holds, applied end, durable end) of the local log."""
        store = self.repl.store
        log_start = store.backlog[0][0] if store.backlog else store.wal.appended_seq + 1
        return log_start, store.data.applied_offset, store.wal.durable_seq

    def on_log(self) -> None:
        """Tell the driver what the log holds now (the acknowledged offset may move)."""
        self.execute(self.driver.on_log(*self._log_state(), self.repl.clock_ms()))

    def on_sync_request(self, req: SyncRequest) -> None:
        self.snapshots.pop(req.replica_id, None)  # a new session: a cut held for the old one is no use
        self.on_log()
        self.execute(self.driver.on_sync_request(req, self.repl.clock_ms()))
        self.repl.wake()

    def on_ack(self, ack: Ack) -> None:
        self.execute(self.driver.on_ack(ack, self.repl.clock_ms()))

    def stream(self) -> None:
        """Send every replica what the driver says: snapshot chunks, durable records, heartbeats."""
        self.on_log()
        # One batch per round (rounds follow the fsyncs), a snapshot in large strides: the bus
        # drops what overflows a peer's queue, and a dropped message costs the replica a resync.
        self.execute(self.driver.stream(True, batches_max=1, chunks_max=limits.repl_snapshot_chunks_per_round_max))

    def tick(self, nursery: trio.Nursery) -> None:
        for line in self.driver.take_reports():
            log.info("replication: %s", line)
        self.execute(self.driver.tick(self.repl.clock_ms()))
        for cmd in self.proposals:
            nursery.start_soon(self._propose, cmd)
        self.proposals = []

    def execute(self, actions: list[PrimaryAction]) -> None:
        """Carry the driver's actions out, in order."""
        repl, store = self.repl, self.repl.store
        for action in actions:
            match action:
                case PrimarySend(to=to, msg=msg):
                    repl.send(to, msg)
                case CutSnapshot(to=to, sync_id=sync_id, offset=offset):
                    assert offset == store.data.applied_offset, (offset, store.data.applied_offset)
                    chunks = list(store.data.keyspace.dump(limits.repl_snapshot_chunk_keys_max)) or [[]]
                    self.snapshots[to] = (sync_id, chunks)
                    self.driver.on_snapshot_cut(to, sync_id, len(chunks))
                case SendSnapshotChunk(to=to, sync_id=sync_id, offset=offset, seq=seq, last=last):
                    held_sync_id, chunks = self.snapshots[to]
                    assert held_sync_id == sync_id, (held_sync_id, sync_id)
                    repl.send(to, SnapshotChunk(self.shard_id, self.epoch, offset, seq, chunks[seq], last, sync_id))
                    if last:
                        del self.snapshots[to]
                        log.info("full resync of %s: snapshot at offset %d in %d chunks", to[:12], offset, len(chunks))
                case StreamRecords(to=to, sync_id=sync_id, first_offset=first, last_offset=last, acked_offset=hw):
                    records = store.backlog_since(first - 1) if last >= first else []
                    assert records is not None, f"the driver streams {first}..{last}, the backlog lacks them"
                    batch = [effect for offset, effect in records[: last - first + 1]]
                    assert len(batch) == last - first + 1, (first, last, len(batch))
                    repl.send(to, Records(self.shard_id, self.epoch, first, batch, hw, sync_id))
                case Propose(command=cmd):
                    self.proposals.append(cmd)
                case AckUpTo(offset=offset):
                    store.publish_acked(offset)
                case Acked():
                    repl.note_ack()

    async def _propose(self, cmd: dict) -> None:
        from trionode.io.control import ProposalError

        what = f"{cmd['op']} of {cmd.get('node_id', self.shard_id)[:12]}"
        try:
            await self.repl.control.submit(cmd)
            log.info("ISR change committed: %s", what)
            outcome = ACCEPTED
        except ProposalError as e:
            log.info("ISR change %s not applied: %s", what, e)
            # Refused by the apply function: it can never commit. Anything else (a timeout, no
            # leader) may still commit; the driver decides what to make of that.
            outcome = REFUSED if str(e).startswith("ERR ") else UNKNOWN
        if self.repl.primary is self:
            self.execute(self.driver.on_proposal_result(cmd, outcome))


@dataclass(frozen=True, slots=True)
class _Fence:
    """A shard epoch from the applied configuration, queued in order with the primary's messages."""

    epoch: int


@dataclass(frozen=True, slots=True)
class _FenceRound:
    """The Raft leader's fencing round for a failover, queued likewise: answered once the fence is durable."""

    leader: str
    epoch: int
    term: int


class ReplicaSide:
    """This node replicates ``shard_id`` from ``primary_id``: carries out its :class:`ReplicaDriver`'s actions."""

    def __init__(self, repl: "Replication", shard_id: str, epoch: int, primary_id: str) -> None:
        self.repl = repl
        self.shard_id = shard_id
        self.primary_id = primary_id
        store = repl.store
        # A new sync id space per process start, so replies to a previous life are recognised: an id
        # seed, not a timer, so the wall clock (which survives a restart) is the right one here.
        self.driver = ReplicaDriver(shard_id, repl.node_id, epoch, repl.history, store.data.applied_offset,
                                    repl.clock_ms(), sync_id_base=time.time_ns() // 1000,
                                    loading_marker=store.loading_marker, acked_offset=store.acked_offset,
                                    truncate_floor=store.snapshot_offset,
                                    fence_epoch=load_fence(store.directory, shard_id))  # fmt: skip
        self.inbox: deque[Any] = deque()
        self.snapshot_items: list[list[Any]] = []  # the chunks of a full sync in progress

    @property
    def state(self) -> ReplicaState:
        return self.driver.rs

    def on_local_durable(self) -> None:
        """The local WAL moved on (any time, even between two awaits of :meth:`execute`): publish what the
        driver acknowledges now."""
        for action in self.driver.on_local_durable(self.repl.store.wal.durable_seq):
            assert isinstance(action, AckUpTo), action
            self.repl.store.publish_acked(action.offset)

    async def process(self) -> None:
        """Handle queued messages in order, then time and durability; each may need the disk."""
        driver, now = self.driver, self.repl.clock_ms
        while self.inbox and not self.replaced:
            msg = self.inbox.popleft()
            await self.execute(driver.on_local_end(self.repl.store.data.applied_offset))
            if isinstance(msg, _Fence):
                await self.execute(driver.fence(msg.epoch, now()))
            elif isinstance(msg, _FenceRound):
                await self.execute(driver.on_fence_round(msg.leader, msg.epoch, msg.term, now()))
            else:
                await self.execute(driver.on_message(msg, now()))
        await self.execute(driver.tick(now()))
        if self.replaced:
            return  # the configuration changed during a cut: the side that replaced us starts next round
        wal = self.repl.store.wal
        if self.state.log_end > wal.durable_seq:
            await wal.wait_durable(min(self.state.log_end, wal.appended_seq))
        await self.execute(driver.on_durable(wal.durable_seq, now()))
        for line in driver.take_reports():
            log.info("replication: %s", line)

    @property
    def replaced(self) -> bool:
        """The configuration replaced this side (another primary, a promotion, no role): it is done."""
        return self.repl.replica is not self

    async def execute(self, actions: list[ReplicaAction]) -> None:
        """Carry the driver's actions out, in order, until the configuration replaces this side."""
        store, repl = self.repl.store, self.repl
        for action in actions:
            if self.replaced:
                return  # its decisions (a history, an ack to the old primary) are no longer this node's
            match action:
                case SetLoadingMarker(on=on):
                    store.set_loading_marker(on)
                case Truncate(offset=offset):
                    self.snapshot_items = []
                    await repl.changing_store(store.truncate_after(offset))
                case LoadChunk(items=items):
                    self.snapshot_items.append(items)  # one keyspace dump chunk per message
                case InstallSnapshot(offset=offset):
                    await repl.changing_store(store.install_snapshot(offset, self.snapshot_items))
                    self.snapshot_items = []
                case SaveHistory(history=history):
                    repl.history = history.copy()
                    save_history(store.directory, history)
                case Append(records=records):
                    for offset, effect in records:
                        store.data.apply_replicated(offset, effect)
                    store.log_outbox()  # into the local WAL; the ACK waits for its fsync
                case Send(msg=msg):
                    repl.send(self.primary_id, msg)
                case SaveFence(epoch=epoch):
                    save_fence(store.directory, self.shard_id, epoch)
                case AnswerFence():
                    repl.on_fence_answer(self.shard_id, action)
                case AckUpTo(offset=offset):
                    store.publish_acked(offset)


class Replication:
    def __init__(self, node_id: str, store: Any, control: Any, clock_ms: Callable[[], int] = monotonic_ms) -> None:
        self.node_id = node_id
        self.store = store
        self.control = control
        self.clock_ms = clock_ms
        self.history = load_history(store.directory)
        self.history.truncate_after(store.data.applied_offset)  # entries past the recovered end describe nothing
        self.primary: PrimarySide | None = None
        self.replica: ReplicaSide | None = None
        self.on_serving_change: Callable[[], None] = lambda: None
        # Sends a fencing round's answer (io/failover.py sets it): called with the shard and the answer.
        self.on_fence_answer: Callable[[str, AnswerFence], None] = lambda shard_id, answer: None
        self._serving = False
        self._malformed = Sampled(log)
        # A configuration applied while the store is cut or replaced waits here for the end of it (see changing_store).
        self._changing_store = False
        self._pending_config: ClusterState | None = None
        self._wake = trio.Event()
        self._appended = trio.Event()
        self._ack_event = trio.Event()
        store.on_durable = self.on_local_durable
        store.on_compacted = self.on_compacted
        for kind in BUS_KINDS:
            control.bus_handlers[kind] = self._on_bus_message

    def note_ack(self) -> None:
        self._ack_event.set()
        self._ack_event = trio.Event()

    async def acks_changed(self) -> None:
        """Return after the next replica ACK (for WAIT)."""
        await self._ack_event.wait()

    def on_local_durable(self) -> None:
        """The local WAL may be durable further: publish what that acknowledges, as this node's role says.

        With no role nothing does. Such a node serves no command, and its log may end in records
        no ISR confirmed (a detached replica's tail): publishing its fsyncs put them in a compaction's
        snapshot as acknowledged (the compaction waits for the ISR for that reason), and a replica
        side started later began from that acknowledged offset and could serve them.
        """
        if self.primary is not None:
            self.primary.on_log()  # the driver owns the acknowledged offset
        elif self.replica is not None:
            self.replica.on_local_durable()  # the driver owns the acknowledged offset

    def on_compacted(self, snapshot_offset: int) -> None:
        """The store's snapshot moved to ``snapshot_offset``: a replica's driver cuts in place no lower."""
        if self.replica is not None:
            self.replica.driver.on_compacted(snapshot_offset)

    def on_appended(self) -> None:
        """New effects went into the WAL: stream them once they are durable."""
        self._appended.set()

    # --- configuration ---------------------------------------------------------
    def forget_history(self) -> None:
        """Leaving a cluster with nothing written: no epoch of it may describe this node's (empty) log."""
        assert self.store.data.applied_offset == 0 and self.primary is None and self.replica is None
        self.history.truncate_after(0)
        save_history(self.store.directory, self.history)

    def on_config(self, state: ClusterState) -> None:
        """Follow the applied configuration: become or stop being this shard's primary or replica."""
        if self._changing_store:
            self._pending_config = state  # the latest one wins: each names every role
            return
        me = state.nodes.get(self.node_id)
        shard = state.shards.get(me.shard_id) if me is not None and me.shard_id is not None else None
        if shard is None or me.role == "none":
            if self.replica is not None:  # nothing acknowledges here from now on: READONLY reads waiting never get it
                self.store.abort_waiters("this node no longer replicates its shard")
            self._stop_sides()
            return
        if me.role == "primary":
            self._be_primary(shard)
        else:
            self._be_replica(shard)

    async def changing_store(self, change: Awaitable[None]) -> None:
        """Await ``change`` (a cut in place, a full resync's install), then apply the configuration that came meanwhile.

        A side built during it would start from the data about to go: a replica side's driver
        from the old log end (it then claimed and acked records the store no longer held), a
        primary's from the old durable offset. Reads stop first: a READONLY read computed
        from the old data could not be answered from the new.
        """
        assert not self._changing_store, "one store change at a time"
        self._changing_store = True
        self._update_serving()
        try:
            await change
        finally:
            self._changing_store = False
        state, self._pending_config = self._pending_config, None
        if state is not None:
            self.on_config(state)
            self.wake()  # a new side starts on the next round
        self._update_serving()

    def _be_replica(self, shard: Any) -> None:
        side = self.replica
        if side is not None and side.shard_id == shard.id and side.primary_id == shard.primary_id:
            side.inbox.append(_Fence(shard.epoch))  # in order with the messages, by the replication task
            self.wake()
            return
        self._stop_sides()
        self.replica = ReplicaSide(self, shard.id, shard.epoch, shard.primary_id)
        log.info("replica of shard %s, primary %s, epoch %d, from offset %d", shard.id[:12],
                 shard.primary_id[:12], shard.epoch, self.store.data.applied_offset)

    def _be_primary(self, shard: Any) -> None:
        if self.primary is None or self.primary.epoch != shard.epoch or self.primary.shard_id != shard.id:
            history = promotion_history(self.history, shard.epoch, self.store.data.applied_offset)
            if history is not None:
                # Durable before any record of the new epoch (history.py: log matching).
                self.history = history
                save_history(self.store.directory, history)
            # A promoted replica stops replicating: its side would keep asking the old primary for
            # a sync, bound reads, and make ROLE and INFO say "slave".
            self.replica = None
            self.primary = PrimarySide(self, shard.id, shard.epoch)
            log.info("primary of shard %s at epoch %d from offset %d", shard.id[:12], shard.epoch,
                     self.store.data.applied_offset)
        side = self.primary
        # A replica that has seen a later epoch may have deposed us already: the entry that replaced
        # us is committed but further down our log than this one. Deposed stays deposed.
        deposed_before = side.driver.tracker.deposed
        side.execute(side.driver.on_config(shard.epoch, shard.primary_id, shard.replica_ids, shard.isr_ids,
                                           shard.isr_version))  # fmt: skip
        # The driver may be deposed while the configuration still names us primary at our epoch:
        # a member fenced at the next epoch told us so before any failover committed. We serve no
        # write it could acknowledge; the leader promotes another member or reinstates us at the
        # next epoch (core/failover/controller.py). That used to crash the node here (exit 4).
        assert deposed_before or not side.driver.tracker.deposed, "a configuration naming us primary deposed us"

    def _stop_sides(self) -> None:
        if self.primary is not None:
            log.info("no longer primary of shard %s", self.primary.shard_id[:12])
            self.store.abort_waiters("this node is no longer the primary; the write's outcome is unknown")
        self.primary = self.replica = None

    def fence(self, leader: str, shard_id: str, epoch: int, term: int) -> bool:
        """The failover's first step (DESIGN §6): refuse every stream below ``epoch`` from now on.

        Queued for the replication task, in order with the primary's messages; the driver makes
        the fence durable, then answers through ``on_fence_answer`` with this replica's durable
        offset and health. False when this node is no replica of ``shard_id`` or its queue is full
        (the leader asks again).
        """
        side = self.replica
        if side is None or side.shard_id != shard_id or len(side.inbox) >= limits.raft_inbox_msgs_max:
            return False
        side.inbox.append(_FenceRound(leader, epoch, term))
        self.wake()
        return True

    # --- what others ask -----------------------------------------------------------
    def fence_facts(self) -> dict[str, tuple[str, int]]:
        """What this node's replication knows of its shard's fence, for its gossip (core/failover/fences.py)."""
        if self.replica is not None:
            return {"replica": (self.replica.shard_id, self.replica.state.epoch)}
        if self.primary is not None and self.primary.driver.tracker.deposed:
            return {"deposed": (self.primary.shard_id, self.primary.epoch)}
        return {}

    def serving_reads(self) -> bool:
        return not self._changing_store and self.replica is not None and self.replica.driver.read_bound() is not None

    def offsets(self) -> dict[str, int]:
        """Replication offsets this node knows: its own, and its replicas' if it is a primary."""
        mine = self.replica.driver.reported_offset() if self.replica else self.store.data.applied_offset
        out = {self.node_id: mine}
        if self.primary is not None:
            out.update({r: st["offset"] for r, st in self.primary.driver.tracker.replica_status().items()})
        return out

    def health(self) -> dict[str, str]:
        if self.replica is not None and self.replica.driver.health == "loading":
            return {self.node_id: "loading"}
        if self.primary is not None:
            return {r: "loading" for r, st in self.primary.driver.tracker.replica_status().items()
                    if st["state"] == "loading"}
        return {}

    def info(self, state: ClusterState) -> dict[str, Any]:
        """INFO replication, in Redis's field names (ROLE is built from the same facts)."""
        applied = self.store.data.applied_offset
        if self.replica is not None:
            primary = state.nodes.get(self.replica.primary_id)
            rs = self.replica.state
            return {
                "role": "slave",
                "master_host": primary.host if primary else "",
                "master_port": primary.port if primary else 0,
                "master_link_status": "up" if rs.state in ("syncing", "streaming") else "down",
                "master_sync_in_progress": int(self.replica.driver.health == "loading"),
                "slave_repl_offset": self.replica.driver.reported_offset(),
                "slave_read_only": 1,
                "replica_state": rs.state,
                "master_repl_offset": applied,
                "acked_repl_offset": self.store.acked_offset,
            }
        fields: dict[str, Any] = {"role": "master", "connected_slaves": 0}
        if self.primary is not None:
            replicas = self.primary.driver.tracker.replica_status()
            fields["connected_slaves"] = sum(1 for r in replicas.values() if r["state"] != "connecting")
            for i, (node_id, r) in enumerate(sorted(replicas.items())):
                node = state.nodes.get(node_id)
                where = f"ip={node.host},port={node.port}" if node else "ip=?,port=0"
                progress = f"state={r['state']},offset={r['offset']},lag={r['lag']},isr={int(r['in_isr'])}"
                fields[f"slave{i}"] = f"{where},{progress}"
        fields.update(master_repl_offset=applied, acked_repl_offset=self.store.acked_offset)
        return fields

    def wait_count(self, offset: int) -> int:
        return self.primary.driver.wait_count(offset) if self.primary is not None else 0

    # --- messages ----------------------------------------------------------------
    def send(self, peer: str, msg: Any) -> None:
        self.control.bus.send(peer, {"k": "repl", "m": to_wire(msg)})

    def wake(self) -> None:
        self._wake.set()

    def _on_bus_message(self, peer: str, payload: dict) -> None:
        try:
            msg = from_wire(payload.get("m"))
        except ReplWireError as e:
            self._malformed.warning("dropping a malformed replication message from %s: %s", peer[:12], e)
            return
        if isinstance(msg, (SyncRequest, Ack)) and msg.replica_id != peer:
            log.warning("dropping a replication message from %s that speaks for %s", peer[:12], msg.replica_id[:12])
            return
        if self.primary is not None and isinstance(msg, SyncRequest):
            self.primary.on_sync_request(msg)
        elif self.primary is not None and isinstance(msg, Ack):
            self.primary.on_ack(msg)
        elif self._for_replica(peer, msg):
            self.replica.inbox.append(msg)
            self.wake()

    def _for_replica(self, peer: str, msg: Any) -> bool:
        """A message from our primary that the replica side should queue (bounded: drop beyond)."""
        side = self.replica
        return (
            side is not None and peer == side.primary_id and not isinstance(msg, (SyncRequest, Ack))
            and len(side.inbox) < limits.raft_inbox_msgs_max
        )

    # --- the task ----------------------------------------------------------------
    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._durability_watch)
            while True:
                with trio.move_on_after(limits.repl_tick_ms / 1000):
                    await self._wake.wait()
                self._wake = trio.Event()
                if self.primary is not None:
                    self.primary.stream()
                    self.primary.tick(nursery)
                elif self.replica is not None:
                    await self.replica.process()
                self._update_serving()

    def _update_serving(self) -> None:
        """Tell the node (its routing) when this replica starts or stops serving READONLY reads."""
        if self.serving_reads() != self._serving:
            self._serving = not self._serving
            self.on_serving_change()

    async def _durability_watch(self) -> None:
        """Wake the streamer once what was appended is durable (only durable records are streamed)."""
        while True:
            await self._appended.wait()
            self._appended = trio.Event()
            wal = self.store.wal
            await wal.wait_durable(wal.appended_seq)
            self.wake()
