"""Primary leases (DESIGN §5.5).

Theory of operation. A primary serves only while it holds a lease granted by the Raft
leader. The holder times its lease from the moment it *sent* the request, on
its own monotonic clock, so message delay only shortens it. The granter
remembers, on its own monotonic clock, when it last granted each node; it
lets a failover replace a primary only once ``lease_ms + drift_ms`` have passed
since that grant, or since it became leader (a new leader does not know what
its predecessor granted). For the same reason it grants a primary nothing while
a lease it granted another node of that shard may still run: a failover can
commit without this granter's wait (its predecessor proposed it). With clocks
that run at nearly the same rate, the old primary has stopped serving before
the new one starts: one writer (S2).

Pure: the shell passes ``now_ms`` (monotonic) and the facts it gathered.
"""


class LeaseHolder:
    """A primary's view of its own lease."""

    def __init__(self, lease_ms: int) -> None:
        assert lease_ms > 0
        self.lease_ms = lease_ms
        self.valid_until_ms = -1       # Invariant: never decreases
        self._sent: dict[int, int] = {}  # request id -> monotonic ms it was sent
        self._next_id = 0

    def request(self, now_ms: int) -> int:
        """A new lease request's id; remember when it left."""
        self._next_id += 1
        self._sent[self._next_id] = now_ms
        # Keep only recent requests: an answer to a very old one would not extend anything.
        for old in [r for r, t in self._sent.items() if now_ms - t > self.lease_ms]:
            del self._sent[old]
        return self._next_id

    def on_grant(self, request_id: int) -> None:
        sent = self._sent.pop(request_id, None)
        if sent is not None:
            self.valid_until_ms = max(self.valid_until_ms, sent + self.lease_ms)

    def valid(self, now_ms: int) -> bool:
        return now_ms < self.valid_until_ms

    def revoke(self) -> None:
        """No longer primary: nothing granted before counts."""
        self.valid_until_ms = -1
        self._sent.clear()


class LeaseGranter:
    """The Raft leader's record of the leases it granted."""

    def __init__(self, lease_ms: int, drift_ms: int, leader_since_ms: int, handover_ms: int) -> None:
        """``handover_ms``: how long a deposed leader may still grant (its check-quorum step-down time)."""
        assert lease_ms > 0 and drift_ms >= 0 and handover_ms >= 0
        self.lease_ms, self.drift_ms = lease_ms, drift_ms
        # A predecessor may have granted until it noticed it lost its quorum.
        self.leader_since_ms = leader_since_ms + handover_ms
        self._granted: dict[str, int] = {}
        self._shard_of: dict[str, str] = {}  # node -> the shard it was granted as primary of

    def grant(self, node_id: str, now_ms: int, shard_id: str) -> None:
        self._granted[node_id] = now_ms
        self._shard_of[node_id] = shard_id

    def another_may_serve(self, shard_id: str, node_id: str, now_ms: int) -> bool:
        """True while a node other than ``node_id`` may hold a lease this granter gave it for ``shard_id``.

        A failover its predecessor proposed can commit under this leader, after this leader
        granted the old primary again: the new primary must wait that lease out (sim seed
        1076 of issue 10's broadened workload).
        """
        return any(
            other != node_id and shard == shard_id and not self.expired(other, now_ms)
            for other, shard in self._shard_of.items()
        )

    def expired(self, node_id: str, now_ms: int) -> bool:
        """True once any lease ``node_id`` may hold has run out, drift included."""
        since = max(self._granted.get(node_id, self.leader_since_ms), self.leader_since_ms)
        return now_ms >= since + self.lease_ms + self.drift_ms
