"""The Raft leader's authority: until when no other leader can exist (DESIGN §5.5).

Theory of operation. A leader may grant leases only while it is sure no other
leader can be elected, else a deposed leader woken from a pause could extend
a primary that a new leader is already replacing (S2). Every Raft message
carries the sender's monotonic send time (``ts``) and echoes the latest ``ts``
it received from the addressee (``echo``). A follower that received a message
sent at ``ts`` refuses to vote for another leader until at least ``ts`` plus
the minimum election timeout (leader stickiness, core/raft), so once a
majority of voters has echoed a time, this node leads until that time plus
the timeout. Only echoes count, never receive times: echoes of old sends
(buffered while this process was paused) cannot make a stale leader look
fresh.

Invariants: per peer, the recorded ``ts`` and ``echo`` never decrease.
Pure: the shell passes ``now_ms`` from its monotonic clock.
"""

from collections.abc import Sequence
from typing import Any


class LeaderAuthority:
    def __init__(self, node_id: str, stickiness_ms: int) -> None:
        assert stickiness_ms > 0
        self.node_id = node_id
        self.stickiness_ms = stickiness_ms  # the minimum election timeout
        self._last_ts_from: dict[str, int] = {}  # peer -> latest send time it stamped on a message to us
        self._echoed: dict[str, int] = {}  # peer -> latest of our send times it has echoed back

    def stamp(self, peer: str, now_ms: int) -> dict[str, int]:
        """The fields to add to a Raft message for ``peer`` sent now."""
        out = {"ts": now_ms}
        echo = self._last_ts_from.get(peer)
        if echo is not None:
            out["echo"] = echo
        return out

    def on_message(self, peer: str, ts: Any, echo: Any) -> None:
        """A Raft message from ``peer`` carried these fields (either may be missing or malformed)."""
        if isinstance(ts, int) and not isinstance(ts, bool):
            self._last_ts_from[peer] = max(ts, self._last_ts_from.get(peer, ts))
        if isinstance(echo, int) and not isinstance(echo, bool):
            self._echoed[peer] = max(echo, self._echoed.get(peer, echo))

    def until_ms(self, voters: Sequence[str], leading: bool, now_ms: int) -> int:
        """Until when (monotonic ms) no other leader can exist; -1 when this node does not lead."""
        if not leading or not voters:
            return -1
        times = sorted((now_ms if v == self.node_id else self._echoed.get(v, -1) for v in voters), reverse=True)
        quorum_time = times[len(voters) // 2]
        return quorum_time + self.stickiness_ms if quorum_time >= 0 else -1
