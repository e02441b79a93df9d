"""A node that joins with an empty log learns the founding membership (RawNode's bootstrap contract).

The founder keeps its first membership in a snapshot at index 1, as the shell does. A
joiner starts empty; since replication never carries index 0, it can only learn that the
founder is a voter from that snapshot. Without it, a promoted joiner counted itself as
the only voter and, cut off, won an election alone (simulator seed 1378).
"""

import random

from trionode.core.raft import RaftConfig, RawNode
from trionode.core.raft.messages import ConfChange, ConfChangeKind, ConfState, Snapshot

ROUNDS_MAX = 100


def _settle(nodes: dict[str, RawNode]) -> None:
    """Handle Readies and deliver their messages until nothing moves (persisting is not modelled)."""
    for _ in range(ROUNDS_MAX):
        msgs = []
        for node in nodes.values():
            while node.has_ready():
                rd = node.ready()
                msgs += rd.messages
                node.advance(rd)
        if not msgs:
            return
        for m in msgs:
            nodes[m.to].step(m)
    raise AssertionError("the nodes never went quiet")


def _founder_and_joiner() -> dict[str, RawNode]:
    founding = Snapshot(index=1, term=1, conf=ConfState(voters=("a",)))
    nodes = {
        "a": RawNode(RaftConfig(node_id="a"), random.Random(1), snapshot=founding),
        "b": RawNode(RaftConfig(node_id="b"), random.Random(2)),
    }
    nodes["a"].campaign()
    _settle(nodes)
    for kind in (ConfChangeKind.ADD_LEARNER, ConfChangeKind.PROMOTE):
        nodes["a"].propose_conf_change(ConfChange(kind, "b"))
        _settle(nodes)
    return nodes


def test_a_promoted_joiner_holds_the_founding_voter() -> None:
    nodes = _founder_and_joiner()
    assert nodes["a"].conf == nodes["b"].conf == ConfState(voters=("a", "b"))


def test_a_cut_off_joiner_cannot_win_alone() -> None:
    joiner = _founder_and_joiner()["b"]
    for _ in range(4 * joiner.raft.cfg.election_ticks):  # messages to the founder are lost
        joiner.tick()
        while joiner.has_ready():
            joiner.advance(joiner.ready())
    assert not joiner.is_leader and joiner.role == "pre_candidate"
