"""The step loop: one seed, one cluster, one deterministic history.

Theory of operation
-------------------
A :class:`Simulation` owns the nodes, the network, the clock, the nemesis, the
checker and the recorder. One step is one tick of simulated time:

1. the nemesis acts (crash, restart, partition, heal, propose, membership,
   transfer);
2. every up node ticks (0, 1 or 2 times: clock drift);
3. the messages due now are delivered (to up nodes; the rest are dropped);
4. every up node handles its Readies (persist, send, apply, advance);
5. the cross-node checks run (durable quorum, leaders hold all commits);
6. with ``data_plane``, the data plane's shard takes its step and its checks
   run (data_plane.py): same tick, same loop, its own seeded Randoms. With
   ``failover`` and ``migration``, two shards move slots under failover
   (failover_migration.py), and the run ends with its quiet end and checks.

Nodes are always visited in id order and every random choice comes from a
Random derived from (seed, subsystem name), so a seed replays exactly. The
cluster starts as one voter; membership grows it to ``nodes`` voters and
then keeps replacing members.

:func:`run` returns a :class:`SimResult`; :func:`report` formats it. Nothing
here reads the wall clock: the CLI times the run and prints rate on stderr.
"""

import random
import traceback
from dataclasses import dataclass, field

from trionode.core.raft.messages import ConfChange, ConfChangeKind, ConfState, EntryKind, Message
from trionode.sim.backend import Backend, real_backend
from trionode.sim.clock import SimClock, derive_rng
from trionode.sim.data_plane import DataPlane
from trionode.sim.failover_migration import CombinedCoverage, FailoverMigrationPlane
from trionode.sim.failover_plane import FailoverCoverage, FailoverPlane
from trionode.sim.invariants import InvariantViolation, SafetyChecker
from trionode.sim.migration_checks import MigrationViolation
from trionode.sim.mirror import LogMirror, data_digest
from trionode.sim.nemesis import Nemesis, NemesisConfig
from trionode.sim.network import NetworkConfig, SimNetwork
from trionode.sim.node import DiskFailed, NodeCrashed, NodeFaults, SimNode
from trionode.sim.trace import Coverage, DataCoverage, Recorder
from trionode.sim.workload import Workload

SPARE_NODES_MAX = 8  # nodes that may join beyond the target voter count over one run
ELECTION_TICKS = 10


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int
    steps: int
    nodes: int = 3  # target voters
    down_max: int = -1  # members down at once (crashed, or stopped by a corrupt disk); -1: a minority, at least 1
    voters_max: int = 5
    network: NetworkConfig = field(default_factory=lambda: NetworkConfig(delay_ticks_min=1, delay_ticks_max=3))
    nemesis: NemesisConfig = field(default_factory=NemesisConfig)
    faults: NodeFaults = field(default_factory=NodeFaults)
    data_plane: bool = False  # also simulate one shard's replication (--data-plane)
    failover: bool = False  # the data plane with failover, leases and replica-set changes (--failover)
    migration: bool = False  # with failover: two shards moving slots back and forth (--migration)

    def __post_init__(self) -> None:
        assert self.seed >= 0 and self.steps >= 0, self
        assert 1 <= self.nodes <= self.voters_max, self
        if self.down_max < 0:
            object.__setattr__(self, "down_max", max(1, (self.nodes - 1) // 2))


@dataclass(slots=True)
class SimResult:
    seed: int
    steps: int  # steps run (the failing step on failure)
    failure: str  # "" when every invariant held
    coverage: Coverage
    trace: list[str]
    data_coverage: DataCoverage | FailoverCoverage | CombinedCoverage | None = None  # None: no data plane

    @property
    def ok(self) -> bool:
        return not self.failure


def node_id(i: int) -> str:
    return f"{0xA0000 + i:040x}"


class Simulation:
    def __init__(self, config: SimConfig, backend: Backend | None = None) -> None:
        self.config = config
        self.backend = backend or real_backend(ELECTION_TICKS, config.voters_max)
        self.clock = SimClock()
        self.recorder = Recorder()
        self.nodes: dict[str, SimNode] = {}
        self.checker = SafetyChecker(self.recorder.name)
        self.network: SimNetwork[Message] = SimNetwork(self.rng_for("network"), config.network)
        self.nemesis = Nemesis(self, config.nemesis)
        self.workload = Workload(self.rng_for("workload"))
        self.last_leader = ""
        self._leaders: dict[str, int] = {}  # node -> term it was last seen leading
        self._removals: dict[str, tuple[int, int, int]] = {}  # node -> its REMOVE entry (index, term, digest)
        self.data: DataPlane | FailoverPlane | None = None
        if config.failover and config.migration:
            self.data = FailoverMigrationPlane(self.rng_for, self.recorder)
        elif config.failover:
            self.data = FailoverPlane(self.rng_for, self.recorder)
        elif config.data_plane:
            self.data = DataPlane(self.rng_for, self.recorder)
        self.spawn().boot(voters=(node_id(0),))

    def rng_for(self, name: str) -> random.Random:
        return derive_rng(self.config.seed, name)

    def name_of(self, node: str) -> str:
        return self.recorder.name(node)

    # --- node sets (always in id order) ------------------------------------------------------

    def spawn(self) -> SimNode:
        i = len(self.nodes)
        node = SimNode(node_id(i), f"n{i + 1}", self.backend, self.checker, self.recorder, self.rng_for,
                       self.config.faults)  # fmt: skip
        self.nodes[node.id] = node
        self.recorder.names[node.id] = node.name
        return node

    def up_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.up]

    def live_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if not n.dead]

    def down_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if not n.up and not n.dead]

    def may_crash(self) -> bool:
        down = sum(1 for n in self.nodes.values() if not n.up and not n.retired)
        return down < self.config.down_max

    def leader(self) -> SimNode | None:
        """The up leader with the highest term, if any."""
        leaders = [n for n in self.up_nodes() if n.raw.is_leader]
        return max(leaders, key=lambda n: (n.raw.term, n.id)) if leaders else None

    # --- the step loop ------------------------------------------------------------------------

    def run(self) -> SimResult:
        step = 0
        try:
            for step in range(1, self.config.steps + 1):
                self.recorder.step = step
                self.step()
            if isinstance(self.data, FailoverMigrationPlane):
                self.data.end()  # its quiet end: every job ends, every key is checked where it lives
        except (InvariantViolation, MigrationViolation) as violation:
            return self._result(step, str(violation))
        except Exception as crash:  # the run is the boundary: any crash of a core is a failure with its seed
            frame = traceback.extract_tb(crash.__traceback__)[-1]
            where = f"{frame.filename.rsplit('trionode', 1)[-1].lstrip('/')}:{frame.lineno}"  # no machine paths
            what = "assertion failed" if isinstance(crash, AssertionError) else type(crash).__name__
            return self._result(step, f"{what} at {where}: {crash}".rstrip(": "))
        return self._result(self.config.steps, "")

    def step(self) -> None:
        now = self.clock.advance()
        self.nemesis.act()
        for node in self.up_nodes():
            for _ in range(self.nemesis.ticks_for(node)):
                node.raw.tick()
        for msg in self.network.deliver_due(now):
            target = self.nodes.get(msg.to)
            if target is None or not target.up:
                self.network.drop_down()
            else:
                target.raw.step(msg)
        for node in self.up_nodes():
            self.handle_ready(node)
        self.check_step()
        if self.data is not None:
            self.data.step(now)

    def handle_ready(self, node: SimNode) -> None:
        try:
            messages = node.handle_ready(allow_crash=self.may_crash())
        except NodeCrashed:
            self.crash(node, "mid-persist, before fsync")
            return
        for msg in messages:
            self.network.send(msg, self.clock.now_ticks)
        self.observe_leader(node)

    def observe_leader(self, node: SimNode) -> None:
        if not node.raw.is_leader or self._leaders.get(node.id) == node.raw.term:
            return
        term = node.raw.term
        self._leaders[node.id] = term
        self.recorder.note(f"{node.name} leader of term {term} (log to {node.written.last_index})")
        self.checker.on_leader(node.id, term, node.written)
        self.recorder.coverage.elections += 1
        if node.id != self.last_leader:
            self.recorder.coverage.leader_changes += 1
            self.last_leader = node.id

    def check_step(self) -> None:
        self.retire_removed()
        self.checker.check_durable_quorum({n.id: n.synced for n in self.nodes.values()})
        leaders: dict[str, tuple[int, LogMirror]] = {
            n.id: (n.raw.term, n.written) for n in self.up_nodes() if n.raw.is_leader
        }
        self.checker.on_commit_advanced(leaders)

    # --- faults -----------------------------------------------------------------------------

    def crash(self, node: SimNode, why: str) -> None:
        node.crash()
        self._leaders.pop(node.id, None)
        self.recorder.coverage.crashes += 1
        self.recorder.note(f"{node.name} crashes ({why})")

    def restart(self, node: SimNode) -> None:
        try:
            node.start()
        except DiskFailed:
            node.dead = True
            return
        self.recorder.coverage.restarts += 1
        self.recorder.note(f"{node.name} restarts (term {node.raw.term}, log to {node.written.last_index})")

    def partition(self, side_a: list[str], side_b: list[str], *, symmetric: bool) -> None:
        self.network.partition(side_a, side_b, symmetric=symmetric)
        self.recorder.coverage.partitions += 1
        arrow = "<->" if symmetric else "->"
        names = [" ".join(sorted(self.name_of(n) for n in side)) for side in (side_a, side_b)]
        self.recorder.note(f"partition [{names[0]}] {arrow}X [{names[1]}]")

    def heal(self) -> None:
        if self.network.blocked_links():
            self.network.heal()
            self.recorder.note("network healed")

    # --- client and operator actions -----------------------------------------------------------

    def propose_command(self) -> None:
        leader = self.leader()
        if leader is None:
            return
        command = self.workload.next_command(leader.state)
        if command is None:
            return
        try:
            leader.raw.propose(command)
        except self.backend.not_leader_errors:
            return

    def propose_conf(self, leader: SimNode, change: ConfChange) -> None:
        try:
            index = leader.raw.propose_conf_change(change)
        except self.backend.not_leader_errors as refused:
            self.recorder.note(f"{leader.name} refuses {change.kind.value} {self.name_of(change.node_id)}: {refused}")
            return
        if change.kind is ConfChangeKind.REMOVE:
            entry = (index, leader.raw.term, data_digest(EntryKind.CONF, change))
            self._removals[change.node_id] = entry
        self.recorder.note(f"{leader.name} proposes {change.kind.value} {self.name_of(change.node_id)} at {index}")

    def transfer(self, leader: SimNode, to: str) -> None:
        try:
            leader.raw.transfer_leadership(to)
        except (*self.backend.not_leader_errors, *self.backend.transfer_errors):
            return
        self.recorder.coverage.transfers += 1
        self.recorder.note(f"{leader.name} transfers leadership to {self.name_of(to)}")

    def joiner(self, conf: ConfState) -> SimNode | None:
        """A node to add as a learner: the last spawned one unless it is a member, else a fresh one."""
        last = list(self.nodes.values())[-1]
        if last.id not in conf.voters + conf.learners and not last.dead:
            return last
        if len(self.nodes) >= self.config.nodes + SPARE_NODES_MAX:
            return None
        node = self.spawn()
        node.boot(voters=())
        return node

    def retire_removed(self) -> None:
        """Stop every node whose removal has committed (some node applied it): it is out of the group."""
        for node_id_ in sorted(self._removals):
            index, term, digest = self._removals[node_id_]
            applied = self.checker.applied.get(index)
            if applied is None:
                continue
            del self._removals[node_id_]
            node = self.nodes[node_id_]
            if applied[:2] == (term, digest) and not node.retired:
                node.retired = node.dead = True
                if node.up:
                    node.crash()
                self.recorder.note(f"{node.name} retired (removed from the group)")

    def _result(self, step: int, failure: str) -> SimResult:
        coverage = self.recorder.coverage
        coverage.msgs_dropped = self.network.stats.dropped
        coverage.msgs_duplicated = self.network.stats.duplicated
        data_coverage = self.data.finish() if self.data is not None else None
        return SimResult(self.config.seed, step, failure, coverage, list(self.recorder.trace), data_coverage)


def run(config: SimConfig, backend: Backend | None = None) -> SimResult:
    return Simulation(config, backend).run()


def report(result: SimResult) -> list[str]:
    """The lines a run prints on stdout: failure and trace (if any), coverage, verdict."""
    lines = []
    if not result.ok:
        lines.append(f"FAIL seed={result.seed} step={result.steps}: {result.failure}")
        lines.append(f"trace (last {len(result.trace)} events):")
        lines += [f"  {event}" for event in result.trace]
    lines.append(f"coverage: {result.coverage.format()}")
    if result.data_coverage is not None:
        lines.append(f"data-plane: {result.data_coverage.format()}")
    if result.ok:
        lines.append(f"ok seed={result.seed} steps={result.steps}")
    return lines
