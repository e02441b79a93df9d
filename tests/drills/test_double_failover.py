"""The double-failover nemesis kills a primary only once its shard has an in-sync replica again."""

import random

import pytest

from scripts.drills.nemesis import DoubleFailover

pytestmark = pytest.mark.timeout(30)


class _Node:
    def __init__(self, node_id: str, cluster: "_Cluster") -> None:
        self.node_id, self.cluster = node_id, cluster

    def kill9(self) -> None:
        self.cluster.killed.append((self.node_id, list(self.cluster.shard["isr_ids"])))
        if self.node_id == self.cluster.shard["primary_id"]:  # the leader promotes the in-sync replica
            self.cluster.shard = {**self.cluster.shard, "primary_id": "r1", "isr_ids": ["r1"]}

    def start(self) -> None:
        pass

    def wait_ready(self) -> None:
        pass


class _Cluster:
    """One shard whose replica is back in the ISR only at the third look (as after a restart)."""

    def __init__(self) -> None:
        self.shard = {"id": "s", "primary_id": "p", "replica_ids": ["r1", "r2"], "isr_ids": ["p"], "slots": []}
        self.looks = 0
        self.killed: list[tuple[str, list[str]]] = []

    def shards(self) -> list[dict]:
        self.looks += 1
        if self.looks == 3:
            self.shard = {**self.shard, "isr_ids": ["p", "r1"]}
        return [self.shard]

    def by_id(self, node_id: str) -> _Node:
        return _Node(node_id, self)


def test_the_first_kill_waits_for_an_in_sync_replica() -> None:
    # Drill double-failover, seed 3, 120 s: the primary was killed 3 s after the last cycle restarted both
    # replicas, with an ISR of itself alone; the shard stayed down (by design) and the drill failed.
    cluster = _Cluster()
    nemesis = DoubleFailover(cluster, random.Random(1), lambda *a, **k: None, node_timeout_ms=10)
    nemesis.cycle()
    assert cluster.killed[0] == ("p", ["p", "r1"])
    assert [node for node, _ in cluster.killed] == ["p", "r1"]
