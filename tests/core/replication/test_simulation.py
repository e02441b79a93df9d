"""The replication core in a simulated world: drops, reordering, crashes, late ISR commits, failovers.

After every step ``World.check`` asserts: the high watermark never exceeds any ISR member's durable
offset; no acknowledged write is missing from the primary or any ISR member; a loading replica
reports 0 and is not counted; the tracker never credits a replica with more than its disk holds.
"""

import pytest

from trionode.core.cluster import command
from trionode.core.replication.replica import LOADING

from .helpers import R1, R2, SHARD, P
from .sim import World

SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_runs_keep_every_acknowledged_write(seed: int) -> None:
    world = World(seed)
    try:
        for _ in range(1_500):
            world.step()
        world.heal(400)
        world.writes = False
        world.heal(300)
    except AssertionError:
        print(f"seed {seed}:", *world.events[-30:], sep="\n  ")
        raise
    primary = world.primary()
    assert len(world.acked) > 0
    assert primary.log[: len(world.acked)] == world.acked
    for node in world.nodes.values():
        # Healed: every replica holds exactly the primary's log, deposed suffixes included.
        assert node.log == primary.log and node.durable == len(primary.log), node.id[-1]
    assert set(world.cfg.shard.isr_ids) == {P, R1, R2}


def test_the_runs_exercise_failover_full_sync_and_isr_changes() -> None:
    """Guard against a world too gentle to test anything."""
    failovers = crashes = full_syncs = isr_changes = 0
    for seed in SEEDS:
        world = World(seed)
        for _ in range(1_500):
            world.step()
            full_syncs += sum(1 for n in world.nodes.values() if n.rs is not None and n.rs.state == LOADING)
        failovers += sum("failover" in e for e in world.events)
        crashes += sum("crash" in e for e in world.events)
        isr_changes += world.cfg.shard.isr_version  # every ISR change bumps the version
    assert failovers >= 10 and crashes >= 10 and full_syncs >= 1 and isr_changes >= 40, (
        failovers, crashes, full_syncs, isr_changes)  # fmt: skip


def test_a_deposed_primarys_unacknowledged_suffix_is_truncated_at_rejoin() -> None:
    world = World(seed=7, faults=False)
    for _ in range(50):
        world.step()
    old = world.primary()
    acked = len(world.acked)
    # Cut the old primary off: it writes (and fsyncs) records nobody receives.
    old.log.extend([[b"SET", b"k", b"lost-%d" % i] for i in range(5)])
    old.durable = len(old.log)
    assert old.tracker is not None
    old.tracker.set_log_end(old.durable)
    world.net.clear()
    world.failover()
    new = world.primary()
    assert new is not old and world.cfg.shard.epoch == 2
    assert len(world.acked) == acked
    assert len(old.log) >= len(new.log) + 5  # a suffix of epoch 1 that epoch 2 never saw
    for _ in range(300):
        world.step()
    assert old.tracker is None and old.rs is not None  # it learnt, and rejoined as a replica
    assert not any(e[2].startswith(b"lost-") for e in old.log)
    assert old.log == new.log[: len(old.log)]
    assert old.history.to_list()[-1] == [2, old.history.to_list()[-1][1]]


def test_a_silent_isr_member_holds_the_watermark_until_its_shrink_commits() -> None:
    world = World(seed=3, faults=False)
    for _ in range(100):
        world.step()
    assert set(world.cfg.shard.isr_ids) == {P, R1, R2}
    world.crash(world.nodes[R2])
    world.nodes[R2].up = False
    hw_at_crash = world.primary().tracker.high_watermark(world.primary().durable)  # type: ignore[union-attr]
    committed_at = None
    for _ in range(200):
        before = len(world.acked)
        world.nodes[R2].up = False
        world.step()
        if R2 in world.cfg.shard.isr_ids:
            assert len(world.acked) <= max(before, hw_at_crash, world.nodes[R2].durable)
        elif committed_at is None:
            committed_at = world.now
    assert committed_at is not None, "the shrink never committed"
    assert len(world.acked) > world.nodes[R2].durable  # and then the watermark moved on without it


def test_an_expand_proposal_from_before_a_relapse_is_refused_by_the_isr_version() -> None:
    world = World(seed=5, faults=False)
    for _ in range(100):
        world.step()
    shard = world.cfg.shard
    stale = command("isr_expand", shard_id=SHARD, epoch=shard.epoch, isr_version=shard.isr_version - 1, node_id=R1)
    assert not world.cfg.commit(stale).ok
