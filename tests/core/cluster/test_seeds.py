"""The seed bugs (``seeds/``), replayed against the cluster state machine.

000: a replica-set change before the new members caught up (Oxia #798).
001: a slot migration's commit racing a failover on either shard (Valkey).
002: a replica that needs a full sync is promoted (Valkey #885).
"""

from .helpers import M1, S1, S2, Harness, N, two_shards

# --- 000: replica-set change before catch-up -------------------------------------------------------


def test_000_an_attached_replica_is_outside_the_isr_and_unpromotable_until_expanded() -> None:
    h = two_shards()
    h.attach(S2, N[5])
    assert N[5] not in h.state.shards[S2].isr_ids
    h.refused("failover", "not_in_isr", shard_id=S2, epoch=2, node_id=N[5])
    h.expand(S2, N[5])
    h.failover(S2, N[5])
    assert h.state.shards[S2].primary_id == N[5]


def test_000_swapping_out_the_last_caught_up_replica_is_refused() -> None:
    # Oxia's bug: swap a caught-up member for a new one; the new majority lacks the data.
    h = two_shards()
    h.refused("replica_replace", "last_caught_up", shard_id=S2, epoch=2, old_id=N[4], new_id=N[5])
    h.refused("replica_detach", "last_caught_up", shard_id=S2, epoch=2, node_id=N[4])
    assert h.state.shards[S2].isr_ids == (N[1], N[4]) and h.state.nodes[N[5]].role == "none"


def test_000_the_safe_order_attach_catch_up_then_remove_works() -> None:
    h = two_shards()
    h.attach(S2, N[5])
    h.expand(S2, N[5])  # caught up
    h.ok("replica_detach", shard_id=S2, epoch=2, node_id=N[4])
    assert h.state.shards[S2].isr_ids == (N[1], N[5])


def test_000_replace_then_promote_the_newcomer_is_refused() -> None:
    h = two_shards()
    h.shrink(S2, N[4])  # the primary decided N4 lags; now a replace is allowed
    h.ok("replica_replace", shard_id=S2, epoch=2, old_id=N[4], new_id=N[5])
    h.refused("failover", "not_in_isr", shard_id=S2, epoch=2, node_id=N[5])


# --- 001: migration racing failover ------------------------------------------------------------------


def _migrating() -> Harness:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 99]])
    return h


def _check_ownership_unchanged(h: Harness) -> None:
    assert h.state.shards[S1].slots == ((0, 8191),) and h.state.shards[S2].slots == ((8192, 16383),)
    assert h.state.slot_owners[0] == S1 and M1 in h.state.migrations


def test_001_commit_after_a_source_failover_is_rejected() -> None:
    h = _migrating()
    h.failover(S1, N[2])
    h.refused("migration_commit", "stale_epoch", migration_id=M1, source_epoch=1, target_epoch=2)
    # Even naming the new epoch does not help: the migration predates the failover.
    h.refused("migration_commit", "stale_epoch", migration_id=M1, source_epoch=2, target_epoch=2)
    _check_ownership_unchanged(h)
    h.ok("migration_abort", migration_id=M1)
    assert h.state.slot_owners[0] == S1


def test_001_commit_after_a_target_failover_is_rejected() -> None:
    h = _migrating()
    h.failover(S2, N[4])
    h.refused("migration_commit", "stale_epoch", migration_id=M1, source_epoch=1, target_epoch=2)
    h.refused("migration_commit", "stale_epoch", migration_id=M1, source_epoch=1, target_epoch=3)
    _check_ownership_unchanged(h)


def test_001_a_failover_ordered_after_the_commit_keeps_the_new_owner() -> None:
    h = _migrating()
    h.ok("migration_commit", migration_id=M1, source_epoch=1, target_epoch=2)
    h.failover(S1, N[2])
    h.failover(S2, N[4])
    assert h.state.slot_owners[0] == S2 and h.state.shards[S1].slots == ((100, 8191),)


# --- 002: stale replica promoted ---------------------------------------------------------------------------


def test_002_failover_to_a_replica_outside_the_isr_is_rejected() -> None:
    h = two_shards()
    h.refused("failover", "not_in_isr", shard_id=S1, epoch=1, node_id=N[3])  # attached, never caught up
    assert (h.epoch(S1), h.state.shards[S1].primary_id) == (1, N[0])


def test_002_a_replica_shrunk_for_lagging_cannot_win_a_later_failover() -> None:
    h = two_shards()
    h.shrink(S1, N[2])  # N2 fell behind (say it needs a full sync)
    h.refused("failover", "not_in_isr", shard_id=S1, epoch=1, node_id=N[2])
    h.refused("failover", "not_in_isr", shard_id=S1, epoch=1, node_id=N[3])
    assert h.state.shards[S1].primary_id == N[0]
