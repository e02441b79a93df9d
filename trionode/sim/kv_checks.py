"""What a client may see: every reply of the failover simulation, checked against the acknowledged log.

Theory of operation
-------------------
:class:`Reference` replays the acknowledged log (``FailoverChecker.acked``:
what any primary ever acknowledged, in offset order) into the real keyspace,
with no clock (replay decides no expiry), and keeps for every key the states
it went through: ``(offset, canonical value, deadline)``, plus the offsets of
the keyspace-wide writes (FLUSHALL) and the key count after each offset. The
keyspace's own semantics (what INCR does) are its unit tests' business; what
is checked here is *which* state of the log a reply shows, and that is exactly
checkable:

- **window.** A reply shows the state of some offset ``X`` of the acknowledged
  log with ``lo <= X <= hi``. ``hi`` is the acknowledged length when the reply
  leaves the node: nothing unacknowledged is ever visible (DESIGN §5.4),
  primary or replica. ``lo`` is, for a read on the primary, the acknowledged
  length when the command arrived (linearizable); for a ``READONLY`` read on a
  replica, the offset of the client's own last acknowledged write *that was
  acknowledged with that replica in the ISR* (the write was durable there
  before the ack, and a replica's log is never cut below an acknowledged
  offset). A replica outside that ISR may be arbitrarily stale: only ``hi``
  binds it. Anything stronger ("not older than the client's last write",
  whatever ISR) the node does not promise: a replica the primary shrank out of
  the ISR keeps its view, and so its read rights, until it learns of the shrink;
- **expiry.** A key whose deadline has passed on the serving node's own wall
  clock reads as absent (a primary deletes it and logs the DEL first, a
  replica only hides it): a state shows a value only while ``now <= deadline``;
- **write replies** (INCR, APPEND, RPUSH) agree with the state at the write's
  own offset; **DBSIZE** equals the key count at some offset of the window.

The counts and the per-key states are what the keyspace holds *including*
expired keys not yet deleted, as DBSIZE counts them.
"""

import bisect
from collections import deque
from collections.abc import Callable
from typing import Any

from trionode.core.data_state import DataState
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.sim.data_disk import Effect
from trionode.sim.invariants import InvariantViolation

State = tuple[Any, int | None]  # (canonical value or None, deadline in wall ms or None)
ABSENT: State = (None, None)


def canonical(value: Any) -> Any:
    """A hashable, order-faithful form of a keyspace value or of a read's reply."""
    if value is None or isinstance(value, bytes | int):
        return value
    if isinstance(value, deque | list | tuple):
        return tuple(value)
    if isinstance(value, dict):
        return frozenset(value.items())
    return frozenset(value)


def visible(state: State, now_ms: int, empty: Any) -> Any:
    """What a read at wall time ``now_ms`` shows of ``state``: ``empty`` once it is past its deadline."""
    value, deadline = state
    if value is None or (deadline is not None and now_ms > deadline):
        return empty
    return value


class Reference:
    """The acknowledged log replayed into the real keyspace, with the states each key went through."""

    def __init__(self) -> None:
        self.data = DataState()
        self.offsets: dict[bytes, list[int]] = {}  # key -> offsets that wrote it, ascending
        self.states: dict[bytes, list[State]] = {}  # key -> its state after each of those offsets
        self.flushes = [0]  # offsets of keyspace-wide writes (0: the empty start)
        self.counts = [0]  # counts[o]: keys held after offset o

    @property
    def length(self) -> int:
        return len(self.counts) - 1

    def extend(self, acked: list[Effect]) -> None:
        """Replay ``acked[length:]``."""
        data, ks = self.data, self.data.keyspace
        for offset in range(self.length + 1, len(acked) + 1):
            effect = list(acked[offset - 1])
            data.replay(offset, effect)
            data.visibility.advance(offset)  # the reference's own bookkeeping: nothing waits here
            keys = KEYSPACE_COMMANDS[effect[0].decode().lower()].key_positions(len(effect))
            for key in (effect[i] for i in keys):
                self.offsets.setdefault(key, []).append(offset)
                self.states.setdefault(key, []).append((canonical(ks.data.get(key)), ks.expires.get(key)))
            if not keys:
                self.flushes.append(offset)
            self.counts.append(len(ks))

    def state_at(self, key: bytes, offset: int) -> State:
        offsets = self.offsets.get(key, [])
        i = bisect.bisect_right(offsets, offset) - 1
        flush = self.flushes[bisect.bisect_right(self.flushes, offset) - 1]
        return ABSENT if i < 0 or offsets[i] < flush else self.states[key][i]

    def states_between(self, key: bytes, lo: int, hi: int) -> list[State]:
        """Every state ``key`` had at some offset in ``[lo, hi]``."""
        out = [self.state_at(key, lo)]
        offsets = self.offsets.get(key, [])
        if offsets:
            out += self.states[key][bisect.bisect_right(offsets, lo) : bisect.bisect_right(offsets, hi)]
        if bisect.bisect_right(self.flushes, hi) > bisect.bisect_right(self.flushes, lo):
            out.append(ABSENT)
        return out


# Per read command: what it shows of a missing key.
READ_EMPTY: dict[bytes, Any] = {b"GET": None, b"LRANGE": (), b"HGETALL": frozenset(), b"SMEMBERS": frozenset()}
# Per write command whose reply is derived from the state it leaves: that derivation.
WRITE_REPLY: dict[bytes, Callable[[Any], Any]] = {
    b"INCR": lambda value: int(value),
    b"APPEND": lambda value: len(value),
    b"RPUSH": lambda value: len(value),
}


class KVChecker:
    def __init__(self, acked: list[Effect], name_of: Callable[[str], str]) -> None:
        self.acked = acked  # the failover checker's list: it only grows
        self.reference = Reference()
        self._name = name_of

    def fail(self, message: str) -> None:
        raise InvariantViolation(message)

    def acked_length(self) -> int:
        self.reference.extend(self.acked)
        return self.reference.length

    def check_read(self, who: str, argv: list[bytes], reply: Any, now_ms: int, lo: int) -> None:
        """A keyed read's reply, released now, shows a state of ``[lo, acknowledged]`` as of ``now_ms``.

        The failure names what the reply shows instead: a state past its deadline (expired read),
        one older than ``lo`` (stale read), or none acknowledged (unacknowledged read).
        """
        hi, key, empty = self.acked_length(), argv[1], READ_EMPTY[argv[0]]
        window = self.reference.states_between(key, lo, hi)
        reply = canonical(reply)
        if reply not in {visible(s, now_ms, empty) for s in window}:
            if reply in {empty if value is None else value for value, _ in window}:
                what = "expired read"  # the value is there, but past its deadline on this node's clock
            elif reply in {visible(s, now_ms, empty) for s in self.reference.states_between(key, 0, lo)}:
                what = "stale read"  # older than the window allows
            else:
                what = "unacknowledged read"
            self.fail(f"{what}: {self._name(who)} answers {b' '.join(argv)!r} with {reply!r} at wall {now_ms}, "
                      f"no acknowledged state of offsets {lo}..{hi} shows that")  # fmt: skip

    def check_dbsize(self, who: str, reply: int, lo: int) -> None:
        hi = self.acked_length()
        counts = self.reference.counts
        if reply not in counts[lo : hi + 1]:
            what = "stale read" if reply in counts[:lo] else "unacknowledged read"
            self.fail(f"{what}: {self._name(who)} answers DBSIZE {reply}, no acknowledged offset of {lo}..{hi} "
                      f"held that many keys")  # fmt: skip

    def check_write(self, who: str, argv: list[bytes], reply: Any, offset: int) -> None:
        """A write's reply, released now, agrees with the acknowledged state at its own offset."""
        if offset > self.acked_length():
            self.fail(f"write reply: {self._name(who)} acknowledges {b' '.join(argv)!r} at {offset}, "
                      f"only {self.reference.length} acknowledged")  # fmt: skip
        derive = WRITE_REPLY.get(argv[0])
        value = self.reference.state_at(argv[1], offset)[0] if derive is not None else None
        if derive is not None and value is not None and derive(value) != reply:
            self.fail(f"write reply: {self._name(who)} answers {b' '.join(argv)!r} with {reply!r}, the "
                      f"acknowledged state at offset {offset} says {derive(value)!r}")  # fmt: skip
