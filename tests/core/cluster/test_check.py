"""``cluster check``: what makes the cluster not whole, judged from the members' reports."""

import copy
from typing import Any

from trionode.core.cluster import status_dict, unhealthy_reasons
from trionode.core.cluster.check import check_cluster

from .helpers import M1, S1, S2, Harness, N, bootstrapped, two_shards


def _report(h: Harness, node_id: str, health: dict[str, str] | None = None) -> dict[str, Any]:
    """What CLUSTER STATUS answers on ``node_id`` (its health view defaults to all online)."""
    health = health or {}
    report = status_dict(h.state, health=health)
    report.update(node_id=node_id, problems=unhealthy_reasons(h.state, health))
    return report


def _members(h: Harness, **health: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entry report (N0's) and every other member's, keyed by address."""
    entry = _report(h, N[0], health)
    others = {n["addr"]: _report(h, n["id"], health) for n in entry["nodes"] if n["id"] != N[0]}
    return entry, others


def test_a_whole_cluster_passes_and_a_replica_outside_the_isr_is_only_a_warning() -> None:
    entry, others = _members(two_shards())
    result = check_cluster(entry, others)
    assert result.ok, result.errors
    assert result.warnings == [f"shard {S1[:12]}: replica {N[3][:12]} is not in the ISR"]


def test_an_unreachable_member_fails_the_check_and_is_named() -> None:
    entry, others = _members(two_shards())
    others["127.0.0.1:7004"] = "Connection refused"
    result = check_cluster(entry, others)
    assert not result.ok
    assert result.errors == ["node at 127.0.0.1:7004 is unreachable: Connection refused"]


def test_a_failed_primary_and_a_failed_isr_member_are_errors_a_suspect_primary_a_warning() -> None:
    h = two_shards()
    failed = check_cluster(*_members(h, **{N[1]: "failed", N[2]: "failed"}))
    assert any("failed primary" in e for e in failed.errors)  # the node's own health rule
    assert f"shard {S1[:12]}: ISR member {N[2][:12]} is failed" in failed.errors
    suspect = check_cluster(*_members(h, **{N[1]: "suspect"}))
    assert suspect.ok and f"shard {S2[:12]}: primary {N[1][:12]} is suspect" in suspect.warnings


def test_unassigned_slots_fail_the_check() -> None:
    h = bootstrapped()
    h.ok("shard_create", shard_id=S1, epoch=1, primary_id=N[0])
    h.ok("slots_assign", shard_id=S1, epoch=1, slots=[[0, 15999]])
    result = check_cluster(*_members(h))
    assert not result.ok and any("384 of 16384 slots are not assigned" in e for e in result.errors)


def test_a_slot_two_reports_claim_is_an_error() -> None:
    entry = _report(two_shards(), N[0])
    entry["shards"][1]["slots"].append([100, 100])  # S2 claims a slot S1 owns
    result = check_cluster(entry, {})
    assert result.errors == ["1 slots are owned by more than one shard (first: 100)"]


def test_members_disagreeing_at_one_version_is_an_error_one_behind_is_a_warning() -> None:
    entry, others = _members(two_shards())
    addr = "127.0.0.1:7001"
    disagreeing = copy.deepcopy(others)
    disagreeing[addr]["shards"][0]["slots"] = [[0, 8000]]
    errors = check_cluster(entry, disagreeing).errors
    assert errors == [f"{N[1][:12]} at {addr} disagrees on the slot map at configuration version "
                      f"{entry['config_version']}"]  # fmt: skip
    disagreeing[addr]["config_version"] -= 1
    result = check_cluster(entry, disagreeing)
    assert result.ok and any("is at configuration version" in w for w in result.warnings)


def test_a_migration_doomed_by_a_failover_but_never_aborted_is_stuck() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 99]])
    running = check_cluster(*_members(h))
    assert running.ok and any(f"migration {M1}" in w and "in flight" in w for w in running.warnings)
    h.failover(S1, N[2])  # the source's epoch moves on; the migration still names the old one
    stuck = check_cluster(*_members(h))
    assert [e for e in stuck.errors if M1 in e] == [
        f"migration {M1} of slots [[0, 99]] is stuck: a failover doomed it and no abort was committed"
    ]
