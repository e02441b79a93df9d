"""Every cluster command: its effect when it applies, and each refusal with its reason."""

import pytest

from trionode.core.cluster import ClusterState, apply, commands
from trionode.core.cluster.reset import reset_refusal
from trionode.core.cluster.state import Migration

from .helpers import CLUSTER, M1, M2, S1, S2, S3, Harness, N, addr, bootstrapped, two_shards

# --- bootstrap and membership ---------------------------------------------------------------


def test_bootstrap_makes_the_first_member_and_only_once() -> None:
    h = Harness()
    h.ok("bootstrap", cluster_id=CLUSTER, node_id=N[0], **addr(N[0]))
    assert h.state.cluster_id == CLUSTER and h.state.nodes[N[0]].role == "none"
    h.refused("bootstrap", "already_bootstrapped", cluster_id=CLUSTER, node_id=N[1], **addr(N[1]))


def test_nothing_but_bootstrap_applies_to_an_empty_state() -> None:
    h = Harness()
    h.refused("node_join", "not_bootstrapped", node_id=N[1], **addr(N[1]))
    assert h.state == ClusterState(applied_index=1, rejections=h.state.rejections)


def test_node_join_adds_a_member_with_its_address() -> None:
    h = bootstrapped()
    node = h.state.nodes[N[3]]
    assert (node.host, node.port, node.bus_port, node.shard_id, node.role) == ("127.0.0.1", 7003, 17003, None, "none")
    h.refused("node_join", "node_exists", node_id=N[3], **addr(N[3]))
    h.refused("node_join", "address_in_use", node_id=N[8], **addr(N[3]))


def test_node_join_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    h = bootstrapped()
    monkeypatch.setattr(commands, "nodes_max", len(h.state.nodes))
    h.refused("node_join", "too_many", node_id=N[8], **addr(N[8]))


def test_node_info_moves_a_node_but_not_onto_another() -> None:
    h = bootstrapped()
    h.ok("node_info", node_id=N[1], host="10.0.0.1", port=6379, bus_port=16379)
    assert (h.state.nodes[N[1]].host, h.state.nodes[N[1]].port) == ("10.0.0.1", 6379)
    h.ok("node_info", node_id=N[1], host="10.0.0.1", port=6379, bus_port=16380)  # its own address is no clash
    h.refused("node_info", "address_in_use", node_id=N[2], host="10.0.0.1", port=6379, bus_port=1)
    h.refused("node_info", "unknown_node", node_id=N[8], **addr(N[8]))


def test_node_forget_removes_only_a_node_in_no_shard() -> None:
    h = two_shards()
    h.ok("node_forget", node_id=N[5])
    assert N[5] not in h.state.nodes
    for node_id in (N[0], N[2], N[3]):  # primary; replica in the ISR; replica outside it
        h.refused("node_forget", "node_in_shard", node_id=node_id)
    h.refused("node_forget", "unknown_node", node_id=N[5])


# --- shards and slots -------------------------------------------------------------------------


def test_shard_create_starts_with_the_primary_alone_in_the_isr() -> None:
    h = bootstrapped()
    h.ok("shard_create", shard_id=S1, epoch=1, primary_id=N[0])
    shard = h.state.shards[S1]
    assert (shard.epoch, shard.primary_id, shard.replica_ids, shard.isr_ids, shard.slots) == (1, N[0], (), (N[0],), ())
    assert (h.state.nodes[N[0]].shard_id, h.state.nodes[N[0]].role) == (S1, "primary")
    assert h.state.epoch_max == 1
    h.refused("shard_create", "shard_exists", shard_id=S1, epoch=2, primary_id=N[1])
    h.refused("shard_create", "stale_epoch", shard_id=S2, epoch=1, primary_id=N[1])
    h.refused("shard_create", "node_busy", shard_id=S2, epoch=2, primary_id=N[0])
    h.refused("shard_create", "unknown_node", shard_id=S2, epoch=2, primary_id=N[8])


def test_a_shard_proposed_from_a_lagging_view_gets_the_next_epoch_at_apply_time() -> None:
    # The race behind "stale_epoch: a new shard must start above epoch 2" in cluster create: it
    # sends ADDSLOTSRANGE to each primary in turn, and the next primary may not have applied the
    # shard the previous one just made. Picking the epoch from that view collides; epoch 0 lets
    # the apply function pick it.
    h = bootstrapped()
    lagging_view = commands.copy_state(h.state)
    h.ok("shard_create", shard_id=S1, epoch=0, primary_id=N[0])
    h.refused("shard_create", "stale_epoch", shard_id=S2, epoch=lagging_view.epoch_max + 1, primary_id=N[1])
    h.ok("shard_create", shard_id=S2, epoch=0, primary_id=N[1])
    assert (h.state.shards[S1].epoch, h.state.shards[S2].epoch, h.state.epoch_max) == (1, 2, 2)
    h.refused("shard_create", "stale_epoch", shard_id=S3, epoch=2, primary_id=N[5])  # a named epoch is checked


def test_shard_remove_frees_an_empty_shard_and_its_id_restarts_above_every_epoch() -> None:
    h = two_shards()
    h.ok("shard_create", shard_id=S3, epoch=3, primary_id=N[5])
    h.failover(S1, N[2])  # epoch_max is now 3 from S3; S1 goes to 2
    h.ok("shard_remove", shard_id=S3, epoch=3)
    assert S3 not in h.state.shards and h.state.nodes[N[5]].role == "none"
    h.ok("node_forget", node_id=N[5])
    h.refused("shard_create", "stale_epoch", shard_id=S3, epoch=3, primary_id=N[6])
    h.ok("shard_create", shard_id=S3, epoch=4, primary_id=N[6])


def test_shard_remove_refusals() -> None:
    h = two_shards()
    h.refused("shard_remove", "shard_has_slots", shard_id=S1, epoch=1)
    h.ok("shard_create", shard_id=S3, epoch=3, primary_id=N[5])
    h.attach(S3, N[6])
    h.refused("shard_remove", "shard_has_replicas", shard_id=S3, epoch=3)
    h.ok("replica_detach", shard_id=S3, epoch=3, node_id=N[6])
    h.migrate_start(M1, S1, S3, [[0, 10]])
    h.refused("shard_remove", "shard_migrating", shard_id=S3, epoch=3)
    h.refused("shard_remove", "stale_epoch", shard_id=S3, epoch=2)
    h.refused("shard_remove", "unknown_shard", shard_id="0" * 40, epoch=1)


def test_slots_assign_merges_ranges_and_keeps_the_slot_table() -> None:
    h = bootstrapped()
    h.ok("shard_create", shard_id=S1, epoch=1, primary_id=N[0])
    h.ok("slots_assign", shard_id=S1, epoch=1, slots=[[10, 19], [0, 4], [5, 9], [30, 30]])
    assert h.state.shards[S1].slots == ((0, 19), (30, 30))
    assert [h.state.slot_owners[s] for s in (0, 19, 20, 30, 31)] == [S1, S1, None, S1, None]


def test_slots_assign_refuses_owned_slots_even_its_own() -> None:
    h = two_shards()
    h.ok("shard_create", shard_id=S3, epoch=3, primary_id=N[5])
    reason = h.refused("slots_assign", "slot_busy", shard_id=S3, epoch=3, slots=[[8000, 8200]])
    assert "8000" in reason
    h.refused("slots_assign", "slot_busy", shard_id=S1, epoch=1, slots=[[0, 0]])
    h.refused("slots_assign", "stale_epoch", shard_id=S1, epoch=2, slots=[[0, 0]])
    h.refused("slots_assign", "unknown_shard", shard_id="0" * 40, epoch=1, slots=[[0, 0]])


# --- replica set ---------------------------------------------------------------------------------


def test_replica_attach_joins_outside_the_isr() -> None:
    h = two_shards()
    h.attach(S2, N[5])
    shard = h.state.shards[S2]
    assert N[5] in shard.replica_ids and N[5] not in shard.isr_ids
    assert (h.state.nodes[N[5]].shard_id, h.state.nodes[N[5]].role) == (S2, "replica")
    h.refused("replica_attach", "node_busy", shard_id=S2, epoch=2, node_id=N[5])
    h.refused("replica_attach", "node_busy", shard_id=S2, epoch=2, node_id=N[0])
    h.refused("replica_attach", "stale_epoch", shard_id=S2, epoch=1, node_id=N[6])


def test_replica_attach_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    h = two_shards()
    monkeypatch.setattr(commands, "shard_replicas_max", 2)
    h.refused("replica_attach", "too_many", shard_id=S1, epoch=1, node_id=N[5])


def test_replica_detach_removes_a_replica_and_its_isr_membership() -> None:
    h = two_shards()
    h.ok("replica_detach", shard_id=S1, epoch=1, node_id=N[3])  # outside the ISR
    assert h.state.shards[S1].replica_ids == (N[2],) and h.state.nodes[N[3]].role == "none"
    h.attach(S1, N[3], in_sync=True)
    version = h.isr_version(S1)
    h.ok("replica_detach", shard_id=S1, epoch=1, node_id=N[2])  # N3 stays caught up
    assert h.state.shards[S1].isr_ids == (N[0], N[3]) and h.isr_version(S1) == version + 1


def test_replica_detach_refusals() -> None:
    h = two_shards()
    h.refused("replica_detach", "last_caught_up", shard_id=S1, epoch=1, node_id=N[2])
    h.refused("replica_detach", "is_primary", shard_id=S1, epoch=1, node_id=N[0])
    h.refused("replica_detach", "not_replica", shard_id=S1, epoch=1, node_id=N[4])
    h.refused("replica_detach", "stale_epoch", shard_id=S1, epoch=2, node_id=N[3])


def test_replica_replace_swaps_in_a_node_outside_the_isr() -> None:
    h = two_shards()
    h.ok("replica_replace", shard_id=S1, epoch=1, old_id=N[3], new_id=N[5])
    shard = h.state.shards[S1]
    assert shard.replica_ids == (N[2], N[5]) and shard.isr_ids == (N[0], N[2])
    assert h.state.nodes[N[3]].role == "none" and h.state.nodes[N[5]].role == "replica"
    h.refused("replica_replace", "node_busy", shard_id=S1, epoch=1, old_id=N[5], new_id=N[4])
    h.refused("replica_replace", "not_replica", shard_id=S1, epoch=1, old_id=N[6], new_id=N[7])
    h.refused("replica_replace", "is_primary", shard_id=S1, epoch=1, old_id=N[0], new_id=N[7])
    h.refused("replica_replace", "stale_epoch", shard_id=S1, epoch=0, old_id=N[5], new_id=N[7])


# --- ISR --------------------------------------------------------------------------------------------


def test_isr_shrink_keeps_the_primary_and_moves_the_version() -> None:
    h = two_shards()
    version = h.isr_version(S1)
    h.shrink(S1, N[2])
    assert h.state.shards[S1].isr_ids == (N[0],) and h.isr_version(S1) == version + 1
    assert N[2] in h.state.shards[S1].replica_ids  # still a replica, just not counted
    h.refused("isr_shrink", "not_in_isr", shard_id=S1, epoch=1, isr_version=version + 1, node_id=N[2])
    h.refused("isr_shrink", "is_primary", shard_id=S1, epoch=1, isr_version=version + 1, node_id=N[0])
    h.refused("isr_shrink", "stale_isr_version", shard_id=S2, epoch=2, isr_version=99, node_id=N[4])
    h.refused("isr_shrink", "stale_epoch", shard_id=S2, epoch=1, isr_version=h.isr_version(S2), node_id=N[4])


def test_isr_expand_admits_only_a_replica_of_the_shard() -> None:
    h = two_shards()
    h.expand(S1, N[3])
    assert h.state.shards[S1].isr_ids == (N[0], N[2], N[3])
    v = h.isr_version(S1)
    h.refused("isr_expand", "already_in_isr", shard_id=S1, epoch=1, isr_version=v, node_id=N[3])
    h.refused("isr_expand", "not_replica", shard_id=S1, epoch=1, isr_version=v, node_id=N[4])
    h.refused("isr_expand", "not_replica", shard_id=S1, epoch=1, isr_version=v, node_id=N[5])
    h.refused("isr_expand", "is_primary", shard_id=S1, epoch=1, isr_version=v, node_id=N[0])


def test_a_delayed_isr_expand_cannot_readmit_a_replica_that_fell_behind() -> None:
    h = two_shards()
    proposed = {"shard_id": S1, "epoch": 1, "isr_version": h.isr_version(S1), "node_id": N[3]}
    h.shrink(S1, N[2])  # the ISR changed after the expand was proposed
    h.refused("isr_expand", "stale_isr_version", **proposed)
    assert N[3] not in h.state.shards[S1].isr_ids


# --- failover ---------------------------------------------------------------------------------------


def test_failover_promotes_an_isr_member_at_the_next_epoch() -> None:
    h = two_shards()
    h.expand(S1, N[3])
    h.failover(S1, N[2])
    shard = h.state.shards[S1]
    assert (shard.epoch, shard.primary_id) == (2, N[2])
    assert shard.replica_ids == (N[0], N[3])
    assert shard.isr_ids == (N[2], N[3])  # the old primary left the ISR; the other in-sync replica stayed
    assert (h.state.nodes[N[0]].role, h.state.nodes[N[2]].role) == ("replica", "primary")
    assert shard.slots == ((0, 8191),) and h.state.slot_owners[0] == S1
    assert h.state.epoch_max == 2


def test_two_failovers_proposed_at_one_epoch_give_one_primary() -> None:
    h = two_shards()
    h.expand(S1, N[3])
    h.failover(S1, N[2])
    h.refused("failover", "stale_epoch", shard_id=S1, epoch=1, node_id=N[3])
    assert h.state.shards[S1].primary_id == N[2]


def test_failover_refusals() -> None:
    h = two_shards()
    h.refused("failover", "is_primary", shard_id=S1, epoch=1, node_id=N[0])
    h.refused("failover", "not_replica", shard_id=S1, epoch=1, node_id=N[4])
    h.refused("failover", "not_in_isr", shard_id=S1, epoch=1, node_id=N[3])
    h.refused("failover", "unknown_shard", shard_id=S3, epoch=1, node_id=N[3])


def test_the_deposed_primary_returns_to_the_isr_only_by_expand() -> None:
    h = two_shards()
    h.failover(S1, N[2])
    h.refused("failover", "not_in_isr", shard_id=S1, epoch=2, node_id=N[0])
    h.expand(S1, N[0])
    h.failover(S1, N[0])
    assert (h.epoch(S1), h.state.shards[S1].primary_id) == (3, N[0])


def test_reinstate_moves_only_the_epoch_and_only_for_the_primary() -> None:
    h = two_shards()
    h.expand(S1, N[3])
    before = h.state.shards[S1]
    h.refused("reinstate", "not_primary", shard_id=S1, epoch=1, node_id=N[3])
    h.refused("reinstate", "stale_epoch", shard_id=S1, epoch=0, node_id=N[0])
    h.ok("reinstate", shard_id=S1, epoch=1, node_id=N[0])
    after = h.state.shards[S1]
    assert (after.epoch, after.primary_id, after.isr_ids, after.replica_ids) == (
        2, N[0], before.isr_ids, before.replica_ids)
    assert h.state.epoch_max == 2 and h.state.nodes[N[0]].role == "primary"
    h.refused("reinstate", "stale_epoch", shard_id=S1, epoch=1, node_id=N[0])  # a retry commits nothing


# --- migrations -------------------------------------------------------------------------------------


def test_migration_start_records_both_epochs_and_moves_nothing() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[100, 199]])
    assert h.state.migrations[M1] == Migration(M1, ((100, 199),), S1, S2, 1, 2, "running")
    assert h.state.slot_owners[100] == S1


def test_migration_start_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    h = two_shards()
    start = {"source_shard_id": S1, "target_shard_id": S2, "source_epoch": 1, "target_epoch": 2}
    h.refused("migration_start", "slot_not_owned", migration_id=M1, **start, slots=[[8191, 8192]])
    h.refused("migration_start", "stale_epoch", migration_id=M1, **{**start, "target_epoch": 1}, slots=[[0, 1]])
    h.refused("migration_start", "stale_epoch", migration_id=M1, **{**start, "source_epoch": 2}, slots=[[0, 1]])
    same = {**start, "target_shard_id": S1, "target_epoch": 1}
    h.refused("migration_start", "bad_command", migration_id=M1, **same, slots=[[0, 1]])
    h.ok("migration_start", migration_id=M1, **start, slots=[[0, 10]])
    h.refused("migration_start", "migration_exists", migration_id=M1, **start, slots=[[20, 30]])
    h.refused("migration_start", "slot_migrating", migration_id=M2, **start, slots=[[10, 11]])
    monkeypatch.setattr(commands, "migrations_max", 1)
    h.refused("migration_start", "too_many", migration_id=M2, **start, slots=[[20, 30]])


def test_migration_commit_moves_ownership_atomically() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 99], [8000, 8191]])
    h.ok("migration_commit", migration_id=M1, source_epoch=1, target_epoch=2)
    assert h.state.shards[S1].slots == ((100, 7999),)
    assert h.state.shards[S2].slots == ((0, 99), (8000, 16383))
    assert M1 not in h.state.migrations and h.state.migration_history[-1].state == "committed"
    h.refused("migration_commit", "unknown_migration", migration_id=M1, source_epoch=1, target_epoch=2)
    h.refused("migration_start", "migration_exists", migration_id=M1, source_shard_id=S2, target_shard_id=S1,
              source_epoch=2, target_epoch=1, slots=[[0, 1]])  # fmt: skip


def test_migration_commit_refuses_epochs_other_than_current() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 99]])
    h.refused("migration_commit", "stale_epoch", migration_id=M1, source_epoch=0, target_epoch=2)
    h.refused("migration_commit", "stale_epoch", migration_id=M1, source_epoch=1, target_epoch=3)


def test_migration_abort_keeps_the_slots_on_the_source() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 99]])
    h.ok("migration_abort", migration_id=M1)
    assert h.state.slot_owners[0] == S1 and h.state.migration_history[-1].state == "aborted"
    assert not h.state.migrations
    h.refused("migration_abort", "unknown_migration", migration_id=M1)
    h.migrate_start(M2, S1, S2, [[0, 99]])  # the slots are free to migrate again


def test_migration_history_is_bounded() -> None:
    h = two_shards()
    for i in range(40):
        mid = f"{i + 1:040x}"
        h.migrate_start(mid, S1, S2, [[i, i]])
        h.ok("migration_abort", migration_id=mid)
    assert len(h.state.migration_history) == 16 and h.state.migration_history[-1].id == f"{40:040x}"


# --- shape and totality -------------------------------------------------------------------------------

GOOD = {"op": "node_join", "node_id": "ab" * 20, "host": "h", "port": 1, "bus_port": 2}
BAD_COMMANDS = [
    None, 7, "node_join", [GOOD], {}, {"op": None}, {"op": ["x"]}, {"op": "nope"}, {"op": "NODE_JOIN"},
    {k: v for k, v in GOOD.items() if k != "port"},
    {**GOOD, "extra": 1},
    {**GOOD, 3: 1},
    {**GOOD, "node_id": "AB" * 20},
    {**GOOD, "node_id": "ab" * 19 + "a"},
    {**GOOD, "node_id": b"x" * 40},
    {**GOOD, "port": True},
    {**GOOD, "port": 0},
    {**GOOD, "port": 65536},
    {**GOOD, "port": "1"},
    {**GOOD, "port": 1.0},
    {**GOOD, "host": ""},
    {**GOOD, "host": "a b"},
    {**GOOD, "host": "x" * 256},
    {**GOOD, "host": ["h"]},
]  # fmt: skip


@pytest.mark.parametrize("cmd", BAD_COMMANDS)
def test_a_malformed_command_is_a_recorded_no_op(cmd: object) -> None:
    h = bootstrapped()
    h.refused_raw(cmd, "bad_command")


BAD_SLOTS = [[], [[0]], [[0, 1, 2]], [[5, 4]], [[-1, 3]], [[0, 16384]], [[0, True]], "0-5", [(0, "5")], None]


@pytest.mark.parametrize("slots", BAD_SLOTS)
def test_malformed_slot_ranges_are_refused(slots: object) -> None:
    h = two_shards()
    h.ok("shard_create", shard_id=S3, epoch=3, primary_id=N[5])
    h.refused_raw({"op": "slots_assign", "shard_id": S3, "epoch": 3, "slots": slots}, "bad_command")


def test_the_rejection_log_is_bounded_and_keeps_the_latest() -> None:
    h = bootstrapped()
    for _ in range(100):
        h.refused_raw({"op": "nope"}, "bad_command")
    assert len(h.state.rejections) == 64
    assert h.state.rejections[-1].index == h.index and h.state.rejections[0].index == h.index - 63
    assert h.state.rejections[-1].op == "nope"


def test_applying_an_old_index_is_a_programmer_error() -> None:
    h = bootstrapped()
    with pytest.raises(AssertionError):
        apply(h.state, h.index, {"op": "nope"})


def test_prevalidate_answers_without_changing_the_state() -> None:
    h = two_shards()
    before = commands.copy_state(h.state)
    assert commands.prevalidate(h.state, {"op": "failover", "shard_id": S1, "epoch": 1, "node_id": N[2]}).ok
    refusal = commands.prevalidate(h.state, {"op": "failover", "shard_id": S1, "epoch": 1, "node_id": N[3]})
    assert refusal.reason.startswith("not_in_isr: ")
    assert h.state == before


def test_the_well_formed_base_of_those_cases_applies() -> None:
    h = bootstrapped()
    assert h.raw(dict(GOOD)).ok


def test_isr_fence_only_moves_the_isr_version_and_makes_older_proposals_stale() -> None:
    from trionode.core.cluster.commands import apply, command
    from trionode.core.cluster.state import ClusterState

    p, r, shard = "a" * 40, "b" * 40, "1" * 40
    state = ClusterState()
    cmds = [
        command("bootstrap", cluster_id="f" * 40, node_id=p, host="h", port=1, bus_port=2),
        command("node_join", node_id=r, host="h", port=3, bus_port=4),
        command("shard_create", shard_id=shard, epoch=1, primary_id=p),
        command("replica_attach", shard_id=shard, epoch=1, node_id=r),
    ]
    for index, cmd in enumerate(cmds, start=1):
        assert apply(state, index, cmd).ok
    before = state.shards[shard]
    stale_expand = command("isr_expand", shard_id=shard, epoch=1, isr_version=before.isr_version, node_id=r)
    assert apply(state, 5, command("isr_fence", shard_id=shard, epoch=1, isr_version=before.isr_version)).ok
    after = state.shards[shard]
    assert after.isr_version == before.isr_version + 1 and after.isr_ids == before.isr_ids
    result = apply(state, 6, stale_expand)
    assert not result.ok and result.reason.startswith("stale_isr_version")


# --- leaving a lone cluster -------------------------------------------------------------------


def _lone() -> Harness:
    """What `trionode start` does alone: bootstrap, its shard, every slot."""
    h = Harness()
    h.ok("bootstrap", cluster_id=CLUSTER, node_id=N[0], **addr(N[0]))
    h.ok("shard_create", shard_id=S1, epoch=0, primary_id=N[0])
    h.ok("slots_assign", shard_id=S1, epoch=1, slots=[[0, 16383]])
    return h


def test_only_a_node_that_bootstrapped_alone_and_never_held_data_may_leave_its_cluster() -> None:
    h = _lone()
    h.ok("isr_fence", shard_id=S1, epoch=1, isr_version=h.state.shards[S1].isr_version)  # a primary's own step
    assert reset_refusal(h.state, N[0], (N[0],), (), data_offset=0) is None
    assert "holds data" in reset_refusal(h.state, N[0], (N[0],), (), data_offset=2)
    assert "other members" in reset_refusal(h.state, N[0], (N[0],), (N[1],), data_offset=0)
    h.join(N[1])
    assert "other members" in reset_refusal(h.state, N[0], (N[0],), (), data_offset=0)
    h.ok("node_forget", node_id=N[1])  # gone again, but it was a member once
    assert "has had other members" in reset_refusal(h.state, N[0], (N[0],), (), data_offset=0)


def test_a_lone_node_whose_cluster_holds_acl_users_may_not_leave_it() -> None:
    # Users live in the cluster state: a reset would drop them without a word.
    h = _lone()
    h.ok("acl_setuser", user="app", rules=["on", "nopass", "~app:*", "+@read"])
    assert "ACL users (app)" in reset_refusal(h.state, N[0], (N[0],), (), data_offset=0)
    h.ok("acl_deluser", user="app")  # deleted again: nothing is lost
    assert reset_refusal(h.state, N[0], (N[0],), (), data_offset=0) is None

