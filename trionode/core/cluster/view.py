"""What the cluster state looks like from outside: CLUSTER replies and ``status --json``.

Theory of operation. The replicated :class:`ClusterState` holds no health and
no offsets; the shell knows them (gossip, replication ACKs) and passes them in
as plain mappings keyed by node id. From the two, :func:`cluster_view` builds
the immutable :class:`~trionode.core.cluster_view.ClusterView` that CLUSTER
SLOTS / SHARDS / NODES / INFO format, and :func:`status_dict` builds the
``shards``, ``nodes`` and ``migrations`` parts of ``trionode status --json``
(DESIGN §7; the shell adds the Raft fields and ``healthy``, for which
:func:`unhealthy_reasons` gives the configuration's share).

A node in no shard (``role == "none"``) shows in CLUSTER replies as a primary
without slots, as a freshly met Valkey node does, with a shard id of its own
derived from its node id (a hash, so it cannot collide with a real shard's).
A node missing from ``health`` counts as online and one missing from
``offsets`` as offset 0: the shell should pass every member.
"""

from collections.abc import Mapping
from hashlib import sha1
from typing import Any

from trionode import limits
from trionode.core.cluster.state import ClusterState, Migration, NodeRecord
from trionode.core.cluster_view import HEALTHS, ClusterView, NodeView

_NO_HEALTH: Mapping[str, str] = {}
_NO_OFFSETS: Mapping[str, int] = {}


def solo_shard_id(node_id: str) -> str:
    """The shard id CLUSTER replies give a node that is in no shard."""
    return sha1(f"trionode-unassigned:{node_id}".encode()).hexdigest()


def _node_view(state: ClusterState, node: NodeRecord, health: str, offset: int) -> NodeView:
    assert health in HEALTHS, f"node {node.id}: health {health!r}"
    shard = state.shards[node.shard_id] if node.shard_id is not None else None
    common = {"id": node.id, "ip": node.host, "port": node.port, "bus_port": node.bus_port, "health": health}
    if shard is None:
        return NodeView(**common, role="primary", primary_id=None, shard_id=solo_shard_id(node.id),
                        replication_offset=offset)  # fmt: skip
    primary = node.role == "primary"
    assert primary == (shard.primary_id == node.id), (node.id, shard.id)
    return NodeView(
        **common, role="primary" if primary else "replica", primary_id=None if primary else shard.primary_id,
        shard_id=shard.id, slots=shard.slots if primary else (), replication_offset=offset,
        config_epoch=shard.epoch,
    )  # fmt: skip


def cluster_view(
    state: ClusterState,
    myself_id: str,
    *,
    health: Mapping[str, str] = _NO_HEALTH,
    offsets: Mapping[str, int] = _NO_OFFSETS,
    state_ok: bool,
) -> ClusterView:
    """The view CLUSTER SLOTS/SHARDS/NODES/INFO format; ``myself_id`` must be a member."""
    assert myself_id in state.nodes, f"myself {myself_id} is not a member of the cluster"
    nodes = tuple(
        _node_view(state, node, health.get(node_id, "online"), offsets.get(node_id, 0))
        for node_id, node in sorted(state.nodes.items())
    )
    return ClusterView(myself_id=myself_id, current_epoch=state.epoch_max, nodes=nodes, state_ok=state_ok)


def _migration_status(m: Migration) -> dict[str, Any]:
    return {
        "id": m.id, "source_shard_id": m.source_shard_id, "target_shard_id": m.target_shard_id,
        "slots": [list(r) for r in m.slots], "source_epoch": m.source_epoch, "target_epoch": m.target_epoch,
        "state": m.state,
    }  # fmt: skip


def _node_status(state: ClusterState, node: NodeRecord, status: Mapping[str, Any]) -> dict[str, Any]:
    shard = state.shards[node.shard_id] if node.shard_id is not None else None
    offset = status["offsets"].get(node.id, 0)
    primary_offset = status["offsets"].get(shard.primary_id, 0) if shard else offset
    return {
        "id": node.id, "addr": f"{node.host}:{node.port}", "bus_addr": f"{node.host}:{node.bus_port}",
        "raft_role": status["raft_roles"].get(node.id, "learner"), "shard_id": node.shard_id, "role": node.role,
        "offset": offset, "in_isr": bool(shard and node.id in shard.isr_ids),
        "health": status["health"].get(node.id, "online"), "epoch": shard.epoch if shard else 0,
        "slots": [list(r) for r in shard.slots] if shard and node.role == "primary" else [],
        "lag": max(0, primary_offset - offset),
    }  # fmt: skip


def status_dict(
    state: ClusterState,
    *,
    health: Mapping[str, str] = _NO_HEALTH,
    offsets: Mapping[str, int] = _NO_OFFSETS,
    raft_roles: Mapping[str, str] = _NO_HEALTH,
) -> dict[str, Any]:
    """The configuration's part of ``status --json``: DESIGN §7's keys, plus a few more.

    ``raft_roles`` maps node id to leader/follower/candidate/learner; a member
    Raft does not list yet counts as a learner.
    """
    status = {"health": health, "offsets": offsets, "raft_roles": raft_roles}
    shards = [
        {"id": s.id, "epoch": s.epoch, "primary_id": s.primary_id, "replica_ids": list(s.replica_ids),
         "isr_ids": list(s.isr_ids), "isr_version": s.isr_version, "slots": [list(r) for r in s.slots]}
        for _, s in sorted(state.shards.items())
    ]  # fmt: skip
    out = {
        "cluster_id": state.cluster_id,
        "config_version": state.config_version,
        "epoch_max": state.epoch_max,
        "nodes": [_node_status(state, node, status) for _, node in sorted(state.nodes.items())],
        "shards": shards,
        "migrations": [_migration_status(m) for _, m in sorted(state.migrations.items())],
        "migrations_recent": [_migration_status(m) for m in state.migration_history],
    }
    assert len(out["nodes"]) == len(state.nodes)
    return out


def unhealthy_reasons(state: ClusterState, health: Mapping[str, str] = _NO_HEALTH) -> list[str]:
    """Why the configuration cannot serve every slot now; [] when it can."""
    reasons = []
    unowned = state.slot_owners.count(None)
    if unowned:
        reasons.append(f"{unowned} of {limits.slots_count} slots are not assigned")
    for shard_id, shard in sorted(state.shards.items()):
        primary_health = health.get(shard.primary_id, "online")
        if shard.slots and primary_health == "failed":
            reasons.append(f"shard {shard_id} has failed primary {shard.primary_id}")
    return reasons
