"""Views of the state (CLUSTER replies, status JSON), snapshots, and the create planner."""

from itertools import pairwise

import cbor2
import pytest

from trionode.core.cluster import (
    ClusterState,
    NodeAddress,
    apply,
    check_invariants,
    cluster_view,
    from_snapshot,
    plan_create,
    shard_id_for,
    solo_shard_id,
    split_slots,
    status_dict,
    to_snapshot,
    unhealthy_reasons,
)
from trionode.core.cluster_view import cluster_nodes, cluster_shards, cluster_slots, slot_owner

from .helpers import M1, S1, S2, N, bootstrapped, two_shards

# --- CLUSTER views -------------------------------------------------------------------------------------


def test_cluster_view_shows_primaries_with_slots_and_replicas_under_them() -> None:
    h = two_shards()
    h.failover(S2, N[4])
    view = cluster_view(h.state, N[0], health={N[3]: "loading"}, offsets={N[4]: 42}, state_ok=True)
    assert slot_owner(view, 0).id == N[0] and slot_owner(view, 16383).id == N[4]
    assert view.node(N[1]).role == "replica" and view.node(N[1]).primary_id == N[4]
    assert view.node(N[4]).config_epoch == 3 and view.current_epoch == 3
    assert view.node(N[4]).replication_offset == 42
    slots = cluster_slots(view)
    assert [(entry[0], entry[1], entry[2][2]) for entry in slots] == [
        (0, 8191, N[0].encode()), (8192, 16383, N[4].encode())
    ]  # fmt: skip
    assert [r[2] for r in slots[0][3:]] == [N[2].encode()]  # the loading replica is hidden
    assert f"{N[0]} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-8191" in cluster_nodes(view)


def test_a_node_in_no_shard_shows_as_a_slotless_primary_of_its_own_shard() -> None:
    h = two_shards()
    view = cluster_view(h.state, N[5], state_ok=False)
    free = view.node(N[5])
    assert (free.role, free.slots, free.shard_id) == ("primary", (), solo_shard_id(N[5]))
    assert free.shard_id not in (S1, S2)
    assert len(cluster_shards(view)) == 2 + 3  # two shards and the free nodes N5, N6, N7


def test_cluster_view_needs_myself_to_be_a_member() -> None:
    h = two_shards()
    with pytest.raises(AssertionError):
        cluster_view(h.state, N[8], state_ok=True)


# --- status JSON ------------------------------------------------------------------------------------------

NODE_KEYS = {"id", "addr", "bus_addr", "raft_role", "shard_id", "role", "offset", "in_isr", "health"}
SHARD_KEYS = {"id", "epoch", "primary_id", "replica_ids", "isr_ids", "slots"}


def test_status_dict_has_the_documented_keys_and_values() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 9]])
    status = status_dict(h.state, health={N[3]: "suspect"}, offsets={N[0]: 100, N[3]: 60},
                         raft_roles={N[0]: "leader", N[1]: "follower"})  # fmt: skip
    nodes = {node["id"]: node for node in status["nodes"]}
    assert all(set(node) >= NODE_KEYS for node in status["nodes"])
    assert all(set(shard) >= SHARD_KEYS for shard in status["shards"])
    assert nodes[N[0]]["addr"] == "127.0.0.1:7000" and nodes[N[0]]["bus_addr"] == "127.0.0.1:17000"
    assert (nodes[N[0]]["raft_role"], nodes[N[1]]["raft_role"], nodes[N[5]]["raft_role"]) == (
        "leader", "follower", "learner"
    )  # fmt: skip
    assert (nodes[N[2]]["in_isr"], nodes[N[3]]["in_isr"], nodes[N[5]]["in_isr"]) == (True, False, False)
    assert (nodes[N[3]]["health"], nodes[N[3]]["lag"], nodes[N[3]]["role"]) == ("suspect", 40, "replica")
    assert nodes[N[5]]["shard_id"] is None and nodes[N[5]]["role"] == "none"
    shard = next(s for s in status["shards"] if s["id"] == S1)
    assert shard == {"id": S1, "epoch": 1, "primary_id": N[0], "replica_ids": [N[2], N[3]],
                     "isr_ids": [N[0], N[2]], "isr_version": 1, "slots": [[0, 8191]]}  # fmt: skip
    assert [m["id"] for m in status["migrations"]] == [M1] and status["migrations"][0]["slots"] == [[0, 9]]
    assert cbor2.loads(cbor2.dumps(status)) == status


def test_unhealthy_reasons_name_unassigned_slots_and_failed_primaries() -> None:
    h = two_shards()
    assert unhealthy_reasons(h.state) == []
    assert unhealthy_reasons(h.state, {N[1]: "failed"}) == [f"shard {S2} has failed primary {N[1]}"]
    assert unhealthy_reasons(ClusterState()) == ["16384 of 16384 slots are not assigned"]


# --- snapshots ----------------------------------------------------------------------------------------------


def test_snapshot_round_trip_through_cbor_is_exact() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 9]])
    h.refused("failover", "not_in_isr", shard_id=S1, epoch=1, node_id=N[3])
    snap = to_snapshot(h.state)
    restored = from_snapshot(cbor2.loads(cbor2.dumps(snap)))
    assert restored == h.state and restored.rejections[-1].reason.startswith("not_in_isr")
    assert restored.slot_owners[8192] == S2


def test_a_snapshot_that_breaks_an_invariant_is_refused() -> None:
    snap = to_snapshot(two_shards().state)
    snap["shards"][0][6] = [[0, 9000]]  # overlaps the other shard's slots
    with pytest.raises(ValueError, match="more than one shard"):
        from_snapshot(snap)
    with pytest.raises(ValueError, match="format"):
        from_snapshot({**to_snapshot(ClusterState()), "format": 99})


# --- planner ---------------------------------------------------------------------------------------------------


def _addresses(hosts: list[str]) -> list[NodeAddress]:
    return [NodeAddress(N[i], host, 7000 + i, 17000 + i) for i, host in enumerate(hosts)]


def _applied(plan: list[dict]) -> ClusterState:
    state = ClusterState()
    for index, cmd in enumerate(plan, 1):
        result = apply(state, index, cmd)
        assert result.ok, (cmd, result.reason)
    assert check_invariants(state) == []
    return state


def test_split_slots_matches_redis_cli() -> None:
    assert split_slots(3) == [(0, 5460), (5461, 10922), (10923, 16383)]
    assert split_slots(1) == [(0, 16383)]
    for n in (2, 5, 7, 100, 16384):
        ranges = split_slots(n)
        assert ranges[0][0] == 0 and ranges[-1][1] == 16383
        assert all(a[1] + 1 == b[0] for a, b in pairwise(ranges))
        assert max(e - s for s, e in ranges) - min(e - s for s, e in ranges) <= 1


def test_plan_create_forms_a_cluster_with_every_slot_owned_and_replicas_outside_the_isr() -> None:
    state = _applied(plan_create(_addresses(["127.0.0.1"] * 6), 1, cluster_id="c" * 40))
    assert len(state.shards) == 3 and state.slot_owners.count(None) == 0
    assert {shard.primary_id for shard in state.shards.values()} == {N[0], N[1], N[2]}
    assert all(len(shard.replica_ids) == 1 and shard.isr_ids == (shard.primary_id,) for shard in state.shards.values())
    assert state.shards[shard_id_for(N[0])].slots == ((0, 5460),)


def test_plan_create_spreads_primaries_and_their_replicas_over_hosts() -> None:
    state = _applied(plan_create(_addresses(["a", "a", "a", "b", "b", "b"]), 1, cluster_id="c" * 40))
    host = {node_id: node.host for node_id, node in state.nodes.items()}
    primaries = [shard.primary_id for shard in state.shards.values()]
    assert sorted(host[p] for p in primaries) == ["a", "a", "b"]
    for shard in state.shards.values():
        assert host[shard.replica_ids[0]] != host[shard.primary_id]


def test_plan_create_joins_only_unknown_nodes() -> None:
    h = bootstrapped()
    extra = [NodeAddress(N[i], "127.0.0.1", 7000 + i, 17000 + i) for i in (5, 6, 7, 8)]
    plan = plan_create(extra, 1, known_ids=set(h.state.nodes))
    assert [c["op"] for c in plan].count("node_join") == 1
    for cmd in plan:
        assert h.raw(cmd).ok
    assert len(h.state.shards) == 2 and h.state.slot_owners.count(None) == 0


def test_plan_create_needs_epochs_above_the_clusters() -> None:
    h = two_shards()
    extra = [NodeAddress(N[i], "127.0.0.1", 7000 + i, 17000 + i) for i in (5, 6)]
    stale = plan_create(extra, 1, known_ids=set(h.state.nodes))
    h.refused_raw(stale[0], "stale_epoch")
    fresh = plan_create(extra, 1, known_ids=set(h.state.nodes), first_epoch=h.state.epoch_max + 1)
    assert h.raw(fresh[0]).ok
    h.refused_raw(fresh[1], "slot_busy")  # every slot is owned: new shards get slots only by migration


@pytest.mark.parametrize(
    ("nodes", "replicas", "message"),
    [
        (_addresses(["h"] * 2), 2, "too few"),
        (_addresses(["h"] * 3), -1, "0 or more"),
        ([*_addresses(["h"] * 2), NodeAddress(N[0], "h", 1, 2)], 0, "distinct"),
        ([NodeAddress(N[0], "h", 1, 2), NodeAddress(N[1], "h", 1, 3)], 0, "share an address"),
        (_addresses(["h"] * 9)[:1] + _addresses(["h"] * 9)[1:], 16, "too few"),
    ],
)
def test_plan_create_refuses_impossible_requests(nodes: list[NodeAddress], replicas: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_create(nodes, replicas)


@pytest.mark.parametrize(
    "damage",
    [
        lambda snap: snap.pop("nodes"),
        lambda snap: snap["nodes"][0].pop(),
        lambda snap: snap["shards"][0].__setitem__(1, "1"),
        lambda snap: snap["shards"][0].__setitem__(6, [[5, 4]]),
        lambda snap: snap["nodes"][5].__setitem__(5, "replica"),
        lambda snap: snap["migrations"].append({"id": M1}),
    ],
)
def test_a_malformed_snapshot_is_refused_with_value_error(damage) -> None:
    snap = to_snapshot(two_shards().state)
    damage(snap)
    with pytest.raises(ValueError, match="snapshot"):
        from_snapshot(snap)


@pytest.mark.parametrize("side", ["source_epoch", "target_epoch"])
def test_a_snapshot_whose_migration_recorded_a_future_epoch_is_refused(side: str) -> None:
    # Such a record would let a commit through after a failover to that epoch (seed 001).
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 9]])
    snap = to_snapshot(h.state)
    assert from_snapshot(snap).migrations == h.state.migrations  # in-flight migrations travel in snapshots
    snap["migrations"][0][side] += 1
    with pytest.raises(ValueError, match="recorded epochs"):
        from_snapshot(snap)


HASH_SEED_SCRIPT = """
import cbor2, sys
from tests.core.cluster.helpers import M1, M2, N, S1, S2, two_shards
h = two_shards()
h.migrate_start(M1, S1, S2, [[0, 99], [200, 300]])
h.raw({"op": "migration_start", "migration_id": M2, "source_shard_id": S1, "target_shard_id": S2,
       "source_epoch": 1, "target_epoch": 2, "slots": [[50, 250]]})
h.raw({"op": "slots_assign", "shard_id": S1, "epoch": 1, "slots": [[9000, 9100], [100, 120]]})
h.raw({"op": "node_join", "node_id": N[8], "host": "h", "port": 1, "bus_port": 2, "x": 1, "y": 2})
h.failover(S1, N[2])
h.raw({"op": "migration_commit", "migration_id": M1, "source_epoch": 2, "target_epoch": 2})
sys.stdout.write(cbor2.dumps(to_snapshot(h.state)).hex())
"""


def test_apply_is_deterministic_across_hash_seeds() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    script = "from trionode.core.cluster import to_snapshot\n" + HASH_SEED_SCRIPT
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1 and len(next(iter(outputs))) > 100
