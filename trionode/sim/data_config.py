"""The simulated shard's configuration: the real cluster state machine, committed late.

Theory of operation
-------------------
The data plane's one shard lives in a private :class:`ClusterState`, built and
changed only by :func:`trionode.core.cluster.apply`, the function every node
applies committed Raft entries with. So the ISR rules under test are the real
ones: ``isr_shrink`` / ``isr_expand`` are compare-and-sets on ``isr_version``,
and a stale or duplicate command is refused, not applied.

ISR commands are **not** replicated through the simulated Raft nodes of the
control-plane half: :meth:`ShardConfig.propose` stands for "propose to the
leader", and the command commits after a random delay (or never: lost with a
leader; or twice: a retried proposal that had committed after all). Commits
happen in (due time, proposal order) order. What the data plane must survive
is exactly what Raft would hand it: late, lost and repeated entries, applied
in one order by everyone.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from trionode.core.cluster import ApplyResult, ClusterState, Shard, apply, command

SHARD_ID = "d5" * 20


@dataclass(frozen=True, slots=True)
class CommitFaults:
    delay_ms_max: int = 200
    loss_probability: float = 0.02
    duplicate_probability: float = 0.03


class ShardConfig:
    """One shard, its primary and replicas, every replica in the ISR at the start."""

    def __init__(self, rng: random.Random, primary_id: str, replica_ids: tuple[str, ...],
                 faults: CommitFaults | None = None) -> None:  # fmt: skip
        self._rng = rng
        self.faults = faults or CommitFaults()
        self.state = ClusterState()
        self.index = 0
        self._in_flight: list[tuple[int, int, dict[str, Any]]] = []  # (due ms, proposal number, command)
        self._proposals = 0
        boot = command("bootstrap", cluster_id="c" * 40, node_id=primary_id, host="h", port=7000, bus_port=17000)
        self._commit_now(boot)
        for i, node in enumerate(replica_ids):
            self.add_node(node, i)
        self._create(SHARD_ID, 1, primary_id, replica_ids)

    def add_node(self, node_id: str, i: int) -> None:
        self._commit_now(command("node_join", node_id=node_id, host="h", port=7001 + i, bus_port=17001 + i))

    def add_shard(self, shard_id: str, node_ids: tuple[str, ...], epoch: int) -> None:
        """Another shard: ``node_ids[0]`` its primary, the next two its replicas, the rest spares."""
        for i, node in enumerate(node_ids):
            self.add_node(node, len(self.state.nodes) + i)
        self._create(shard_id, epoch, node_ids[0], node_ids[1:3])

    def _create(self, shard_id: str, epoch: int, primary_id: str, replica_ids: tuple[str, ...]) -> None:
        self._commit_now(command("shard_create", shard_id=shard_id, epoch=epoch, primary_id=primary_id))
        for node in replica_ids:
            self._commit_now(command("replica_attach", shard_id=shard_id, epoch=epoch, node_id=node))
        for node in replica_ids:
            v = self.shard_of(shard_id).isr_version
            self._commit_now(command("isr_expand", shard_id=shard_id, epoch=epoch, isr_version=v, node_id=node))
        assert set(self.shard_of(shard_id).isr_ids) == {primary_id, *replica_ids}

    @property
    def shard(self) -> Shard:
        return self.state.shards[SHARD_ID]

    def shard_of(self, shard_id: str) -> Shard:
        return self.state.shards[shard_id]

    def config_args(self) -> dict[str, Any]:
        """The keyword arguments of ``PrimaryTracker.set_config`` for the applied configuration."""
        s = self.shard
        return {"epoch": s.epoch, "primary_id": s.primary_id, "replica_ids": s.replica_ids,
                "isr_ids": s.isr_ids, "isr_version": s.isr_version}  # fmt: skip

    def _commit_now(self, cmd: dict[str, Any]) -> ApplyResult:
        self.index += 1
        result = apply(self.state, self.index, cmd)
        assert result.ok, (cmd, result)
        return result

    def propose(self, cmd: dict[str, Any], now_ms: int) -> None:
        if self._rng.random() < self.faults.loss_probability:
            return
        copies = 2 if self._rng.random() < self.faults.duplicate_probability else 1
        for _ in range(copies):
            self._proposals += 1
            due_ms = now_ms + self._rng.randint(0, self.faults.delay_ms_max)
            self._in_flight.append((due_ms, self._proposals, dict(cmd)))
        self._in_flight.sort(key=lambda item: item[:2])

    def commit_due_each(self, now_ms: int) -> Iterator[tuple[dict[str, Any], ApplyResult, Shard, Shard]]:
        """Like :meth:`commit_due`, one command at a time: (command, result, its shard before, after).

        A command that names no shard (a migration's) comes with the first shard.
        """
        due = [item for item in self._in_flight if item[0] <= now_ms]
        self._in_flight = self._in_flight[len(due) :]
        for _, _, cmd in due:
            shard_id = cmd.get("shard_id", SHARD_ID)
            before = self.shard_of(shard_id)
            self.index += 1
            result = apply(self.state, self.index, cmd)
            yield cmd, result, before, self.shard_of(shard_id)

    def commit_due(self, now_ms: int) -> list[tuple[dict[str, Any], ApplyResult]]:
        """Apply every command due by ``now_ms``, in order; each with its result."""
        due = [item for item in self._in_flight if item[0] <= now_ms]
        self._in_flight = self._in_flight[len(due) :]
        out = []
        for _, _, cmd in due:
            self.index += 1
            out.append((cmd, apply(self.state, self.index, cmd)))
        return out
