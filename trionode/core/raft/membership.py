"""Single-server membership changes on a :class:`ConfState`.

Theory of operation. The group changes one server at a time (add a learner,
promote a learner, demote a voter, remove a node), so any two consecutive
configurations have overlapping majorities and no joint consensus is needed.
A change takes effect when its CONF entry is applied. Two functions:

- :func:`refusal` is the leader's pre-check before proposing (the reason a
  change is refused, or "" to accept);
- :func:`apply_change` is total: a committed entry always applies, and a
  change that no longer makes sense (e.g. promoting a node that is gone)
  leaves the configuration unchanged rather than crashing every replica.
"""

from trionode.core.raft.messages import ConfChange, ConfChangeKind, ConfState


def members(conf: ConfState) -> set[str]:
    return set(conf.voters) | set(conf.learners)


def refusal(conf: ConfState, cc: ConfChange, voters_max: int) -> str:
    """Why the leader must not propose ``cc`` against ``conf`` ("" when it may)."""
    assert voters_max >= 1
    node, voters, learners = cc.node_id, set(conf.voters), set(conf.learners)
    if not node:
        return "a membership change needs a node id"
    if cc.kind is ConfChangeKind.ADD_LEARNER:
        return f"node {node} is already a member" if node in voters | learners else ""
    if cc.kind is ConfChangeKind.PROMOTE:
        if node not in learners:
            return f"node {node} is not a learner"
        return f"promoting {node} would exceed {voters_max} voters" if len(voters) + 1 > voters_max else ""
    if cc.kind is ConfChangeKind.DEMOTE:
        if node not in voters:
            return f"node {node} is not a voter"
        return "cannot demote the last voter" if len(voters) == 1 else ""
    assert cc.kind is ConfChangeKind.REMOVE
    if node not in voters | learners:
        return f"node {node} is not a member"
    return "cannot remove the last voter" if voters == {node} else ""


def apply_change(conf: ConfState, cc: ConfChange) -> ConfState:
    """The configuration after ``cc``; unchanged if ``cc`` no longer applies."""
    voters, learners, node = set(conf.voters), set(conf.learners), cc.node_id
    if cc.kind is ConfChangeKind.ADD_LEARNER and node not in voters:
        learners.add(node)
    elif cc.kind is ConfChangeKind.PROMOTE and node in learners:
        learners.discard(node)
        voters.add(node)
    elif cc.kind is ConfChangeKind.DEMOTE and node in voters and len(voters) > 1:
        voters.discard(node)
        learners.add(node)
    elif cc.kind is ConfChangeKind.REMOVE and voters - {node}:
        voters.discard(node)
        learners.discard(node)
    out = ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners)))
    assert not set(out.voters) & set(out.learners), "voters and learners are disjoint"
    return out
