"""History format and loading for the independent drill checker.

This package imports nothing from ``trionode``: it judges a recorded history
the way Jepsen's checkers do, knowing only the Redis semantics of the
operations the drill workload issues.

Format
------
A history is a list of records (one JSON object per line in a ``.jsonl`` file).
Each operation is a *pair* of records from the same process: an ``invoke``
record followed, later, by exactly one completion record::

    {"process": 3, "type": "invoke", "f": "set",    "key": "k1", "value": "v17", "time": 12.5}
    {"process": 3, "type": "ok",     "f": "set",    "key": "k1", "value": "v17", "time": 12.7}
    {"process": 4, "type": "invoke", "f": "get",    "key": "k1", "value": null,  "time": 12.6}
    {"process": 4, "type": "ok",     "f": "get",    "key": "k1", "value": "v17", "time": 12.8}
    {"process": 5, "type": "invoke", "f": "rpush",  "key": "l0", "value": "e9",  "time": 13.0}
    {"process": 5, "type": "info",   "f": "rpush",  "key": "l0", "value": "e9",  "time": 14.0}
    {"process": 6, "type": "invoke", "f": "lrange", "key": "l0", "value": null,  "time": 15.0}
    {"process": 6, "type": "ok",     "f": "lrange", "key": "l0", "value": ["e1", "e9"], "time": 15.1}

* ``f`` names the operation and, with it, the model the key is checked against
  (:data:`FAMILIES`):

  - registers: ``set`` (``arg`` = its ``PX`` time-to-live in ms, or absent),
    ``get``, ``del`` and ``exists`` (their reply in ``result`` / ``value``),
    ``expire`` (``arg`` = ttl ms, reply in ``result``), and ``rget``: a
    ``READONLY`` ``GET`` on a replica (see :mod:`.replica`);
  - lists: ``rpush`` / ``lrange``; appended strings: ``append`` (one token) /
    ``strget`` (the whole string); sets: ``sadd`` / ``smembers``;
  - counters: ``incr`` (the new count in ``result``) / ``intget``;
  - hashes: ``hset`` / ``hget``, the field in ``arg`` (each field a register);
  - keyless (``key`` names the node, ``@n3``): ``dbsize``, ``scan`` (the keys
    it returned) and ``flushall`` (sent to a node that said it was a replica).
* ``value``: for writes the written value (on the invoke; the completion may
  repeat it or omit it); for reads the value read (``null`` = the key is
  absent), on the ``ok`` completion.
* ``arg`` (optional, on the invoke) and ``result`` (optional, on an ``ok``
  completion: what a write replied), ``client`` (optional: the client thread;
  one client may run under several process numbers, see below).
* ``type`` of the completion: ``ok`` (acknowledged), ``fail`` (definitely did
  not take effect) or ``info`` (unknown outcome: a timeout or a lost
  connection; the write may take effect at any time after its invocation, so
  its completion time is treated as +infinity).
* ``time`` is any monotonic clock shared by all processes (seconds).
* A process runs one operation at a time. An invoke with no completion by the
  end of the history is treated as ``info``.

Written values are assumed unique per key (the workload writes fresh values);
phantom and duplicate detection rely on it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAMILIES = {
    "register": ("set", "get", "del", "exists", "expire", "rget"),
    "list": ("rpush", "lrange"),
    "append": ("append", "strget"),
    "set": ("sadd", "smembers"),
    "counter": ("incr", "intget"),
    "hash": ("hset", "hget"),
    "keyless": ("dbsize", "scan", "flushall"),
}
FUNCTIONS = tuple(f for fs in FAMILIES.values() for f in fs)
FAMILY_OF = {f: family for family, fs in FAMILIES.items() for f in fs}
WRITES = ("set", "del", "expire", "rpush", "append", "sadd", "incr", "hset", "flushall")
COMPLETIONS = ("ok", "fail", "info")
INF = math.inf

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Op:
    """One operation, its invocation and completion merged.

    ``complete`` is ``math.inf`` for ``info`` operations. ``value`` is the
    written value for writes and the value read for reads (``None`` if the
    read did not complete ``ok``).
    """

    index: int
    process: int
    f: str
    key: str
    value: Any
    status: str
    invoke: float
    complete: float
    arg: Any = None
    result: Any = None
    client: int = -1

    @property
    def is_write(self) -> bool:
        return self.f in WRITES

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        end = "inf" if self.complete == INF else f"{self.complete:g}"
        args = (self.key, self.arg, self.value) if self.arg is not None else (self.key, self.value)
        call = f"{self.f}({', '.join(map(repr, args))})"
        if self.result is not None:
            call += f" -> {self.result!r}"
        return f"#{self.index} p{self.process} {call} {self.status} [{self.invoke:g}, {end}]"


def _check_record(rec: Record, n: int) -> None:
    for field in ("process", "type", "f", "key", "time"):
        if field not in rec:
            raise ValueError(f"record {n}: missing field {field!r}: {rec!r}")
    if rec["f"] not in FUNCTIONS:
        raise ValueError(f"record {n}: unknown f {rec['f']!r}")
    if rec["type"] not in ("invoke", *COMPLETIONS):
        raise ValueError(f"record {n}: unknown type {rec['type']!r}")


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def pair_history(records: Iterable[Record]) -> list[Op]:
    """Pair invoke/completion records into :class:`Op` s, in invocation order."""
    pending: dict[int, tuple[int, Record]] = {}
    ops: list[Op] = []
    for n, rec in enumerate(records):
        _check_record(rec, n)
        proc = int(rec["process"])
        if rec["type"] == "invoke":
            if proc in pending:
                raise ValueError(f"record {n}: process {proc} invoked twice without a completion")
            pending[proc] = (len(ops), rec)
            ops.append(None)  # type: ignore[arg-type]  # placeholder, filled at completion
            continue
        if proc not in pending:
            raise ValueError(f"record {n}: completion without an invoke for process {proc}")
        slot, inv = pending.pop(proc)
        if inv["f"] != rec["f"] or inv["key"] != rec["key"]:
            raise ValueError(f"record {n}: completion does not match its invoke {inv!r}")
        ops[slot] = _make_op(slot, inv, rec)
    for slot, inv in pending.values():
        ops[slot] = _make_op(slot, inv, None)
    return ops


def _make_op(index: int, inv: Record, done: Record | None) -> Op:
    status = "info" if done is None else str(done["type"])
    f = str(inv["f"])
    if f in WRITES:
        value = inv.get("value")
        if value is None and done is not None:
            value = done.get("value")
    else:
        value = done.get("value") if (done is not None and status == "ok") else None
    complete = INF if status == "info" else float(done["time"])  # type: ignore[index]
    result = done.get("result") if (done is not None and status == "ok") else None
    return Op(
        index=index,
        process=int(inv["process"]),
        f=f,
        key=str(inv["key"]),
        value=_freeze(value),
        status=status,
        invoke=float(inv["time"]),
        complete=complete,
        arg=_freeze(inv.get("arg")),
        result=_freeze(result),
        client=int(inv.get("client", inv["process"])),
    )


def load_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a history written one JSON record per line (blank lines skipped)."""
    records = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    return records


def dump_jsonl(records: Iterable[Record], path: str | Path) -> None:
    """Write records one JSON object per line."""
    with open(path, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(dict(rec)) + "\n")


class HistoryRecorder:
    """A small helper for workloads and tests that builds records in order."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def invoke(self, process: int, f: str, key: str, value: Any, time: float) -> None:
        self.records.append({"process": process, "type": "invoke", "f": f, "key": key, "value": value, "time": time})

    def complete(self, process: int, type_: str, f: str, key: str, value: Any, time: float) -> None:
        self.records.append({"process": process, "type": type_, "f": f, "key": key, "value": value, "time": time})
