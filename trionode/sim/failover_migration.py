"""Slot migration inside the failover simulation (``trionode sim --data-plane --failover --migration``).

Theory of operation
-------------------
The failover plane (failover_plane.py) with two shards: S (nodes A primary,
B, C replicas, D spare; slots 0..8191) and T (E primary, F, G, H spare;
8192..16383). Everything the failover plane runs, runs here unchanged: the
replication drivers (data_shells.py) over the simulated disks, every node's
failover controller, leases and failure detector, ``L``'s controller, the
nemesis (each fault aimed at one shard) and one client workload per shard
(kv_workload.py; without DBSIZE and FLUSHALL, which would see keys come and
go that its checker does not follow; none of its keys is in a moving slot).

On top, every node runs the migration shells (migration_shells.py, shared
with ``--migration``): the node's own migration controller, export jobs,
stream, import jobs, slot rule and cleanup. Where ``--migration`` abstracts,
this plane has the real thing:

- a node's data is its keyspace of the client workload (one per node, equal
  to its disk's log); the migration's writes (client SETs, staged stream
  records on the target, cleanup DELs) go to the disk like any write, so the
  replication drivers stream them and the ISR rules count them;
- an import acknowledges its source only up to the target primary's
  watermark (its :class:`PrimaryDriver`'s acknowledged offset);
- a node serves the moving slots only while its failover controller holds a
  valid lease (S2), as any command;
- ``mig_*`` messages travel on the same lossy links as everything else; the
  commands (start, commit, abort) go through the same committed log, late,
  lost or twice, and a node proposes only while it reaches ``L``.

An operator moves a fixed set of slots back and forth; :meth:`aimed` hits a
running job's source or target in its current phase: a primary kill, an
isolation, a ``CLUSTER FAILOVER``, a target replica's crash.

Checks: the failover plane's (S1, S2, S5, S8 and every client reply, per
shard), S3 at every commit (only an applied ``migration_commit`` moves its
slots, from its source to its target), one shard accepting writes per slot
at every step, every read of a migrating key at least as new as the last
write acknowledged before it, and at the quiet end (:meth:`end`) every
acknowledged write on the owner's primary and no moved key left behind.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from trionode.core.cluster import ApplyResult, ClusterState, Shard
from trionode.core.data_state import DataState
from trionode.sim.failover_nemesis import CLIENT, LEADER
from trionode.sim.failover_plane import SHARD_IDS, FailoverCoverage, FailoverFaults, FailoverPlane, SimNode
from trionode.sim.migration_checks import MigrationChecker, MigrationViolation
from trionode.sim.migration_coverage import MigrationCoverage, MigrationFaults
from trionode.sim.migration_shells import BOUNDS as SHELL_BOUNDS
from trionode.sim.migration_shells import MOVING_KEYS, S_KEYS, T_KEYS, MigrationShells, new_process
from trionode.sim.trace import Recorder, _Counters

PHASES = ("snapshotting", "streaming", "paused", "committing", "cleaning")
# Per step while a job is in the phase (else the faults' job_crash_probability): the short phases, a
# few steps each unless a fault lands, are aimed at more often.
AIM_PROBABILITY = {"snapshotting": 0.1, "paused": 0.03, "committing": 0.08, "cleaning": 0.08}
# A failover takes a lease drain and a fencing round (hundreds of ms): a pause may outlast one, so a
# failover can commit while writes are held, as it can on a node (migration_pause_ms_max, 1 s by default).
BOUNDS = replace(SHELL_BOUNDS, pause_ms_max=1_500, ack_timeout_ms=1_500)
MIN_INSYNC_REPLICAS = 2  # a job aborts once its target's ISR falls below (shrinks race the handover)
SETTLE_STEPS_MAX = 3_000
AIMS = ("kill_source", "kill_target", "isolate_source", "isolate_target", "failover_source", "failover_target",
        "target_replica")  # fmt: skip
MIGRATION_FAULTS = MigrationFaults(job_crash_probability=0.004)
FAILOVER_COUNTS = {"cuts", "failovers", "manual_failovers", "msgs_lost"}  # the failover plane's counters say those


@dataclass(slots=True)
class PhaseCoverage(_Counters):
    """Per phase of a running job (at the moment it happened): crashes on either side, committed failovers."""

    crashes_snapshotting: int = 0
    crashes_streaming: int = 0
    crashes_paused: int = 0
    crashes_committing: int = 0
    crashes_cleaning: int = 0
    failovers_snapshotting: int = 0
    failovers_streaming: int = 0
    failovers_paused: int = 0
    failovers_committing: int = 0
    failovers_cleaning: int = 0
    aimed_faults: int = 0


@dataclass(slots=True)
class CombinedCoverage:
    """What the failover plane did, what the migrations did (``mig_``), and the faults by phase."""

    failover: FailoverCoverage = field(default_factory=FailoverCoverage)
    migration: MigrationCoverage = field(default_factory=MigrationCoverage)
    phases: PhaseCoverage = field(default_factory=PhaseCoverage)

    def items(self) -> list[tuple[str, int]]:
        migration = ((f"mig_{n}", v) for n, v in self.migration.items() if n not in FAILOVER_COUNTS)
        return [*self.failover.items(), *migration, *self.phases.items()]

    def add(self, other: "CombinedCoverage") -> None:
        self.failover.add(other.failover)
        self.migration.add(other.migration)
        self.phases.add(other.phases)

    def format(self) -> str:
        return " ".join(f"{name}={value}" for name, value in self.items())


class FailoverMigrationPlane(MigrationShells, FailoverPlane):
    def __init__(self, rng_for: Callable[[str], random.Random], recorder: Recorder,
                 faults: FailoverFaults | None = None, mig_faults: MigrationFaults | None = None) -> None:  # fmt: skip
        self.mig_faults = mig_faults or MIGRATION_FAULTS
        self.mig_rng = rng_for("failover-migration")
        self.mig_coverage = MigrationCoverage()
        self.phases = PhaseCoverage()
        self.mig_checker = MigrationChecker([*MOVING_KEYS, *S_KEYS, *T_KEYS])
        self.mig_shards = (SHARD_IDS[0], SHARD_IDS[1])
        self.job_tag, self.job_serial = self.mig_rng.randrange(0xFFFF), 0
        self.pending = {}
        self._roles = {}
        super().__init__(rng_for, recorder, faults, shards=2)

    # --- the hooks of the migration shells --------------------------------------------------------

    def view(self, node: SimNode) -> ClusterState:
        return node.view_state

    def committed_state(self) -> ClusterState:
        return self.config.state

    def committed_index(self) -> int:
        return self.config.index

    def data_of(self, node: SimNode) -> DataState:
        """The node's keyspace (the client workload's, equal to its log), with the slot rule's hidden slots."""
        kvs = self.kvs[node.shard_id]
        held = kvs.keyspaces.get(node.id)
        # Effects not logged yet: the keyspace is ahead of the log on purpose (not a cut to rebuild after).
        data = held.data if held is not None and held.data.outbox else kvs.keyspace(node).data
        data.keyspace.hidden = node.proc.hidden if node.proc is not None else frozenset()
        return data

    def wal_append(self, node: SimNode, offset: int, effect: tuple[bytes, ...]) -> None:
        assert node.primary is not None and offset == len(node.disk.log) + 1, (offset, len(node.disk.log))
        node.disk.append([list(effect)])

    def leased(self, node: SimNode) -> bool:
        return self.serves(node)

    def is_primary(self, node: SimNode) -> bool:
        return node.up and node.primary is not None

    def reaches_leader(self, node: SimNode) -> bool:
        return self.reaches(node.id, LEADER)

    def client_reaches(self, node: SimNode) -> bool:
        return self.reaches(CLIENT, node.id) and self.kv.alive(node)

    def propose_migration(self, node: SimNode, cmd: dict[str, Any]) -> None:
        self.propose(node, cmd)

    def bus_send(self, node: SimNode, to: str, payload: dict[str, Any]) -> None:
        self.send_ctl(node.id, to, payload)

    def acked(self, node: SimNode) -> int:
        return 0 if node.primary is None else self.acked_offset(node)

    def process_token(self, node: SimNode) -> Any:
        return node.primary  # a crash or a demotion ends the shell: its writes' fate is unknown

    # --- the failover plane, extended ---------------------------------------------------------------

    def step(self, now_ticks: int) -> None:
        super().step(now_ticks)
        if not self.quiet:
            self.aimed()
            self.operator()
            self.clients()
        self.resolve_writes()
        self.check_writers()

    def start_process(self, node: SimNode) -> None:
        super().start_process(node)
        node.proc = new_process(node.id, BOUNDS, MIN_INSYNC_REPLICAS)

    def adopt(self, node: SimNode) -> None:
        super().adopt(node)
        if node.proc is not None:
            self.mig_on_config(node)

    def node_step(self, node: SimNode) -> None:
        super().node_step(node)
        if node.up and node.proc is not None and self.kv.alive(node):
            self.migration_tick(node)

    def node_receive_ctl(self, node: SimNode, env: Any) -> None:
        if env.wire["k"].startswith("mig_"):
            if node.proc is not None and self.kv.alive(node):
                self.mig_receive(node, env.frm, env.wire)
            return
        super().node_receive_ctl(node, env)

    def on_committed(self, cmd: dict[str, Any], result: ApplyResult, before: Shard, after: Shard) -> None:
        super().on_committed(cmd, result, before, after)
        if cmd["op"].startswith("migration_"):
            self.on_migration_entry(cmd, result)
        elif cmd["op"] == "failover" and result.ok:
            self.count_fault(cmd["shard_id"], "failovers")

    def on_owners_changed(self, cmd: dict[str, Any], result: ApplyResult, before: list[str | None]) -> None:
        self.mig_checker.on_commit(cmd, result, before, self.config.state)

    def crash(self, node_id: str) -> None:
        node = self.nodes[node_id]
        self.count_fault(node.shard_id, "crashes")
        self.mig_coverage.crashes += 1
        self.mig_coverage.crashes_in_job += self.in_job(node)
        super().crash(node_id)
        node.proc = None

    def count_fault(self, shard_id: str, kind: str = "") -> None:
        """Also by phase alone: each running job's phase, once per job."""
        super().count_fault(shard_id)
        jobs = [j for n in self.nodes.values() if n.proc is not None for j in n.proc.controller.jobs.values()]
        for job in jobs if kind else ():
            if job.state in PHASES:
                name = f"{kind}_{job.state}"
                setattr(self.phases, name, getattr(self.phases, name) + 1)

    def finish(self) -> CombinedCoverage:  # type: ignore[override]
        return CombinedCoverage(super().finish(), self.mig_coverage, self.phases)

    # --- faults aimed at a running job's phase ------------------------------------------------------

    def aimed(self) -> None:
        """Now and then, hit a running job's source or target: more often in its short phases."""
        f, rng = self.mig_faults, self.mig_rng
        jobs = [j for n in self.nodes.values() if n.proc is not None for j in n.proc.controller.jobs.values()]
        chance = max((AIM_PROBABILITY.get(j.state, f.job_crash_probability) for j in jobs), default=0.0)
        if rng.random() >= chance:
            return
        job = rng.choice(jobs)
        aim = rng.choice(AIMS)
        nemesis = self.nemesis
        nemesis.shard_id = job.target_shard_id if aim.endswith(("target", "replica")) else job.source_shard_id
        self.phases.aimed_faults += 1
        self.note(f"aimed at job {job.migration_id[-4:]} ({job.state}): {aim}")
        if aim.startswith("kill"):
            nemesis.kill()
        elif aim.startswith("isolate"):
            nemesis.isolate_without_client()
        elif aim.startswith("failover"):
            nemesis.manual()
        else:
            nemesis.crash()

    # --- the quiet end ---------------------------------------------------------------------------------

    def end(self) -> None:
        """Heal, restart, stop faults and new jobs; once every job ended and every key is home, check them."""
        self.quiet = True
        self.network.heal()
        self.nemesis.sync_crash.clear()
        for node in self.nodes.values():
            if node.up and node.replica is not None and node.replica.crashed:
                self.crash(node.id)  # stopped at a crash point: carry the crash out
            if not node.up:
                self.restart(node.id)
            if node.replica is not None:
                node.replica.crash_after = None
        for _ in range(SETTLE_STEPS_MAX):
            self.step(self.now_ticks + 1)
            if all(n.learned == self.config.index for n in self.nodes.values()) and self.migrations_settled():
                self.final_check()
                return
        raise MigrationViolation(f"nothing settled in {SETTLE_STEPS_MAX} quiet steps: {self.jobs_line()}")
