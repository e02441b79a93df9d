"""A small world for migration drivers: the cluster state machine plus a controller on the source primary."""

from collections.abc import Iterator
from typing import Any

from trionode.core.cluster import ClusterState, copy_state
from trionode.core.migration.controller import MigrationController
from trionode.core.migration.export import ExportBounds, ExportJob, ProposeAbort, ProposeCommit, ProposeStart

from ..cluster.helpers import S1, S2, Harness, N, two_shards

_TWO_SHARDS = two_shards()

T0 = 1_700_000_000_000
BOUNDS = ExportBounds(
    pause_ms_max=500, copy_keys_max=10, copy_lag_records_max=4, pause_lag_records_max=2, lag_records_max=50,
    ack_timeout_ms=3_000, propose_retry_ms=1_000, start_timeout_ms=5_000,
)  # fmt: skip


def job_ids() -> Iterator[str]:
    return iter(f"{i:040x}" for i in range(0xA000, 0xA100))


def migrate_argv(*groups: tuple[list[tuple[int, int]], str]) -> list[bytes]:
    argv = [b"CLUSTER", b"MIGRATESLOTS"]
    for ranges, node in groups:
        argv.append(b"SLOTSRANGE")
        argv += [str(x).encode() for pair in ranges for x in pair]
        argv += [b"NODE", node.encode()]
    return argv


class World:
    """S1 (primary N0) exports to S2 (primary N1); proposals apply when the test says so."""

    def __init__(self, slots: tuple[tuple[int, int], ...] = ((0, 2),)) -> None:
        self.h = Harness()
        self.h.state, self.h.index = copy_state(_TWO_SHARDS.state), _TWO_SHARDS.index  # (built once: it is slow)
        self.now = T0
        self.controller = MigrationController(N[0], bounds=BOUNDS)
        self.proposed: list[dict[str, Any]] = []
        self.paused = False
        self.log: list[Any] = []
        actions = self.controller.migrate(migrate_argv((list(slots), N[1])), self.h.state, job_ids(), self.now)
        self.job: ExportJob = next(iter(self.controller.jobs.values()))
        self.take(actions)

    @property
    def state(self) -> ClusterState:
        return self.h.state

    def take(self, actions: list[Any]) -> list[Any]:
        for action in actions:
            self.log.append(action)
            if isinstance(action, (ProposeStart, ProposeCommit, ProposeAbort)):
                self.proposed.append(action.command)
            name = type(action).__name__
            if name == "PauseWrites":
                assert not self.paused
                self.paused = True
            if name == "ResumeWrites":
                assert self.paused
                self.paused = False
        return actions

    def commit_next(self) -> bool:
        """Apply the oldest pending proposal, then feed the configuration to the controller."""
        ok = self.h.raw(self.proposed.pop(0)).ok  # checks the invariants too
        self.take(self.controller.on_config(self.state, self.now))
        return ok

    def entry(self, op: str, **fields: Any) -> None:
        """Some other entry commits (a failover, an ISR change), and the controller sees it."""
        self.h.ok(op, **fields)
        self.take(self.controller.on_config(self.state, self.now))

    def tick(self, ms: int) -> list[Any]:
        self.now += ms
        return self.take(self.controller.tick(self.now))

    def last(self) -> Any:
        return self.log[-1]


__all__ = ["BOUNDS", "S1", "S2", "T0", "N", "World", "job_ids", "migrate_argv"]
