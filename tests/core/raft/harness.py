"""A deterministic cluster of RawNodes for tests: a disk per node, a network, invariant checks.

The harness plays the shell exactly as the Ready contract says: persist (via
``durable.records_for`` into an in-memory WAL, a received snapshot first),
then send, then apply, then advance. A crash loses everything that was not
persisted; a restart rebuilds the node from ``durable.replay``. Every Ready
is also checked against the Raft safety properties, so scripts and
randomized runs share one set of checks.
"""

import random
from dataclasses import dataclass, field
from typing import Any

from trionode.core.raft import RaftConfig, RawNode
from trionode.core.raft.durable import records_for, replay
from trionode.core.raft.messages import ConfState, Entry, Message, MsgType, Ready, Snapshot

CRASH_POINTS = ("mid_persist", "after_persist", "after_send", "after_apply")


@dataclass
class Disk:
    snapshot: Snapshot
    records: list[dict] = field(default_factory=list)


class SafetyViolation(AssertionError):
    pass


class Env:
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)  # the harness's own choices (torn batches)
        self.configs: dict[str, RaftConfig] = {}
        self.nodes: dict[str, RawNode | None] = {}
        self.disks: dict[str, Disk] = {}
        self.sm: dict[str, dict[int, tuple]] = {}  # applied (index -> (term, kind, data)) per node
        self.inbox: dict[str, list[Message]] = {}
        self.groups: list[set[str]] | None = None
        self.boots: dict[str, int] = {}
        self.group_of: dict[str, str] = {}
        # Safety bookkeeping across the whole run.
        self.leaders: dict[tuple[str, int], str] = {}  # (group, term) -> leader
        self.grants: dict[tuple[str, int], str] = {}  # (voter, term) -> candidate
        self.applied: dict[tuple[str, int], tuple] = {}  # (group, index) -> (term, kind, data), anyone's

    # --- membership of the harness ---------------------------------------------------------

    def add_node(self, node_id: str, conf: ConfState, *, index: int = 0, group: str = "", **cfg: Any) -> None:
        """Add a node; ``group`` names its Raft group when one Env runs several independent groups."""
        assert node_id not in self.nodes
        self.group_of[node_id] = group
        self.configs[node_id] = RaftConfig(node_id=node_id, **cfg)
        snap = Snapshot(index=index, term=1 if index else 0, conf=conf, data=())
        self.disks[node_id] = Disk(snap)
        self.boots[node_id] = 0
        self.start(node_id)

    def start(self, node_id: str) -> None:
        disk = self.disks[node_id]
        restored = replay(disk.snapshot, disk.records)
        rng = random.Random(f"{self.seed}/{node_id}/{self.boots[node_id]}")
        self.boots[node_id] += 1
        self.nodes[node_id] = RawNode(
            self.configs[node_id], rng, hard_state=restored.hard_state,
            snapshot=restored.snapshot, entries=restored.entries,
        )  # fmt: skip
        self.sm[node_id] = {t[0]: t[1:] for t in restored.snapshot.data or ()}
        self.inbox[node_id] = []

    def crash(self, node_id: str) -> None:
        self.nodes[node_id] = None
        self.inbox[node_id] = []  # messages in flight to a dead node are lost

    def live(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node is not None]

    def node(self, node_id: str) -> RawNode:
        node = self.nodes[node_id]
        assert node is not None, f"node {node_id} is crashed"
        return node

    # --- network -----------------------------------------------------------------------------

    def can_send(self, frm: str, to: str) -> bool:
        if self.nodes.get(to) is None:
            return False
        if self.groups is None:
            return True
        return any(frm in g and to in g for g in self.groups)

    def deliver(self, node_id: str) -> list[Message]:
        msgs, self.inbox[node_id] = self.inbox[node_id], []
        node = self.node(node_id)
        for m in msgs:
            node.step(m)
        return msgs

    # --- the shell's Ready loop ---------------------------------------------------------------

    def process_ready(self, node_id: str, crash_at: str = "") -> Ready:
        node = self.node(node_id)
        rd = node.ready()
        self.check_ready(node_id, rd)
        disk = self.disks[node_id]
        if rd.snapshot is not None:
            disk.snapshot = rd.snapshot  # the snapshot file goes first
        records = records_for(rd)
        if crash_at == "mid_persist":
            disk.records += records[: self.rng.randrange(len(records) + 1)]
            self.crash(node_id)
            return rd
        disk.records += records
        if crash_at == "after_persist":
            self.crash(node_id)
            return rd
        for m in rd.messages:
            self.check_message(m)
            if self.can_send(m.frm, m.to):
                self.inbox[m.to].append(m)
        if crash_at == "after_send":
            self.crash(node_id)
            return rd
        self.apply(node_id, rd)
        if crash_at == "after_apply":
            self.crash(node_id)
            return rd
        node.advance(rd)
        return rd

    def apply(self, node_id: str, rd: Ready) -> None:
        sm = self.sm[node_id]
        if rd.snapshot is not None:
            sm.clear()
            sm.update({t[0]: t[1:] for t in rd.snapshot.data or ()})
        for e in rd.committed:
            assert e.index == max(sm, default=0) + 1, f"applied {e.index} out of order"
            sm[e.index] = (e.term, e.kind.value, _plain(e.data))
            self.check_applied(node_id, e)

    def compact(self, node_id: str, index: int) -> Snapshot:
        sm = self.sm[node_id]
        data = tuple((i, *sm[i]) for i in sorted(sm) if i <= index)
        snap = self.node(node_id).compact(index, data)
        self.disks[node_id].snapshot = snap
        return snap

    # --- safety checks -------------------------------------------------------------------------

    def check_ready(self, node_id: str, rd: Ready) -> None:
        node = self.node(node_id)
        if rd.soft_state is not None and rd.soft_state.role == "leader":
            term = node.term
            key = (self.group_of[node_id], term)
            if self.leaders.setdefault(key, node_id) != node_id:
                raise SafetyViolation(f"two leaders in term {term}: {self.leaders[key]} and {node_id}")
            self.check_leader_completeness(node_id)

    def check_message(self, m: Message) -> None:
        granted = m.type is MsgType.VOTE_RESP and not m.reject
        if granted and self.grants.setdefault((m.frm, m.term), m.to) != m.to:
            raise SafetyViolation(f"{m.frm} voted twice in term {m.term}")

    def check_applied(self, node_id: str, e: Entry) -> None:
        seen = (e.term, e.kind.value, _plain(e.data))
        key = (self.group_of[node_id], e.index)
        if self.applied.setdefault(key, seen) != seen:
            raise SafetyViolation(f"{node_id} applied {seen} at {e.index}, another node {self.applied[key]}")

    def check_leader_completeness(self, node_id: str) -> None:
        log = self.node(node_id).raft.log
        for (group, index), (term, _, _) in self.applied.items():
            if group == self.group_of[node_id] and index > log.snapshot.index and log.term(index) != term:
                raise SafetyViolation(f"leader {node_id} lacks committed entry {index} (term {term})")

    def check_log_matching(self) -> None:
        logs = {n: self.node(n).raft.log for n in self.live()}
        ids = sorted(logs)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                if self.group_of[a] != self.group_of[b]:
                    continue
                _check_pair(a, logs[a], b, logs[b])


def _check_pair(a: str, la: Any, b: str, lb: Any) -> None:
    lo = max(la.snapshot.index, lb.snapshot.index) + 1
    hi = min(la.last_index(), lb.last_index())
    # Find the highest index where terms agree; everything from lo up to it must be identical.
    top = next((i for i in range(hi, lo - 1, -1) if la.term(i) == lb.term(i)), lo - 1)
    if top >= lo and la.slice(lo, top) != lb.slice(lo, top):
        raise SafetyViolation(f"logs of {a} and {b} agree at {top} but differ below it")


def _plain(data: Any) -> Any:
    return data if isinstance(data, (str, int, tuple, type(None))) else repr(data)
