"""Counters: ``incr`` (replies with the new count) and ``intget`` (``GET`` of the count).

A counter's value is the number of increments applied. For an ``ok``
observation ``x`` (an ``incr``'s reply or a read's value, ``None`` = 0) of op
``X``, with "A precedes B" meaning A completed before B was invoked:

* ``phantom``: ``x`` exceeds the number of ``ok``/``info`` increments invoked
  before ``X`` completed (more than could have been applied).
* ``duplicate``: two acknowledged increments replied the same count (one of
  them was applied twice, or one was lost and replaced).
* ``stale-read`` / ``lost`` (the final read): ``x`` is below a floor: the number
  of acknowledged increments that precede ``X``, or any observation of an op
  that precedes ``X`` (counters only grow); an ``incr`` must moreover exceed
  both, since it adds itself.

Each rule follows from linearizability of the counter, so a correct server never fails one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .finding import Finding
from .history import Op


def _observed(op: Op) -> int:
    return int(op.result) if op.f == "incr" else int(op.value or 0)


def check_counter_key(key: str, ops: Sequence[Op]) -> list[Finding]:
    incrs = [op for op in ops if op.f == "incr"]
    possible = [op for op in incrs if op.status != "fail"]
    observed = [(op, _observed(op)) for op in ops if op.ok and (op.f == "intget" or op.result is not None)]
    reads = [op for op, _ in observed if op.f == "intget"]
    final = max(reads, key=lambda r: (r.invoke, r.index), default=None)
    findings = [
        Finding("duplicate", key, f"{n} acknowledged increments replied {count}", (), count)
        for count, n in Counter(x for op, x in observed if op.f == "incr").items()
        if n > 1
    ]
    for op, x in observed:
        ceiling = sum(1 for p in possible if p.invoke < op.complete)
        if x > ceiling:
            message = f"{op.describe()} observed {x}, but only {ceiling} increments could have been applied"
            findings.append(Finding("phantom", key, message, (op.index,), x))
            continue
        floor = sum(1 for p in incrs if p.ok and p.complete < op.invoke)
        floor = max([floor, *(y for other, y in observed if other.complete < op.invoke)])
        if x < floor or (op.f == "incr" and x <= floor):
            kind = "lost" if op is final else "stale-read"
            message = f"{op.describe()} observed {x}, below {floor} seen before"
            findings.append(Finding(kind, key, message, (op.index,), x))
    return findings
