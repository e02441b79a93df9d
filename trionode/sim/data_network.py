"""The data plane's network: per-link FIFO, with loss, duplication, rare reordering and partitions.

Theory of operation
-------------------
The replication stream runs over one connection per replica, so it is mostly
ordered: a message is delivered ``delay`` ticks after it is sent, but never
before an earlier message on the same link (``frm -> to``). Faults on top:

- **loss**: the message never arrives (a connection broke and took it along);
- **duplication**: a second copy arrives later (a retransmission by a shell);
- **reordering**: with ``reorder_probability`` a message is held back by up to
  ``reorder_ticks_max`` extra ticks and later messages on the link overtake it
  (a delayed message from an older connection);
- **partitions**: a blocked link drops what is delivered while it is blocked.

(The control plane's :class:`~trionode.sim.network.SimNetwork` reorders every
message freely, which suits Raft; a snapshot stream under it would almost
never complete.) Messages are kept sorted by (delivery tick, send sequence),
so the order is a pure function of the seed. Invariant: at most
``in_flight_max`` messages are in flight; a send beyond that is dropped.
"""

import bisect
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic

from trionode.sim.network import M


@dataclass(frozen=True, slots=True)
class LinkConfig:
    delay_ticks_min: int = 0
    delay_ticks_max: int = 3
    loss_probability: float = 0.02
    duplicate_probability: float = 0.01
    reorder_probability: float = 0.02
    reorder_ticks_max: int = 6
    in_flight_max: int = 10_000

    def __post_init__(self) -> None:
        assert 0 <= self.delay_ticks_min <= self.delay_ticks_max and self.reorder_ticks_max >= 1, self
        assert 0.0 <= self.loss_probability < 1.0 and 0.0 <= self.duplicate_probability < 1.0, self


@dataclass(slots=True)
class LinkStatistics:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0  # lost, cut off by a partition, to a down node, or over the bound
    duplicated: int = 0
    reordered: int = 0


class LinkNetwork(Generic[M]):
    def __init__(self, rng: random.Random, config: LinkConfig | None = None) -> None:
        self._rng = rng
        self.config = config or LinkConfig()
        self._in_flight: list[tuple[int, int, M]] = []  # sorted by (deliver at tick, sequence)
        self._sequence = 0
        self._link_last: dict[tuple[str, str], int] = {}  # the latest in-order delivery tick per link
        self._blocked: set[tuple[str, str]] = set()
        self.stats = LinkStatistics()

    def send(self, msg: M, now_ticks: int) -> None:
        c, rng = self.config, self._rng
        self.stats.sent += 1
        if rng.random() < c.loss_probability:
            self.stats.dropped += 1
            return
        copies = 2 if rng.random() < c.duplicate_probability else 1
        self.stats.duplicated += copies - 1
        for _ in range(copies):
            at = now_ticks + rng.randint(c.delay_ticks_min, c.delay_ticks_max)
            link = (msg.frm, msg.to)
            if rng.random() < c.reorder_probability:
                at += rng.randint(1, c.reorder_ticks_max)  # held back; does not hold back the others
                self.stats.reordered += 1
            else:
                at = max(at, self._link_last.get(link, 0))
                self._link_last[link] = at
            self._enqueue(at, msg)

    def _enqueue(self, at: int, msg: M) -> None:
        if len(self._in_flight) >= self.config.in_flight_max:
            self.stats.dropped += 1
            return
        self._sequence += 1
        bisect.insort(self._in_flight, (at, self._sequence, msg), key=lambda item: item[:2])

    def deliver_due(self, now_ticks: int) -> list[M]:
        """Every message due by ``now_ticks`` whose link is open, in delivery order."""
        split = bisect.bisect_right(self._in_flight, now_ticks, key=lambda item: item[0])
        due, self._in_flight = self._in_flight[:split], self._in_flight[split:]
        out = [msg for _, _, msg in due if (msg.frm, msg.to) not in self._blocked]
        self.stats.dropped += len(due) - len(out)
        self.stats.delivered += len(out)
        return out

    def drop_down(self) -> None:
        """The caller dropped a delivered message: its receiver is down."""
        self.stats.delivered -= 1
        self.stats.dropped += 1

    def partition(self, side_a: Iterable[str], side_b: Iterable[str], *, symmetric: bool) -> None:
        for a in sorted(side_a):
            for b in sorted(side_b):
                self._blocked.add((a, b))
                if symmetric:
                    self._blocked.add((b, a))

    def unblock(self, side_a: Iterable[str], side_b: Iterable[str]) -> None:
        """Open the links between the two sides, both ways."""
        for a in side_a:
            for b in side_b:
                self._blocked.discard((a, b))
                self._blocked.discard((b, a))

    def is_blocked(self, frm: str, to: str) -> bool:
        return (frm, to) in self._blocked

    def heal(self) -> None:
        self._blocked.clear()

    def blocked_links(self) -> list[tuple[str, str]]:
        return sorted(self._blocked)
