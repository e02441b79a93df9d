"""Keyless commands sent to any node: ``dbsize``, ``scan`` and ``flushall``.

* ``phantom``: ``SCAN`` returned a key that no write (``ok`` or ``info``) in the
  history touched, or ``DBSIZE`` counted more keys than all writes together
  could have created. Drills start from an empty cluster, so every key a node
  holds was written by the workload.
* ``unsafe-flushall``: a ``FLUSHALL`` sent to a node that had just said it was
  a replica (``ROLE`` and ``CLUSTER NODES``) completed ``ok``. A replica must
  refuse it (``-READONLY``): a write executed outside the primary forks the
  replica's history from its shard's (DESIGN §5.1). If the node was in fact a
  primary, it described itself wrongly, and its shard's keys were wiped: later
  lost writes on that shard follow from this finding.
"""

from __future__ import annotations

from collections.abc import Sequence

from .finding import Finding
from .history import FAMILY_OF, Op


def check_keyless(ops: Sequence[Op]) -> list[Finding]:
    written = {op.key for op in ops if op.is_write and op.status != "fail" and FAMILY_OF[op.f] != "keyless"}
    findings: list[Finding] = []
    for op in ops:
        if not op.ok or FAMILY_OF[op.f] != "keyless":
            continue
        if op.f == "flushall":
            message = f"{op.describe()}: a node that said it was a replica executed FLUSHALL"
            findings.append(Finding("unsafe-flushall", op.key, message, (op.index,)))
        elif op.f == "scan":
            findings += [
                Finding("phantom", op.key, f"{op.describe()} returned {k!r}, which no write touched", (op.index,), k)
                for k in op.value or ()
                if k not in written
            ]
        elif op.f == "dbsize" and int(op.value) > len(written):
            message = f"{op.describe()} counted {op.value} keys; all writes together touched {len(written)}"
            findings.append(Finding("phantom", op.key, message, (op.index,), op.value))
    return findings
