"""The drill history checker: lost writes, phantoms, list anomalies, linearizability.

It imports nothing from ``trionode``. Input is a history in the format of
:mod:`scripts.checker.history`; output is a :class:`CheckResult` with structured
:class:`Finding` s and one summary line.

What each check means
---------------------
Writes with outcome ``fail`` never happened; ``info`` writes may or may not
have happened, at any time after their invocation (completion = +infinity).
"Acked" means outcome ``ok``. "A precedes B" means A completed before B was
invoked (real-time order). The *final read* of a key is its ``ok`` read with
the latest invocation time (a drill does one after healing the cluster).

* ``phantom``: a ``get`` returned, or an ``lrange`` contained, a value that no
  ``set`` / ``rpush`` on that key with outcome ``ok`` or ``info`` wrote. A value
  that only a ``fail`` write wrote is a phantom too.
* ``lost`` (register): an acked ``set`` W that precedes the final read R, where
  R returns nothing, or returns the value of a write that precedes W — so W's
  effect is gone. W is not reported if another acked write W2 with W ≺ W2 ≺ R
  exists (W was legitimately overwritten; W2 is the one reported).
* ``lost`` (list): an acked ``rpush`` that precedes the final ``lrange`` R but
  whose element is missing from R; or any element (even of an ``info`` push)
  seen in a read that precedes R but missing from R.
* ``stale-list-read``: a non-final ``lrange`` missing an element whose
  ``rpush`` was acked before the read was invoked, or an element returned by
  an earlier read that precedes it (lists only grow in the workload).
* ``list-order``: a read lists element b before element a although the push of
  a precedes the push of b (this covers one process's appends, which are
  sequential).
* ``duplicate``: a read contains an element more often than it was pushed.
* ``nonlinearizable``: per-key register linearizability failed (see
  :mod:`scripts.checker.linearizable`); ``unknown`` when the step bound was hit.
  A stale read (an older value returned after a newer write completed) shows up
  here, and so do keys with a time-to-live that vanished before their deadline
  or were served after it (the expiry rule: :mod:`.register_model`). The
  ``lost`` check above runs only on keys of plain ``set``/``get``; on keys with
  deletes or deadlines a lost write is a linearizability failure.

Other families are described where they are checked: replica reads
(:mod:`.replica`: ``phantom``, ``stale-read``, ``expired-read``), counters (:mod:`.counters`),
keyless commands (:mod:`.keyless`: ``phantom``, ``unsafe-flushall``), and hash
fields, appended strings and sets, checked as registers and lists
(:mod:`.families`).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .counters import check_counter_key
from .families import as_list, hash_fields
from .finding import Finding
from .history import FAMILY_OF, Op, Record, load_jsonl, pair_history
from .keyless import check_keyless
from .linearizable import DEFAULT_CLOCK_MARGIN_S, DEFAULT_MAX_STEPS, LinearizabilityResult, check_register
from .replica import check_replica_reads

KINDS = ("lost", "phantom", "stale-list-read", "stale-read", "expired-read", "list-order", "duplicate",
         "unsafe-flushall", "nonlinearizable", "unknown")  # fmt: skip


@dataclass
class CheckResult:
    ops: int
    acked: int
    findings: list[Finding] = field(default_factory=list)
    linearizability: dict[str, LinearizabilityResult] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)

    @property
    def lost(self) -> int:
        return self.count("lost")

    @property
    def phantoms(self) -> int:
        return self.count("phantom")

    @property
    def linearizable(self) -> str:
        verdicts = {r.verdict for r in self.linearizability.values()}
        if "no" in verdicts:
            return "no"
        if "unknown" in verdicts:
            return "unknown"
        return "yes"

    @property
    def violations(self) -> int:
        """Findings that are definite violations (everything except ``unknown``)."""
        return sum(1 for f in self.findings if f.kind != "unknown")

    @property
    def valid(self) -> bool:
        return self.violations == 0 and self.linearizable == "yes"


def summary_line(result: CheckResult) -> str:
    """``ops=… acked=… lost=… phantoms=… linearizable=yes|no|unknown violations=…``."""
    return (
        f"ops={result.ops} acked={result.acked} lost={result.lost} phantoms={result.phantoms} "
        f"linearizable={result.linearizable} violations={result.violations}"
    )


def _precedes(a: Op, b: Op) -> bool:
    return a.complete < b.invoke


def _by_key(ops: Iterable[Op]) -> dict[tuple[str, str], list[Op]]:
    """Operations by (family, key): a key's operations of one family are checked together."""
    keyed: dict[tuple[str, str], list[Op]] = defaultdict(list)
    for op in ops:
        keyed[(FAMILY_OF[op.f], op.key)].append(op)
    return keyed


def _final_read(reads: Sequence[Op]) -> Op | None:
    return max(reads, key=lambda r: (r.invoke, r.complete, r.index), default=None)


def check_register_key(key: str, ops: Sequence[Op]) -> list[Finding]:
    """Phantom checks for one register key, and lost-write checks if it has only ``set``/``get``."""
    findings: list[Finding] = []
    writes = [op for op in ops if op.f == "set"]
    possible = {w.value: w for w in writes if w.status in ("ok", "info")}
    failed = {w.value for w in writes if w.status == "fail"}
    reads = [op for op in ops if op.f == "get" and op.ok]
    for r in reads:
        if r.value is not None and r.value not in possible:
            why = "a failed write's value" if r.value in failed else "a value never written"
            findings.append(Finding("phantom", key, f"{r.describe()} read {why}", (r.index,), r.value))
    final = _final_read(reads)
    if final is None or any(op.f not in ("set", "get") or op.arg is not None for op in ops):
        return findings
    source = possible.get(final.value) if final.value is not None else None
    if final.value is not None and source is None:
        return findings  # a phantom, already reported
    acked_before = [w for w in writes if w.ok and _precedes(w, final) and w is not source]
    for w in acked_before:
        if source is not None and not _precedes(source, w):
            continue  # the value read may legitimately come after w
        if any(_precedes(w, w2) for w2 in acked_before):
            continue  # overwritten by a later acked write, which is reported instead
        what = "nothing" if final.value is None else f"older value {final.value!r}"
        findings.append(
            Finding(
                "lost",
                key,
                f"acked {w.describe()} precedes final read {final.describe()}, which returned {what}",
                (w.index, final.index),
                w.value,
            )
        )
    return findings


def check_list_key(key: str, ops: Sequence[Op], ordered: bool = True) -> list[Finding]:
    """Phantom, lost, stale, order (if ``ordered``) and duplicate checks for one list key."""
    findings: list[Finding] = []
    pushes = [op for op in ops if op.f == "rpush"]
    possible: dict[Any, Op] = {}
    attempts: Counter[Any] = Counter()
    for p in pushes:
        if p.status in ("ok", "info"):
            possible.setdefault(p.value, p)
            attempts[p.value] += 1
    failed = {p.value for p in pushes if p.status == "fail"}
    reads = sorted((op for op in ops if op.f == "lrange" and op.ok), key=lambda r: (r.invoke, r.index))
    final = _final_read(reads)
    acked = sorted((p for p in pushes if p.ok), key=lambda p: p.complete)
    done = sorted(reads, key=lambda r: r.complete)
    required: dict[Any, tuple[Op, str]] = {}
    next_ack = next_done = 0
    for r in reads:
        elements = list(r.value or ())
        counts = Counter(elements)
        for e, c in counts.items():
            if e not in possible:
                why = "a failed push's element" if e in failed else "an element never pushed"
                findings.append(Finding("phantom", key, f"{r.describe()} contains {why}: {e!r}", (r.index,), e))
            elif c > attempts[e]:
                findings.append(
                    Finding(
                        "duplicate", key, f"{r.describe()} contains {e!r} {c} times", (r.index, possible[e].index), e
                    )
                )
        if ordered:
            findings += _order_violations(key, r, elements, possible)
        present = set(elements)
        kind = "lost" if r is final else "stale-list-read"
        # Everything that must be present: acked pushes and elements of reads
        # that completed before r was invoked (reads are in invocation order,
        # so both sets only grow; lists only grow in the workload).
        while next_ack < len(acked) and acked[next_ack].complete < r.invoke:
            p = acked[next_ack]
            next_ack += 1
            required.setdefault(p.value, (p, f"acked {p.describe()}"))
        while next_done < len(done) and done[next_done].complete < r.invoke:
            earlier = done[next_done]
            next_done += 1
            for e in earlier.value or ():
                if e in possible:
                    required.setdefault(e, (earlier, f"{e!r} seen by {earlier.describe()}"))
        for e, (why, what) in required.items():
            if e not in present:
                message = f"{what} precedes {r.describe()} but is missing from it"
                findings.append(Finding(kind, key, message, (why.index, r.index), e))
    return findings


def _order_violations(key: str, r: Op, elements: list[Any], possible: dict[Any, Op]) -> list[Finding]:
    """Elements listed b-before-a although push(a) precedes push(b)."""
    findings: list[Finding] = []
    known = [possible[e] for e in elements if e in possible]
    # suffix minimum of completion times: does a later-listed element's push
    # complete before this element's push was invoked?
    suffix: list[tuple[float, Op | None]] = [(math.inf, None)] * (len(known) + 1)
    for i in range(len(known) - 1, -1, -1):
        suffix[i] = min(suffix[i + 1], (known[i].complete, known[i]), key=lambda t: t[0])
    for i, b in enumerate(known):
        t, a = suffix[i + 1]
        if a is not None and t < b.invoke and a.value != b.value:
            findings.append(
                Finding(
                    "list-order",
                    key,
                    f"{r.describe()} lists {b.value!r} before {a.value!r}, but {a.describe()} precedes {b.describe()}",
                    (r.index, a.index, b.index),
                    b.value,
                )
            )
    return findings


def check_history(
    history: Sequence[Record] | Sequence[Op],
    max_steps: int = DEFAULT_MAX_STEPS,
    clock_margin_s: float = DEFAULT_CLOCK_MARGIN_S,
) -> CheckResult:
    """Run every check on a history (raw records or already paired :class:`Op` s).

    ``clock_margin_s`` bounds how far a node's clock may be from the history's
    (see the expiry rule in :mod:`.register_model`).
    """
    paired = bool(history) and isinstance(history[0], Op)
    ops: list[Op] = list(history) if paired else pair_history(history)  # type: ignore[arg-type]
    result = CheckResult(ops=len(ops), acked=sum(1 for op in ops if op.is_write and op.ok))
    result.findings += check_keyless(ops)
    for (family, key), key_ops in sorted(_by_key(ops).items()):
        if family == "register":
            _check_register_family(result, key, key_ops, max_steps, clock_margin_s)
        elif family == "hash":
            for name, field_ops in sorted(hash_fields(key_ops).items()):
                _check_register_family(result, name, field_ops, max_steps, clock_margin_s)
        elif family == "list":
            result.findings += check_list_key(key, key_ops)
        elif family in ("append", "set"):
            result.findings += check_list_key(key, as_list(key_ops), ordered=family == "append")
        elif family == "counter":
            result.findings += check_counter_key(key, key_ops)
    return result


def _check_register_family(result: CheckResult, key: str, ops: list[Op], max_steps: int, margin_s: float) -> None:
    replica_findings, ops = check_replica_reads(key, ops, margin_s)
    result.findings += replica_findings
    result.findings += check_register_key(key, [op for op in ops if op.f != "rget"])
    lin = check_register(key, ops, max_steps=max_steps, clock_margin_s=margin_s)
    result.linearizability[key] = lin
    if lin.verdict == "no":
        stuck = ", ".join(op.describe() for op in lin.stuck[:3])
        message = f"no linearization of {lin.ops} ops; longest prefix {len(lin.best_prefix)}; stuck at {stuck}"
        result.findings.append(Finding("nonlinearizable", key, message, tuple(op.index for op in lin.stuck)))
    elif lin.verdict == "unknown":
        result.findings.append(Finding("unknown", key, f"search gave up after {lin.steps} steps on {lin.ops} ops"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a drill history (JSONL).")
    parser.add_argument("history", help="path to a .jsonl history")
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS, help="search bound per key")
    parser.add_argument("--clock-margin", type=float, default=DEFAULT_CLOCK_MARGIN_S,
                        help="seconds a node's clock may be off the history's, for expiry deadlines")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="print every finding")
    args = parser.parse_args(argv)
    result = check_history(load_jsonl(args.history), max_steps=args.max_steps, clock_margin_s=args.clock_margin)
    if args.verbose or not result.valid:
        for f in result.findings:
            print(f"{f.kind} {f.key}: {f.message}", file=sys.stderr)
    print(summary_line(result))
    return 0 if result.valid else 1
