"""Shared fixtures: node ids, and a shard configuration driven through the real apply function."""

from typing import Any

from trionode.core.cluster import ApplyResult, ClusterState, apply, command
from trionode.core.cluster.state import Shard

P, R1, R2, R3 = (f"{i:040x}" for i in range(1, 5))
SHARD = "a1" * 20


class Config:
    """The Raft side: one shard with a primary and replicas; commands apply like committed entries."""

    def __init__(self, primary: str = P, replicas: tuple[str, ...] = (R1, R2), isr: tuple[str, ...] = (R1, R2)):
        self.state = ClusterState()
        self.index = 0
        self.commit(command("bootstrap", cluster_id="c" * 40, node_id=primary, host="h", port=7000, bus_port=17000))
        for i, node in enumerate(replicas):
            self.commit(command("node_join", node_id=node, host="h", port=7001 + i, bus_port=17001 + i))
        self.commit(command("shard_create", shard_id=SHARD, epoch=1, primary_id=primary))
        for node in replicas:
            self.commit(command("replica_attach", shard_id=SHARD, epoch=1, node_id=node))
        for node in isr:
            self.commit(command("isr_expand", shard_id=SHARD, epoch=1, isr_version=self.shard.isr_version,
                                node_id=node))  # fmt: skip

    @property
    def shard(self) -> Shard:
        return self.state.shards[SHARD]

    def commit(self, cmd: dict[str, Any]) -> ApplyResult:
        self.index += 1
        return apply(self.state, self.index, cmd)

    def config_args(self) -> dict[str, Any]:
        s = self.shard
        return {"epoch": s.epoch, "primary_id": s.primary_id, "replica_ids": s.replica_ids, "isr_ids": s.isr_ids,
                "isr_version": s.isr_version}  # fmt: skip
