"""Which replies must wait for durability, and until which offset.

Theory of operation. A write is applied to the keyspace at once, but nothing
that depends on it may leave the node before it is acknowledged (DESIGN §5.4).
This module tracks, for every key whose last write is not yet durable, the
offset of that write. A reply that read or wrote key ``k`` may be sent once the
acknowledged offset reaches ``required(k)``. A write that touches every key
(FLUSHALL) raises a barrier that every keyed reply waits for.

Entries are pruned in offset order as the acknowledged offset advances, so the
tracker holds at most one entry per unacknowledged write, which the WAL's own
pending bound already limits. The shell decides what "acknowledged" means (the
local fsync now, the ISR later); this module only does the bookkeeping.
"""

from collections import deque


class Visibility:
    def __init__(self, acked_offset: int = 0) -> None:
        self.acked = acked_offset
        self.barrier = acked_offset          # offset of the last keyspace-wide write
        self._pending: dict[bytes, int] = {}  # Invariant: values > self.acked after prune
        self._order: deque[tuple[int, bytes]] = deque()

    def wrote(self, key: bytes, offset: int) -> None:
        assert offset > self.acked, "a new write cannot already be acknowledged"
        self._pending[key] = offset
        self._order.append((offset, key))

    def wrote_everything(self, offset: int) -> None:
        assert offset >= self.barrier
        self.barrier = offset

    def required(self, key: bytes) -> int:
        """The acknowledged offset a reply depending on ``key`` must wait for."""
        offset = self._pending.get(key, 0)
        return offset if offset > self.barrier else self.barrier

    def advance(self, acked_offset: int) -> None:
        """Record that everything up to ``acked_offset`` is acknowledged, and prune."""
        assert acked_offset >= self.acked, "the acknowledged offset never goes back"
        self.acked = acked_offset
        order, pending = self._order, self._pending
        while order and order[0][0] <= acked_offset:
            offset, key = order.popleft()
            if pending.get(key) == offset:
                del pending[key]

    def __len__(self) -> int:
        return len(self._pending)
