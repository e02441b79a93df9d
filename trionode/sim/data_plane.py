"""The data plane in the simulation: one shard, one primary and two replicas (``trionode sim --data-plane``).

Theory of operation
-------------------
The runner calls :meth:`DataPlane.step` once per simulated tick, after the
Raft half of the step, in the same plain loop. A tick is ``STEP_MS`` of the
shard's time. One step:

1. **commit**: ISR commands whose random delay ran out are applied to the
   shard's configuration by the real cluster state machine (data_config.py:
   *not* through the simulated Raft nodes; late, lost and duplicated instead),
   and the primary adopts the result;
2. **faults**: restart down nodes; crash a replica or the primary (the page
   cache is lost, perhaps not all of it; a loading replica comes back empty);
   cut a replica off from the primary, one way or both; heal;
3. **deliver** the messages due, in their wire form (``to_wire`` at send,
   ``from_wire`` at delivery), over a network that delays, drops, duplicates
   and now and then reorders (data_network.py);
4. **primary**: client writes (effects at dense offsets), an fsync now and
   then, the high watermark, streaming (snapshot chunks, records, heartbeats:
   only durable records), WAL compaction back to at most ``hw + 1`` (so a
   replica that fell out of the ISR may need a full sync), ISR proposals;
5. **replicas**: fsync now and then, ack what is durable, resync when the
   session broke or went quiet;
6. **check** S1, S5, S7 and log matching (data_checks.py).

The primary never fails over (there is one shard epoch): a crashed primary
restarts as primary of the same epoch from its durable log, with a fresh
tracker that acknowledges nothing until its ``isr_fence`` has committed and
the ISR confirms it.

Every random choice comes from Randoms derived from the seed by name
(``data-plane``, ``data-network``, ``data-config``), so the Raft half of a run
makes the same choices with or without the data plane.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import ReplMessage, SyncReply, from_wire, to_wire
from trionode.core.replication.replica import CONNECTING
from trionode.sim.data_checks import DataChecker
from trionode.sim.data_config import CommitFaults, ShardConfig
from trionode.sim.data_disk import DataDisk, Effect
from trionode.sim.data_network import LinkConfig, LinkNetwork
from trionode.sim.data_shells import PrimaryShell, ReplicaShell
from trionode.sim.trace import DataCoverage, Recorder

STEP_MS = 10
LAG_TIMEOUT_MS = 200
SENDS_PER_STEP = 2  # messages per replica session per step
KEYS = 16


def data_node_id(i: int) -> str:
    return f"{0xD0000 + i:040x}"


PRIMARY_ID = data_node_id(0)
REPLICA_IDS = (data_node_id(1), data_node_id(2))
NAMES = {PRIMARY_ID: "P", REPLICA_IDS[0]: "R1", REPLICA_IDS[1]: "R2"}


@dataclass(frozen=True, slots=True)
class DataFaults:
    write_probability: float = 0.5
    writes_per_step_max: int = 3
    primary_fsync_probability: float = 0.5
    replica_fsync_probability: float = 0.4
    replica_ack_probability: float = 0.5
    heartbeat_probability: float = 0.3
    compact_probability: float = 0.05
    replica_crash_probability: float = 0.005
    primary_crash_probability: float = 0.002
    restart_probability: float = 0.03
    keep_unsynced_probability: float = 0.3
    partition_probability: float = 0.004
    heal_probability: float = 0.03
    network: LinkConfig = field(default_factory=LinkConfig)
    commit: CommitFaults = field(default_factory=CommitFaults)


@dataclass(frozen=True, slots=True)
class Envelope:
    frm: str
    to: str
    wire: dict[str, Any]


class DataPlane:
    def __init__(self, rng_for: Callable[[str], random.Random], recorder: Recorder,
                 faults: DataFaults | None = None) -> None:  # fmt: skip
        self.faults = faults or DataFaults()
        self.rng = rng_for("data-plane")
        self.recorder = recorder
        self.network: LinkNetwork[Envelope] = LinkNetwork(rng_for("data-network"), self.faults.network)
        self.config = ShardConfig(rng_for("data-config"), PRIMARY_ID, REPLICA_IDS, self.faults.commit)
        self.disks = {n: DataDisk() for n in NAMES}
        self.disks[PRIMARY_ID].history = EpochHistory([(1, 1)])
        self.incarnations = dict.fromkeys(NAMES, 0)
        self.checker = DataChecker(PRIMARY_ID, self.name)
        self.coverage = DataCoverage()
        self.now_ticks = self.now_ms = 0
        self.serial = 0
        self.primary: PrimaryShell | None = PrimaryShell(PRIMARY_ID, self.disks[PRIMARY_ID], self.config.shard,
                                                         LAG_TIMEOUT_MS)  # fmt: skip
        self.replicas: dict[str, ReplicaShell | None] = dict.fromkeys(REPLICA_IDS)
        for replica_id in REPLICA_IDS:
            self.start_replica(replica_id)

    @staticmethod
    def name(node_id: str) -> str:
        return NAMES.get(node_id, node_id[-6:])

    @staticmethod
    def short_names(text: str) -> str:
        for node_id, name in NAMES.items():
            text = text.replace(node_id, name)
        return text

    def note(self, text: str) -> None:
        self.recorder.note(f"data: {text}")

    def is_up(self, node_id: str) -> bool:
        return (self.primary if node_id == PRIMARY_ID else self.replicas[node_id]) is not None

    # --- the step ------------------------------------------------------------------------------

    def step(self, now_ticks: int) -> None:
        assert now_ticks > self.now_ticks, (now_ticks, self.now_ticks)
        self.now_ticks, self.now_ms = now_ticks, now_ticks * STEP_MS
        self.commit_config()
        self.nemesis()
        self.deliver()
        if self.primary is not None:
            self.primary_step(self.primary)
        for shell in self.replicas.values():
            if shell is not None:
                self.replica_step(shell)
        self.checker.check(self.disks, self.config, self.primary, self.replicas)

    def send(self, frm: str, to: str, msg: ReplMessage) -> None:
        self.network.send(Envelope(frm, to, to_wire(msg)), self.now_ticks)

    def commit_config(self) -> None:
        for cmd, result in self.config.commit_due(self.now_ms):
            op, who = cmd["op"], self.name(cmd.get("node_id", PRIMARY_ID))  # isr_fence names no node
            if result.ok:
                self.coverage.isr_shrinks += op == "isr_shrink"
                self.coverage.isr_expands += op == "isr_expand"
                isr = ",".join(self.name(n) for n in self.config.shard.isr_ids)
                self.note(f"{op} {who} committed: ISR [{isr}] version {self.config.shard.isr_version}")
            else:
                self.coverage.isr_refused += 1
            if self.primary is not None:
                self.primary.on_applied(cmd, result.ok, self.config)

    # --- faults ----------------------------------------------------------------------------------

    def nemesis(self) -> None:
        f, rng = self.faults, self.rng
        for node_id in NAMES:
            if not self.is_up(node_id) and rng.random() < f.restart_probability:
                self.restart(node_id)
        roll = rng.random()
        if roll < f.replica_crash_probability:
            up = [r for r in REPLICA_IDS if self.is_up(r)]
            if up:
                self.crash(rng.choice(up))
        elif (roll := roll - f.replica_crash_probability) < f.primary_crash_probability:
            if self.is_up(PRIMARY_ID):
                self.crash(PRIMARY_ID)
        elif roll - f.primary_crash_probability < f.partition_probability:
            self.partition(rng.choice(REPLICA_IDS), symmetric=rng.random() < 0.5)
        if self.network.blocked_links() and rng.random() < f.heal_probability:
            self.network.heal()
            self.note("network healed")

    def crash(self, node_id: str) -> None:
        lost = self.disks[node_id].crash(self.rng, self.faults.keep_unsynced_probability)
        self.incarnations[node_id] += 1
        if node_id == PRIMARY_ID:
            self.primary = None
            self.coverage.primary_crashes += 1
        else:
            self.replicas[node_id] = None
            self.coverage.replica_crashes += 1
        self.note(f"{self.name(node_id)} crashes, {lost} records lost, log to {len(self.disks[node_id].log)}")
        if (refused := self.disks[node_id].refused) is not None:  # the node's recovery refuses its disk
            self.checker.fail(f"S6 recovery: {self.name(node_id)} cannot restart: {refused.reason}")

    def restart(self, node_id: str) -> None:
        disk = self.disks[node_id]
        if node_id == PRIMARY_ID:
            self.primary = PrimaryShell(PRIMARY_ID, disk, self.config.shard, LAG_TIMEOUT_MS)
        else:
            self.start_replica(node_id)
        self.note(f"{self.name(node_id)} restarts, log to {len(disk.log)}")

    def start_replica(self, replica_id: str) -> None:
        shell = ReplicaShell(replica_id, self.disks[replica_id], self.incarnations[replica_id], self.now_ms)
        self.replicas[replica_id] = shell
        self.send_all(replica_id, PRIMARY_ID, shell.tick(self.now_ms))

    def send_all(self, frm: str, to: str, msgs: list[ReplMessage]) -> None:
        for msg in msgs:
            self.send(frm, to, msg)

    def partition(self, replica_id: str, *, symmetric: bool) -> None:
        self.network.partition([replica_id], [PRIMARY_ID], symmetric=symmetric)
        self.coverage.partitions += 1
        self.note(f"{self.name(replica_id)} {'<->' if symmetric else '->'}X P")

    # --- delivery --------------------------------------------------------------------------------

    def deliver(self) -> None:
        for envelope in self.network.deliver_due(self.now_ticks):
            msg = from_wire(envelope.wire)
            if envelope.to == PRIMARY_ID:
                if self.primary is None:
                    self.network.drop_down()
                else:
                    self.primary_receive(self.primary, msg)
            else:
                shell = self.replicas[envelope.to]
                if shell is None:
                    self.network.drop_down()
                else:
                    self.replica_receive(shell, msg)

    def primary_receive(self, shell: PrimaryShell, msg: ReplMessage) -> None:
        acks = shell.acks
        for to, reply in shell.receive(msg, self.now_ms):
            self.send(PRIMARY_ID, to, reply)
        self.coverage.acks += shell.acks - acks

    def replica_receive(self, shell: ReplicaShell, msg: ReplMessage) -> None:
        connecting = shell.rs.state == CONNECTING
        self.send_all(shell.id, PRIMARY_ID, shell.receive(msg, self.now_ms))
        if isinstance(msg, SyncReply) and connecting and shell.rs.state != CONNECTING:
            if msg.mode == "full":
                self.coverage.resyncs_full += 1
                self.note(f"{self.name(shell.id)} full sync from a snapshot at {msg.log_end}")
            else:
                self.coverage.resyncs_partial += 1

    # --- the nodes' own steps ----------------------------------------------------------------------

    def primary_step(self, shell: PrimaryShell) -> None:
        f, rng, disk = self.faults, self.rng, shell.disk
        if rng.random() < f.write_probability:
            shell.write([self.next_effect() for _ in range(rng.randint(1, f.writes_per_step_max))])
        if rng.random() < f.primary_fsync_probability:
            shell.fsync()
        shell.on_log(self.now_ms)
        self.coverage.hw_advances += self.checker.on_watermark(shell, shell.acked, self.disks)
        for replica_id in REPLICA_IDS:
            for to, msg in shell.stream_to(replica_id, SENDS_PER_STEP, rng.random() < f.heartbeat_probability):
                self.send(PRIMARY_ID, to, msg)
        keep_from = shell.driver.wal_keep_from()
        if rng.random() < f.compact_probability and disk.log_start < keep_from:
            disk.compact(rng.randint(disk.log_start, keep_from) - 1)
        for cmd in shell.tick(self.now_ms):
            self.config.propose(cmd, self.now_ms)
        for line in shell.driver.take_reports():
            self.note(self.short_names(line.split(": ", 1)[-1]))

    def next_effect(self) -> Effect:
        self.serial += 1
        self.coverage.writes += 1
        return [b"SET", b"k%d" % (self.serial % KEYS), b"v%d" % self.serial]

    def replica_step(self, shell: ReplicaShell) -> None:
        f, rng = self.faults, self.rng
        if rng.random() < f.replica_fsync_probability:
            shell.disk.fsync()
        if rng.random() < f.replica_ack_probability:
            self.send_all(shell.id, PRIMARY_ID, shell.ack(self.now_ms))
        self.send_all(shell.id, PRIMARY_ID, shell.tick(self.now_ms))

    def finish(self) -> DataCoverage:
        self.coverage.msgs_dropped = self.network.stats.dropped
        return self.coverage
