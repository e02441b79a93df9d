"""A simulated network: delay, loss, reordering, duplication and partitions.

Theory of operation
-------------------
``send`` puts a message in flight with a delivery time drawn from the delay
range (in ticks) and a random tie-break key, so messages between the same two
nodes can overtake each other (reordering). A message may be lost at send, or
duplicated: the copy gets its own delay. ``deliver_due`` hands back, in
(delivery time, tie-break) order, every message whose time has come.

Partitions are a set of blocked directed links ``(frm, to)``. A symmetric
partition blocks both directions between two groups; an asymmetric one blocks
one direction only (A reaches B, B does not reach A). A link is checked at
delivery time, so a message already in flight when a partition starts is lost
too, as it would be on a real cut cable. ``heal`` clears every block.

Invariant: at most ``in_flight_max`` messages are in flight; a send beyond
that is dropped and counted, never queued.

What this leaves to the runner: whether the receiver is up (a message to a
crashed node is dropped by the runner and reported back with ``drop_down``).
"""

import bisect
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class Addressed(Protocol):
    @property
    def frm(self) -> str: ...

    @property
    def to(self) -> str: ...


M = TypeVar("M", bound=Addressed)


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    delay_ticks_min: int = 0
    delay_ticks_max: int = 3
    loss_probability: float = 0.02
    duplicate_probability: float = 0.02
    in_flight_max: int = 20_000

    def __post_init__(self) -> None:
        assert 0 <= self.delay_ticks_min <= self.delay_ticks_max, self
        assert 0.0 <= self.loss_probability < 1.0 and 0.0 <= self.duplicate_probability < 1.0, self
        assert self.in_flight_max > 0


@dataclass(slots=True)
class NetworkStatistics:
    sent: int = 0
    delivered: int = 0
    dropped_loss: int = 0
    dropped_partition: int = 0
    dropped_down: int = 0
    dropped_full: int = 0
    duplicated: int = 0
    partitions: int = 0
    heals: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_loss + self.dropped_partition + self.dropped_down + self.dropped_full


class SimNetwork(Generic[M]):
    """Messages in flight between named nodes, under one seeded Random."""

    def __init__(self, rng: random.Random, config: NetworkConfig | None = None) -> None:
        self._rng = rng
        self.config = config or NetworkConfig()
        # Sorted by (deliver_at_ticks, tie_break, sequence); sequence makes keys unique.
        self._in_flight: list[tuple[int, float, int, M]] = []
        self._sequence = 0
        self._blocked: set[tuple[str, str]] = set()
        self.stats = NetworkStatistics()

    def send(self, msg: M, now_ticks: int) -> None:
        self.stats.sent += 1
        if self._rng.random() < self.config.loss_probability:
            self.stats.dropped_loss += 1
            return
        copies = 2 if self._rng.random() < self.config.duplicate_probability else 1
        self.stats.duplicated += copies - 1
        for _ in range(copies):
            if len(self._in_flight) >= self.config.in_flight_max:
                self.stats.dropped_full += 1
                continue
            delay_ticks = self._rng.randint(self.config.delay_ticks_min, self.config.delay_ticks_max)
            self._sequence += 1
            item = (now_ticks + delay_ticks, self._rng.random(), self._sequence, msg)
            bisect.insort(self._in_flight, item, key=lambda it: it[:3])

    def deliver_due(self, now_ticks: int) -> list[M]:
        """Every in-flight message due at or before ``now_ticks`` whose link is open, in delivery order."""
        split = bisect.bisect_right(self._in_flight, now_ticks, key=lambda it: it[0])
        due, self._in_flight = self._in_flight[:split], self._in_flight[split:]
        out = []
        for _, _, _, msg in due:
            if (msg.frm, msg.to) in self._blocked:
                self.stats.dropped_partition += 1
            else:
                out.append(msg)
        self.stats.delivered += len(out)
        return out

    def drop_down(self, count: int = 1) -> None:
        """The runner dropped ``count`` delivered messages because the receiver was down."""
        self.stats.delivered -= count
        self.stats.dropped_down += count

    def in_flight_count(self) -> int:
        return len(self._in_flight)

    def partition(self, side_a: Iterable[str], side_b: Iterable[str], *, symmetric: bool) -> None:
        """Block a -> b (and b -> a when ``symmetric``) for every a in side_a, b in side_b."""
        side_a, side_b = sorted(side_a), sorted(side_b)
        assert not set(side_a) & set(side_b), (side_a, side_b)
        for a in side_a:
            for b in side_b:
                self._blocked.add((a, b))
                if symmetric:
                    self._blocked.add((b, a))
        self.stats.partitions += 1

    def heal(self) -> None:
        if self._blocked:
            self.stats.heals += 1
        self._blocked.clear()

    def is_blocked(self, frm: str, to: str) -> bool:
        return (frm, to) in self._blocked

    def blocked_links(self) -> list[tuple[str, str]]:
        return sorted(self._blocked)
