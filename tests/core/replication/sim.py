"""An in-memory world for the replication core: one shard, three nodes, a lossy reordering network,
crashes that lose unsynced data, a Raft stand-in that commits ISR proposals late, and failovers.

The shells here are the simplest that keep the rules the cores document: a primary streams only
records it has fsynced; truncations and histories are persisted at once; a replica that crashes
while loading comes back empty; a fence epoch is persisted before it is answered.
"""

import random
from dataclasses import dataclass, field
from typing import Any

from trionode.core.cluster import command
from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import (
    Ack,
    Records,
    SnapshotChunk,
    SyncRefused,
    SyncReply,
    SyncRequest,
    from_wire,
    to_wire,
)  # fmt: skip
from trionode.core.replication.primary import PrimaryTracker
from trionode.core.replication.replica import LOADING, ReplicaState, Step

from .helpers import R1, R2, SHARD, Config, P

NODES = (P, R1, R2)
STEP_MS = 10
LAG_MS = 300
BATCH = 3
CHUNK = 16
SENDS_PER_STEP = 2


@dataclass
class Session:
    sync_id: int
    next_offset: int
    snapshot: list[list[bytes]] | None = None  # a full sync still to send: (records 1..S)
    snapshot_seq: int = 0
    snapshot_offset: int = 0


@dataclass
class Node:
    id: str
    log: list[list[bytes]] = field(default_factory=list)
    durable: int = 0
    history: EpochHistory = field(default_factory=EpochHistory)  # as persisted
    fence_epoch: int = 1  # as persisted
    incarnation: int = 0
    up: bool = True
    tracker: PrimaryTracker | None = None
    sessions: dict[str, Session] = field(default_factory=dict)
    log_start: int = 1
    rs: ReplicaState | None = None
    quiet_steps: int = 0
    config_lag: int = 0  # steps before this node applies the latest configuration
    loading_marker: bool = False  # persisted: a full sync is under way, the local data is junk


class World:
    def __init__(self, seed: int, faults: bool = True) -> None:
        self.rng = random.Random(seed)
        self.faults = faults
        self.writes = True
        self.now = 0
        self.serial = 0
        self.cfg = Config()
        self.nodes = {n: Node(n) for n in NODES}
        self.net: list[tuple[str, dict[str, Any]]] = []
        self.proposals: list[tuple[int, dict[str, Any]]] = []  # (commit at ms, command)
        self.acked: list[list[bytes]] = []  # every write ever acknowledged, by offset
        self.seen_epochs = 1
        self.events: list[str] = []
        p = self.nodes[P]
        p.history = EpochHistory([(1, 1)])
        self._start_primary(p)
        for r in (R1, R2):
            self._start_replica(self.nodes[r])

    # --- roles ---------------------------------------------------------------------------------
    def _start_primary(self, node: Node) -> None:
        s = self.cfg.shard
        node.rs, node.sessions = None, {}
        node.tracker = PrimaryTracker(SHARD, node.id, s.epoch, node.history.copy(), node.log_start, node.durable,
                                      s.replica_ids, s.isr_ids, s.isr_version, lag_timeout_ms=LAG_MS)  # fmt: skip

    def _start_replica(self, node: Node) -> None:
        node.tracker, node.sessions = None, {}
        node.rs = ReplicaState(SHARD, node.id, node.fence_epoch, node.history, len(node.log),
                               sync_id_base=node.incarnation * 1_000_000)  # fmt: skip
        self._send_sync(node)

    def primary(self) -> Node:
        return self.nodes[self.cfg.shard.primary_id]

    # --- network -------------------------------------------------------------------------------
    def send(self, dst: str, msg: Any) -> None:
        if self.faults and self.rng.random() < 0.05:
            return
        self.net.append((dst, to_wire(msg)))

    def deliver(self) -> None:
        if not self.net:
            return
        count = self.rng.randint(1, len(self.net))
        for _ in range(count):
            i = self.rng.randrange(len(self.net)) if self.faults else 0  # reordering
            dst, raw = self.net.pop(i)
            node = self.nodes[dst]
            if node.up:
                self.receive(node, from_wire(raw))

    def receive(self, node: Node, msg: Any) -> None:
        if isinstance(msg, SyncRequest):
            if node.tracker is not None and not node.tracker.deposed:
                self._answer_sync(node, msg)
        elif isinstance(msg, Ack):
            if node.tracker is not None:
                node.tracker.on_ack(msg, self.now)
        elif node.rs is not None:
            rs = node.rs
            if isinstance(msg, (SyncReply, SyncRefused)):
                step = rs.on_sync_reply(msg)
            elif isinstance(msg, Records):
                step = rs.on_records(msg)
            else:
                assert isinstance(msg, SnapshotChunk)
                step = rs.on_snapshot_chunk(msg)
            if not step.refused:
                node.quiet_steps = 0
            self._apply_step(node, step)

    # --- primary shell ---------------------------------------------------------------------------
    def _answer_sync(self, node: Node, req: SyncRequest) -> None:
        t = node.tracker
        assert t is not None
        reply = t.on_sync_request(req, node.log_start, node.durable)
        if isinstance(reply, SyncReply):
            if reply.mode == "partial":
                node.sessions[req.replica_id] = Session(req.sync_id, reply.keep_offset + 1)
            else:
                snap = [list(e) for e in node.log[: node.durable]]
                node.sessions[req.replica_id] = Session(req.sync_id, node.durable + 1, snap, 0, node.durable)
        self.send(req.replica_id, reply)

    def _primary_step(self, node: Node) -> None:
        t = node.tracker
        assert t is not None
        if self.rng.random() < 0.5 and self.writes:
            self.serial += 1
            node.log.append([b"SET", b"k", str(self.serial).encode()])
        if self.rng.random() < 0.5:
            node.durable = len(node.log)
            t.set_log_end(node.durable)
        hw = t.high_watermark(node.durable)
        if not t.deposed:
            self._acknowledge(node, hw)
        for rid, sess in node.sessions.items():
            for _ in range(SENDS_PER_STEP):
                self._stream(node, rid, sess, hw)
        if self.rng.random() < 0.05 and hw + 1 > node.log_start:  # compaction keeps the WAL back to the watermark
            node.log_start = max(node.log_start, self.rng.randint(node.log_start, hw + 1))
        for cmd in t.isr_changes(self.now):
            self.proposals.append((self.now + self.rng.randint(0, 200), cmd))

    def _stream(self, node: Node, rid: str, sess: Session, hw: int) -> None:
        t = node.tracker
        assert t is not None
        if sess.snapshot is not None:
            items = sess.snapshot[sess.snapshot_seq * CHUNK : (sess.snapshot_seq + 1) * CHUNK]
            last = (sess.snapshot_seq + 1) * CHUNK >= len(sess.snapshot)
            self.send(rid, SnapshotChunk(SHARD, t.epoch, sess.snapshot_offset, sess.snapshot_seq, items, last,
                                         sess.sync_id))  # fmt: skip
            sess.snapshot_seq += 1
            if last:
                sess.snapshot = None
            return
        end = min(node.durable, sess.next_offset + BATCH - 1)
        effects = node.log[sess.next_offset - 1 : end]
        if effects or self.rng.random() < 0.3:
            self.send(rid, Records(SHARD, t.epoch, sess.next_offset, effects, hw, sess.sync_id))
            sess.next_offset += len(effects)

    def _acknowledge(self, node: Node, hw: int) -> None:
        """Writes up to ``hw`` are acknowledged to clients: they must never be lost."""
        assert hw <= node.durable
        if hw <= len(self.acked):
            assert node.log[:hw] == self.acked[:hw], "a primary acknowledges a log that conflicts"
            return
        assert node.log[: len(self.acked)] == self.acked, "a primary acknowledges a log that conflicts"
        self.acked.extend(node.log[len(self.acked) : hw])

    # --- replica shell ----------------------------------------------------------------------------
    def _send_sync(self, node: Node) -> None:
        assert node.rs is not None
        self.send(self.cfg.shard.primary_id, node.rs.sync_request())

    def _apply_step(self, node: Node, step: Step) -> None:
        rs = node.rs
        assert rs is not None
        if step.start_full_sync:
            node.log, node.durable, node.history = [], 0, EpochHistory()
            node.loading_marker = True
        if step.truncate_to is not None:
            del node.log[step.truncate_to :]
            node.durable = min(node.durable, step.truncate_to)
            node.loading_marker = node.loading_marker and step.truncate_to > 0
        if step.history_changed:
            node.history = rs.history.copy()
        node.log.extend(step.snapshot_items)
        for offset, effect in step.records:
            assert offset == len(node.log) + 1
            node.log.append(effect)
        assert len(node.log) == rs.log_end or node.loading_marker
        if step.resync:
            self._send_sync(node)

    def _replica_step(self, node: Node) -> None:
        rs = node.rs
        assert rs is not None
        node.quiet_steps += 1
        if self.rng.random() < 0.4:
            node.durable = len(node.log)
            ack = rs.ack(min(node.durable, rs.log_end))
            if rs.state in ("syncing", "streaming"):
                node.loading_marker = False
            if ack is not None:
                self.send(self.cfg.shard.primary_id, ack)
        if (rs.state == "connecting" and node.quiet_steps > 10) or node.quiet_steps > 40:
            node.quiet_steps = 0
            self._send_sync(node)

    # --- faults and the control plane ----------------------------------------------------------------
    def crash(self, node: Node) -> None:
        self.events.append(f"{self.now} crash {node.id[-1]}")
        loading = node.loading_marker
        node.loading_marker = False
        node.log = [] if loading else node.log[: node.durable]
        node.durable = len(node.log)
        node.history = EpochHistory() if loading else node.history
        node.history.truncate_after(node.durable)
        node.up, node.incarnation = False, node.incarnation + 1
        node.tracker, node.rs = None, None

    def restart(self, node: Node) -> None:
        self.events.append(f"{self.now} restart {node.id[-1]}")
        node.up = True
        if self.cfg.shard.primary_id == node.id:
            self._start_primary(node)
        else:
            self._start_replica(node)

    def failover(self) -> None:
        shard = self.cfg.shard
        old = self.nodes[shard.primary_id]
        candidates = [self.nodes[n] for n in shard.isr_ids if n != old.id and self.nodes[n].up]
        if not candidates:
            return
        epoch = shard.epoch + 1
        for node in candidates:  # the fence is persisted before it is answered
            node.fence_epoch = epoch
            assert node.rs is not None
            node.rs.fence(epoch)
        new = max(candidates, key=lambda n: (n.rs.reported_offset(), n.id))  # type: ignore[union-attr]
        assert self.cfg.commit(command("failover", shard_id=SHARD, epoch=shard.epoch, node_id=new.id)).ok
        self.events.append(f"{self.now} failover to {new.id[-1]} at epoch {epoch}")
        new.durable = len(new.log)
        new.history = new.rs.history.copy() if new.rs is not None else new.history
        new.history.truncate_after(new.durable)  # adopted entries for records it never got describe nothing
        new.history.append_epoch(epoch, new.durable + 1)
        new.log_start = 1
        self._start_primary(new)
        old.config_lag = self.rng.randint(0, 30)  # the old primary learns late, and streams meanwhile

    def commit_proposals(self) -> None:
        due = [c for t, c in self.proposals if t <= self.now]
        self.proposals = [(t, c) for t, c in self.proposals if t > self.now]
        for cmd in due:
            result = self.cfg.commit(cmd)
            primary = self.primary()
            if result.ok and cmd["op"] == "isr_expand":
                self.check_member_holds_acked(self.nodes[cmd["node_id"]], "expanded")
            if primary.tracker is not None:
                primary.tracker.proposal_done(cmd["node_id"])
                primary.tracker.set_config(**self.cfg.config_args())

    def propagate_config(self) -> None:
        epoch = self.cfg.shard.epoch
        for node in self.nodes.values():
            if node.tracker is None or not node.up or node.id == self.cfg.shard.primary_id:
                continue
            if node.config_lag > 0:
                node.config_lag -= 1
                continue
            node.tracker.set_config(**self.cfg.config_args())  # deposes it
            node.fence_epoch = epoch
            node.durable = len(node.log)
            self._start_replica(node)
            self.events.append(f"{self.now} {node.id[-1]} rejoins as a replica")

    # --- the loop ------------------------------------------------------------------------------
    def step(self) -> None:
        self.now += STEP_MS
        self.commit_proposals()
        self.propagate_config()
        for node in self.nodes.values():
            if not node.up:
                if self.rng.random() < 0.05:
                    self.restart(node)
                continue
            if node.tracker is not None:
                self._primary_step(node)
            elif node.rs is not None:
                self._replica_step(node)
        self.deliver()
        if self.faults:
            roll = self.rng.random()
            if roll < 0.01:
                self.crash(self.rng.choice([n for n in self.nodes.values() if n.up] or [self.nodes[P]]))
            elif roll < 0.015:
                self.failover()
        self.check()

    # --- invariants -------------------------------------------------------------------------------
    def check_member_holds_acked(self, node: Node, why: str) -> None:
        assert node.durable >= len(self.acked), f"{why} {node.id[-1]} lacks acknowledged writes"
        assert node.log[: len(self.acked)] == self.acked, f"{why} {node.id[-1]} holds other writes"

    def check(self) -> None:
        shard = self.cfg.shard
        primary = self.primary()
        # Every acknowledged write is durable, identically, on the primary and every ISR member (S1).
        for node_id in shard.isr_ids:
            node = self.nodes[node_id]
            self.check_member_holds_acked(node, "ISR member")
        for node in self.nodes.values():
            t = node.tracker
            if t is not None and not t.deposed:
                hw = t.high_watermark(node.durable)
                for member in t.isr_ids:  # the watermark never runs past an ISR member
                    other = self.nodes[member]
                    assert other.durable >= hw and other.log[:hw] == node.log[:hw]
            if node.rs is not None and node.rs.state == LOADING:
                assert node.rs.reported_offset() == 0  # S5
        t = primary.tracker
        if t is not None and t.epoch == shard.epoch:
            for rid, status in t.replica_status().items():  # WAIT and the watermark count only what is there
                other = self.nodes[rid]
                assert status["offset"] <= other.durable, (rid[-1], status, other.durable)
                assert other.log[: status["offset"]] == primary.log[: status["offset"]]
                if other.rs is not None and other.rs.state == LOADING:
                    assert status["offset"] == 0

    def heal(self, steps: int) -> None:
        self.faults = False
        for node in self.nodes.values():
            if not node.up:
                self.restart(node)
        for _ in range(steps):
            self.step()
