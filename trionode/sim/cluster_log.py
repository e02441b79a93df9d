"""The simulated control plane's committed configuration, for any number of shards.

Theory of operation. One :class:`ClusterState` changed only by the real
``apply``; a proposal commits after a random delay, or never (lost with a
leader), or twice (a retry of a proposal that had committed after all), in
(due time, proposal order) order: what Raft would hand the nodes. Every
committed state is kept, so a node can learn the configuration up to any
index, at its own pace (data_config.py does the same for one shard).
"""

import random
from collections.abc import Iterator
from typing import Any

from trionode.core.cluster import ApplyResult, ClusterState, apply, copy_state
from trionode.sim.data_config import CommitFaults


class ConfigLog:
    """The committed configuration: proposals commit late, perhaps never, perhaps twice."""

    def __init__(self, rng: random.Random, faults: CommitFaults) -> None:
        self.rng, self.faults = rng, faults
        self.state = ClusterState()
        self.states: list[ClusterState] = []  # the state after each index, from 1
        self._in_flight: list[tuple[int, int, dict[str, Any]]] = []
        self._proposals = 0

    @property
    def index(self) -> int:
        return len(self.states)

    def commit_now(self, cmd: dict[str, Any]) -> ApplyResult:
        result = apply(self.state, self.index + 1, cmd)
        self.states.append(copy_state(self.state))
        assert result.ok, (cmd, result)
        return result

    def propose(self, cmd: dict[str, Any], now_ms: int) -> None:
        if self.rng.random() < self.faults.loss_probability:
            return
        for _ in range(2 if self.rng.random() < self.faults.duplicate_probability else 1):
            self._proposals += 1
            self._in_flight.append((now_ms + self.rng.randint(0, self.faults.delay_ms_max), self._proposals, cmd))
        self._in_flight.sort(key=lambda item: item[:2])

    def commit_due(self, now_ms: int) -> Iterator[tuple[dict[str, Any], ApplyResult, list[str | None]]]:
        while self._in_flight and self._in_flight[0][0] <= now_ms:
            _, _, cmd = self._in_flight.pop(0)
            before = list(self.state.slot_owners)
            result = apply(self.state, self.index + 1, dict(cmd))
            self.states.append(copy_state(self.state))
            yield cmd, result, before
