"""May a node that formed a cluster alone leave it, to be formed into another?

Theory of operation. ``trionode start`` with ``bootstrap = true`` (the default)
forms a one-node cluster: ``bootstrap``, a shard for the node, every slot. To
join another cluster the node must abandon that one (``CLUSTER RESET``), which
is safe only if nothing is lost and nobody else ever relied on it:

- no other node ever was a member: the configuration has only ever admitted
  this node (``members_ever``; a node that joined and was forgotten since
  still counts), and its Raft group has this node as sole voter and no
  learner;
- the node never held data: its data offset is 0. A key written and deleted
  again still counts, since its records are in the WAL.
- its cluster holds no ACL users: they live in the cluster state, which the
  reset discards, so an operator's users would vanish without a word.

:func:`reset_refusal` is that decision; the shell (``io/cluster_admin.py``)
makes the reset durable in a crash-safe order.
"""

from trionode.core.cluster.state import ClusterState


def reset_refusal(
    state: ClusterState, node_id: str, voters: tuple[str, ...], learners: tuple[str, ...], data_offset: int
) -> str | None:
    """Why this node may not leave its cluster, or None when it may."""
    others = sorted((set(state.nodes) | set(voters) | set(learners)) - {node_id})
    if others:
        return f"its cluster {state.cluster_id} has other members ({others[0][:12]}...)"
    if tuple(voters) != (node_id,) or state.members_ever != 1:
        return f"its cluster {state.cluster_id} has had other members"
    if data_offset:
        return f"it holds data (data offset {data_offset}); only a node that never held data is reset"
    if state.acl_users:
        names = ", ".join(sorted(state.acl_users)[:3])
        return f"its cluster holds ACL users ({names}); delete them (ACL DELUSER) to reset it"
    return None
