"""The cluster configuration state machine that Raft replicates (DESIGN §4).

Theory of operation. :class:`ClusterState` holds nodes, shards (epoch,
primary, replicas, ISR, slots), the slot table and migrations. Committed Raft
entries carry plain-dict commands; :func:`apply` is the authority that turns
each into a change or a recorded no-op. :func:`check_invariants` states what
every committed configuration keeps. Snapshots, CLUSTER views, ``status``
output, ``cluster create`` and ``cluster rebalance`` plans are built from the state here; health,
offsets and Raft roles come from the shell.

Modules: ``state`` (records, bounds, slot-range helpers), ``commands`` (the
command table and :func:`apply`), ``invariants``, ``snapshot``, ``view``,
``planner``.
"""

from trionode.core.cluster.commands import COMMAND_FIELDS, ApplyResult, apply, command, copy_state, prevalidate
from trionode.core.cluster.invariants import check_invariants
from trionode.core.cluster.planner import (
    NodeAddress,
    SlotMove,
    apply_moves,
    moves_to_start,
    plan_create,
    plan_rebalance,
    shard_id_for,
    slot_quotas,
    split_slots,
)
from trionode.core.cluster.snapshot import from_snapshot, to_snapshot
from trionode.core.cluster.state import ClusterState, Migration, NodeRecord, Rejection, Shard, is_id
from trionode.core.cluster.view import cluster_view, solo_shard_id, status_dict, unhealthy_reasons

__all__ = [
    "COMMAND_FIELDS",
    "ApplyResult",
    "ClusterState",
    "Migration",
    "NodeAddress",
    "NodeRecord",
    "Rejection",
    "Shard",
    "SlotMove",
    "apply",
    "apply_moves",
    "check_invariants",
    "cluster_view",
    "command",
    "copy_state",
    "from_snapshot",
    "is_id",
    "moves_to_start",
    "plan_create",
    "plan_rebalance",
    "prevalidate",
    "shard_id_for",
    "slot_quotas",
    "solo_shard_id",
    "split_slots",
    "status_dict",
    "to_snapshot",
    "unhealthy_reasons",
]
