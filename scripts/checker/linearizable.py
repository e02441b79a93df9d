"""Per-key linearizability of registers: a Wing-Gong/Lowe search (as in porcupine).

Method
------
The operations on one key (``set`` and ``get``) become *call* and *return*
events sorted by time (at equal times calls sort first, so touching intervals
count as concurrent). The events form a doubly linked list. A depth-first
search repeatedly picks a call that appears before the first remaining return
event — i.e. an operation no remaining operation has to precede in real time —
and tries to apply it to the sequential register model
(:mod:`.register_model`: ``set``, ``get``, ``del``, ``exists``, ``expire``,
with time-to-live deadlines bounded by the operations' intervals and a clock
margin):

* ``set(v)`` always succeeds and makes the state ``v``;
* ``get() -> v`` succeeds only if the state is ``v`` (``None`` = absent key,
  or a key whose deadline may have passed).

A successful step "lifts" the operation (removes its call and return from the
list) and descends; when the head of the list is a return event, the operation
it belongs to could not be linearized at any point before it, so the search
backtracks. Lowe's memoization prunes the search: a pair (bitset of linearized
operations, model state) already explored is never explored again.

Outcomes:

* ``fail`` operations definitely did not happen and are dropped;
* ``info`` writes (unknown outcome) get a completion time of +infinity, so they
  may be linearized anywhere after their invocation — or, in effect, never,
  since after the last real return they can be appended in any order; on a
  key with only ``set``/``get``, those whose value was never read are dropped
  first (see :func:`register_ops`);
* reads that did not complete ``ok`` are dropped (they observed nothing).

Each key is searched separately (linearizability is compositional), with a
bound on search steps; a key that exceeds it is reported ``unknown``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from .history import Op
from .register_model import initial_state, step

DEFAULT_MAX_STEPS = 1_000_000
# How far a node's wall clock may be from the client's monotonic one when no clock is
# stepped: a drill runs every node and the client on one machine, one system clock, so
# this only covers the wall clock's slew against the monotonic clock (at most 500 ppm,
# 2.5 ms over a 5 s deadline) with room to spare.
DEFAULT_CLOCK_MARGIN_S = 0.1
PLAIN = frozenset(("set", "get"))


@dataclass
class LinearizabilityResult:
    """The verdict for one key: ``"yes"``, ``"no"`` or ``"unknown"`` (step bound hit)."""

    key: str
    verdict: str
    ops: int
    steps: int
    # On "no": the operations of the longest linearizable prefix found, in order,
    # and the operations still pending at that point.
    best_prefix: list[Op]
    stuck: list[Op]


class _Entry:
    __slots__ = ("id", "is_call", "match", "next", "op", "prev", "time")

    def __init__(self, id_: int, op: Op | None, time: float, is_call: bool) -> None:
        self.id = id_
        self.op = op
        self.time = time
        self.is_call = is_call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _lift(call: _Entry) -> None:
    assert call.prev is not None and call.match is not None
    call.prev.next = call.next
    if call.next is not None:
        call.next.prev = call.prev
    ret = call.match
    assert ret.prev is not None
    ret.prev.next = ret.next
    if ret.next is not None:
        ret.next.prev = ret.prev


def _unlift(call: _Entry) -> None:
    ret = call.match
    assert ret is not None and ret.prev is not None and call.prev is not None
    ret.prev.next = ret
    if ret.next is not None:
        ret.next.prev = ret
    call.prev.next = call
    if call.next is not None:
        call.next.prev = call


def register_ops(ops: Sequence[Op]) -> list[Op]:
    """The operations of one key that the register search considers.

    An ``info`` write whose value no ``ok`` read returned is dropped: if some
    linearization includes it, removing it changes no read's result (no read
    sits between it and the next write, or it would have returned its value),
    so the history is linearizable with it iff it is without it. Each such
    write otherwise multiplies the search, and a crashed primary leaves many.
    That argument needs a key of plain ``set``/``get``: an unread write with a
    time-to-live, or one that a later ``EXPIRE``/``EXISTS``/``DEL`` saw, does
    explain replies, so on other keys every unknown write is kept. Replica reads
    (``rget``) are judged elsewhere (:mod:`.replica`).
    """
    modelled = [op for op in ops if op.f != "rget" and op.status != "fail"]
    plain = all(op.f in PLAIN and op.arg is None for op in modelled)
    read = {op.value for op in modelled if op.f == "get" and op.ok}
    return [op for op in modelled if op.ok or (op.is_write and not (plain and op.value not in read))]


def check_register(
    key: str,
    ops: Sequence[Op],
    initial: Hashable = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    clock_margin_s: float = DEFAULT_CLOCK_MARGIN_S,
) -> LinearizabilityResult:
    """Decide whether the register operations on one key are linearizable."""
    ops = register_ops(ops)
    n = len(ops)
    events: list[tuple[float, int, int, _Entry]] = []
    for i, op in enumerate(ops):
        call = _Entry(i, op, op.invoke, True)
        ret = _Entry(i, None, op.complete, False)
        call.match = ret
        events.append((op.invoke, 0, i, call))
        events.append((op.complete if op.complete != math.inf else math.inf, 1, i, ret))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    head = _Entry(-1, None, -math.inf, False)
    prev = head
    for _, _, _, entry in events:
        prev.next = entry
        entry.prev = prev
        prev = entry

    state: Hashable = initial_state(initial)
    linearized = 0
    cache: set[tuple[int, Hashable]] = set()
    stack: list[tuple[_Entry, Hashable]] = []
    best: list[Op] = []
    steps = 0
    entry = head.next
    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return LinearizabilityResult(key, "unknown", n, steps, [], [])
        assert entry is not None
        if entry.is_call:
            assert entry.op is not None
            ok, new_state = step(state, entry.op, clock_margin_s)
            if ok:
                new_linearized = linearized | (1 << entry.id)
                if (new_linearized, new_state) not in cache:
                    cache.add((new_linearized, new_state))
                    stack.append((entry, state))
                    state = new_state
                    linearized = new_linearized
                    _lift(entry)
                    if len(stack) > len(best):
                        best = [e.op for e, _ in stack if e.op is not None]
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if not stack:
                stuck = _pending(ops, best)
                return LinearizabilityResult(key, "no", n, steps, best, stuck)
            top, state = stack.pop()
            linearized &= ~(1 << top.id)
            _unlift(top)
            entry = top.next
    return LinearizabilityResult(key, "yes", n, steps, [], [])


def _pending(ops: Sequence[Op], done: Sequence[Op]) -> list[Op]:
    seen = {op.index for op in done}
    return [op for op in ops if op.index not in seen and op.complete != math.inf]
