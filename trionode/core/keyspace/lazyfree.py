"""Freeing big values in bounded steps, off the command that dropped them (UNLINK semantics).

Theory of operation
-------------------
Dropping the last reference to a set of a million members makes CPython free
every member before the statement returns, and the event loop with it stalls
for every client. So the keyspace never drops a big aggregate itself: DEL,
UNLINK, an overwriting SET, expiry and FLUSHALL hand it to :class:`Garbage`,
and the shell calls :meth:`Garbage.release` between commands, each call
freeing at most a bounded number of members. A value is big when it holds more
than ``lazyfree_members_min`` members (Redis's LAZYFREE_THRESHOLD); smaller
ones are cheaper to free at once than to queue.

FLUSHALL hands over the whole old key dict: releasing it pops its entries and
queues any big value found among them, so no step frees more than its budget
of members (plus one string, which CPython frees in one call however long).

What is garbage is already gone from the keyspace: no read, snapshot or
effect ever sees it. Only memory is reclaimed late.
"""

from collections import deque
from typing import Any

from trionode import limits

lazyfree_members_min = limits.lazyfree_members_min
_AGGREGATES = frozenset((deque, dict, set))


def is_big(value: Any) -> bool:
    # An exact type test: this runs once per member of a flushed keyspace.
    return type(value) in _AGGREGATES and len(value) > lazyfree_members_min


class Garbage:
    """Containers waiting to be freed. Invariant: none of them is reachable from the keyspace."""

    __slots__ = ("_queue", "members")

    def __init__(self) -> None:
        self._queue: deque[deque | dict | set] = deque()
        self.members = 0  # members still held, for INFO (lazyfree_pending_objects)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def discard(self, value: Any) -> None:
        """Drop ``value``: at once if small, later (in steps) if big."""
        if is_big(value):
            self._queue.append(value)
            self.members += len(value)

    def discard_dict(self, data: dict) -> None:
        """Drop a whole key dict (FLUSHALL): its entries, and the big values among them, later."""
        if data:
            self._queue.append(data)
            self.members += len(data)

    def release(self, budget: int) -> int:
        """Free at most ``budget`` members; return how many were freed."""
        assert budget > 0
        freed = 0
        queue = self._queue
        while queue and freed < budget:
            container = queue[0]  # big values found inside it are queued behind it
            freed += self._release_from(container, budget - freed)
            if not container:
                queue.popleft()
        self.members -= freed
        assert self.members >= 0
        return freed

    def _release_from(self, container: deque | dict | set, budget: int) -> int:
        count = min(budget, len(container))
        if type(container) is dict:
            popitem, discard = container.popitem, self.discard
            for _ in range(count):
                discard(popitem()[1])  # a big value inside a flushed key dict waits its turn
        else:
            pop = container.pop
            for _ in range(count):
                pop()
        return count
