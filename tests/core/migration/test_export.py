"""The source's export job, driven through the real cluster state machine."""

import pytest

from trionode.core.cluster import command
from trionode.core.errors import CommandError
from trionode.core.migration.controller import MigrationController
from trionode.core.migration.export import (
    ABORTING,
    CANCELLED,
    CLEANING,
    COMMITTING,
    ESTABLISHING,
    FAILED,
    PAUSED,
    SNAPSHOTTING,
    SUCCESS,
    CopyChunk,
    Establish,
    PauseWrites,
    ProposeAbort,
    ProposeCommit,
    ResumeWrites,
)

from .helpers import BOUNDS, S1, S2, N, World


def _established(world: World) -> None:
    assert world.commit_next()  # migration_start applies
    assert world.job.state == ESTABLISHING and world.last() == Establish(world.job.migration_id, N[1], world.job.slots)
    world.take(world.job.on_established(world.now))
    assert world.job.state == SNAPSHOTTING


def _copy_all(world: World) -> None:
    """Copy slots 0-2 (3 keys, an empty slot, 2 keys); the job then pauses writes."""
    job, offset = world.job, 0
    for slot, keys in ((0, 3), (1, 0), (2, 2)):
        assert world.last() == CopyChunk(job.migration_id, slot, 0, BOUNDS.copy_keys_max)
        offset += bool(keys)
        world.take(job.on_copied(slot, None, keys, keys * 10, offset, world.now))
        if offset:
            world.take(job.on_target_ack(offset, world.now))
    assert job.state == PAUSED and isinstance(world.last(), PauseWrites) and world.paused


def _paused(world: World, final_offset: int = 3) -> None:
    _established(world)
    _copy_all(world)
    world.take(world.job.on_stream(final_offset, world.now))
    world.take(world.job.on_paused(final_offset, world.now))


def _committing(world: World) -> None:
    _paused(world)
    world.take(world.job.on_target_ack(3, world.now))
    assert world.job.state == COMMITTING and isinstance(world.last(), ProposeCommit)
    assert world.paused


def test_happy_path_moves_the_slots_only_after_the_target_acked_the_final_offset() -> None:
    w = World()
    _paused(w)
    w.now += 120
    assert w.job.on_target_ack(2, w.now) == [] and w.job.state == PAUSED  # not yet the final offset
    _ = w.take(w.job.on_target_ack(3, w.now))
    assert w.last() == ProposeCommit(command("migration_commit", migration_id=w.job.migration_id,
                                             source_epoch=1, target_epoch=2))  # fmt: skip
    assert w.commit_next()
    assert w.state.slot_owners[0:3] == [S2] * 3 and w.job.state == CLEANING
    assert isinstance(w.last(), ResumeWrites) and not w.paused  # held writes now get MOVED
    w.controller.on_cleaned(lambda slot: 1 if slot == 2 else 0, w.now)
    assert w.job.state == CLEANING  # a key is left in slot 2
    w.controller.on_cleaned(lambda slot: 0, w.now)
    assert w.job.state == SUCCESS and not w.controller.jobs
    row = w.controller.rows()[0]
    assert (row.state, row.keys_copied, row.bytes_copied, row.write_pause_ms) == (SUCCESS, 5, 50, 120)


def test_the_copy_waits_for_acknowledgements_once_the_lag_is_at_its_bound() -> None:
    w = World(slots=((0, 9),))
    _established(w)
    for slot in range(BOUNDS.copy_lag_records_max + 1):
        assert w.last() == CopyChunk(w.job.migration_id, slot, 0, BOUNDS.copy_keys_max)
        w.take(w.job.on_copied(slot, None, 1, 1, slot + 1, w.now))
    assert w.job.progress.lag == BOUNDS.copy_lag_records_max + 1 and w.job.state == SNAPSHOTTING
    assert w.take(w.job.on_target_ack(1, w.now)) == [CopyChunk(w.job.migration_id, 5, 0, BOUNDS.copy_keys_max)]


def test_a_chunked_slot_is_copied_from_the_cursor_the_shell_returned() -> None:
    w = World()
    _established(w)
    assert w.take(w.job.on_copied(0, 10, 10, 10, 1, w.now)) == [CopyChunk(w.job.migration_id, 0, 10, 10)]


# --- seed 001: a failover ordered before the commit ----------------------------------------------


@pytest.mark.parametrize("shard,promoted", [(S1, N[2]), (S2, N[4])])
def test_001_failover_before_the_commit_resumes_writes_at_once_and_aborts(shard: str, promoted: str) -> None:
    w = World()
    _committing(w)
    w.entry("failover", shard_id=shard, epoch=w.h.epoch(shard), node_id=promoted)
    # The applier refuses every commit of this job from now on, so the held writes may run here.
    assert w.job.state == ABORTING and not w.paused
    assert [type(a) for a in w.log[-2:]] == [ProposeAbort, ResumeWrites]
    assert not w.commit_next()  # the commit, ordered after the failover, is a recorded no-op
    assert w.state.rejections[-1].reason.startswith("stale_epoch")
    assert w.commit_next()  # the abort
    assert w.job.state == FAILED and "failed over" in w.controller.rows()[0].message
    assert w.state.slot_owners[0:3] == [S1] * 3


def test_001_failover_after_the_commit_leaves_the_slots_with_the_target() -> None:
    w = World()
    _committing(w)
    assert w.commit_next()
    w.entry("failover", shard_id=S2, epoch=2, node_id=N[4])
    assert w.job.state == CLEANING and w.state.slot_owners[0:3] == [S2] * 3
    w.entry("failover", shard_id=S1, epoch=1, node_id=N[2])
    # This node is a replica now: its successor deletes the leftovers, the job is done here.
    assert w.job.state == SUCCESS and not w.controller.jobs and w.state.slot_owners[0:3] == [S2] * 3


def test_a_cleaning_job_whose_slots_moved_back_ends_instead_of_waiting_for_ever() -> None:
    w = World()
    _committing(w)
    assert w.commit_next()
    assert w.job.state == CLEANING
    w.h.migrate_start("f" * 40, S2, S1, [[0, 2]])
    w.entry("migration_commit", migration_id="f" * 40, source_epoch=2, target_epoch=1)
    assert w.state.slot_owners[0:3] == [S1] * 3
    assert w.job.state == SUCCESS and not w.controller.jobs  # its slots' keys here are owned again


def test_a_failover_while_copying_aborts_the_job() -> None:
    w = World()
    _established(w)
    w.entry("failover", shard_id=S2, epoch=2, node_id=N[4])
    assert w.job.state == ABORTING and isinstance(w.last(), ProposeAbort)


# --- the pause bound -----------------------------------------------------------------------------


def test_a_pause_past_its_bound_before_the_commit_resumes_writes_and_aborts() -> None:
    w = World()
    _paused(w)  # the target never acknowledges the final offset
    assert w.tick(BOUNDS.pause_ms_max) == []
    w.tick(1)
    assert w.job.state == ABORTING and not w.paused and "migration_pause_ms_max" in w.job.message
    assert w.commit_next() and w.job.state == FAILED
    assert w.state.slot_owners[0] == S1 and w.controller.rows()[0].write_pause_ms == BOUNDS.pause_ms_max + 1


def test_a_pause_past_its_bound_with_the_commit_in_doubt_keeps_writes_held_and_the_commit_can_win() -> None:
    # Redis PR #15629: resuming writes while the handover may still apply loses them.
    w = World()
    _committing(w)
    w.tick(BOUNDS.pause_ms_max + 1)
    assert w.job.state == ABORTING and w.paused and isinstance(w.last(), ProposeAbort)
    assert w.commit_next()  # Raft ordered the commit first
    assert w.job.state == CLEANING and not w.paused and w.state.slot_owners[0] == S2
    assert not w.commit_next()  # the abort finds no migration in flight


def test_a_pause_past_its_bound_with_the_commit_in_doubt_can_end_in_the_abort() -> None:
    w = World()
    _committing(w)
    w.tick(BOUNDS.pause_ms_max + 1)
    w.proposed.reverse()  # Raft orders the abort first
    assert w.commit_next() and w.job.state == FAILED and not w.paused
    assert not w.commit_next() and w.state.slot_owners[0] == S1


# --- other aborts --------------------------------------------------------------------------------


def test_cancel_before_the_commit_ends_cancelled_and_keeps_the_slots() -> None:
    w = World()
    _paused(w)
    w.take(w.controller.cancel_all(w.now))
    assert w.job.state == ABORTING and not w.paused
    assert w.commit_next() and w.job.state == CANCELLED and w.state.slot_owners[0] == S1
    with pytest.raises(CommandError, match="No migrations ongoing"):
        w.controller.cancel_all(w.now)


def test_cancel_after_the_commit_applied_changes_nothing() -> None:
    w = World()
    _committing(w)
    assert w.commit_next()
    assert w.controller.cancel_all(w.now) == [] and w.job.state == CLEANING


def test_no_acknowledgement_for_the_timeout_aborts() -> None:
    w = World()
    _established(w)
    w.take(w.job.on_copied(0, None, 1, 1, 1, w.now))
    w.tick(BOUNDS.ack_timeout_ms - 1)
    assert w.job.state == SNAPSHOTTING
    w.tick(1)
    assert w.job.state == ABORTING and "no acknowledgement" in w.job.message


def test_a_target_too_far_behind_aborts() -> None:
    w = World()
    _established(w)
    w.take(w.job.on_stream(BOUNDS.lag_records_max + 1, w.now))
    assert w.job.state == ABORTING and "behind" in w.job.message


def test_the_target_isr_below_min_insync_aborts() -> None:
    w = World()
    w.job.min_insync_replicas = 2
    _established(w)
    w.entry("isr_shrink", shard_id=S2, epoch=2, isr_version=w.h.isr_version(S2), node_id=N[4])
    assert w.job.state == ABORTING and "min_insync_replicas" in w.job.message


def test_an_unapplied_abort_is_proposed_again() -> None:
    w = World()
    _paused(w)
    w.take(w.controller.cancel_all(w.now))
    w.proposed.clear()  # the proposal was lost with a leader
    assert w.tick(BOUNDS.propose_retry_ms - 1) == []
    assert isinstance(w.tick(1)[0], ProposeAbort)


def test_a_refused_start_fails_the_job() -> None:
    w = World()
    w.take(w.job.on_refused("slot_not_owned: ...", w.now))
    assert w.job.state == FAILED and w.job.message.startswith("migration_start refused")


def test_a_start_applied_after_the_job_gave_up_is_aborted_as_an_orphan() -> None:
    w = World()
    w.tick(BOUNDS.start_timeout_ms)
    assert w.job.state == ABORTING
    start, abort = w.proposed
    w.proposed = [abort, start]  # the abort finds nothing; the start applies later
    assert not w.commit_next()
    assert w.job.state == FAILED
    assert w.commit_next()  # the start: a running migration nobody drives
    assert isinstance(w.last(), ProposeAbort)
    assert w.commit_next() and not w.state.migrations


def test_orphans_of_a_restarted_primary_are_aborted_and_retried() -> None:
    w = World()
    assert w.commit_next()  # running
    fresh = MigrationController(N[0], bounds=BOUNDS)  # the node restarted: no jobs
    assert [type(a) for a in fresh.on_config(w.state, w.now)] == [PauseWrites, ProposeAbort]
    assert fresh.on_config(w.state, w.now + 1) == []
    assert [type(a) for a in fresh.tick(w.now + BOUNDS.propose_retry_ms)] == [ProposeAbort]
    w.h.ok("migration_abort", migration_id=w.job.migration_id)
    assert fresh.on_config(w.state, w.now + 2) == [ResumeWrites(w.job.migration_id, w.job.slots)]
    # A replica of the source, or another shard's primary, leaves it alone.
    assert MigrationController(N[2], bounds=BOUNDS).on_config(w.state, w.now) == []
    assert MigrationController(N[1], bounds=BOUNDS).on_config(w.state, w.now) == []


def test_an_orphan_holds_its_slots_writes_until_its_fate_is_known_since_its_commit_may_apply() -> None:
    """Seed 28 of the two-shard simulation: the source primary restarted while the commit it had
    proposed was applying; with no job and a configuration not showing the commit yet, it took
    writes on slots the target already served, and they were lost."""
    w = World()
    _committing(w)
    fresh = MigrationController(N[0], bounds=BOUNDS)  # the node restarted mid-commit, its view before it
    held = fresh.on_config(w.state, w.now)
    assert held[0] == PauseWrites(w.job.migration_id, w.job.slots)
    assert w.commit_next()  # the old process's commit applies
    assert fresh.on_config(w.state, w.now + 1) == [ResumeWrites(w.job.migration_id, w.job.slots)]
    assert w.state.slot_owners[0:3] == [S2] * 3  # the held writes now get MOVED
    # A node that stops being the source's primary lets them go too.
    w2 = World()
    assert w2.commit_next()
    orphaned = MigrationController(N[0], bounds=BOUNDS)
    assert isinstance(orphaned.on_config(w2.state, w2.now)[0], PauseWrites)
    w2.entry("failover", shard_id=S1, epoch=1, node_id=N[2])
    assert ResumeWrites(w2.job.migration_id, w2.job.slots) in orphaned.on_config(w2.state, w2.now)


def test_a_commit_seen_only_after_it_scrolled_out_of_the_history_still_counts_as_committed() -> None:
    w = World()
    _committing(w)
    assert w.h.raw(w.proposed.pop(0)).ok  # the job does not see it yet
    for i in range(20):  # more finished migrations than the history remembers
        mid = f"{0xB000 + i:040x}"
        for cmd in (command("migration_start", migration_id=mid, source_shard_id=S2, target_shard_id=S1,
                            source_epoch=2, target_epoch=1, slots=[[9000 + i, 9000 + i]]),
                    command("migration_abort", migration_id=mid)):  # fmt: skip
            assert w.h.raw(cmd).ok
    assert all(m.id != w.job.migration_id for m in w.state.migration_history)
    w.take(w.controller.on_config(w.state, w.now))
    assert w.job.state == CLEANING and not w.paused


def test_the_log_is_bounded_and_listed_newest_first() -> None:
    w = World()
    controller = MigrationController(N[0], bounds=BOUNDS, log_jobs_max=2)
    ids = iter(f"{i:040x}" for i in range(1, 10))
    for slot in range(3):
        argv = [b"CLUSTER", b"MIGRATESLOTS", b"SLOTSRANGE", str(slot).encode(), str(slot).encode(), b"NODE",
                N[1].encode()]  # fmt: skip
        controller.migrate(argv, w.state, ids, w.now + slot)
        next(iter(controller.jobs.values())).on_refused("no", w.now)
        controller.tick(w.now)
    assert [row.name for row in controller.rows()] == [f"{3:040x}", f"{2:040x}"]


def test_the_target_is_asked_again_until_it_answers() -> None:
    # The target refuses an import whose start it has not applied yet, and the bus may drop
    # either message: without asking again the job would sit until its start timeout.
    world = World()
    assert world.commit_next()
    establish = world.last()
    assert isinstance(establish, Establish)
    assert world.tick(BOUNDS.establish_retry_ms - 1) == []
    assert world.tick(1) == [establish]
    world.take(world.job.on_established(world.now))
    assert world.job.state != ESTABLISHING and establish not in world.tick(BOUNDS.establish_retry_ms * 2)


def test_only_the_jobs_target_speaks_for_it() -> None:
    w = World()
    assert w.controller.from_target(w.job.migration_id, N[1]) is w.job
    assert w.controller.from_target(w.job.migration_id, N[4]) is None  # another node of the target's shard
    assert w.controller.from_target("f" * 40, N[1]) is None
