"""Replica reads: what the checker verifies about a ``READONLY`` ``GET`` on a replica (``rget``), and why.

A replica serves reads only while it is in the shard's in-sync set, and only
up to the acknowledged offset its primary streams to it (DESIGN §5.4). Its
reads may be stale, so they are not part of the linearizability search. For a
replica read ``r`` of key ``k`` by client ``c`` that returned ``v``:

R1, never uncommitted. ``v`` is ``None`` or the value of a ``set`` on ``k``
    whose outcome is ``ok`` or ``info`` and which was invoked before ``r``
    completed. A value that only a failed write produced (one refused, or still
    in flight and then lost), or that no write produced, is a ``phantom``.
R2, served means committed. The write ``W`` that produced ``v`` is treated, in
    the key's linearizability search, as acknowledged no later than ``r``
    completed (an ``info`` write becomes ``ok`` with that completion time). If
    ``v`` later vanishes from the primary, the search fails.
R3, read your writes. Let ``W`` be the last ``set`` on ``k`` acknowledged to
    ``c`` before ``r`` was invoked. ``r`` must not return the value of a write
    ``X`` that precedes ``W`` (``X`` completed before ``W`` was invoked), and,
    on a key that no ``del``, ``expire`` or time-to-live touches, must not
    return ``None``. Either is a ``stale-read``.
R4, never past its deadline. If the ``set`` ``W`` that produced ``v`` had a
    time-to-live, ``v``'s latest possible deadline is the latest of ``W``'s and
    of every ``expire`` on ``k`` that does not precede ``W`` (completed after
    ``W`` was invoked) and was invoked before ``r`` completed, each
    ``complete + ttl + margin`` (the expiry rule of
    :mod:`.register_model`). ``r`` invoked at or after it is an
    ``expired-read``.

Why a correct server never fails these (soundness):

* R1: a replica holds only records its primary streamed, and a record is a
  write the primary executed, which the client invoked. Serving stops at the
  acknowledged offset, so a record past it (one that may still be lost, the
  only way a failed write's value could exist anywhere) is never served.
* R2: ``W`` took effect (its linearization point, its execution on the
  primary) before its record was acknowledged, which happened before the
  replica served it, which happened before ``r`` completed. So every
  linearization of the real execution also satisfies the tightened interval
  of ``W``: the strengthened history is linearizable whenever the real one is.
* R4: a replica hides a key whose deadline has passed on its clock (DESIGN
  §5.1), whatever the age of the state it serves. In that state ``v``'s
  deadline was set by ``W`` or by an ``EXPIRE`` applied while ``v`` was the
  value, so one that took effect after ``W`` (it did not precede ``W``) and
  before the state was served (it was invoked before ``r`` completed); the
  expiry rule bounds each such deadline by the latest above. A replica that
  honours it never returns ``v`` to a read that began past it.
* R3: ``W`` was acknowledged before ``r`` began, so it was durable on every
  in-sync member, and the replica, which serves only while in that set, serves
  a prefix of the linearization order that contains ``W``. In that prefix the
  key's value is that of ``W`` or of a write linearized after ``W``. ``X``
  precedes ``W`` in real time, so it is linearized before ``W`` and its value
  (values are unique) cannot be the prefix's last. Without deletes and
  deadlines nothing after ``W`` makes the key absent, so ``None`` is impossible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .finding import Finding
from .history import INF, Op


def check_replica_reads(key: str, ops: Sequence[Op], margin_s: float) -> tuple[list[Finding], list[Op]]:
    """R1, R3 and R4 findings for the key's ``rget`` s, and its operations strengthened by R2."""
    sets = [op for op in ops if op.f == "set"]
    written = {w.value: w for w in sets if w.status != "fail"}
    plain = all(op.f in ("set", "get", "rget") and op.arg is None for op in ops)
    served_by: dict[int, float] = {}
    findings: list[Finding] = []
    for r in (op for op in ops if op.f == "rget" and op.ok):
        w = written.get(r.value)
        if r.value is not None and (w is None or w.invoke > r.complete):
            message = f"replica read {r.describe()} returned an uncommitted value"
            findings.append(Finding("phantom", key, message, (r.index,), r.value))
            continue
        if w is not None:
            served_by[w.index] = min(served_by.get(w.index, w.complete), r.complete)
            deadline = _latest_deadline(w, r, ops, margin_s)
            if r.invoke >= deadline:
                message = f"replica read {r.describe()} returned a value past its latest deadline {deadline:g}"
                findings.append(Finding("expired-read", key, message, (w.index, r.index), r.value))
        own = [s for s in sets if s.ok and s.client == r.client and s.complete < r.invoke]
        last = max(own, key=lambda s: s.complete, default=None)
        if last is not None and _older(w, last, plain):
            what = "nothing" if w is None else w.describe()
            message = f"replica read {r.describe()} returned {what}, older than the client's acked {last.describe()}"
            findings.append(Finding("stale-read", key, message, (last.index, r.index), r.value))
    strengthened = [
        replace(op, status="ok", complete=served_by[op.index]) if op.index in served_by else op for op in ops
    ]
    return findings, strengthened


def _latest_deadline(w: Op, r: Op, ops: Sequence[Op], margin_s: float) -> float:
    if w.arg is None:
        return INF
    expires = [e for e in ops if e.f == "expire" and e.status != "fail" and e.complete > w.invoke
               and e.invoke < r.complete]  # fmt: skip
    return max(op.complete + op.arg / 1000 + margin_s for op in [w, *expires])


def _older(source: Op | None, own: Op, plain: bool) -> bool:
    if source is None:
        return plain
    return source.complete < own.invoke
