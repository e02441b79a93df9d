"""Cluster state snapshots: the whole :class:`ClusterState` as plain CBOR-friendly values.

Theory of operation. The Raft snapshot carries the cluster state at
``last_applied``; a lagging or new node installs it instead of replaying the
log. The encoding is lists and dicts of str, int and None, with ids sorted so
that equal states give equal snapshots (replicas can compare them). Slots are
stored as ranges; the 16384-entry owner table is rebuilt on load. The round
trip is exact, including the bounded rejection and migration histories.

A snapshot that decodes to a state breaking an invariant is refused with
ValueError: the file is checksummed, so such a snapshot is corruption, or a
bug, and the node must stop rather than serve from it.
"""

from typing import Any

from trionode.core.cluster.invariants import check_invariants
from trionode.core.cluster.state import (
    ClusterState,
    Migration,
    NodeRecord,
    Rejection,
    Shard,
    SlotRange,
    owners_from_shards,
)

snapshot_format = 1


def _ranges_out(ranges: tuple[SlotRange, ...]) -> list[list[int]]:
    return [[start, end] for start, end in ranges]


def _ranges_in(value: Any) -> tuple[SlotRange, ...]:
    return tuple((int(start), int(end)) for start, end in value)


def _migration_out(m: Migration) -> dict[str, Any]:
    return {
        "id": m.id, "slots": _ranges_out(m.slots), "source_shard_id": m.source_shard_id,
        "target_shard_id": m.target_shard_id, "source_epoch": m.source_epoch,
        "target_epoch": m.target_epoch, "state": m.state,
    }  # fmt: skip


def _migration_in(d: dict[str, Any]) -> Migration:
    return Migration(
        id=d["id"], slots=_ranges_in(d["slots"]), source_shard_id=d["source_shard_id"],
        target_shard_id=d["target_shard_id"], source_epoch=d["source_epoch"],
        target_epoch=d["target_epoch"], state=d["state"],
    )  # fmt: skip


def to_snapshot(state: ClusterState) -> dict[str, Any]:
    """The whole state as plain values, in a canonical order (ids sorted)."""
    snap = {
        "format": snapshot_format,
        "cluster_id": state.cluster_id,
        "applied_index": state.applied_index,
        "config_version": state.config_version,
        "members_ever": state.members_ever,
        "epoch_max": state.epoch_max,
        "nodes": [[n.id, n.host, n.port, n.bus_port, n.shard_id, n.role] for _, n in sorted(state.nodes.items())],
        "shards": [
            [s.id, s.epoch, s.primary_id, list(s.replica_ids), list(s.isr_ids), s.isr_version, _ranges_out(s.slots)]
            for _, s in sorted(state.shards.items())
        ],
        "migrations": [_migration_out(m) for _, m in sorted(state.migrations.items())],
        "migration_history": [_migration_out(m) for m in state.migration_history],
        "rejections": [[r.index, r.op, r.reason] for r in state.rejections],
        "acl_users": [[name, list(rules)] for name, rules in sorted(state.acl_users.items())],
        "acl_users_created": [[name, version] for name, version in sorted(state.acl_users_created.items())],
    }
    assert len(snap["nodes"]) == len(state.nodes) and len(snap["shards"]) == len(state.shards)
    return snap


def from_snapshot(snap: Any) -> ClusterState:
    """Rebuild a state from :func:`to_snapshot`'s output (also after a CBOR round trip).

    Raises ValueError if the snapshot is malformed or describes a state that
    breaks an invariant: a checksummed snapshot that does is corruption (or a
    bug), and the node must stop rather than serve from it.
    """
    if not isinstance(snap, dict) or snap.get("format") != snapshot_format:
        found = snap.get("format") if isinstance(snap, dict) else type(snap).__name__
        raise ValueError(f"cluster snapshot format {found!r} is not {snapshot_format}")
    try:
        state = _build(snap)
        problems = check_invariants(state)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"malformed cluster snapshot: {err!r:.200}") from err
    if problems:
        raise ValueError(f"cluster snapshot breaks invariants: {'; '.join(problems[:5])}")
    assert state.applied_index == snap["applied_index"]
    return state


def _build(snap: dict[str, Any]) -> ClusterState:
    state = ClusterState(cluster_id=snap["cluster_id"], applied_index=snap["applied_index"])
    state.config_version, state.epoch_max = snap["config_version"], snap["epoch_max"]
    # Snapshots from before members_ever do not say who was ever a member: assume others were.
    state.members_ever = snap.get("members_ever", max(2, len(snap["nodes"])))
    for node_id, host, port, bus_port, shard_id, role in snap["nodes"]:
        state.nodes[node_id] = NodeRecord(node_id, host, port, bus_port, shard_id, role)
    for shard_id, epoch, primary_id, replicas, isr, isr_version, slots in snap["shards"]:
        state.shards[shard_id] = Shard(shard_id, epoch, primary_id, tuple(replicas), tuple(isr), isr_version,
                                       _ranges_in(slots))  # fmt: skip
    state.slot_owners, _ = owners_from_shards(state.shards.values())
    state.migrations = {d["id"]: _migration_in(d) for d in snap["migrations"]}
    state.migration_history.extend(_migration_in(d) for d in snap["migration_history"])
    state.rejections.extend(Rejection(index, op, reason) for index, op, reason in snap["rejections"])
    # A snapshot written before ACL users existed has none.
    state.acl_users = {name: tuple(rules) for name, rules in snap.get("acl_users", [])}
    # One written before creations were recorded: 0 for all (at worst a connection is logged out once more).
    state.acl_users_created = dict(snap.get("acl_users_created", [[name, 0] for name in state.acl_users]))
    return state
