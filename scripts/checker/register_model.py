"""The sequential model of one register key, with expiry: what the linearizability search steps.

State
-----
``None`` (the key is absent) or ``(value, earliest_s, latest_s)``: the key
holds ``value`` and, if it has a time-to-live, its deadline lies somewhere in
``[earliest_s, latest_s]`` on the history's clock (both ``inf``: no deadline).

The expiry rule (how a deadline is bounded)
-------------------------------------------
The server sets a deadline from its own wall clock when it executes
``SET ... PX t`` or ``EXPIRE k s``; the history only knows the operation's
interval ``[invoke, complete]`` on the client's monotonic clock. The server's
clock may differ from the client's, and from another node's (a replica that
inherits the deadline, a node whose clock a drill steps), by at most
``margin_s``. So the deadline ``D`` satisfies::

    invoke + ttl - margin_s  <=  D  <=  complete + ttl + margin_s

(``complete`` is +inf for an unknown outcome). A read linearized at ``t``
sees the key iff ``t < D``. A read has some ``t`` in ``[invoke, complete]``,
hence:

* it may return the value only if ``invoke < latest_s`` (else the key was
  certainly past its deadline for the whole read: an expired key was served);
* it may return "absent" only if ``complete > earliest_s`` (else the key
  certainly had time left: it vanished before its deadline).

A read that returned "absent" moves the state to ``None``: expiry is for good
(a key never comes back without a write). Every rule errs towards accepting:
with ``margin_s`` at least the true clock uncertainty, a correct server is
never accused.

An operation with an unknown outcome (``info``) has no reply to check; its
completion is +inf, so the search may place it anywhere after its invocation,
including after every other operation, which is the same as "it never
happened".
"""

from __future__ import annotations

import math
from collections.abc import Hashable

from .history import Op

INF = math.inf
State = Hashable  # None | tuple[value, earliest_s, latest_s]


def initial_state(value: Hashable) -> State:
    return None if value is None else (value, INF, INF)


def _present(state: State, op: Op) -> bool:
    """The key may be present at some point of ``op``."""
    return state is not None and op.invoke < state[2]  # type: ignore[index]


def _absent(state: State, op: Op) -> bool:
    """The key may be absent at some point of ``op``."""
    return state is None or op.complete > state[1]  # type: ignore[index]


def _deadline(op: Op, ttl_ms: float | None, margin_s: float) -> tuple[float, float]:
    if ttl_ms is None:
        return INF, INF
    ttl_s = ttl_ms / 1000
    return op.invoke + ttl_s - margin_s, op.complete + ttl_s + margin_s


def step(state: State, op: Op, margin_s: float) -> tuple[bool, State]:
    """Apply ``op`` to ``state``: (whether its reply is possible, the state after)."""
    f = op.f
    if f == "set":
        return True, (op.value, *_deadline(op, op.arg, margin_s))
    if f == "get":
        if op.value is None:
            return _absent(state, op), None
        return _present(state, op) and state[0] == op.value, state  # type: ignore[index]
    if f == "exists":
        return (_present(state, op) if op.value else _absent(state, op)), (state if op.value else None)
    known = op.status == "ok"  # an unknown outcome has no reply to check
    if f == "del":
        return (not known or (_present(state, op) if op.result else _absent(state, op))), None
    if f == "expire":
        if known and not op.result:
            return _absent(state, op), None
        if state is None:
            return not known, None
        return (not known or _present(state, op)), (state[0], *_deadline(op, op.arg, margin_s))  # type: ignore[index]
    raise ValueError(f"no register model for {op.describe()}")
