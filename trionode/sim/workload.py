"""Client proposals: cluster commands built from the leader's applied state.

Theory of operation. A client reads the leader's applied cluster state and
proposes one command that would make sense against it: bootstrap, node_join,
shard_create, slots_assign, replica_attach, isr_expand/shrink, failover,
replica_detach, migration_start/commit/abort. The state it reads may already
be stale (entries in flight), and with ``stale_probability`` the command names
an epoch one below the current one on purpose; the apply function must turn
such entries into recorded no-ops, and the checker verifies that every node
agrees on the outcome and that one (shard, epoch) never names two primaries.

Ids are 40-hex-digit strings made from small counters, so a run's commands
depend only on the seed.
"""

import random
from collections.abc import Callable
from typing import Any

from trionode import limits

DATA_NODES_MAX = 12  # distinct data-node ids the workload joins
SLOTS_PER_ASSIGN_MAX = 2048
CLUSTER_ID = "c" * 40
Command = dict[str, Any]


def data_node_id(i: int) -> str:
    return f"{0xD0000 + i:040x}"


class Workload:
    def __init__(self, rng: random.Random, stale_probability: float = 0.15) -> None:
        self._rng = rng
        self._stale_probability = stale_probability
        self._ids = 0  # counter for shard and migration ids

    def _new_id(self, kind: int) -> str:
        self._ids += 1
        return f"{kind:04x}{self._ids:036x}"

    def _epoch(self, epoch: int) -> int:
        stale = self._rng.random() < self._stale_probability
        return max(epoch - 1, 0) if stale else epoch

    def next_command(self, state: Any) -> Command | None:
        """One command against ``state``; None when nothing applies."""
        if not state.bootstrapped:
            return self._address("bootstrap", 0, cluster_id=CLUSTER_ID)
        makers = self._makers(state)
        return self._rng.choice(makers)(state) if makers else None

    def _makers(self, state: Any) -> list[Callable[[Any], Command | None]]:
        makers: list[Callable[[Any], Command | None]] = []
        free = [n for n in sorted(state.nodes) if state.nodes[n].role == "none"]
        if len(state.nodes) < DATA_NODES_MAX:
            makers.append(self._join)
        if free:
            makers += [self._shard_create, self._replica_attach]
        if state.shards:
            makers += [self._slots_assign, self._isr_change, self._failover, self._detach]
        if len(state.shards) >= 2:
            makers.append(self._migration_start)
        if state.migrations:
            makers.append(self._migration_end)
        return makers

    def _address(self, op: str, i: int, **extra: Any) -> Command:
        return {"op": op, **extra, "node_id": data_node_id(i), "host": f"10.0.0.{i + 1}", "port": 7000 + i,
                "bus_port": 17000 + i}  # fmt: skip

    def _join(self, state: Any) -> Command | None:
        joined = sum(1 for i in range(DATA_NODES_MAX) if data_node_id(i) in state.nodes)
        return self._address("node_join", joined) if joined < DATA_NODES_MAX else None

    def _pick_shard(self, state: Any) -> Any:
        return state.shards[self._rng.choice(sorted(state.shards))]

    def _free_node(self, state: Any) -> str:
        return self._rng.choice([n for n in sorted(state.nodes) if state.nodes[n].role == "none"])

    def _shard_create(self, state: Any) -> Command:
        epoch = self._epoch(state.epoch_max + 1)
        return {"op": "shard_create", "shard_id": self._new_id(0x5A), "epoch": epoch,
                "primary_id": self._free_node(state)}  # fmt: skip

    def _replica_attach(self, state: Any) -> Command | None:
        if not state.shards:
            return None
        shard = self._pick_shard(state)
        return {"op": "replica_attach", "shard_id": shard.id, "epoch": self._epoch(shard.epoch),
                "node_id": self._free_node(state)}  # fmt: skip

    def _slots_assign(self, state: Any) -> Command | None:
        start = self._rng.randrange(limits.slots_count)
        if state.slot_owners[start] is not None:
            return None
        end = start
        end_max = min(limits.slots_count, start + self._rng.randint(1, SLOTS_PER_ASSIGN_MAX)) - 1
        while end < end_max and state.slot_owners[end + 1] is None:
            end += 1
        shard = self._pick_shard(state)
        return {"op": "slots_assign", "shard_id": shard.id, "epoch": self._epoch(shard.epoch),
                "slots": [[start, end]]}  # fmt: skip

    def _isr_change(self, state: Any) -> Command | None:
        shard = self._pick_shard(state)
        if not shard.replica_ids:
            return None
        node = self._rng.choice(shard.replica_ids)
        op = "isr_shrink" if node in shard.isr_ids else "isr_expand"
        return {"op": op, "shard_id": shard.id, "epoch": self._epoch(shard.epoch),
                "isr_version": shard.isr_version, "node_id": node}  # fmt: skip

    def _failover(self, state: Any) -> Command | None:
        shard = self._pick_shard(state)
        candidates = [n for n in shard.replica_ids if n in shard.isr_ids] or list(shard.replica_ids)
        if not candidates:
            return None
        return {"op": "failover", "shard_id": shard.id, "epoch": self._epoch(shard.epoch),
                "node_id": self._rng.choice(candidates)}  # fmt: skip

    def _detach(self, state: Any) -> Command | None:
        shard = self._pick_shard(state)
        if not shard.replica_ids:
            return None
        return {"op": "replica_detach", "shard_id": shard.id, "epoch": self._epoch(shard.epoch),
                "node_id": self._rng.choice(shard.replica_ids)}  # fmt: skip

    def _migration_start(self, state: Any) -> Command | None:
        source, target = (state.shards[s] for s in self._rng.sample(sorted(state.shards), 2))
        if not source.slots:
            return None
        start, end = self._rng.choice(source.slots)
        end = min(end, start + self._rng.randint(0, 64))
        return {"op": "migration_start", "migration_id": self._new_id(0x3B), "source_shard_id": source.id,
                "target_shard_id": target.id, "source_epoch": self._epoch(source.epoch),
                "target_epoch": target.epoch, "slots": [[start, end]]}  # fmt: skip

    def _migration_end(self, state: Any) -> Command | None:
        migration = state.migrations[self._rng.choice(sorted(state.migrations))]
        if self._rng.random() < 0.25:
            return {"op": "migration_abort", "migration_id": migration.id}
        source, target = state.shards.get(migration.source_shard_id), state.shards.get(migration.target_shard_id)
        if source is None or target is None:
            return None
        return {"op": "migration_commit", "migration_id": migration.id, "source_epoch": self._epoch(source.epoch),
                "target_epoch": target.epoch}  # fmt: skip
