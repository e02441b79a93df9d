"""The faults a drill injects, one kind per drill.

A nemesis runs *cycles*: pick a target, inject the fault, hold it, heal it.
Hold times scale with ``node_timeout_ms`` so that each fault is long enough to
make the cluster act (suspect, fail over, shrink an ISR) and short enough for
several cycles per run. Every choice comes from the drill's seeded generator;
what the cluster does in between is not deterministic, so a seed names the
fault schedule, not the outcome.

Faults (the drill of the same name runs each):

* ``kill-primary`` / ``kill-leader`` / ``kill-random``: SIGKILL a shard
  primary / the Raft leader / any node; restart it after the hold.
* ``kill-minority``: SIGKILL two of the five nodes at once (sometimes both
  members of a shard), restart them after the hold.
* ``restart-all``: SIGKILL every node at once, then start them all again.
* ``pause-primary``: SIGSTOP a primary past its lease, then SIGCONT it; it
  wakes up believing it is still primary.
* ``partition-primary``: cut a primary off from every other node on the
  cluster bus (the fault proxy black-holes those links). Clients can still
  reach it; it must neither acknowledge nor serve stale reads.
* ``partition-random``: cut one or two random nodes off from the rest (the
  Raft leader, a primary, its replica, or any mix of them).
* ``torn-tail``: SIGKILL a node, append a torn record to the newest segment of
  one of its write-ahead logs (random bytes, a cut-short record, or a whole
  record with a bad checksum), restart it.
* ``replica-churn``: swap a shard's replica for the node that has no shard
  role, under load: the spare joins and catches up, then the old one leaves.

Every injection and heal is logged as an event (time, action, target) for the
run's ``nemesis.jsonl``.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cluster import ClusterError, LocalCluster, Node

Log = Callable[..., None]


class Nemesis:
    """Base: ``cycle`` injects and heals one fault; ``heal_all`` undoes anything left."""

    name = ""

    def __init__(self, cluster: LocalCluster, rng: random.Random, log: Log, node_timeout_ms: int) -> None:
        self.cluster = cluster
        self.rng = rng
        self.log = log
        self.node_timeout_s = node_timeout_ms / 1000
        self.faults = 0
        self.crashes: list[str] = []  # nodes that exited on their own: a finding, not a fault

    def hold_s(self) -> float:
        """Long enough for a failover (suspect + lease + hand-over), with some spread."""
        return self.node_timeout_s * self.rng.uniform(1.2, 2.5)

    def cycle(self) -> None:
        raise NotImplementedError

    def restart_crashed(self) -> None:
        """Note every node that exited although the drill did not kill it, and start it again."""
        for node in self.cluster.nodes:
            if node.crashed:
                assert node.proc is not None
                self.crashes.append(f"{node.name} exited with {node.proc.returncode}; see {node.log_path}")
                self.log("crash", node, returncode=node.proc.returncode)
                node.start()
                self.log("start", node)

    def heal_all(self) -> None:
        """Resume paused nodes, restart dead ones, heal every cut."""
        self.restart_crashed()
        self.cluster.proxy.heal()
        for node in self.cluster.nodes:
            if node.paused:
                node.resume()
                self.log("resume", node)
            if not node.alive:
                node.start()
                self.log("start", node)
        for node in self.cluster.nodes:
            node.wait_ready()

    def _pick(self, nodes: list[Node]) -> Node:
        if not nodes:
            raise ClusterError(f"{self.name}: no target (the cluster reports none): {self.cluster.status()}")
        return self.rng.choice(sorted(nodes, key=lambda n: n.name))

    def _kill_and_restart(self, nodes: list[Node], hold_s: float, while_down: Callable[[], None] | None = None) -> None:
        """SIGKILL ``nodes`` together (one fault), run ``while_down``, wait ``hold_s``, restart them."""
        for node in nodes:
            node.kill9()
            self.log("kill", node)
        self.faults += 1
        if while_down is not None:
            while_down()
        time.sleep(hold_s)
        for node in nodes:
            node.start()
            self.log("start", node)
        for node in nodes:
            node.wait_ready()


    def _partition(self, minority: list[Node]) -> None:
        """Cut ``minority`` off from every other node on the bus (one fault), hold, heal."""
        rest = [n.node_id for n in self.cluster.nodes if n not in minority]
        for node in minority:
            self.cluster.proxy.isolate(node.node_id, rest)
        self.faults += 1
        self.log("partition", None, minority=[n.name for n in minority])
        time.sleep(self.hold_s())
        self.cluster.proxy.heal()
        self.log("heal", None)


class KillPrimary(Nemesis):
    name = "kill-primary"

    def cycle(self) -> None:
        self._kill_and_restart([self._pick(self.cluster.primaries())], self.hold_s())


class KillLeader(Nemesis):
    name = "kill-leader"

    def cycle(self) -> None:
        leader = self.cluster.leader()
        self._kill_and_restart([self._pick([leader] if leader else [])], self.hold_s())


class KillRandom(Nemesis):
    name = "kill-random"

    def cycle(self) -> None:
        self._kill_and_restart([self._pick(self.cluster.nodes)], self.hold_s())


class RestartAll(Nemesis):
    name = "restart-all"

    def cycle(self) -> None:
        self._kill_and_restart(list(self.cluster.nodes), self.rng.uniform(0.2, 1.5))


class PausePrimary(Nemesis):
    name = "pause-primary"

    def cycle(self) -> None:
        node = self._pick(self.cluster.primaries())
        node.pause()
        self.faults += 1
        self.log("pause", node)
        time.sleep(self.hold_s())
        node.resume()
        self.log("resume", node)


class PartitionPrimary(Nemesis):
    name = "partition-primary"

    def cycle(self) -> None:
        self._partition([self._pick(self.cluster.primaries())])


class KillMinority(Nemesis):
    """``kill -9`` two of the five nodes at once: sometimes a shard's primary and its replica."""

    name = "kill-minority"

    def cycle(self) -> None:
        self._kill_and_restart(self.rng.sample(sorted(self.cluster.nodes, key=lambda n: n.name), 2), self.hold_s())


class PartitionRandom(Nemesis):
    """Split the cluster bus into a minority (one or two nodes) and a majority, then heal."""

    name = "partition-random"

    def cycle(self) -> None:
        nodes = sorted(self.cluster.nodes, key=lambda n: n.name)
        self._partition(self.rng.sample(nodes, self.rng.randint(1, 2)))


class TornTail(Nemesis):
    name = "torn-tail"

    def cycle(self) -> None:
        node = self._pick(self.cluster.nodes)

        def tear() -> None:
            file, size = append_garbage(node.data_dir, self.rng)
            self.log("torn-tail", node, file=file, bytes=size)

        self._kill_and_restart([node], self.rng.uniform(0.2, 1.0), tear)


def torn_record(rng: random.Random) -> bytes:
    """What a write cut short by a crash leaves at a WAL's end, in one of three shapes.

    Records are ``u32 length | u64 checksum | payload`` (little-endian): random bytes
    (a length no record has), a header whose payload was cut short, or a whole record
    whose checksum does not match (its sectors reached the disk out of order).
    """
    shape = rng.randrange(3)
    if shape == 0:
        return rng.randbytes(rng.randint(1, 512))
    length = rng.randint(1, 256)
    header = struct.pack("<IQ", length, rng.getrandbits(64))
    payload = rng.randbytes(length if shape == 2 else rng.randrange(length))
    return header + payload


def append_garbage(data_dir: Path, rng: random.Random) -> tuple[str, int]:
    """Append a torn record (:func:`torn_record`) to the newest segment of one of the node's WALs."""
    newest: dict[tuple[Path, str], Path] = {}
    for path in sorted(data_dir.rglob("*.wal")):
        prefix = path.name.rsplit("-", 1)[0]
        newest[(path.parent, prefix)] = path  # names sort by first seq, so the last one wins
    if not newest:
        raise ClusterError(f"no WAL segment under {data_dir}")
    target = newest[rng.choice(sorted(newest))]
    garbage = torn_record(rng)
    with open(target, "ab") as fh:
        fh.write(garbage)
    return str(target.relative_to(data_dir)), len(garbage)


class ReplicaChurn(Nemesis):
    """Swap a shard's replica for the spare node, under load.

    Done the safe way round: the spare first joins as an extra replica
    (``CLUSTER REPLICATE``) and must enter the ISR; only then is the old replica
    detached (``CLUSTER DETACH``) and becomes the spare. A one-step ``CLUSTER
    REPLACE`` of the shard's only in-sync replica is refused by design (S8).
    """

    name = "replica-churn"
    catch_up_timeout_s = 60.0

    def cycle(self) -> None:
        shards = self.cluster.shards()
        in_shard = {n for s in shards for n in [s.get("primary_id"), *s.get("replica_ids", [])]}
        spare = self._pick([n for n in self.cluster.nodes if n.node_id not in in_shard])
        shard = self.rng.choice(sorted((s for s in shards if s.get("replica_ids")), key=lambda s: s["id"]))
        old = self.cluster.by_id(self.rng.choice(sorted(shard["replica_ids"])))
        spare.call("CLUSTER", "REPLICATE", shard["primary_id"], timeout_s=30)
        self.faults += 1
        self.log("replicate", spare, shard=shard["id"][:12])
        self._wait_in_sync(spare, shard["id"])
        self.log("in-sync", spare)
        spare.call("CLUSTER", "DETACH", old.node_id, timeout_s=30)
        self.log("detach", old)

    def _wait_in_sync(self, node: Node, shard_id: str) -> None:
        deadline = time.monotonic() + self.catch_up_timeout_s
        while node.node_id not in self._isr(shard_id):
            if time.monotonic() > deadline:
                raise ClusterError(f"{node.name} did not enter the in-sync set of shard {shard_id}")
            time.sleep(0.2)

    def _isr(self, shard_id: str) -> list[str]:
        for shard in self.cluster.shards():
            if shard["id"] == shard_id:
                return list(shard.get("isr_ids", []))
        return []


NEMESES: dict[str, type[Nemesis]] = {
    cls.name: cls
    for cls in (KillPrimary, KillLeader, KillRandom, KillMinority, RestartAll, PausePrimary, PartitionPrimary,
                PartitionRandom, TornTail, ReplicaChurn)
}


def event(action: str, node: Node | None, t: float, **detail: Any) -> dict[str, Any]:
    return {"time": t, "action": action, "node": node.name if node else "*", **detail}
