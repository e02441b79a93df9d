"""A node's export jobs: started by MIGRATESLOTS, cancelled, orphans ended, finished ones logged.

Theory of operation. The shell keeps one :class:`MigrationController` per
node and feeds it what every job needs (the applied configuration, ticks,
the keyspace's slot counts after a cleanup chunk); inputs for one job
(copy progress, stream offsets, acknowledgements) go to ``job(id)``
directly. All of them return :mod:`.export` actions for the shell to carry
out in order.

Besides routing, it holds three rules:

- ``CLUSTER MIGRATESLOTS`` is validated all or nothing (:mod:`.commands`),
  and the number of jobs in flight is bounded by the configuration's
  ``migrations_max``;
- **orphans**: a running migration from this node's shard that no job here
  drives (this node restarted, or was just promoted, or gave up on a start
  that applied later) would otherwise block its slots for ever. The primary
  of the source shard proposes its abort, again every ``propose_retry_ms``
  until the configuration shows it gone. Aborting is always safe: the source
  keeps its slots and data. Until then the orphan's slots are held
  (:class:`PauseWrites`, then :class:`ResumeWrites`): the job that drove it
  may have proposed ``migration_commit``, which may apply before the abort,
  and this node's configuration may not show it yet; a write accepted here
  meanwhile would be lost with the slots (found by the two-shard simulation,
  seed 28: a source primary restarted during the commit took writes on slots
  the target already served);
- finished jobs move to a bounded log (``migration_log_jobs_max``) that
  ``CLUSTER GETSLOTMIGRATIONS`` lists after the active ones, newest first. As
  in Valkey the log is not persisted.
"""

from collections import deque
from collections.abc import Callable, Iterator, Sequence

from trionode import limits
from trionode.core import errors
from trionode.core.cluster.commands import command
from trionode.core.cluster.state import ClusterState, SlotRange, migrations_max, slots_of
from trionode.core.errors import CommandError
from trionode.core.migration.commands import JobRow, parse_migrateslots
from trionode.core.migration.export import (
    CLEANING,
    FINISHED,
    Action,
    ExportBounds,
    ExportJob,
    PauseWrites,
    ProposeAbort,
    ResumeWrites,
)
from trionode.core.migration.staging import CountInSlot


def export_row(job: ExportJob) -> JobRow:
    p = job.progress
    return JobRow(
        name=job.migration_id, operation="EXPORT", slots=job.slots, source_node=job.source_node_id,
        target_node=job.target_node_id, create_ms=job.created_ms, last_update_ms=p.last_update_ms,
        last_ack_ms=p.last_ack_ms, state=job.state, message=job.message, keys_copied=p.keys_copied,
        bytes_copied=p.bytes_copied, lag=p.lag, write_pause_ms=p.write_pause_ms,
    )  # fmt: skip


class MigrationController:
    def __init__(self, node_id: str, *, min_insync_replicas: int = 1, bounds: ExportBounds | None = None,
                 log_jobs_max: int = limits.migration_log_jobs_max) -> None:  # fmt: skip
        self.node_id = node_id
        self.min_insync_replicas = min_insync_replicas
        self.bounds = bounds or ExportBounds()
        self.jobs: dict[str, ExportJob] = {}  # Invariant: none finished; len <= migrations_max.
        self.log: deque[ExportJob] = deque(maxlen=log_jobs_max)  # finished, oldest first
        self._orphans: dict[str, int] = {}  # migration id -> when its abort was last proposed
        self._held_orphans: dict[str, tuple[SlotRange, ...]] = {}  # Invariant: the orphans whose writes wait
        self._state: ClusterState | None = None

    def job(self, migration_id: str) -> ExportJob | None:
        return self.jobs.get(migration_id)

    def from_target(self, migration_id: str, peer_id: str) -> ExportJob | None:
        """The job a target's answer (ready, ack) is for; None unless ``peer_id`` is that job's target."""
        job = self.jobs.get(migration_id)
        return job if job is not None and job.target_node_id == peer_id else None

    def exporting(self) -> set[int]:
        return set().union(*(slots_of(job.slots) for job in self.jobs.values()))

    def migrate(self, argv: Sequence[bytes], state: ClusterState, ids: Iterator[str], now_ms: int) -> list[Action]:
        """CLUSTER MIGRATESLOTS: validate every group, then start one job per group (raises CommandError)."""
        requests = parse_migrateslots(argv, state, self.node_id, self.exporting())
        if len(self.jobs) + len(requests) > migrations_max:
            raise CommandError(errors.MIGRATE_TOO_MANY)
        source = state.shards[state.nodes[self.node_id].shard_id or ""]
        actions: list[Action] = []
        for request in requests:
            job = ExportJob(next(ids), request.slots, source.id, request.target_shard_id, self.node_id,
                            request.target_node_id, source.epoch, state.shards[request.target_shard_id].epoch,
                            now_ms, self.min_insync_replicas, self.bounds)  # fmt: skip
            assert job.migration_id not in self.jobs
            self.jobs[job.migration_id] = job
            actions += job.start()
        return actions

    def cancel_all(self, now_ms: int) -> list[Action]:
        """CLUSTER CANCELSLOTMIGRATIONS (raises CommandError when nothing is in flight)."""
        if not self.jobs:
            raise CommandError(errors.MIGRATE_NONE_ONGOING)
        return self._collect(lambda job: job.cancel(now_ms))

    def on_config(self, state: ClusterState, now_ms: int) -> list[Action]:
        self._state = state
        return [*self._collect(lambda job: job.on_config(state, now_ms)), *self._orphan_aborts(state, now_ms)]

    def tick(self, now_ms: int) -> list[Action]:
        orphans = self._orphan_aborts(self._state, now_ms) if self._state is not None else []
        return [*self._collect(lambda job: job.tick(now_ms)), *orphans]

    def on_cleaned(self, count_in_slot: CountInSlot, now_ms: int) -> None:
        """A cleanup chunk ran: jobs whose moved slots are empty here are done."""
        for job in self.jobs.values():
            if job.state == CLEANING and not any(count_in_slot(slot) for slot in job.slot_set):
                job.on_cleaned(now_ms)
        self._retire()

    def rows(self) -> list[JobRow]:
        """GETSLOTMIGRATIONS' jobs: active ones, then the log, newest first."""
        newest_first = sorted(self.jobs.values(), key=lambda job: job.created_ms, reverse=True)
        return [export_row(job) for job in (*newest_first, *reversed(self.log))]

    def _collect(self, step: Callable[[ExportJob], list[Action]]) -> list[Action]:
        actions = [action for job in list(self.jobs.values()) for action in step(job)]
        self._retire()
        return actions

    def _retire(self) -> None:
        for migration_id in [mid for mid, job in self.jobs.items() if job.state in FINISHED]:
            self.log.append(self.jobs.pop(migration_id))

    def _orphan_aborts(self, state: ClusterState, now_ms: int) -> list[Action]:
        me = state.nodes.get(self.node_id)
        mine = me.shard_id if me is not None and me.role == "primary" else None
        orphans = {m.id: m.slots for m in state.migrations.values()
                   if m.source_shard_id == mine and m.id not in self.jobs}  # fmt: skip
        self._orphans = {mid: self._orphans.get(mid, now_ms - self.bounds.propose_retry_ms) for mid in orphans}
        due = sorted(mid for mid, last in self._orphans.items() if now_ms - last >= self.bounds.propose_retry_ms)
        for mid in due:
            self._orphans[mid] = now_ms
        actions: list[Action] = [ResumeWrites(mid, slots) for mid, slots in self._held_orphans.items()
                                 if mid not in orphans]  # fmt: skip
        actions += [PauseWrites(mid, slots) for mid, slots in orphans.items() if mid not in self._held_orphans]
        self._held_orphans = orphans
        return [*actions, *(ProposeAbort(command("migration_abort", migration_id=mid)) for mid in due)]
