"""Fences that outlive a leadership: what a node says in gossip, what a leader makes of it (DESIGN §6).

Theory of operation. A fencing round lives in the Raft leader's memory
(controller.py), its effect does not: a member that answered refuses the old
primary's stream for good (its driver made the fence durable), and the old
primary, told so by that member, is deposed. If the Raft leader changes before
the failover or the reinstatement commits, the new leader's controller never
heard of the round; with the primary alive it would see nothing to do, and
the shard would stay down for ever. So every node says in its gossip info
(``fence_info``) when its replication knows its shard is fenced above the
epoch its applied configuration names:

* a replica: the epoch its driver refuses streams below (durable, so a
  restarted replica still says it);
* a primary that a replica deposed while the configuration still names it at
  that epoch: epoch + 1 (the replica has seen at least that one).

The leader reads it with ``reported_fence``: the highest epoch above the
shard's, in the leader's own configuration, that a member of the shard (its
primary or a replica) reports. The controller treats that shard as fenced, as
if it had fenced it itself: it fences the ISR again, promotes the best
eligible member (seed 002 rules, successor.py) or reinstates the primary.

Why it cannot flap: every round fences at the leader's configured epoch + 1,
never above the epoch the next failover or reinstatement commits, so once that
commit is applied no report counts. A report may also lead the leader's
configuration for a moment (the reporter applied a commit first, or learnt an
epoch from its primary's sync reply); until the leader applies it, a round at
most fences members at an epoch they already refuse below, and its proposal is
refused as stale. A report from a node that is no member of the shard in the
leader's configuration never counts. Reports come from untrusted peers: the
gossip boundary checks their types (core/gossip/messages.py).
"""

from collections.abc import Mapping

from trionode.core.cluster.state import ClusterState, Shard
from trionode.core.gossip.messages import FENCE_EPOCH, FENCE_SHARD, Info


def fence_info(state: ClusterState, node_id: str, *, replica: tuple[str, int] | None = None,
               deposed: tuple[str, int] | None = None) -> Info:  # fmt: skip
    """The gossip info keys ``node_id`` sends about its shard's fence (``{}``: none above its epoch).

    ``replica``: (shard, epoch) its replica side refuses streams below; ``deposed``: (shard,
    epoch) of its primary side once a replica deposed it. ``state`` is its applied configuration.
    """
    me = state.nodes.get(node_id)
    shard = state.shards.get(me.shard_id) if me is not None and me.shard_id is not None else None
    if shard is None:
        return {}
    seen = 0
    if replica is not None and replica[0] == shard.id and node_id in shard.replica_ids:
        seen = replica[1]
    if deposed == (shard.id, shard.epoch) and shard.primary_id == node_id:
        seen = shard.epoch + 1
    if seen <= shard.epoch:
        return {}
    assert seen >= 1
    return {FENCE_SHARD: shard.id, FENCE_EPOCH: seen}


def reported_fence(shard: Shard, infos: Mapping[str, Info | None]) -> int | None:
    """The highest epoch above ``shard``'s that one of its members reports it fenced at; None: none does."""
    members = (shard.primary_id, *shard.replica_ids)
    epochs = [
        epoch for node_id in members if (info := infos.get(node_id)) and info.get(FENCE_SHARD) == shard.id
        and isinstance(epoch := info.get(FENCE_EPOCH), int) and epoch > shard.epoch
    ]
    return max(epochs, default=None)
