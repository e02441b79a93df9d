"""A small harness for the cluster state machine: apply commands, check after each."""

from typing import Any

from trionode.core.cluster import ApplyResult, ClusterState, apply, check_invariants, command, to_snapshot

N = [f"{i:040x}" for i in range(1, 10)]  # node ids N[0]..N[8]
CLUSTER = "c" * 40
S1, S2, S3 = "a1" * 20, "b2" * 20, "e3" * 20
M1, M2 = "d" * 40, "f" * 40


def addr(node_id: str) -> dict[str, Any]:
    port = 7000 + N.index(node_id)
    return {"host": "127.0.0.1", "port": port, "bus_port": port + 10000}


def _comparable(state: ClusterState) -> dict[str, Any]:
    snap = to_snapshot(state)
    del snap["applied_index"], snap["rejections"]
    return snap


class Harness:
    def __init__(self) -> None:
        self.state = ClusterState()
        self.index = 0

    def raw(self, cmd: Any) -> ApplyResult:
        self.index += 1
        result = apply(self.state, self.index, cmd)
        assert self.state.applied_index == self.index
        assert check_invariants(self.state) == []
        return result

    def ok(self, op: str, **fields: Any) -> None:
        version = self.state.config_version
        result = self.raw(command(op, **fields))
        assert result == ApplyResult(True), result.reason
        assert self.state.config_version == version + 1

    def refused(self, op: str, code: str, **fields: Any) -> str:
        return self.refused_raw(command(op, **fields), code)

    def refused_raw(self, cmd: Any, code: str) -> str:
        """Apply ``cmd``, expect refusal with ``code``, and check that it changed nothing else."""
        before = _comparable(self.state)
        result = self.raw(cmd)
        assert not result.ok and result.reason.startswith(f"{code}: "), result.reason
        assert _comparable(self.state) == before
        last = self.state.rejections[-1]
        assert (last.index, last.reason) == (self.index, result.reason)
        return result.reason

    # Shortcuts for shard-changing ops: the epoch (and ISR version) are read from the state.
    def epoch(self, shard_id: str) -> int:
        return self.state.shards[shard_id].epoch

    def isr_version(self, shard_id: str) -> int:
        return self.state.shards[shard_id].isr_version

    def join(self, *node_ids: str) -> None:
        for node_id in node_ids:
            self.ok("node_join", node_id=node_id, **addr(node_id))

    def attach(self, shard_id: str, node_id: str, *, in_sync: bool = False) -> None:
        self.ok("replica_attach", shard_id=shard_id, epoch=self.epoch(shard_id), node_id=node_id)
        if in_sync:
            self.expand(shard_id, node_id)

    def expand(self, shard_id: str, node_id: str) -> None:
        self.ok("isr_expand", shard_id=shard_id, epoch=self.epoch(shard_id),
                isr_version=self.isr_version(shard_id), node_id=node_id)  # fmt: skip

    def shrink(self, shard_id: str, node_id: str) -> None:
        self.ok("isr_shrink", shard_id=shard_id, epoch=self.epoch(shard_id),
                isr_version=self.isr_version(shard_id), node_id=node_id)  # fmt: skip

    def failover(self, shard_id: str, node_id: str) -> None:
        self.ok("failover", shard_id=shard_id, epoch=self.epoch(shard_id), node_id=node_id)

    def migrate_start(self, migration_id: str, source: str, target: str, slots: list[list[int]]) -> None:
        self.ok("migration_start", migration_id=migration_id, source_shard_id=source, target_shard_id=target,
                source_epoch=self.epoch(source), target_epoch=self.epoch(target), slots=slots)  # fmt: skip


def bootstrapped() -> Harness:
    """N[0] bootstrapped; N[1]..N[7] joined; no shards."""
    h = Harness()
    h.ok("bootstrap", cluster_id=CLUSTER, node_id=N[0], **addr(N[0]))
    h.join(*N[1:8])
    return h


def two_shards() -> Harness:
    """S1: primary N0, replicas N2 (in sync) and N3 (not), slots 0-8191, epoch 1.
    S2: primary N1, replica N4 (in sync), slots 8192-16383, epoch 2. N5..N7 are free."""
    h = bootstrapped()
    h.ok("shard_create", shard_id=S1, epoch=1, primary_id=N[0])
    h.ok("shard_create", shard_id=S2, epoch=2, primary_id=N[1])
    h.ok("slots_assign", shard_id=S1, epoch=1, slots=[[0, 8191]])
    h.ok("slots_assign", shard_id=S2, epoch=2, slots=[[8192, 16383]])
    h.attach(S1, N[2], in_sync=True)
    h.attach(S1, N[3])
    h.attach(S2, N[4], in_sync=True)
    return h
