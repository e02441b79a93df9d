"""The Raft WAL's record format and its recovery, shared by the driver and the simulator.

Theory of operation. Each Ready becomes a list of plain, CBOR-friendly dicts
to append to the Raft WAL, in this order:

- ``{"t": "snapmark", "i", "term"}`` when the Ready installs a snapshot: the
  log was replaced, so replay drops every entry above ``i``;
- ``{"t": "trunc", "from": i}`` before any entries: replay drops every entry
  at or after ``i``. Emitting it for every batch is cheap and makes replay
  right whether or not the batch replaced a suffix.
- ``{"t": "ent", "i", "term", "k", "d"}`` per entry;
- ``{"t": "hs", "term", "vote", "commit"}`` when the hard state changed.

A received snapshot is written by the shell as a snapshot file *before* the
Ready's WAL records (``snapshot_record`` / ``snapshot_from_record`` give its
plain-dict form). :func:`replay` rebuilds what the core needs to restart from
the latest snapshot and the WAL: entries at or below the snapshot's index are
covered by it and skipped; the result is asserted contiguous. Should the
shell crash after writing a received snapshot's file but before its
``snapmark``, the WAL still holds the replaced log; replay notices that the
WAL's entry at ``snapshot.index`` has another term and drops what followed
it, so a replaced suffix never comes back.

Payload encoding: a CONF entry's ``ConfChange`` becomes a small dict; other
payloads pass through (they must already be CBOR-friendly).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from trionode.core.raft.messages import (
    ConfChange,
    ConfChangeKind,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Ready,
    Snapshot,
)


@dataclass(frozen=True, slots=True)
class RestoredRaft:
    hard_state: HardState
    snapshot: Snapshot
    entries: tuple[Entry, ...] = field(default=())  # Invariant: contiguous from snapshot.index + 1


def _data_to_record(kind: EntryKind, data: Any) -> Any:
    if kind is EntryKind.CONF:
        assert isinstance(data, ConfChange), "a CONF entry carries a ConfChange"
        return {"kind": data.kind.value, "node": data.node_id}
    return data


def _data_from_record(kind: EntryKind, data: Any) -> Any:
    if kind is EntryKind.CONF:
        return ConfChange(ConfChangeKind(data["kind"]), data["node"])
    return data


def entry_to_record(e: Entry) -> dict:
    assert e.index > 0 and e.term > 0
    return {"t": "ent", "i": e.index, "term": e.term, "k": e.kind.value, "d": _data_to_record(e.kind, e.data)}


def entry_from_record(rec: dict) -> Entry:
    assert rec["t"] == "ent", f"not an entry record: {rec['t']}"
    kind = EntryKind(rec["k"])
    return Entry(index=rec["i"], term=rec["term"], kind=kind, data=_data_from_record(kind, rec["d"]))


def conf_to_record(conf: ConfState) -> dict:
    return {"voters": list(conf.voters), "learners": list(conf.learners)}


def conf_from_record(rec: dict) -> ConfState:
    return ConfState(voters=tuple(rec["voters"]), learners=tuple(rec["learners"]))


def snapshot_record(s: Snapshot) -> dict:
    return {"t": "snap", "i": s.index, "term": s.term, "conf": conf_to_record(s.conf), "d": s.data}


def snapshot_from_record(rec: dict) -> Snapshot:
    assert rec["t"] == "snap", f"not a snapshot record: {rec['t']}"
    return Snapshot(index=rec["i"], term=rec["term"], conf=conf_from_record(rec["conf"]), data=rec["d"])


def records_for(ready: Ready) -> list[dict]:
    """The WAL records for ``ready``, in the order they must be appended."""
    records: list[dict] = []
    if ready.snapshot is not None:
        # Entries past the snapshot in the WAL belong to a log the snapshot replaced.
        records.append({"t": "snapmark", "i": ready.snapshot.index, "term": ready.snapshot.term})
    if ready.entries:
        records.append({"t": "trunc", "from": ready.entries[0].index})
        records.extend(entry_to_record(e) for e in ready.entries)
    if ready.hard_state is not None:
        hs = ready.hard_state
        records.append({"t": "hs", "term": hs.term, "vote": hs.vote, "commit": hs.commit})
    return records


def replay(snapshot: Snapshot, records: Iterable[dict]) -> RestoredRaft:
    """Rebuild the durable Raft state from the latest snapshot and the WAL records after it."""
    hard_state = HardState()
    entries: list[Entry] = []  # Invariant: contiguous, all above snapshot.index
    # The term of the WAL's entry at snapshot.index under the retained entries (None: not seen).
    base_term: int | None = None
    for rec in records:
        kind = rec["t"]
        if kind == "hs":
            hard_state = HardState(rec["term"], rec["vote"], rec["commit"])
        elif kind in ("trunc", "snapmark"):
            cut = rec["from"] if kind == "trunc" else rec["i"] + 1
            while entries and entries[-1].index >= cut:
                entries.pop()
            if cut <= snapshot.index:
                base_term = None
            if kind == "snapmark" and rec["i"] == snapshot.index:
                base_term = rec["term"]
        elif kind == "ent":
            base_term = _replay_entry(snapshot, entries, entry_from_record(rec), base_term)
        else:
            raise AssertionError(f"unknown Raft WAL record type {kind!r}")
    if base_term is not None and base_term != snapshot.term:
        entries = []  # they extended a log that the snapshot replaced
    return RestoredRaft(_restored_hard_state(hard_state, snapshot, len(entries)), snapshot, tuple(entries))


def _replay_entry(snapshot: Snapshot, entries: list[Entry], e: Entry, base_term: int | None) -> int | None:
    if e.index < snapshot.index:
        return base_term
    if e.index == snapshot.index:
        return e.term
    expected = entries[-1].index + 1 if entries else snapshot.index + 1
    assert e.index == expected, f"WAL entry {e.index} where {expected} was expected"
    entries.append(e)
    return base_term


def _restored_hard_state(hs: HardState, snapshot: Snapshot, entries_count: int) -> HardState:
    if hs.term < snapshot.term:
        hs = HardState(snapshot.term, "", hs.commit)
    commit = max(hs.commit, snapshot.index)
    # Hard state is appended after the entries of its Ready, so a torn tail cannot keep it without them.
    assert commit <= snapshot.index + entries_count, f"commit {commit} beyond the recovered log"
    return HardState(hs.term, hs.vote, commit)
