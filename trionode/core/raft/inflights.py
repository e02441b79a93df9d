"""A bounded window of APP messages in flight to one follower.

Theory of operation. In the replicate state the leader sends APP messages
without waiting for each ACK (pipelining). Each message in flight is
remembered by the last index it carried. An ACK for index ``i`` frees every
message whose last index is ``<= i``. When the window is full the leader stops
sending to that follower until an ACK (or a heartbeat response, which frees
one slot so a lost ACK cannot stall the stream forever) arrives.
"""

from collections import deque


class Inflights:
    def __init__(self, size_max: int) -> None:
        assert size_max >= 1
        self.size_max = size_max
        # Invariant: strictly increasing; len(self._last_indexes) <= size_max.
        self._last_indexes: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._last_indexes)

    def full(self) -> bool:
        return len(self._last_indexes) >= self.size_max

    def add(self, last_index: int) -> None:
        assert not self.full(), "the caller checks full() before sending"
        assert not self._last_indexes or last_index > self._last_indexes[-1], "in-flight indexes only grow"
        self._last_indexes.append(last_index)

    def free_le(self, index: int) -> None:
        """Free every message whose entries are all at or below ``index`` (acknowledged)."""
        while self._last_indexes and self._last_indexes[0] <= index:
            self._last_indexes.popleft()

    def free_first_one(self) -> None:
        if self._last_indexes:
            self._last_indexes.popleft()

    def reset(self) -> None:
        self._last_indexes.clear()

    def as_tuple(self) -> tuple[int, ...]:
        return tuple(self._last_indexes)
