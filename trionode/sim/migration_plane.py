"""Slot migration in the simulation: two shards move slots back and forth (``trionode sim --migration``).

Theory of operation
-------------------
Two shards, S (nodes A0 primary, A1, A2) and T (B0 primary, B1, B2), in one
committed :class:`ClusterState` changed only by the real ``apply``: entries
commit after a random delay, perhaps lost or twice (:class:`ConfigLog`, as
data_config.py does for one shard). Each node learns the committed
configuration at its own pace (a prefix, never out of order) and keeps what
it learned across crashes (Raft state is durable).

*Migration*. Every node runs the node's own migration decisions, as
io/migration.py and io/migration_import.py carry them out
(:class:`MigrationShells`, migration_shells.py, which the failover plane
with migrations shares). An operator moves a fixed set of slots
(``MOVING``) from its owner to the other shard, again and again; ``mig_*``
messages travel over a lossy, delaying network.

*Data*. Each node keeps a log of effects (its WAL, kept whole across a crash)
and a :class:`DataState` built from it. A replica pulls records from the
primary its view names, unless fenced at a later epoch; when it follows a new
primary it first cuts its log back to their common prefix. A primary's
acknowledged offset is the least log length among the members of its view's
ISR (and replicas it proposed to add) that follow it, and nothing until an
``isr_fence`` it proposed at its start has applied (as the PrimaryDriver
does). The primary proposes ``isr_expand`` for a replica that caught up.

*Failover*. The control plane fences a shard's replicas and proposes
``failover`` to the up ISR replica with the longest log when the primary is
down or cut off, or now and then at random (the old primary still up). A node
serves (accepts writes, answers reads) while its view names it primary at the
committed epoch (the lease's guarantee, S2, taken as given here), and only the
slots its view's :class:`SlotRoles` says it owns and no pause holds.

*Nemesis*: crashes and restarts of any node, crashes aimed at a running
job's source or target primary, cuts (a node hears nothing and
learns nothing), manual failovers, a full WAL queue now and then; in every
phase of a job, on both sides. *Clients* write and read a few keys of the
moving slots, of S's other slots and of T's, routed by the committed
configuration or by some node's stale view.

*Checks* (migration_checks.py): S3 after every commit, one shard accepting
writes per slot at every step, every read at least as new as the last
acknowledged write, and at the quiet end every acknowledged write on the
owner and no moved key left behind.

What is abstract here: replication is a log copy, not the replication
drivers of data_shells.py; leases are the committed epoch; the control plane
is the ConfigLog, not the simulated Raft nodes. The failover plane with
migrations (failover_migration.py) runs the same shells over the real
replication drivers, leases and failover controller; this plane stays the
cheap one, for long seed ranges.
"""

import random
from dataclasses import dataclass, field
from typing import Any

from trionode.core.cluster import ClusterState, command
from trionode.core.data_state import DataState
from trionode.sim.cluster_log import ConfigLog
from trionode.sim.migration_checks import MigrationChecker, MigrationViolation
from trionode.sim.migration_coverage import MigrationCoverage, MigrationFaults, MigrationResult
from trionode.sim.migration_shells import (
    MOVING_KEYS,
    S_KEYS,
    STEP_MS,
    T_KEYS,
    MigrationShells,
    Process,
    new_process,
)

S_ID, T_ID = "5a" * 20, "7b" * 20
S_NODES = tuple(f"{0xE0000 + i:040x}" for i in range(3))
T_NODES = tuple(f"{0xE0010 + i:040x}" for i in range(3))
NAMES = {**{n: f"A{i}" for i, n in enumerate(S_NODES)}, **{n: f"B{i}" for i, n in enumerate(T_NODES)}}
PULL_RECORDS_MAX = 3
FAILOVER_AFTER_MS = 150
FAILOVER_RETRY_MS = 400


@dataclass(slots=True)
class Node:
    id: str
    shard_id: str
    log: list[tuple[bytes, ...]] = field(default_factory=list)  # its WAL: effect at offset i + 1
    learned: int = 0
    fence: int = 0  # the epoch it was fenced at (durable): it follows no primary of an older one
    up: bool = True
    cut_until_ms: int = -1
    incarnation: int = 0
    data: DataState = field(default_factory=DataState)
    proc: Process | None = None
    following: tuple[str, int] | None = None  # (primary, epoch) whose log this one's is a prefix of
    expanding: dict[str, int] = field(default_factory=dict)  # replica -> ISR version its isr_expand named
    isr_fenced: tuple[int, int, int] | None = None  # (epoch, ISR version, ms) of this process's isr_fence
    hw: tuple[int, int] = (0, 0)  # (epoch, offset) this process acknowledged as primary (Primary.acked)


class MigrationPlane(MigrationShells):
    def __init__(self, seed: int, faults: MigrationFaults | None = None) -> None:
        self.seed = seed
        self.faults = self.mig_faults = faults or MigrationFaults()
        self.rng = self.mig_rng = random.Random(f"migration-{seed}")
        self.clog = ConfigLog(random.Random(f"migration-config-{seed}"), self.faults.commit)
        self.nodes = {n: Node(n, S_ID) for n in S_NODES} | {n: Node(n, T_ID) for n in T_NODES}
        self.checker = self.mig_checker = MigrationChecker([*MOVING_KEYS, *S_KEYS, *T_KEYS])
        self.coverage = self.mig_coverage = MigrationCoverage()
        self.mig_shards = (S_ID, T_ID)
        self.notes: list[str] = []
        self.now_ms = 0
        self.msgs: list[tuple[int, int, str, str, dict[str, Any]]] = []
        self.msg_seq = 0
        self.job_tag, self.job_serial = seed % 0xFFFF, 0
        self.pending = {}  # key -> (node, incarnation, offset, value)
        self.failing_over: dict[str, tuple[int, int]] = {}  # shard -> (epoch, ms proposed)
        self._roles = {}
        self._bootstrap()

    # --- setup and names ---------------------------------------------------------------

    def _bootstrap(self) -> None:
        c = self.clog
        c.commit_now(command("bootstrap", cluster_id="c" * 40, node_id=S_NODES[0], host="h", port=7000,
                             bus_port=17000))  # fmt: skip
        for i, node in enumerate([*S_NODES[1:], *T_NODES]):
            c.commit_now(command("node_join", node_id=node, host="h", port=7001 + i, bus_port=17001 + i))
        for shard, nodes, epoch, slots in ((S_ID, S_NODES, 1, [(0, 8191)]), (T_ID, T_NODES, 2, [(8192, 16383)])):
            c.commit_now(command("shard_create", shard_id=shard, epoch=epoch, primary_id=nodes[0]))
            c.commit_now(command("slots_assign", shard_id=shard, epoch=epoch, slots=slots))
            for node in nodes[1:]:
                c.commit_now(command("replica_attach", shard_id=shard, epoch=epoch, node_id=node))
                v = c.state.shards[shard].isr_version
                c.commit_now(command("isr_expand", shard_id=shard, epoch=epoch, isr_version=v, node_id=node))
        for node in self.nodes.values():
            node.learned = c.index
            self.start_process(node)

    def name(self, node_id: str) -> str:
        return NAMES.get(node_id, node_id[:6])

    def note(self, text: str) -> None:
        self.notes.append(f"{self.now_ms:>7} ms  {text}")

    def view(self, node: Node) -> ClusterState:
        return self.clog.states[node.learned - 1]

    def committed_state(self) -> ClusterState:
        return self.clog.state

    def committed_index(self) -> int:
        return self.clog.index

    def data_of(self, node: Node) -> DataState:
        return node.data

    def wal_append(self, node: Node, offset: int, effect: tuple[bytes, ...]) -> None:
        assert offset == len(node.log) + 1, (offset, len(node.log))
        node.log.append(effect)

    def cut(self, node: Node) -> bool:
        return self.now_ms < node.cut_until_ms

    def reaches_leader(self, node: Node) -> bool:
        return not self.cut(node)

    def client_reaches(self, node: Node) -> bool:
        return not self.cut(node)

    def propose_migration(self, node: Node, cmd: dict[str, Any]) -> None:
        if not self.cut(node):
            self.clog.propose(cmd, self.now_ms)

    def process_token(self, node: Node) -> int:
        return node.incarnation

    def is_primary(self, node: Node) -> bool:
        return node.up and self.view(node).shards[node.shard_id].primary_id == node.id

    def leased(self, node: Node) -> bool:
        """The lease's guarantee (S2): only the primary of the committed epoch serves."""
        mine, committed = self.view(node).shards[node.shard_id], self.clog.state.shards[node.shard_id]
        return self.is_primary(node) and mine.epoch == committed.epoch

    # --- the step ----------------------------------------------------------------------------

    def step(self, *, quiet: bool = False) -> None:
        self.now_ms += STEP_MS
        self.commit()
        self.learn_all()
        if not quiet:
            self.nemesis()
        self.failover_control()
        self.deliver()
        for node in self.nodes.values():
            if node.up:
                self.node_step(node)
        if not quiet:
            self.operator()
            self.clients()
        self.resolve_writes()
        self.check_writers()

    def commit(self) -> None:
        for cmd, result, before in self.clog.commit_due(self.now_ms):
            self.checker.on_commit(cmd, result, before, self.clog.state)
            self.on_migration_entry(cmd, result)
            if cmd["op"] == "failover" and result.ok:
                self.coverage.failovers += 1
                self.count_fault(cmd["shard_id"])
                self.failing_over.pop(cmd["shard_id"], None)
                self.note(f"failover: {self.name(cmd['node_id'])} primary of {cmd['shard_id'][:2]}")

    # --- learning the configuration ----------------------------------------------------------

    def learn_all(self) -> None:
        for node in self.nodes.values():
            behind = node.up and not self.cut(node) and node.learned < self.clog.index
            if behind and self.rng.random() < self.faults.learn_probability:
                self.learn(node, self.rng.randint(node.learned + 1, self.clog.index))

    def learn(self, node: Node, index: int) -> None:
        node.learned = index
        self.mig_on_config(node)

    # --- data: the WAL, replication ---------------------------------------------------------------

    def rebuild(self, node: Node) -> None:
        node.data = DataState()
        for offset, effect in enumerate(node.log, 1):
            node.data.replay(offset, list(effect))
        if node.proc is not None and node.proc.roles is not None:
            node.data.keyspace.hidden = node.proc.hidden

    def acked(self, primary: Node) -> int:
        """The offset every member of the primary's ISR (and replicas it is adding) has held while following it.

        A member that does not follow it (yet) holds nothing known; what all held once stays held
        while this process is primary of this epoch (a member cuts its log only to follow another).
        """
        shard = self.view(primary).shards[primary.shard_id]
        fenced = primary.isr_fenced
        if fenced is None or fenced[0] != shard.epoch or shard.isr_version <= fenced[1]:
            return 0  # before its isr_fence applied, its view's ISR may be older than the one it must count
        members = (set(shard.isr_ids) | set(primary.expanding)) - {primary.id}
        me = (primary.id, shard.epoch)
        now = min([len(primary.log), *(len(self.nodes[m].log) if self.nodes[m].following == me else 0
                                       for m in members)])  # fmt: skip
        if primary.hw[0] != shard.epoch:
            primary.hw = (shard.epoch, 0)
        primary.hw = (shard.epoch, max(primary.hw[1], now))
        return primary.hw[1]

    def isr_fence(self, node: Node, shard: Any) -> None:
        """A primary process commits an ``isr_fence`` before it acknowledges anything (as PrimaryDriver does):
        an ISR change its previous process proposed may have applied unseen."""
        fenced = node.isr_fenced
        if fenced is not None and fenced[0] == shard.epoch and (shard.isr_version > fenced[1]
                                                                or self.now_ms - fenced[2] < FAILOVER_RETRY_MS):
            return  # fenced, or the proposal is still on its way
        node.isr_fenced = (shard.epoch, shard.isr_version, self.now_ms)
        self.clog.propose(command("isr_fence", shard_id=node.shard_id, epoch=shard.epoch,
                                  isr_version=shard.isr_version), self.now_ms)  # fmt: skip

    def pull(self, node: Node) -> None:
        """A replica copies the next records of the primary its view names (not across a fence)."""
        shard = self.view(node).shards[node.shard_id]
        primary = self.nodes[shard.primary_id]
        if primary is node or not primary.up or self.cut(primary) or shard.epoch < node.fence:
            return
        if not self.is_primary(primary) or self.view(primary).shards[node.shard_id].epoch != shard.epoch:
            return
        if node.following != (primary.id, shard.epoch):
            common = 0
            while common < min(len(node.log), len(primary.log)) and node.log[common] is primary.log[common]:
                common += 1
            if common < len(node.log):
                del node.log[common:]
                self.rebuild(node)
            node.following = (primary.id, shard.epoch)
        start = len(node.log)
        for effect in primary.log[start : start + PULL_RECORDS_MAX]:
            node.log.append(effect)
            node.data.replay(len(node.log), list(effect))
        # The primary proposes the expansion, from its own view (the replica's may differ).
        mine = self.view(primary).shards[node.shard_id]
        if node.id not in mine.isr_ids and len(node.log) == len(primary.log) and node.id not in primary.expanding:
            primary.expanding[node.id] = mine.isr_version
            self.clog.propose(command("isr_expand", shard_id=node.shard_id, epoch=mine.epoch,
                                      isr_version=mine.isr_version, node_id=node.id), self.now_ms)  # fmt: skip

    # --- the nodes ------------------------------------------------------------------------------------

    def start_process(self, node: Node) -> None:
        node.proc = new_process(node.id)
        self.rebuild(node)
        self.mig_on_config(node)

    def node_step(self, node: Node) -> None:
        if not self.is_primary(node):
            if not self.cut(node) and self.rng.random() < self.faults.pull_probability:
                self.pull(node)
        else:
            shard = self.view(node).shards[node.shard_id]
            # An expansion counts until the view shows it applied or refused (the ISR version moved on).
            node.expanding = {n: v for n, v in node.expanding.items()
                              if n not in shard.isr_ids and v == shard.isr_version}  # fmt: skip
            self.isr_fence(node, shard)
        self.migration_tick(node)

    # --- the bus ---------------------------------------------------------------------------------------

    def bus_send(self, node: Node, to: str, payload: dict[str, Any]) -> None:
        if self.cut(node) or self.rng.random() < self.faults.msg_loss_probability:
            self.coverage.msgs_lost += 1
            return
        self.msg_seq += 1
        due = self.now_ms + self.rng.randint(0, self.faults.msg_delay_ms_max)
        self.msgs.append((due, self.msg_seq, node.id, to, payload))

    def deliver(self) -> None:
        self.msgs.sort(key=lambda m: m[:2])
        due = [m for m in self.msgs if m[0] <= self.now_ms]
        self.msgs = self.msgs[len(due) :]
        for _, _, frm, to, payload in due:
            node = self.nodes[to]
            if node.up and not self.cut(node) and node.proc is not None:
                self.mig_receive(node, frm, payload)

    # --- faults and the control plane's failover -----------------------------------------------------

    def nemesis(self) -> None:
        f, rng = self.faults, self.rng
        for node in self.nodes.values():
            if not node.up and rng.random() < f.restart_probability:
                self.restart(node)
        up = [n for n in self.nodes.values() if n.up]
        if rng.random() < f.crash_probability and len(up) > 3:
            self.crash(rng.choice(up))
        jobs = [(n, job) for n in up if n.proc is not None for job in n.proc.controller.jobs.values()]
        handover = any(job.state in ("paused", "committing", "cleaning") for _, job in jobs)
        if jobs and rng.random() < (f.handover_crash_probability if handover else f.job_crash_probability):
            source, job = rng.choice(jobs)
            self.note(f"aimed at job {job.migration_id[-4:]} ({job.state})")
            self.crash(source if rng.random() < 0.5 or not self.nodes[job.target_node_id].up
                       else self.nodes[job.target_node_id])  # fmt: skip
        if rng.random() < f.cut_probability:
            node = rng.choice(up)
            node.cut_until_ms = self.now_ms + rng.randint(50, 600)
            self.count_fault(node.shard_id)
            self.coverage.cuts += 1
            self.note(f"{self.name(node.id)} cut off until {node.cut_until_ms}")
        if rng.random() < f.manual_failover_probability:
            shard = rng.choice((S_ID, T_ID))
            if shard not in self.failing_over:
                self.coverage.manual_failovers += 1
                self.propose_failover(shard)

    def crash(self, node: Node) -> None:
        self.count_fault(node.shard_id)
        if self.in_job(node):
            self.coverage.crashes_in_job += 1
        self.coverage.crashes += 1
        node.up, node.proc, node.following = False, None, None
        node.expanding, node.hw, node.isr_fenced = {}, (0, 0), None  # the process's primary state
        node.incarnation += 1
        self.note(f"{self.name(node.id)} crashes")

    def restart(self, node: Node) -> None:
        node.up = True
        self.start_process(node)
        self.note(f"{self.name(node.id)} restarts, log {len(node.log)}, config {node.learned}")

    def failover_control(self) -> None:
        for shard_id in (S_ID, T_ID):
            shard = self.clog.state.shards[shard_id]
            primary = self.nodes[shard.primary_id]
            pending = self.failing_over.get(shard_id)
            if pending is not None and pending[0] == shard.epoch and self.now_ms - pending[1] >= FAILOVER_RETRY_MS:
                self.propose_failover(shard_id)
            elif pending is None and (not primary.up or self.cut(primary)):
                self.failing_over[shard_id] = (shard.epoch, self.now_ms - FAILOVER_RETRY_MS + FAILOVER_AFTER_MS)

    def propose_failover(self, shard_id: str) -> None:
        """Fence the shard's replicas at the next epoch, then propose the longest up ISR member."""
        shard = self.clog.state.shards[shard_id]
        self.failing_over[shard_id] = (shard.epoch, self.now_ms)
        candidates = [self.nodes[n] for n in shard.isr_ids if n != shard.primary_id and self.nodes[n].up]
        for replica_id in shard.replica_ids:
            replica = self.nodes[replica_id]
            replica.fence, replica.following = max(replica.fence, shard.epoch + 1), None
        if candidates:
            successor = max(candidates, key=lambda n: (len(n.log), n.id))
            self.clog.propose(command("failover", shard_id=shard_id, epoch=shard.epoch, node_id=successor.id),
                              self.now_ms)  # fmt: skip

    # --- the quiet end ---------------------------------------------------------------------------------------

    def settle(self, steps_max: int) -> None:
        """Heal everything, stop starting jobs, run until no job runs and no leftovers remain."""
        for node in self.nodes.values():
            node.cut_until_ms = -1
            if not node.up:
                self.restart(node)
        for _ in range(steps_max):
            self.step(quiet=True)
            if self.settled():
                return
        raise MigrationViolation(f"nothing settled in {steps_max} quiet steps: {self.jobs_line()}")

    def settled(self) -> bool:
        return all(n.learned >= self.clog.index for n in self.nodes.values()) and self.migrations_settled()


def run_migration(seed: int, steps: int = 2_000, *, plane_type: type[MigrationPlane] = MigrationPlane,
                  faults: MigrationFaults | None = None) -> MigrationResult:  # fmt: skip
    """One seed: ``steps`` steps of faults and moves, then the quiet end and its checks."""
    plane = plane_type(seed, faults)
    result = MigrationResult(seed, steps, coverage=plane.coverage, notes=plane.notes)
    try:
        for _ in range(steps):
            plane.step()
        plane.settle(steps_max=3_000)
        plane.final_check()
    except MigrationViolation as e:
        result.failure, result.failed_at = str(e), plane.now_ms
    return result
