"""The choice of a successor for a failed primary (DESIGN §6, S5; seed 002).

Theory of operation. Only a member of the shard's in-sync set may be promoted,
never the failed primary itself, never one that is not online, still loading,
or at offset 0 (seed 002: an empty or stale node must never win). The offsets
are the *durable* offsets the members reported when they answered the fencing
round: after that answer a member accepts nothing more from the old primary,
so the offset cannot grow behind the leader's back. Among the eligible, the
highest offset wins, ties broken by id for determinism. No eligible member
means the shard stays down rather than lose acknowledged data.
"""

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    node_id: str
    health: str        # "online" | "suspect" | "failed" | "loading"
    offset: int        # durable replication offset it reported when fenced (0 while loading)


def choose_successor(primary_id: str, isr_ids: tuple[str, ...], candidates: Mapping[str, Candidate]) -> str | None:
    """The ISR member to promote, or None when no one may be (the shard then stays down)."""
    eligible = [
        c for node_id in isr_ids if node_id != primary_id and (c := candidates.get(node_id)) is not None
        and c.health == "online" and c.offset > 0
    ]
    if not eligible:
        return None
    best = max(eligible, key=lambda c: (c.offset, c.node_id))
    assert best.node_id in isr_ids and best.node_id != primary_id
    return best.node_id
