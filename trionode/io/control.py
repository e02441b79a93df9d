"""The control plane's shell: drives the Raft core and applies the cluster state.

One task owns the Raft core. It wakes on a tick, a bus message or a proposal,
feeds them to the core, and then handles every Ready in the order the
contract demands (``core/raft/messages.py``): persist (and fsync when
``must_sync``), then send, then apply, then advance. Because only this task
touches the core, nothing can observe a vote, an ACK or an applied entry that
is not already durable.

Operator commands (bootstrap, MEET, ADDSLOTS, REPLICATE, FORGET) become
proposals on the leader; :meth:`ControlPlane.propose` waits until the entry is
applied and returns the state machine's verdict. On a follower they fail with
a NOTLEADER error naming the leader, which the CLI follows.

The leader also runs the membership manager: learners that have caught up are
promoted, one single-server change at a time, until ``raft_voters_max``.
"""

import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from trionode import limits
from trionode.core import errors
from trionode.core.cluster import commands as cluster_commands
from trionode.core.cluster import snapshot as cluster_snapshot
from trionode.core.cluster.state import ClusterState
from trionode.core.failover import LeaderAuthority
from trionode.core.raft import ConfChangeRefused, NotLeader, ProposalRefused, RaftConfig, RawNode
from trionode.core.raft.messages import ConfChange, ConfChangeKind, Entry, EntryKind, Ready, Snapshot
from trionode.core.raft.wire import WireError, from_wire, to_wire
from trionode.io import logs
from trionode.io.bus import Bus
from trionode.io.raft_store import RaftStore

log = logging.getLogger("trionode.control")


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class ProposalError(Exception):
    """A proposal was not applied; the message is a Redis-style error line."""


@dataclass(slots=True)
class _Waiter:
    data: Any
    done: trio.Event
    result: Any = None


class ControlPlane:
    def __init__(self, node_id: str, store: RaftStore, bus_addr: tuple[str, int], rng: random.Random) -> None:
        self.node_id = node_id
        self.store = store
        self.rng = rng
        self.state = _state_from_snapshot(store.snapshot)
        self.bus = Bus(node_id, lambda: self.store.cluster_id, self._on_bus_message, rng, bus_addr)
        self.rawnode: RawNode | None = self._make_rawnode() if store.cluster_id else None
        self._inbox: deque[Any] = deque()
        self._ticks = 0
        self._wake = trio.Event()
        self._waiters: dict[int, _Waiter] = {}
        self._forwarded: dict[int, _Waiter] = {}   # Invariant: len <= forwarded_max
        self._read_indexes: dict[int, _Waiter] = {}  # Invariant: len <= raft_read_indexes_max
        self.authority = LeaderAuthority(node_id, limits.raft_election_ticks * limits.raft_tick_ms)
        self._next_request = 0
        self._nursery: trio.Nursery | None = None
        self._applied = trio.Event()  # set (and replaced) whenever entries are applied
        self.admin_lock = trio.Lock()  # serialises read-then-propose operator steps on this node
        self._stepping = trio.Lock()  # held while the core steps and its Ready is handled (see leave())
        # Nodes the failure detector reports failed (installed by the node shell).
        self.failed_nodes: Callable[[], set[str]] = set
        # Other subsystems sharing the bus (replication) register their message kinds here.
        self.bus_handlers: dict[str, Callable[[str, dict], None]] = {}
        self._listeners: list[Callable[[], None]] = []
        self._applied_since_compaction = 0
        self.leader = ""
        self.role = "none"
        self._stopping = False
        self._stopped = trio.Event()
        self._malformed = logs.Sampled(log)
        self._sync_peers()

    def _make_rawnode(self) -> RawNode:
        config = RaftConfig(
            node_id=self.node_id,
            election_ticks=limits.raft_election_ticks,
            heartbeat_ticks=limits.raft_heartbeat_ticks,
            voters_max=limits.raft_voters_max,
        )
        s = self.store
        return RawNode(config, self.rng, hard_state=s.hard_state, snapshot=s.snapshot, entries=s.entries)

    def on_change(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after every applied change of the cluster state."""
        self._listeners.append(callback)

    # --- inputs -------------------------------------------------------------
    def _on_bus_message(self, peer_id: str, payload: dict) -> None:
        kind = payload.get("k")
        if kind == "fwd" and self._nursery is not None:
            self._nursery.start_soon(self._serve_forwarded, peer_id, payload)
            return
        if kind == "fwd_reply":
            self._forwarded_reply(payload)
            return
        if kind == "read_index":
            self._on_read_index(peer_id, payload)
            return
        if kind in self.bus_handlers:
            self.bus_handlers[kind](peer_id, payload)
            return
        if kind != "raft":
            return
        self.authority.on_message(peer_id, payload.get("ts"), payload.get("echo"))
        if len(self._inbox) >= limits.raft_inbox_msgs_max:
            return  # dropped: Raft will retransmit
        self._inbox.append(payload)
        self._wake.set()

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(limits.raft_tick_ms / 1000)
            self._ticks += 1
            self._wake.set()

    async def run(self, listeners: list[trio.SocketListener], *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.store.wal.run)
            await nursery.start(self.bus.run, listeners)
            nursery.start_soon(self._ticker)
            # Apply what the log already holds before serving (and a sole voter leads, so its first
            # lease comes before its first client). Opened on a full disk, nothing is stepped: a vote
            # would wait for the Raft WAL, and the node serves meanwhile while the loop below waits.
            await self._step_and_handle(step=not self.store.wal.disk_full)
            task_status.started()
            while not self._stopping:
                await self._wake.wait()
                self._wake = trio.Event()
                async with self._stepping:
                    await self._step_and_handle()
            # A clean stop: fold the log into raft.snap, then step the core no more (no vote,
            # no ACK) until the node's nursery is cancelled.
            await self._maybe_compact(force=True)
            self._stopped.set()
            await trio.sleep_forever()

    async def shut_down(self) -> None:
        """A clean stop (DESIGN §4, §3): hand leadership over, then compact the Raft log.

        A loop that waits for space in a full Raft WAL is left waiting: it has sent nothing
        its disk does not hold, and the node's nursery cancels it.
        """
        await self.hand_over_leadership()
        self._stopping = True
        self._wake.set()
        while not self._stopped.is_set() and not self.store.disk_full:
            with trio.move_on_after(limits.wal_disk_full_retry_ms / 1000):
                await self._stopped.wait()
        if not self._stopped.is_set():
            log.warning("raft: the disk is full; stopping without compacting the Raft log")

    async def hand_over_leadership(self) -> bool:
        """Transfer leadership to the most caught-up other voter; True once this node does not lead.

        The cluster then need not wait out an election timeout to replace a leader that
        stops cleanly or is being removed. Bounded by one election timeout, as the core
        abandons a transfer after it.
        """
        node = self.rawnode
        if node is None or not node.is_leader:
            return True
        target = node.transfer_target(avoid=self.failed_nodes())
        if not target:
            return False
        log.info("raft: handing leadership over to %s", target[:12])
        node.transfer_leadership(target)
        self._wake.set()
        with trio.move_on_after(limits.raft_election_ticks * limits.raft_tick_ms / 1000):
            while node.is_leader:
                await trio.sleep(limits.raft_tick_ms / 1000)
        return not node.is_leader

    async def _step_and_handle(self, step: bool = True) -> None:
        """Feed the core its ticks and messages (unless not ``step``), then handle its Readies."""
        node = self.rawnode
        if node is None:
            if step:
                await self._maybe_adopt()
            return
        if step:
            self._step_inputs(node)
        while node.has_ready():
            await self._handle_ready(node.ready())
        if node.is_leader:
            self._manage_membership()
            while node.has_ready():
                await self._handle_ready(node.ready())
        await self._maybe_compact()

    def _step_inputs(self, node: RawNode) -> None:
        ticks, self._ticks = self._ticks, 0
        for _ in range(ticks):
            node.tick()
        if self._is_sole_voter() and node.role not in ("leader", "candidate"):
            node.campaign()  # a one-voter group has nobody to wait for
        while self._inbox:
            self._step_one(self._inbox.popleft())

    def _step_one(self, payload: dict) -> None:
        try:
            msg = from_wire(payload.get("m"))
        except WireError as e:
            self._malformed.warning("dropping a malformed Raft message: %s", e)
            return
        if msg.to == self.node_id:
            self.rawnode.step(msg)

    async def _maybe_adopt(self) -> None:
        """An unbootstrapped node joins the cluster whose leader first sends it Raft traffic."""
        while self._inbox:
            payload = self._inbox.popleft()
            cluster_id = payload.get("cluster")
            if isinstance(cluster_id, str) and cluster_id:
                log.info("joining cluster %s (contacted by its leader)", cluster_id)
                await self.store.set_cluster_id(cluster_id)
                self.rawnode = self._make_rawnode()
                self._step_one(payload)
                await self._step_and_handle()
                return

    # --- leader authority, for leases (core/failover/authority.py) ---------------------
    def authority_until_ms(self) -> int:
        """Until when (monotonic ms) no other leader can exist; -1 when this node does not lead."""
        node = self.rawnode
        leading = node is not None and node.is_leader
        return self.authority.until_ms(node.conf.voters if leading else (), leading, monotonic_ms())

    # --- the Ready contract ---------------------------------------------------
    async def _handle_ready(self, ready: Ready) -> None:
        node = self.rawnode
        if ready.soft_state is not None:
            self._note_soft_state(ready)
        if ready.snapshot is not None and ready.snapshot.index > self.store.snapshot.index:
            await self.store.persist_snapshot(ready.snapshot)
        seq = self.store.append_ready(ready)
        if ready.must_sync and seq:
            await self.store.wal.wait_durable(seq)  # 1. persist before anything leaves
        cluster_id = self.store.cluster_id
        for msg in ready.messages:  # 2. send
            stamp = self.authority.stamp(msg.to, monotonic_ms())
            self.bus.send(msg.to, {"k": "raft", "cluster": cluster_id, "m": to_wire(msg), **stamp})
        if ready.snapshot is not None:
            self._install_snapshot(ready.snapshot)
        for entry in ready.committed:  # 3. apply
            self._apply(entry)
        node.advance(ready)  # 4. advance
        if ready.committed or ready.snapshot is not None:
            self._changed()
            self._applied.set()
            self._applied = trio.Event()

    def _note_soft_state(self, ready: Ready) -> None:
        soft = ready.soft_state
        if soft.leader != self.leader or soft.role != self.role:
            log.info("raft: role %s, leader %s (term %d)", soft.role, soft.leader[:12] or "unknown", self.term)
        self.leader, self.role = soft.leader, soft.role
        logs.set_term(self.term)
        if soft.role != "leader":
            self._fail_waiters("TRYAGAIN leadership changed before the command was applied; its outcome is unknown")

    def _apply(self, entry: Entry) -> None:
        result = None
        if entry.kind == EntryKind.NORMAL:
            result = cluster_commands.apply(self.state, entry.index, entry.data)
            if not result.ok:
                log.info("cluster config entry %d rejected: %s", entry.index, result.reason)
        else:
            # No-op and membership entries change Raft, not the configuration; they still count as applied.
            self.state.applied_index = entry.index
        self._applied_since_compaction += 1
        waiter = self._waiters.pop(entry.index, None)
        if waiter is not None:
            waiter.result = result if entry.data == waiter.data else ProposalError("ERR proposal was lost")
            waiter.done.set()

    def _install_snapshot(self, snapshot: Snapshot) -> None:
        self.state = _state_from_snapshot(snapshot)
        log.info("installed control-plane snapshot at index %d", snapshot.index)

    def _changed(self) -> None:
        self._sync_peers()
        for callback in self._listeners:
            callback()

    def _sync_peers(self) -> None:
        for node in self.state.nodes.values():
            if node.id != self.node_id:
                self.bus.set_peer(node.id, (node.host, node.bus_port))

    async def _maybe_compact(self, force: bool = False) -> None:
        node = self.rawnode
        if node is None or self._applied_since_compaction < (1 if force else limits.raft_compact_entries_min):
            return
        applied = node.status().applied
        snap = node.compact(applied, cluster_snapshot.to_snapshot(self.state))
        # On a full disk raft.snap is skipped (the WAL still holds it all) and tried again after as many entries.
        await self.store.compact_to(snap, wait=False)
        self._applied_since_compaction = 0

    # --- proposals ------------------------------------------------------------
    @property
    def term(self) -> int:
        return self.rawnode.term if self.rawnode is not None else 0

    def conf_members(self) -> set[str]:
        """Raft voters and learners, as this node's core knows them."""
        if self.rawnode is None:
            return set()
        conf = self.rawnode.conf
        return set(conf.voters) | set(conf.learners)

    def _is_sole_voter(self) -> bool:
        conf = self.rawnode.conf
        return conf.voters == (self.node_id,)

    def not_leader_error(self) -> ProposalError:
        leader = self.state.nodes.get(self.leader)
        where = f"{leader.host}:{leader.port}" if leader is not None else "unknown"
        return ProposalError(f"NOTLEADER this node is not the Raft leader; the leader is {where}")

    async def propose(self, command: dict) -> int:
        """Propose a cluster command on the leader; wait for its apply; return its index."""
        return await self._propose(command, lambda node: node.propose(command))

    async def propose_conf_change(self, change: ConfChange) -> int:
        removes_me = change.kind is ConfChangeKind.REMOVE and change.node_id == self.node_id
        # A leader that removed itself would leave the cluster leaderless for an election
        # timeout: it hands over first and the caller retries with the new leader.
        if removes_me and self.role == "leader" and await self.hand_over_leadership():
            raise ProposalError(errors.LEADERSHIP_MOVED)
        return await self._propose(change, lambda node: node.propose_conf_change(change))

    async def _propose(self, data: Any, append: Callable[[RawNode], int]) -> int:
        if self.rawnode is None:
            raise ProposalError("CLUSTERDOWN this node is not part of a cluster yet")
        try:
            index = append(self.rawnode)
        except NotLeader:
            raise self.not_leader_error() from None
        except (ConfChangeRefused, ProposalRefused) as e:
            raise ProposalError(f"ERR {e}") from None
        result = await self._wait_applied(index, data)
        if result is not None and not result.ok:
            raise ProposalError(f"ERR {result.reason}")
        return index

    # --- forwarding: any node accepts operator commands -------------------------
    async def submit(self, command: dict | None = None, change: ConfChange | None = None) -> None:
        """Apply a cluster command or a membership change, through the leader wherever it is."""
        assert (command is None) != (change is None)
        if self.rawnode is not None and self.rawnode.is_leader:
            await (self.propose(command) if command is not None else self.propose_conf_change(change))
            return
        if not self.leader or self.leader == self.node_id:
            raise ProposalError("CLUSTERDOWN no Raft leader is known; retry shortly")
        if len(self._forwarded) >= limits.raft_forwarded_max:
            raise ProposalError("BUSY too many cluster commands in flight; retry shortly")
        self._next_request += 1
        request = self._next_request
        waiter = _Waiter(None, trio.Event())
        self._forwarded[request] = waiter
        body = {"cmd": command} if command is not None else {"conf": [change.kind.value, change.node_id]}
        self.bus.send(self.leader, {"k": "fwd", "id": request, **body})
        with trio.move_on_after(limits.raft_proposal_timeout_ms / 1000):
            await waiter.done.wait()
        self._forwarded.pop(request, None)
        if not waiter.done.is_set():
            raise ProposalError("TRYAGAIN the leader did not answer in time; the outcome is unknown")
        error, index = waiter.result
        if error:
            raise ProposalError(error)
        await self._wait_applied_here(index)

    async def _wait_applied_here(self, index: int) -> None:
        """Return once this node has applied ``index`` too, so the caller reads its own change."""
        with trio.move_on_after(limits.raft_proposal_timeout_ms / 1000):
            while self.state.applied_index < index:
                await self._applied.wait()
            return
        raise ProposalError("TRYAGAIN the change was applied by the leader but not yet here; retry")

    async def _serve_forwarded(self, peer_id: str, payload: dict) -> None:
        error, index = "", 0
        try:
            if "cmd" in payload and isinstance(payload["cmd"], dict):
                index = await self.propose(payload["cmd"])
            elif isinstance(payload.get("conf"), list) and len(payload["conf"]) == 2:
                kind, node_id = payload["conf"]
                index = await self.propose_conf_change(ConfChange(ConfChangeKind(kind), node_id))
            else:
                error = "ERR malformed forwarded command"
        except ProposalError as e:
            error = str(e)
        except ValueError:
            error = "ERR malformed forwarded membership change"
        self.bus.send(peer_id, {"k": "fwd_reply", "id": payload.get("id"), "error": error, "index": index})

    def _forwarded_reply(self, payload: dict) -> None:
        waiter = self._forwarded.get(payload.get("id"))
        index = payload.get("index", 0)
        if waiter is not None and isinstance(index, int):
            waiter.result = (str(payload.get("error", "")), index)
            waiter.done.set()

    async def _wait_applied(self, index: int, data: Any) -> Any:
        waiter = _Waiter(data, trio.Event())
        self._waiters[index] = waiter
        self._wake.set()
        with trio.move_on_after(limits.raft_proposal_timeout_ms / 1000):
            await waiter.done.wait()
        if not waiter.done.is_set():
            self._waiters.pop(index, None)
            raise ProposalError("TRYAGAIN the command was not applied in time; its outcome is unknown")
        if isinstance(waiter.result, ProposalError):
            raise waiter.result
        return waiter.result

    def _fail_waiters(self, message: str) -> None:
        for waiter in self._waiters.values():
            waiter.result = ProposalError(message)
            waiter.done.set()
        self._waiters.clear()

    # --- read index: has this node applied what was committed before a moment? ---------
    async def read_index(self, timeout_ms: int) -> int | None:
        """The leader's read index: at or above every entry committed anywhere before the call.

        Asked of the leader over the bus (answered at once on the leader itself); None when no
        leader is known, it cannot answer yet (nothing committed in its term), too many questions
        are in flight, or no answer came within ``timeout_ms``.
        """
        node = self.rawnode
        if node is None or node.is_leader:
            return node.read_index() if node is not None else None
        if not self.leader or self.leader == self.node_id or len(self._read_indexes) >= limits.raft_read_indexes_max:
            return None
        self._next_request += 1
        request = self._next_request
        waiter = self._read_indexes[request] = _Waiter(None, trio.Event())
        try:
            self.bus.send(self.leader, {"k": "read_index", "req": request})
            with trio.move_on_after(timeout_ms / 1000):
                await waiter.done.wait()
        finally:
            del self._read_indexes[request]
        return waiter.result

    async def catch_up(self, timeout_ms: int) -> bool:
        """Wait until this node has applied every entry committed before the call; False past ``timeout_ms``."""
        with trio.move_on_after(timeout_ms / 1000):
            index = await self.read_index(timeout_ms)
            if index is None:
                return False
            while self.state.applied_index < index:
                await self._applied.wait()
            return True
        return False

    def _on_read_index(self, peer_id: str, payload: dict) -> None:
        if "index" in payload:  # an answer
            waiter = self._read_indexes.get(payload["req"])
            if waiter is not None and waiter.result is None:
                waiter.result = payload["index"]
                waiter.done.set()
            return
        index = self.rawnode.read_index() if self.rawnode is not None else None
        if index is not None:  # a question; unanswered unless this node leads (the asker's wait is bounded)
            self.bus.send(peer_id, {"k": "read_index", "req": payload["req"], "index": index})

    # --- bootstrap and membership ---------------------------------------------
    async def bootstrap(self, host: str, port: int, bus_port: int) -> None:
        """Form a new one-voter cluster with this node as its only member."""
        if self.store.cluster_id:
            raise ProposalError("ERR this node already belongs to a cluster")
        # The first membership lives in a snapshot at index 1, not only in memory: a node that
        # joins later starts from an empty log and must learn who the voters are from the leader.
        first = Snapshot(index=1, term=1, conf=_conf_of(self.node_id), data=cluster_snapshot.to_snapshot(self.state))
        await self.store.initialize(os.urandom(20).hex(), first)
        self.rawnode = self._make_rawnode()
        await self._step_and_handle()
        await self.propose(
            cluster_commands.command(
                "bootstrap", cluster_id=self.store.cluster_id, node_id=self.node_id, host=host, port=port,
                bus_port=bus_port,
            )
        )
        log.info("bootstrapped cluster %s", self.store.cluster_id)

    async def leave(self, refusal: Callable[[], str | None], forget: Callable[[], None]) -> None:
        """Leave this node's cluster (CLUSTER RESET) unless ``refusal()`` names a reason not to.

        Between the Ready being handled and the next, so no entry of the old cluster applies
        after the check. The node stops being a member in memory before anything awaits (so
        it takes no write in between), ``forget()`` drops what the shell kept of the old
        cluster, and raft.snap is replaced in one rename: a crash before it leaves the old
        cluster intact, one after it a node that belongs to no cluster.
        """
        async with self._stepping:
            if self.rawnode is None:
                return  # in no cluster: nothing to leave
            why = refusal()
            if why:
                raise ProposalError(f"ERR CLUSTER RESET refused: {why}")
            cluster_id = self.store.cluster_id
            self.rawnode, self.state, self.leader, self.role = None, ClusterState(), "", "none"
            self._fail_waiters("TRYAGAIN this node left its cluster")
            self._changed()
            forget()
            await self.store.reset()
        log.info("left cluster %s; this node waits to be formed into a cluster", cluster_id)

    def _manage_membership(self) -> None:
        """Keep the voters healthy, one single-server change at a time.

        Caught-up learners are promoted while there is room for voters. A voter the
        failure detector reports failed is demoted to learner when a caught-up learner
        can take its place, so the control plane survives losing nodes one after another.
        """
        node = self.rawnode
        conf = node.conf
        ready = [learner for learner in conf.learners if node.caught_up(learner)]
        if not ready:
            return
        failed = [v for v in conf.voters if v != self.node_id and v in self.failed_nodes()]
        if len(conf.voters) < limits.raft_voters_max:
            change, why = ConfChange(ConfChangeKind.PROMOTE, ready[0]), "promoting caught-up learner"
        elif failed:
            change, why = ConfChange(ConfChangeKind.DEMOTE, failed[0]), "demoting failed voter"
        else:
            return
        try:
            node.propose_conf_change(change)
            log.info("%s %s", why, change.node_id[:12])
        except (ConfChangeRefused, NotLeader):
            pass


def _conf_of(node_id: str) -> Any:
    from trionode.core.raft.messages import ConfState

    return ConfState(voters=(node_id,))


def _state_from_snapshot(snapshot: Snapshot) -> ClusterState:
    if snapshot.data is None:
        return ClusterState()
    return cluster_snapshot.from_snapshot(snapshot.data)
