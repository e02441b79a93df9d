"""An export job under random schedules: proposals lost or reordered, failovers, ISR changes, timeouts.

Safety, checked at the moment each entry applies (before the job hears of it):

- the commit applies only while the source holds writes to the slots and the
  target has acknowledged every record streamed (nothing written on the source
  can be lost by the handover, Redis PR #15629, Valkey #2723);
- a commit never applies after either shard failed over since the start (seed 001);
- every configuration keeps the invariants (S3).

Liveness: once the schedule stops, the shell answers what it owes, and time
passes, the job finishes, no write is left held and no migration is left in
flight (after a source failover the new primary, which has no job, aborts it
as an orphan).
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trionode.core.migration.controller import MigrationController
from trionode.core.migration.export import ESTABLISHING, FINISHED, PAUSED, SNAPSHOTTING, CopyChunk

from ..cluster.helpers import S1, S2
from .helpers import BOUNDS, World

# Progress is likely and disruption rare, so that many schedules reach the handover and race it.
STEPS = ["apply", "apply", "drop", "reorder", "copy", "stream", "stream", "paused", "ack", "established", "tick",
         "tick", "tick", "stall", "stall", "failover", "isr", "cancel", "cleaned", *["progress"] * 14]  # fmt: skip


class Schedule:
    def __init__(self, world: World) -> None:
        self.w = world
        self.final: int | None = None
        self.start_epochs = {S1: world.h.epoch(S1), S2: world.h.epoch(S2)}
        self.successors: dict[str, MigrationController] = {}  # S1's later primaries (they start with no jobs)

    def successor(self) -> MigrationController | None:
        primary = self.w.state.shards[S1].primary_id
        if primary == self.w.controller.node_id:
            return None
        return self.successors.setdefault(primary, MigrationController(primary, bounds=BOUNDS))

    def outstanding_chunk(self) -> CopyChunk | None:
        chunks = [a for a in self.w.log if isinstance(a, CopyChunk)]
        job = self.w.job
        return chunks[-1] if chunks and job.state == SNAPSHOTTING and job._chunk_out else None

    def apply_next(self, index: int = 0) -> None:
        w = self.w
        if not w.proposed:
            return
        cmd = w.proposed.pop(index % len(w.proposed))
        owners_before = w.state.slot_owners[0]
        w.h.raw(cmd)
        if w.state.slot_owners[0] != owners_before:  # the commit applied
            job = w.job
            assert w.paused, "the handover applied while the source accepted writes"
            assert job.progress.acked_offset == job.progress.sent_offset == self.final, "unacknowledged writes"
            assert {S1: w.h.epoch(S1), S2: w.h.epoch(S2)} == self.start_epochs, "a commit crossed a failover"
        w.take(w.controller.on_config(w.state, w.now))
        if (successor := self.successor()) is not None:
            w.take(successor.on_config(w.state, w.now))

    def progress(self, data: st.DataObject) -> None:
        """The shell's natural next move, so that random schedules reach the handover often."""
        w, job = self.w, self.w.job
        if (chunk := self.outstanding_chunk()) is not None:
            w.take(job.on_copied(chunk.slot, None, 1, 1, job.progress.sent_offset + 1, w.now))
        elif job.state == ESTABLISHING:
            w.take(job.on_established(w.now))
        elif w.paused and self.final is None and job.state == PAUSED:
            self.final = job.progress.sent_offset
            w.take(job.on_paused(self.final, w.now))
        elif w.proposed and (not job.progress.lag or data.draw(st.booleans())):
            self.apply_next()
        elif job.progress.lag:
            w.take(job.on_target_ack(job.progress.sent_offset, w.now))

    def step(self, data: st.DataObject, kind: str) -> None:
        w, job = self.w, self.w.job
        p = job.progress
        if kind == "progress":
            self.progress(data)
        elif kind == "apply":
            self.apply_next(data.draw(st.integers(0, 3)))
        elif kind == "drop" and w.proposed:
            w.proposed.pop(data.draw(st.integers(0, len(w.proposed) - 1)))
        elif kind == "reorder":
            w.proposed.reverse()
        elif kind == "copy" and (chunk := self.outstanding_chunk()) is not None:
            keys, done = data.draw(st.integers(0, 3)), data.draw(st.booleans())
            offset = p.sent_offset + bool(keys)
            w.take(job.on_copied(chunk.slot, None if done else chunk.cursor + 10, keys, keys, offset, w.now))
        elif kind == "stream" and not w.paused:
            w.take(job.on_stream(p.sent_offset + 1, w.now))
        elif kind == "paused" and w.paused and self.final is None and job.state == PAUSED:
            self.final = p.sent_offset
            w.take(job.on_paused(self.final, w.now))
        elif kind == "ack" and p.sent_offset > p.acked_offset:
            w.take(job.on_target_ack(data.draw(st.integers(p.acked_offset + 1, p.sent_offset)), w.now))
        elif kind == "established" and job.state == ESTABLISHING:
            w.take(job.on_established(w.now))
        elif kind == "tick":
            w.tick(data.draw(st.sampled_from([1, 100, 400, 1_000, 3_000])))
        elif kind == "stall":  # the control plane is slow: the write pause outlives its bound
            w.tick(BOUNDS.pause_ms_max + 1)
        else:
            self.cluster_step(data, kind)

    def cluster_step(self, data: st.DataObject, kind: str) -> None:
        w = self.w
        if kind == "failover":
            shard = w.state.shards[data.draw(st.sampled_from([S1, S2]))]
            in_sync = [n for n in shard.isr_ids if n != shard.primary_id]
            if in_sync:
                w.entry("failover", shard_id=shard.id, epoch=shard.epoch, node_id=in_sync[0])
        elif kind == "isr":
            shard = w.state.shards[data.draw(st.sampled_from([S1, S2]))]
            outside = [n for n in shard.replica_ids if n not in shard.isr_ids]
            if outside:
                w.h.expand(shard.id, outside[0])
                w.take(w.controller.on_config(w.state, w.now))
        elif kind == "cancel" and w.controller.jobs:
            w.take(w.controller.cancel_all(w.now))
        elif kind == "cleaned":
            w.controller.on_cleaned(lambda slot: 0, w.now)

    def settle(self) -> None:
        """Stop the chaos: the shell answers what it owes, proposals apply, time passes."""
        w, job = self.w, self.w.job
        for _ in range(40):
            if (chunk := self.outstanding_chunk()) is not None:
                w.take(job.on_copied(chunk.slot, None, 0, 0, job.progress.sent_offset, w.now))
            if w.paused and self.final is None and job.state == PAUSED:
                self.final = job.progress.sent_offset
                w.take(job.on_paused(self.final, w.now))
            while w.proposed:
                self.apply_next()
            w.controller.on_cleaned(lambda slot: 0, w.now)
            if job.state in FINISHED and not w.state.migrations:
                break  # (a start applied after its job gave up is ended as an orphan, by tick)
            w.tick(1_000)
            if (successor := self.successor()) is not None:
                w.take(successor.on_config(w.state, w.now))
        assert job.state in FINISHED and not w.paused, (job.state, job.message)
        assert not w.state.migrations


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.integers(1, 60))
def test_an_export_under_random_schedules_is_safe_and_always_ends(data: st.DataObject, steps: int) -> None:
    schedule = Schedule(World())
    for _ in range(steps):
        schedule.step(data, data.draw(st.sampled_from(STEPS)))
    schedule.settle()
