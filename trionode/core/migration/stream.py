"""The migration stream: what goes into it, how it survives a lossy bus, and how the target applies it.

Theory of operation
-------------------
The source primary's stream to the target holds two kinds of record, in one
order, numbered by dense offsets from 1:

- a **copy** record: whole keys of one slot, as ``Keyspace.dump_keys``
  entries read from the slot's cut (:mod:`.copy`), laid end to end
  (``[key, type, value, deadline, key, ...]``, :func:`copy_record`): the
  bus's CBOR encoder took six times as long for a list per key, and it was
  most of the copy's cost on the source;
- a **write** record: the effect of a write to a moving slot, exactly as the
  source logged it (:func:`stream_effect` picks them).

The cluster bus drops messages when a peer's queue is full or its connection
breaks, so :class:`StreamSender` keeps every record until the target has
acknowledged it and, when no acknowledgement has advanced for
``resend_ms``, sends again from the first unacknowledged one (go-back-N).
The target applies a record only if it is the next one it expects
(``ImportJob.admit``): duplicates and records after a gap are dropped, and the
resend fills the gap. Records are bounded by the export job (it aborts past
``migration_lag_records_max`` unacknowledged records).

On the target each record becomes ordinary write effects (:func:`record_effects`):
copied keys are replaced whole (one ``DEL`` of those present, one ``MSET`` of
the plain strings, and per other key one command that rebuilds its value with
its deadline), a write is applied as logged. Every
one replays without a clock, so the target logs and replicates them like its
replicas' own stream, and nothing it applies can expire a staged key.
"""

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from trionode import limits
from trionode.core.data_state import DataState
from trionode.core.errors import CommandError
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.migration.export import Action, ExportJob
from trionode.core.migration.staging import AckSource, ImportJob, WriteGate
from trionode.core.slots import key_slot

COPY, WRITE = "c", "w"
Record = list[Any]  # [COPY, flat entries] or [WRITE, effect]
_ENTRY_ITEMS = 4  # key, type, value, deadline

_SPECS = {name.encode(): spec for name, spec in KEYSPACE_COMMANDS.items()}
_MULTI_SLOT_EFFECTS = frozenset({b"del", b"unlink"})  # active expiry and cleanup delete across slots


def stream_effect(effect: tuple[bytes, ...] | list[bytes], slots: frozenset[int]) -> list[bytes] | None:
    """The part of a logged effect that belongs to a stream of ``slots``, or None.

    A keyless effect (FLUSHALL) never reaches here while a migration runs: routing refuses it
    on both shards (it would empty the target's own slots, or leave the staged copy stale).
    """
    name = bytes(effect[0]).lower()
    spec = _SPECS.get(name)
    assert spec is not None and spec.first_key > 0, f"unstreamable effect {effect[0]!r} during a migration"
    keys = [effect[i] for i in spec.key_positions(len(effect))]
    moving = [key for key in keys if key_slot(key) in slots]
    if not moving:
        return None
    if len(moving) == len(keys):
        return list(effect)
    assert name in _MULTI_SLOT_EFFECTS, f"{effect[0]!r} spans slots"
    return [b"DEL", *moving]


def stream_writes(job: ExportJob, sender: "StreamSender", effects: list[tuple[bytes, ...]],
                  now_ms: int) -> list[Action]:  # fmt: skip
    """Effects just logged on the source: the moving slots' parts join the job's stream, in WAL order."""
    if not job.streams():
        return []
    slots = job.slot_set
    actions: list[Action] = []
    for effect in effects:
        part = stream_effect(effect, slots)
        if part is not None:
            actions += job.on_stream(sender.append([WRITE, part], now_ms), now_ms)
    return actions


def copy_record(entries: list[list[Any]]) -> Record:
    """The copy record of ``Keyspace.dump_keys`` entries."""
    return [COPY, list(chain.from_iterable(entries))]


def _entries(body: list[Any]) -> Iterator[tuple[Any, Any, Any, Any]]:
    """A copy record's entries, back as (key, type, value, deadline)."""
    items = iter(body)
    return zip(items, items, items, items, strict=True)


def record_effects(record: Record, present: Callable[[bytes], bool]) -> list[list[bytes]]:
    """The write effects that apply ``record`` on the target (``present``: the key exists there)."""
    kind, body = record
    if kind == WRITE:
        return [list(body)]
    assert kind == COPY, kind
    # Few effects per chunk, not a few per key: every effect is a record in the target's WAL
    # and its replication stream, and the replicas' pace in records is what the copy waits for.
    stale = [key for key in body[::_ENTRY_ITEMS] if present(key)]
    effects: list[list[bytes]] = [[b"DEL", *stale]] if stale else []
    plain_strings: list[bytes] = []
    for key, type_name, plain, deadline in _entries(body):
        if type_name == "string" and deadline is None:
            plain_strings += (key, plain)
        elif type_name == "string":
            effects.append([b"SET", key, plain, b"PXAT", b"%d" % deadline])
        else:
            effects.append(_rebuild(key, type_name, plain))
            if deadline is not None:
                effects.append([b"PEXPIREAT", key, b"%d" % deadline])
    if plain_strings:
        effects.append([b"MSET", *plain_strings])
    return effects


def apply_record(data: DataState, record: Record) -> None:
    """Apply one admitted record on the target as logged writes, like a replica applies its stream."""
    for effect in record_effects(record, data.keyspace.data.__contains__):
        try:
            data.apply_replicated(data.applied_offset + 1, effect)
        except CommandError:
            # Only a write streamed before its key's copy can fail here (the target holds part
            # of the key's history); the copy replaces the key whole, so nothing is lost.
            continue


@dataclass(frozen=True, slots=True)
class Receipt:
    """What receiving one message of the stream did on the target."""

    applied: int  # records applied (written as logged effects: the shell logs its outbox)
    reack: list[AckSource]  # the last acknowledgement again, for a source that resent what we hold
    overflow: bool  # too many records not yet durable on the ISR: the import ends, the source aborts


def receive(job: ImportJob, data: DataState, first: int, records: list[Any], *, gate: WriteGate) -> Receipt:
    """Apply the records of a stream message that start at offset ``first``, in order.

    Nothing is applied unless ``gate`` is open: the records are writes this primary logs, and a
    target whose lease ran out (deposed or cut off, while the source still reaches it) would log
    them at offsets a new primary is writing too (S2); nor without WAL room, nor before the import
    accepts the stream. A duplicate asks for the last acknowledgement again; a gap or a malformed
    record ends the message. In every refusal the source's resend brings it again.
    """
    if not gate.open() or not job.accepts_stream():
        return Receipt(0, [], False)
    slots, offset, applied, duplicate = job.slot_set(), first, 0, False
    for record in records:
        if offset <= job.received:
            duplicate = True
        elif not job.admit(offset) or not well_formed(record, slots):
            break
        else:
            apply_record(data, record)
            applied += 1
            if not job.on_applied(offset, data.applied_offset):
                return Receipt(applied, [], True)
        offset += 1
    return Receipt(applied, job.reack() if duplicate else [], False)


def _rebuild(key: bytes, type_name: str, plain: Any) -> list[bytes]:
    if type_name == "list":
        return [b"RPUSH", key, *plain]
    if type_name == "hash":
        return [b"HSET", key, *(part for pair in plain.items() for part in pair)]
    assert type_name == "set", type_name
    return [b"SADD", key, *plain]


def well_formed(record: Any, slots: frozenset[int]) -> bool:
    """A record from the bus that :func:`record_effects` can apply: right shapes, keys all in ``slots``.

    Peers on the bus proved the cluster secret, so a bad record is a bug, not an attack; it is
    still refused here rather than raising inside the node (the source's timeout ends the job).
    """
    kind, body = record
    if kind == WRITE:
        spec = _SPECS.get(body[0].lower()) if body and all(isinstance(a, bytes) for a in body) else None
        if spec is None or not spec.is_write or spec.first_key <= 0 or not spec.arity_ok(len(body)):
            return False
        return all(key_slot(body[i]) in slots for i in spec.key_positions(len(body)))
    if not isinstance(body, list) or len(body) % _ENTRY_ITEMS:
        return False
    return all(_well_formed_entry(*entry, slots) for entry in _entries(body))


def _well_formed_entry(key: Any, type_name: Any, plain: Any, deadline: Any, slots: frozenset[int]) -> bool:
    if not isinstance(key, bytes) or key_slot(key) not in slots:
        return False
    if not (deadline is None or isinstance(deadline, int)) or not plain:
        return False
    if type_name == "string":
        return isinstance(plain, bytes)
    if type_name == "hash":
        return isinstance(plain, dict) and all(isinstance(x, bytes) for pair in plain.items() for x in pair)
    return type_name in ("list", "set") and isinstance(plain, list) and all(isinstance(x, bytes) for x in plain)


@dataclass(slots=True)
class StreamSender:
    """The source's side: records kept until acknowledged, sent in batches, resent after silence."""

    resend_ms: int = limits.migration_resend_ms
    records: deque[tuple[int, Record]] = field(default_factory=deque)  # unacknowledged, offsets dense
    last_offset: int = 0  # Invariant: records[-1][0] == last_offset when records is non-empty.
    acked: int = 0
    next_send: int = 1  # the first record not sent yet (moves back on a resend)
    last_progress_ms: int = 0

    def append(self, record: Record, now_ms: int) -> int:
        if not self.records:
            self.last_progress_ms = now_ms  # silence is timed from the first unacknowledged record
        self.last_offset += 1
        self.records.append((self.last_offset, record))
        return self.last_offset

    def take(self, records_max: int = limits.migration_records_per_msg_max) -> list[tuple[int, Record]]:
        """The next records to send, in order (marked sent)."""
        start = self.next_send - self.acked - 1
        assert start >= 0
        batch = [self.records[i] for i in range(start, min(len(self.records), start + records_max))]
        self.next_send += len(batch)
        return batch

    def on_ack(self, offset: int, now_ms: int) -> None:
        if not self.acked < offset <= self.last_offset:
            return  # stale or confused: the export job judges the latter
        while self.records and self.records[0][0] <= offset:
            self.records.popleft()
        self.acked = offset
        self.next_send = max(self.next_send, offset + 1)
        self.last_progress_ms = now_ms

    def tick(self, now_ms: int) -> bool:
        """True when everything unacknowledged should go again (the bus may have dropped it)."""
        if not self.records or now_ms - self.last_progress_ms < self.resend_ms:
            return False
        self.next_send = self.acked + 1
        self.last_progress_ms = now_ms
        return True
