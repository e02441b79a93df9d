"""Failover in the data-plane simulation (``trionode sim --data-plane --failover``).

Theory of operation
-------------------
One shard over four data nodes (A primary, B and C replicas, D a spare for
replica-set changes), an abstract control-plane leader ``L`` and the clients
``K``, all endpoints of one lossy :class:`LinkNetwork`. The shard's committed
configuration is a private :class:`ClusterState` changed only by the real
``apply`` (data_config.py): ``isr_shrink``/``isr_expand``/``isr_fence``,
``failover`` and ``replica_attach``/``replica_detach``/``replica_replace``,
each committed after a random delay, perhaps lost or duplicated.

*Learning.* A node adopts the committed configuration only while ``L`` can
reach it (``L -> node`` open) and it is up, and then only with
``learn_probability`` per step (Raft appends take time; nodes apply a commit
at different moments); a partitioned node keeps its old view. A node is the
primary when its view names it: it runs a :class:`PrimaryShell`, whose
:class:`PrimaryDriver` (the node's own) was started with the view, commits an
``isr_fence`` and acknowledges nothing until its view's ISR version has moved
past the one it started with. A
replica of a newer epoch fences (its driver persists the fence) and resyncs
with the view's primary; a deposed primary turns replica and resyncs, which
cuts its unacknowledged suffix.

*Clocks, leases and failover.* Every node and ``L`` has its own clock,
``offset + rate * now`` with ``rate`` within ``DRIFT_RATE`` of 1. Every node
and ``L`` run the node's own :class:`FailoverController` (core/failover),
the very decisions io/failover.py executes, here over simulated links and
clocks: a primary renews its lease by messages to ``L`` every quarter lease,
and ``L`` grants, fences the ISR, chooses the successor by the durable offsets
the fenced members answered with, and proposes the failover. ``L`` is
replaced now and then: a new controller in a new term, which trusts no grant
before ``leader_since + HANDOVER_MS``, and knows of its predecessor's fences
only what the nodes say in gossip (core/failover/fences.py); the nemesis
replaces it between a fence and its commit too. A node *serves* (accepts
writes and answers reads) only while it believes it is primary and its lease
is valid on its own clock (:meth:`FailoverPlane.serves`). A fenced replica's
driver persists the fence epoch before it answers (the same driver as the
node's).

*Failure detection* is the node's own detector (core/gossip), as
io/gossip_driver.py runs it: every data node and ``L`` (all five the voters)
runs a :class:`Detector` on its own clock and exchanges its pings and pongs
over the lossy links, a restarted node with a new one and a higher
incarnation. ``L``'s detector's healths are ``L``'s health input, so a node
is failed once a majority of the voters suspect it, as reported to ``L``.
The checker asserts each chosen successor's true state (S5).

*Clients* (kv_workload.py): every node runs the node's own Session and
DataState; clients send every command family, TTLs, keyless commands and
``READONLY`` reads to any node, and WAIT pipelined with reads; kv_checks.py
checks each reply against the acknowledged log.

*Nemesis* (failover_nemesis.py): crashes, primary isolation with or without
the clients on its side, asymmetric cuts, flapping, double failures and
replica-set changes, perhaps with a failover on top, double failovers,
wall-clock steps and crashes inside a full sync.

*Two shards* (``shards=2``, failover_migration.py): a second group of four
(E primary, F and G replicas, H spare) serves slots 8192..16383; each shard
has its own checker (its own log) and client workload, every fault aims at
one shard, and S3 is checked at every commit (:meth:`check_owners`).

Each step: commit, learn, nemesis, deliver, controller, nodes, clients, check
(failover_checks.py). Every random choice comes from Randoms named
``failover-*``, so the Raft half of a run is the same with or without it.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trionode.core import failover as core
from trionode.core.cluster import ApplyResult, ClusterState, Shard, command, copy_state
from trionode.core.gossip import Detector, GossipConfig, Ping
from trionode.core.gossip import from_wire as gossip_from_wire
from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import Ack, ReplMessage, SyncReply, SyncRequest, from_wire, to_wire
from trionode.core.replication.primary_driver import ACCEPTED, REFUSED
from trionode.core.replication.replica import CONNECTING, LOADING
from trionode.core.replication.replica_driver import AnswerFence
from trionode.sim.data_config import SHARD_ID, CommitFaults, ShardConfig
from trionode.sim.data_disk import DataDisk
from trionode.sim.data_network import LinkConfig, LinkNetwork
from trionode.sim.data_plane import (
    SENDS_PER_STEP,
    STEP_MS,
    Envelope,
    data_node_id,
)
from trionode.sim.data_shells import Outbound, PrimaryShell, ReplicaShell
from trionode.sim.failover_checks import FailoverChecker
from trionode.sim.failover_nemesis import CLIENT, LEADER, FailoverNemesis
from trionode.sim.invariants import InvariantViolation
from trionode.sim.kv_workload import KVWorkload
from trionode.sim.trace import Recorder, _Counters

LAG_TIMEOUT_MS = 200
NODE_TIMEOUT_MS = 600
COMPACTION_CRASH_PROBABILITY = 0.01  # per compaction: the primary dies between two of its steps
HANDOVER_MS = 400  # how long a deposed leader may still grant (scaled down with the timeouts)
LEASE_MS = core.FailoverConfig.for_node(LEADER, NODE_TIMEOUT_MS, HANDOVER_MS).lease_ms  # as io/failover.py derives it
DRIFT_RATE = 0.04  # clocks run at 1 +- this: (1 + r) / (1 - r) < (LEASE_MS + drift_ms) / LEASE_MS
GOSSIP = GossipConfig.for_node_timeout(NODE_TIMEOUT_MS)  # as io/gossip_driver.py derives it
SHARD_IDS = (SHARD_ID, "e7" * 20)  # the second one only with ``shards=2`` (--migration)
GROUPS = {sid: tuple(data_node_id(4 * i + j) for j in range(4)) for i, sid in enumerate(SHARD_IDS)}
NODE_IDS = GROUPS[SHARD_ID]  # each shard: a primary, two replicas, a spare
NAMES = dict(zip((*GROUPS[SHARD_IDS[0]], *GROUPS[SHARD_IDS[1]]), "ABCDEFGH", strict=True))
NAMES |= {LEADER: "L", CLIENT: "K"}


@dataclass(slots=True)
class FailoverCoverage(_Counters):
    """What ``--failover`` did: printed as the data-plane line."""

    writes: int = 0
    acks: int = 0
    hw_advances: int = 0
    reads_served: int = 0
    resyncs_full: int = 0
    failovers: int = 0
    failovers_refused: int = 0
    old_primary_rejoined: int = 0
    lease_grants: int = 0
    leader_changes: int = 0
    primary_kills: int = 0
    replica_crashes: int = 0
    isolations_with_client: int = 0
    isolations_without_client: int = 0
    isolations_from_replicas: int = 0
    asymmetric_cuts: int = 0
    flaps: int = 0
    double_failures: int = 0
    manual_failovers: int = 0
    member_changes: int = 0
    member_refused: int = 0
    changes_with_failover: int = 0
    writes_while_isolated: int = 0
    msgs_dropped: int = 0
    replies_checked: int = 0  # kv_workload.py and its nemeses from here on
    commands_refused: int = 0
    replica_reads: int = 0
    waits: int = 0
    wall_steps: int = 0
    double_failovers: int = 0
    full_sync_crashes: int = 0
    compaction_crashes: int = 0  # a primary crashed between two durable steps of a compaction
    leader_changes_mid_round: int = 0  # L replaced after it fenced, before the round's outcome
    fences_resumed: int = 0  # a later L fenced again a shard its predecessor fenced, on the gossip's word alone


@dataclass(frozen=True, slots=True)
class FailoverFaults:
    primary_fsync_probability: float = 0.5
    replica_fsync_probability: float = 0.4
    replica_ack_probability: float = 0.5
    heartbeat_probability: float = 0.3
    compact_probability: float = 0.05
    keep_unsynced_probability: float = 0.3
    restart_probability: float = 0.02
    nemesis_probability: float = 0.012
    heal_probability: float = 0.015
    leader_change_probability: float = 0.001
    learn_probability: float = 0.35  # a node behind the committed configuration applies it this step
    network: LinkConfig = field(default_factory=LinkConfig)
    commit: CommitFaults = field(default_factory=CommitFaults)


@dataclass(slots=True)
class SimNode:
    """One data node: its disk (survives crashes), its view and, while up, its process state."""

    id: str
    disk: DataDisk
    clock_offset: int
    clock_rate: float
    view_state: ClusterState  # the configuration it last learned (Raft state is durable: kept across crashes)
    shard_id: str = SHARD_ID  # the shard whose group it belongs to (it serves, replicates or waits as a spare)
    learned: int = 0  # the config index it learned up to
    up: bool = True
    incarnation: int = 0
    primary: PrimaryShell | None = None
    replica: ReplicaShell | None = None
    failover: core.FailoverController | None = None  # its process's controller (the lease it holds), new at each start
    detector: Detector | None = None  # its process's failure detector, new at each start
    proc: Any = None  # its process's migration shells (failover_migration.py), new at each start

    @property
    def view(self) -> Shard:
        return self.view_state.shards[self.shard_id]

    def clock(self, now_ms: int) -> int:
        return self.clock_offset + int(now_ms * self.clock_rate)


class FailoverPlane:
    def __init__(self, rng_for: Callable[[str], random.Random], recorder: Recorder,
                 faults: FailoverFaults | None = None, shards: int = 1) -> None:  # fmt: skip
        self.faults = faults or FailoverFaults()
        self.rng = rng_for("failover-plane")
        self.rng_for = rng_for
        self.compaction_rng = rng_for("failover-compaction")  # draws apart: the other faults are unmoved
        self.recorder = recorder
        self.network: LinkNetwork[Envelope] = LinkNetwork(rng_for("failover-network"), self.faults.network)
        self.shard_ids = SHARD_IDS[:shards]
        self.voters = (*(n for sid in self.shard_ids for n in GROUPS[sid]), LEADER)  # all of them Raft voters
        self.config = ShardConfig(rng_for("failover-config"), NODE_IDS[0], NODE_IDS[1:3], self.faults.commit)
        self.config.add_node(NODE_IDS[3], 2)
        for i, shard_id in enumerate(self.shard_ids):
            if i > 0:
                self.config.add_shard(shard_id, GROUPS[shard_id], epoch=i + 1)
            # The shard serves slots: a failover controller leaves a shard without any alone.
            slots = [(16384 * i // shards, 16384 * (i + 1) // shards - 1)]
            self.config._commit_now(command("slots_assign", shard_id=shard_id, epoch=i + 1, slots=slots))
        self.committed: list[tuple[int, dict[str, Any], bool]] = []  # (index, command, accepted)
        self.checkers = {sid: FailoverChecker(self.name) for sid in self.shard_ids}  # per shard: its own log
        self.checker = self.checkers[SHARD_ID]
        self.owners = list(self.config.state.slot_owners)  # the committed owners, for S3
        self.coverage = FailoverCoverage()
        self.now_ticks = self.now_ms = 0
        self.serial = 0
        self.quiet = False  # no faults: the quiet end of a run
        self.nodes: dict[str, SimNode] = {}
        for i, shard_id in enumerate(self.shard_ids):
            for node_id in GROUPS[shard_id]:
                disk = DataDisk()
                rate = 1 + self.rng.uniform(-DRIFT_RATE, DRIFT_RATE)
                node = SimNode(node_id, disk, self.rng.randint(0, 100_000), rate, copy_state(self.config.state),
                               shard_id)  # fmt: skip
                self.nodes[node_id] = node
                self.start_process(node)
            self.nodes[GROUPS[shard_id][0]].disk.history = EpochHistory([(i + 1, 1)])
        self.leader_offset, self.leader_rate = self.rng.randint(0, 100_000), 1 + self.rng.uniform(-0.04, 0.04)
        self.leader_term = 0
        self.leader = self.new_leader()
        # L's detector outlives its controllers: a new Raft leader has been gossiping all along.
        self.leader_detector = self.new_detector(LEADER, 0)
        self.member_change_at = -1  # ms a replica-set change was proposed
        self.fence_terms: dict[tuple[str, int], set[int]] = {}  # (shard, epoch) -> the terms of L that fenced at it
        self.nemesis = FailoverNemesis(self)
        # One client workload per shard; with two, slots migrate and keyless commands are left out.
        self.kvs = {sid: KVWorkload(self, rng_for("failover-clients" + ("" if i == 0 else f"-{i}")), sid,
                                    keyless=shards == 1) for i, sid in enumerate(self.shard_ids)}  # fmt: skip
        self.kv = self.kvs[SHARD_ID]
        for node in self.nodes.values():
            self.learn(node)

    # --- names, clocks, reachability ----------------------------------------------------------

    @staticmethod
    def name(node_id: str) -> str:
        return NAMES.get(node_id, node_id[-6:])

    def note(self, text: str) -> None:
        self.recorder.note(f"failover: {text}")

    def leader_clock(self) -> int:
        return self.leader_offset + int(self.now_ms * self.leader_rate)

    def new_leader(self) -> core.FailoverController:
        """``L``'s controller in a new term: it knows nothing its predecessor granted or proposed."""
        self.leader_term += 1
        controller = core.FailoverController(core.FailoverConfig.for_node(LEADER, NODE_TIMEOUT_MS, HANDOVER_MS))
        controller.on_config(self.config.state)
        controller.on_leadership(self.leader_term, LEADER, self.leader_clock())
        return controller

    def start_process(self, node: SimNode) -> None:
        """A node's process state that a crash loses: its failover controller and failure detector."""
        node.failover = core.FailoverController(core.FailoverConfig.for_node(node.id, NODE_TIMEOUT_MS, HANDOVER_MS))
        node.detector = self.new_detector(node.id, node.incarnation)

    def new_detector(self, node_id: str, incarnation: int) -> Detector:
        rng = self.rng_for(f"failover-gossip-{self.name(node_id)}-{incarnation}")
        detector = Detector(node_id, GOSSIP, rng, incarnation=incarnation)
        detector.set_members(self.voters, self.voters)
        return detector

    def reaches(self, frm: str, to: str) -> bool:
        return not self.network.is_blocked(frm, to)

    def send_ctl(self, frm: str, to: str, wire: dict[str, Any]) -> None:
        self.network.send(Envelope(frm, to, {"ctl": True, **wire}), self.now_ticks)

    def send(self, frm: str, to: str, msg: ReplMessage) -> None:
        self.network.send(Envelope(frm, to, to_wire(msg)), self.now_ticks)

    def send_all(self, frm: str, to: str, msgs: list[Outbound]) -> None:
        """Send a replica shell's output: replication messages to ``to``, a fencing round's answer to ``L``."""
        for msg in msgs:
            if isinstance(msg, AnswerFence):
                wire = {"k": "fenced", "epoch": msg.epoch, "term": msg.term, "offset": msg.offset, "health": msg.health}
                self.send_ctl(frm, msg.to, wire)
            else:
                self.send(frm, to, msg)

    def serves(self, node: SimNode) -> bool:
        """The node accepts commands: it believes it is primary and its lease is valid on its clock."""
        return node.up and node.primary is not None and node.failover.holder.valid(node.clock(self.now_ms))

    # --- the step -------------------------------------------------------------------------------

    def step(self, now_ticks: int) -> None:
        assert now_ticks > self.now_ticks, (now_ticks, self.now_ticks)
        self.now_ticks, self.now_ms = now_ticks, now_ticks * STEP_MS
        self.commit_config()
        for node in self.nodes.values():
            behind = node.learned < self.config.index
            if (
                behind
                and node.up
                and self.reaches(LEADER, node.id)
                and self.rng.random() < self.faults.learn_probability
            ):
                self.learn(node)
        if not self.quiet:
            self.nemesis.step()
        self.deliver()
        self.controller()
        for node in self.nodes.values():
            if node.up:
                self.node_step(node)
        for kv in self.kvs.values():
            kv.step()
        self.check()

    def group(self, shard_id: str) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.shard_id == shard_id]

    def check(self) -> None:
        for shard_id, checker in self.checkers.items():
            group = self.group(shard_id)
            serving = [n.id for n in group if self.serves(n)]
            loading = {n.id: n.replica.driver.reported_offset() for n in group
                       if n.up and n.replica is not None and n.replica.driver.health == "loading"}  # fmt: skip
            checker.check({n.id: n.disk for n in group}, self.config.shard_of(shard_id), serving, loading)

    def commit_config(self) -> None:
        for cmd, result, before, after in self.config.commit_due_each(self.now_ms):
            self.committed.append((self.config.index, cmd, result.ok))
            self.check_owners(cmd, result)
            self.on_committed(cmd, result, before, after)

    def on_committed(self, cmd: dict[str, Any], result: ApplyResult, before: Shard, after: Shard) -> None:
        op = cmd["op"]
        if op in ("failover", "reinstate"):
            self.on_failover_commit(cmd, result.ok)
        elif op.startswith("replica_"):
            self.coverage.member_changes += result.ok
            self.coverage.member_refused += not result.ok
            self.note(f"{op} {'committed' if result.ok else 'refused: ' + result.reason[:40]}")
            if result.ok:
                self.checkers[before.id].on_member_change(op, before, after)

    def check_owners(self, cmd: dict[str, Any], result: ApplyResult) -> None:
        """S3: only an applied ``migration_commit`` moves slots, each time to one shard of the configuration."""
        owners = self.config.state.slot_owners
        if owners != self.owners:
            self.on_owners_changed(cmd, result, self.owners)
            self.owners = list(owners)

    def on_owners_changed(self, cmd: dict[str, Any], result: ApplyResult, before: list[str | None]) -> None:
        raise InvariantViolation(f"S3 one owner: {cmd['op']} changed slot owners with no migration running")

    def on_failover_commit(self, cmd: dict[str, Any], ok: bool) -> None:
        self.leader.on_proposal_done(cmd["shard_id"], cmd["epoch"])
        if not ok:
            self.coverage.failovers_refused += 1
            return
        self.coverage.failovers += 1
        if self.member_change_at >= 0 and self.now_ms - self.member_change_at <= 2 * self.leader.cfg.retry_ms:
            self.coverage.changes_with_failover += 1
        shard = self.config.shard_of(cmd["shard_id"])
        isr = ",".join(self.name(n) for n in shard.isr_ids)
        self.note(f"failover committed: {self.name(shard.primary_id)} primary at epoch {shard.epoch}, ISR [{isr}]")

    # --- learning the configuration ------------------------------------------------------------------

    def learn(self, node: SimNode) -> None:
        """Adopt the committed configuration: become primary, replica, or nothing of the shard."""
        learned = [(cmd, ok) for index, cmd, ok in self.committed if index > node.learned]
        node.learned, node.view_state = self.config.index, copy_state(self.config.state)
        self.adopt(node)
        for cmd, ok in learned:
            if node.primary is not None and cmd.get("shard_id", node.shard_id) == node.shard_id:
                node.primary.execute(node.primary.driver.on_proposal_result(cmd, ACCEPTED if ok else REFUSED))

    def adopt(self, node: SimNode) -> None:
        """Run the shells the node's view asks for (also at a restart)."""
        view = node.view
        if view.primary_id == node.id:
            if node.primary is not None and node.primary.driver.epoch == view.epoch:
                self.configure(node.primary, view)
                return
            self.become_primary(node)
        elif node.id in view.replica_ids:
            if node.primary is not None:
                self.configure(node.primary, view)
                self.drop_primary(node)
                self.coverage.old_primary_rejoined += 1
                self.note(f"{self.name(node.id)} learns it was deposed; rejoins as a replica")
            self.become_replica(node)
        else:
            self.drop_primary(node)
            node.replica = None

    @staticmethod
    def configure(shell: PrimaryShell, view: Shard) -> None:
        shell.execute(shell.driver.on_config(view.epoch, view.primary_id, view.replica_ids, view.isr_ids,
                                             view.isr_version))  # fmt: skip

    def drop_primary(self, node: SimNode) -> None:
        node.primary = None

    def become_primary(self, node: SimNode) -> None:
        view, disk = node.view, node.disk
        node.replica = None
        # No fsync of its received tail first: the node does none (io/replication.py), and its epoch
        # starts after that tail, which is durable before any record of the epoch (WAL order).
        node.primary = PrimaryShell(node.id, disk, view, LAG_TIMEOUT_MS)
        self.note(f"{self.name(node.id)} primary at epoch {view.epoch} from {disk.durable}")

    def become_replica(self, node: SimNode) -> None:
        """Replicate the view's primary at the view's epoch (the driver persists it as its fence)."""
        view, now = node.view, node.clock(self.now_ms)
        if node.replica is None:
            node.replica = ReplicaShell(node.id, node.disk, node.incarnation, now, node.shard_id)
        shell = node.replica
        self.send_all(node.id, view.primary_id, shell.fence(view.epoch, now) + shell.tick(now))

    # --- delivery --------------------------------------------------------------------------------------

    def deliver(self) -> None:
        for env in self.network.deliver_due(self.now_ticks):
            if env.to == LEADER:
                self.leader_receive(env)
                continue
            node = self.nodes[env.to]
            if not node.up:
                self.network.drop_down()
            elif "ctl" in env.wire:
                self.node_receive_ctl(node, env)
            else:
                self.node_receive(node, env.frm, from_wire(env.wire))

    def node_receive_ctl(self, node: SimNode, env: Envelope) -> None:
        wire = env.wire
        if wire["k"] == "gossip":
            self.gossip_receive(node.id, node.detector, env, node.clock(self.now_ms))
        elif wire["k"] == "grant":
            node.failover.on_lease_granted(wire["req"])
        elif wire["k"] == "fence" and node.replica is not None:
            # The replica's driver makes the fence durable, then answers (io/replication.py ``fence``).
            answer = node.replica.fence_round(env.frm, wire["epoch"], wire["term"], node.clock(self.now_ms))
            self.send_all(node.id, node.view.primary_id, answer)

    def node_receive(self, node: SimNode, frm: str, msg: ReplMessage) -> None:
        if node.primary is not None:
            if isinstance(msg, (SyncRequest, Ack)):
                acks = node.primary.acks
                for to, reply in node.primary.receive(msg, node.clock(self.now_ms)):
                    self.send(node.id, to, reply)
                self.coverage.acks += node.primary.acks - acks
            return
        shell = node.replica
        if shell is None or isinstance(msg, (SyncRequest, Ack)):
            return  # not a replica (any more), or a replica asked as if primary: the sender will retry
        connecting = shell.rs.state == CONNECTING
        self.send_all(node.id, node.view.primary_id, shell.receive(msg, node.clock(self.now_ms)))
        if isinstance(msg, SyncReply) and connecting and shell.rs.state == LOADING:
            self.coverage.resyncs_full += 1
            self.note(f"{self.name(node.id)} full sync from {self.name(frm)} at {msg.log_end}")

    def leader_receive(self, env: Envelope) -> None:
        wire, now = env.wire, self.leader_clock()
        if wire["k"] == "gossip":
            self.gossip_receive(LEADER, self.leader_detector, env, now)
        elif wire["k"] == "lease":
            self.feed_leader()
            self.execute_leader(self.leader.on_lease_request(env.frm, wire["req"], now))
        elif wire["k"] == "fenced":
            shard_id = self.nodes[env.frm].shard_id
            self.leader.on_fence_reply(env.frm, shard_id, wire["epoch"], wire["term"], wire["offset"], wire["health"])

    # --- the control plane's failover: L's controller -------------------------------------------------

    def feed_leader(self) -> None:
        """L's inputs: its detector's verdicts and the nodes' gossip info; it always leads with authority
        (Raft is simulated apart)."""
        self.leader.on_health(self.leader_detector.healths(self.leader_clock()))
        self.leader.on_gossip_info({n: self.leader_detector.info(n) for n in self.nodes})
        self.leader.on_authority(self.leader_clock() + LEASE_MS)

    def controller(self) -> None:
        self.gossip(LEADER, self.leader_detector, self.leader_clock())
        self.feed_leader()
        self.execute_leader(self.leader.tick(self.leader_clock()))

    def execute_leader(self, actions: list[core.Action]) -> None:
        fences = [a for a in actions if isinstance(a, core.SendFence)]
        if fences:
            self.on_round(fences[0])
        for action in actions:
            if isinstance(action, core.GrantLease):
                self.coverage.lease_grants += 1
                self.send_ctl(LEADER, action.to, {"k": "grant", "req": action.req})
            elif isinstance(action, core.SendFence):
                self.send_ctl(LEADER, action.to, {"k": "fence", "epoch": action.epoch, "term": action.term})
            elif isinstance(action, core.Propose):
                self.propose_failover(action)
            elif isinstance(action, core.Report):
                self.note(f"L: {action.line}")

    def on_round(self, fence: core.SendFence) -> None:
        """L starts a fencing round: count a predecessor's round taken over while the primary is not failed
        and nobody asked for a failover (only the gossip told L of it); the nemesis may replace L next."""
        terms = self.fence_terms.setdefault((fence.shard_id, fence.epoch), set())
        shard = self.config.shard_of(fence.shard_id)
        failed = self.leader_detector.health(shard.primary_id, self.leader_clock()) == "failed"
        if terms and fence.term not in terms and not failed and shard.id not in self.leader.requested:
            self.coverage.fences_resumed += 1
        terms.add(fence.term)
        self.nemesis.on_round()

    def propose_failover(self, action: core.Propose) -> None:
        node = self.nodes[action.successor]
        shard = self.config.shard_of(node.shard_id)
        loading = node.replica is not None and node.replica.driver.health == "loading"
        self.checkers[node.shard_id].on_successor(action.successor, shard, node.disk, loading)
        self.note(f"L proposes failover of {self.name(shard.primary_id)} to {self.name(action.successor)}")
        self.config.propose(action.command, self.now_ms)

    # --- the nodes' own steps -------------------------------------------------------------------------

    def node_step(self, node: SimNode) -> None:
        node.detector.set_info(core.fence_info(node.view_state, node.id, **self.fence_facts(node)) or None)
        self.gossip(node.id, node.detector, node.clock(self.now_ms))
        self.renew_lease(node, node.clock(self.now_ms))
        if node.primary is not None:
            self.primary_step(node, node.primary)
        elif node.replica is not None:
            self.replica_step(node, node.replica)

    # --- failure detection: the nodes' detectors over the links (io/gossip_driver.py) -----------------

    @staticmethod
    def fence_facts(node: SimNode) -> dict[str, tuple[str, int]]:
        """What the node's replication knows of the shard's fence, for its gossip (io/replication.py's)."""
        if node.replica is not None:
            return {"replica": (node.shard_id, node.replica.driver.rs.epoch)}
        if node.primary is not None and node.primary.driver.tracker.deposed:
            return {"deposed": (node.shard_id, node.primary.driver.epoch)}
        return {}

    def gossip(self, me: str, detector: Detector, clock: int) -> None:
        """Time passed on ``me``'s clock: the pings its detector's round sends."""
        for peer, ping in detector.tick(clock):
            self.send_ctl(me, peer, {"k": "gossip", "m": ping.to_wire()})

    def gossip_receive(self, me: str, detector: Detector, env: Envelope, clock: int) -> None:
        """A ping is answered with the detector's pong; a pong is heard."""
        msg = gossip_from_wire(env.wire["m"])
        if isinstance(msg, Ping):
            self.send_ctl(me, env.frm, {"k": "gossip", "m": detector.on_ping(env.frm, msg, clock).to_wire()})
        else:
            detector.on_pong(env.frm, msg, clock)

    def propose(self, node: SimNode, cmd: dict[str, Any]) -> None:
        if self.reaches(node.id, LEADER):
            self.config.propose(cmd, self.now_ms)

    def primary_step(self, node: SimNode, shell: PrimaryShell) -> None:
        f, rng, disk = self.faults, self.rng, node.disk
        clock = node.clock(self.now_ms)
        if rng.random() < f.primary_fsync_probability:
            shell.fsync()
        self.watermark(node, shell, clock)
        for replica_id in node.view.replica_ids:
            for to, msg in shell.stream_to(replica_id, SENDS_PER_STEP, rng.random() < f.heartbeat_probability):
                self.send(node.id, to, msg)
        keep_from = shell.driver.wal_keep_from()
        if rng.random() < f.compact_probability and disk.log_start < keep_from:
            offset = max(rng.randint(disk.log_start, keep_from) - 1, disk.snapshot_offset)
            if not self.compact(node, offset):
                return
        for cmd in shell.tick(clock):
            self.propose(node, cmd)

    def compact(self, node: SimNode, offset: int) -> bool:
        """A compaction at ``offset`` in io/data_store.py's durable steps; False: the node crashed between two."""
        disk, rng = node.disk, self.compaction_rng
        steps = (lambda: disk.write_pending_snapshot(offset), disk.install_snapshot,
                 lambda: disk.remove_log_before(offset + 1))  # fmt: skip
        crashes = rng.random() < COMPACTION_CRASH_PROBABILITY and not self.quiet  # the quiet end has no faults
        crash_before = rng.randint(1, len(steps) - 1) if crashes else len(steps)
        for step in steps[:crash_before]:
            step()
        if crash_before == len(steps):
            return True
        self.coverage.compaction_crashes += 1
        self.note(f"{self.name(node.id)} crashes after {crash_before} of a compaction's steps at offset {offset}")
        self.crash(node.id)
        return False

    def renew_lease(self, node: SimNode, clock: int) -> None:
        """The node's controller, fed its view: a primary asks L for its lease every quarter lease."""
        node.failover.on_config(node.view_state)
        node.failover.on_leadership(self.leader_term, LEADER, clock)
        for action in node.failover.tick(clock):
            assert isinstance(action, core.RequestLease), action  # a node that does not lead only renews
            self.send_ctl(node.id, action.to, {"k": "lease", "req": action.req})

    def watermark(self, node: SimNode, shell: PrimaryShell, clock: int) -> int:
        """The driver's acknowledged offset, checked (S1) whenever it moved."""
        shell.on_log(clock)
        hw, tracker = shell.acked, shell.tracker
        if hw > shell.reported_hw:
            shell.reported_hw = hw
            self.coverage.hw_advances += 1
            self.checkers[node.shard_id].on_watermark(node.id, hw, tracker.isr_ids, tracker.isr_version,
                                                      {n.id: n.disk for n in self.group(node.shard_id)})  # fmt: skip
        return hw

    def acked_offset(self, node: SimNode) -> int:
        """What the node takes as acknowledged: its store's (io's ``DataStore.acked_offset``, which replies
        and a migration's acks wait for), once a primary's driver heard of its disk."""
        if node.primary is not None:
            self.watermark(node, node.primary, node.clock(self.now_ms))
        return node.disk.acked_offset

    def replica_step(self, node: SimNode, shell: ReplicaShell) -> None:
        f, rng, now = self.faults, self.rng, node.clock(self.now_ms)
        if rng.random() < f.replica_fsync_probability:
            shell.disk.fsync()
        if rng.random() < f.replica_ack_probability:
            self.send_all(node.id, node.view.primary_id, shell.ack(now))
        self.send_all(node.id, node.view.primary_id, shell.tick(now))

    def log_batch(self, node: SimNode, batch: list[tuple[int, tuple[bytes, ...]]]) -> None:
        """Effects the node's data state made (kv_workload.py), appended to its data WAL."""
        node.disk.append([list(effect) for _, effect in batch])

    # --- crashes and restarts (the nemesis calls these) --------------------------------------------------

    def crash(self, node_id: str) -> None:
        node = self.nodes[node_id]
        lost = node.disk.crash(self.rng, self.faults.keep_unsynced_probability)
        node.up, node.primary, node.replica = False, None, None
        node.incarnation += 1
        self.note(f"{self.name(node_id)} crashes, {lost} records lost, log to {len(node.disk.log)}")
        if (refused := node.disk.refused) is not None:  # the node's recovery refuses its disk
            self.checkers[node.shard_id].fail(f"S6 recovery: {self.name(node_id)} cannot restart: {refused.reason}")

    def restart(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node.up = True
        self.start_process(node)
        self.note(f"{self.name(node_id)} restarts, log to {len(node.disk.log)}")
        if self.reaches(LEADER, node_id):
            self.learn(node)
        else:
            self.adopt(node)

    def finish(self) -> FailoverCoverage:
        self.coverage.msgs_dropped = self.network.stats.dropped
        return self.coverage
