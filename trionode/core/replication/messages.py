"""The replication stream's messages, and their CBOR-friendly wire form (DESIGN §5.2).

Theory of operation
-------------------
A replica (re)connects with a :class:`SyncRequest` carrying its position and
its whole epoch history; the primary answers with a :class:`SyncReply`
(partial: keep ``keep_offset`` and stream from ``keep_offset + 1``; full: load
a snapshot) or a :class:`SyncRefused` that says why. Then the primary sends
:class:`SnapshotChunk` messages (full sync only) and :class:`Records` (an empty
``Records`` is a heartbeat that carries the high watermark). The replica
answers with :class:`Ack` for what is durable on its disk.

Every message names the shard and the sender's shard epoch, so the receiving
core can fence a deposed primary or a stale replica. Every message after the
request carries the replica's ``sync_id``: a session number that the replica
never reuses (the shell seeds it anew at each process start), so a message
delayed from an older session (an ack sent before a full sync wiped the data,
a chunk of an abandoned snapshot) is recognised and dropped.

``to_wire`` turns a message into a dict of ints, strings, bytes and lists;
``from_wire`` rebuilds it and refuses anything else with :class:`ReplWireError`:
a peer's bytes are untrusted, and the cores assert on well-formed input. The
shell bounds the frame size; this module bounds counts (history entries,
effects per message, items per chunk).
"""

from dataclasses import dataclass
from typing import Any, Literal

from trionode import limits
from trionode.core.cluster.state import is_id
from trionode.core.replication.history import EpochHistory, HistoryError
from trionode.core.shown import shown

records_per_msg_max = limits.repl_records_per_msg_max
snapshot_items_per_chunk_max = limits.repl_snapshot_chunk_keys_max
effect_args_max = limits.resp_args_max
reason_chars_max = 240
snapshot_chunks_max = 2**40  # a sequence number past this is nonsense, not a big snapshot

SyncMode = Literal["partial", "full"]


class ReplWireError(ValueError):
    """A bus payload is not a well-formed replication message."""


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Replica -> primary, on every (re)connect."""

    shard_id: str
    replica_id: str
    epoch_seen: int  # the highest shard epoch the replica knows (it is fenced below it)
    history: EpochHistory  # the replica's epoch history, cut at log_end
    log_end: int  # the replica's last offset (durable or not: the primary only uses it as an upper bound)
    sync_id: int  # echoed in the reply, so a reply to an older request is recognised
    # The replica's data is junk until a sync completes (its loading marker is set): it reports
    # offset 0 until then, so it holds nothing the ISR could count on, whatever the sync's mode.
    loading: bool = False


@dataclass(frozen=True, slots=True)
class SyncReply:
    """Primary -> replica."""

    shard_id: str
    epoch: int  # the primary's epoch
    mode: SyncMode
    keep_offset: int  # partial: truncate after this; full: 0
    history: EpochHistory  # the primary's history; the replica adopts it
    log_end: int  # the primary's log end when it replied: the replica has caught up once it gets there
    sync_id: int


@dataclass(frozen=True, slots=True)
class SyncRefused:
    """Primary -> replica: not now, and why (``<code>: <detail>``)."""

    shard_id: str
    epoch: int
    reason: str
    sync_id: int


@dataclass(frozen=True, slots=True)
class Records:
    """Primary -> replica: effects at dense offsets from ``first_offset`` (none: a heartbeat)."""

    shard_id: str
    epoch: int  # the primary's epoch (the records may have been written in earlier epochs)
    first_offset: int
    effects: list[list[bytes]]  # not copied: the shell hands over the outbox's lists
    acked_offset: int  # the primary's high watermark
    sync_id: int  # the replica's sync session this stream answers


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    shard_id: str
    epoch: int
    offset: int  # the snapshot's offset: it holds the effects 1..offset
    seq: int  # 0, 1, 2, ...
    items: list[Any]  # opaque to replication; the keyspace loader validates them
    last: bool
    sync_id: int


@dataclass(frozen=True, slots=True)
class Ack:
    """Replica -> primary: everything up to ``durable_offset`` is fsynced here (0 while loading)."""

    shard_id: str
    replica_id: str
    epoch: int
    durable_offset: int
    sync_id: int  # the session it belongs to: an ack from an older session says nothing about this one


ReplMessage = SyncRequest | SyncReply | SyncRefused | Records | SnapshotChunk | Ack


# --- encoding --------------------------------------------------------------------------------


def to_wire(msg: ReplMessage) -> dict[str, Any]:
    match msg:
        case SyncRequest():
            raw = {"type": "repl_sync", "shard_id": msg.shard_id, "replica_id": msg.replica_id,
                   "epoch_seen": msg.epoch_seen, "history": msg.history.to_list(),
                   "log_end": msg.log_end, "sync_id": msg.sync_id}  # fmt: skip
            if msg.loading:  # only then: a primary that predates the field refuses a request that has it
                raw["loading"] = True
            return raw
        case SyncReply():
            return {"type": "repl_sync_reply", "shard_id": msg.shard_id, "epoch": msg.epoch, "mode": msg.mode,
                    "keep_offset": msg.keep_offset, "history": msg.history.to_list(),
                    "log_end": msg.log_end, "sync_id": msg.sync_id}  # fmt: skip
        case SyncRefused():
            return {"type": "repl_sync_refused", "shard_id": msg.shard_id, "epoch": msg.epoch,
                    "reason": msg.reason, "sync_id": msg.sync_id}  # fmt: skip
        case Records():
            return {"type": "repl_records", "shard_id": msg.shard_id, "epoch": msg.epoch,
                    "first_offset": msg.first_offset, "effects": msg.effects,
                    "acked_offset": msg.acked_offset, "sync_id": msg.sync_id}  # fmt: skip
        case SnapshotChunk():
            return {"type": "repl_snapshot", "shard_id": msg.shard_id, "epoch": msg.epoch, "offset": msg.offset,
                    "seq": msg.seq, "items": msg.items, "last": msg.last, "sync_id": msg.sync_id}  # fmt: skip
        case Ack():
            return {"type": "repl_ack", "shard_id": msg.shard_id, "replica_id": msg.replica_id,
                    "epoch": msg.epoch, "durable_offset": msg.durable_offset, "sync_id": msg.sync_id}  # fmt: skip
    raise AssertionError(f"not a replication message: {shown(msg, 80)}")


def _fields(raw: dict[str, Any], names: tuple[str, ...]) -> list[Any]:
    extra = sorted(shown(k) for k in raw if k != "type" and k not in names)
    missing = [n for n in names if n not in raw]
    if extra or missing:
        raise ReplWireError(f"{raw['type']}: missing fields {missing}, unexpected {extra[:4]}")
    return [raw[n] for n in names]


def _id(value: Any, name: str) -> str:
    if not is_id(value):
        raise ReplWireError(f"{name} must be 40 lower-case hex characters, not {shown(value, 60)}")
    return value


def _count(value: Any, name: str, low: int = 0) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and low <= value < 2**63):
        raise ReplWireError(f"{name} must be an integer >= {low}, not {shown(value, 40)}")
    return value


def _history(value: Any) -> EpochHistory:
    try:
        return EpochHistory.from_list(value)
    except HistoryError as e:
        raise ReplWireError(str(e)) from None


def _effects(value: Any) -> list[list[bytes]]:
    if not isinstance(value, list) or len(value) > records_per_msg_max:
        raise ReplWireError(f"effects must be a list of at most {records_per_msg_max} effects")
    for effect in value:
        ok = isinstance(effect, list) and 0 < len(effect) <= effect_args_max
        if not ok or not all(isinstance(arg, bytes) for arg in effect):
            raise ReplWireError(f"an effect is a non-empty list of byte strings, not {shown(effect, 60)}")
    return value


def _sync_request(raw: dict[str, Any]) -> SyncRequest:
    # ``loading`` came later: a request from a node that predates it is one that is not loading,
    # which is how such a node was always taken.
    raw = {"loading": False, **raw}
    shard, replica, epoch, history, log_end, sync_id, loading = _fields(
        raw, ("shard_id", "replica_id", "epoch_seen", "history", "log_end", "sync_id", "loading")
    )
    if not isinstance(loading, bool):
        raise ReplWireError(f"loading must be a boolean, not {shown(loading, 20)}")
    msg = SyncRequest(_id(shard, "shard_id"), _id(replica, "replica_id"), _count(epoch, "epoch_seen"),
                      _history(history), _count(log_end, "log_end"), _count(sync_id, "sync_id"), loading)  # fmt: skip
    if msg.history.last_start() > msg.log_end + 1:
        raise ReplWireError(f"history {msg.history.to_list()[-1:]} runs past log_end {msg.log_end}")
    return msg


def _sync_reply(raw: dict[str, Any]) -> SyncReply:
    shard, epoch, mode, keep, history, log_end, sync_id = _fields(
        raw, ("shard_id", "epoch", "mode", "keep_offset", "history", "log_end", "sync_id")
    )
    if mode not in ("partial", "full"):
        raise ReplWireError(f"mode must be 'partial' or 'full', not {shown(mode, 20)}")
    msg = SyncReply(_id(shard, "shard_id"), _count(epoch, "epoch", 1), mode, _count(keep, "keep_offset"),
                    _history(history), _count(log_end, "log_end"), _count(sync_id, "sync_id"))  # fmt: skip
    if msg.keep_offset > msg.log_end or (mode == "full" and msg.keep_offset != 0):
        raise ReplWireError(f"keep_offset {msg.keep_offset} does not fit a {mode} sync to {msg.log_end}")
    if msg.history.last_epoch() != msg.epoch:
        raise ReplWireError(f"a primary's history ends with its epoch {msg.epoch}, not {msg.history.last_epoch()}")
    return msg


def _sync_refused(raw: dict[str, Any]) -> SyncRefused:
    shard, epoch, reason, sync_id = _fields(raw, ("shard_id", "epoch", "reason", "sync_id"))
    if not (isinstance(reason, str) and len(reason) <= reason_chars_max):
        raise ReplWireError(f"reason must be a string of at most {reason_chars_max} characters")
    return SyncRefused(_id(shard, "shard_id"), _count(epoch, "epoch"), reason, _count(sync_id, "sync_id"))


def _records(raw: dict[str, Any]) -> Records:
    shard, epoch, first, effects, acked, sync_id = _fields(
        raw, ("shard_id", "epoch", "first_offset", "effects", "acked_offset", "sync_id")
    )
    return Records(_id(shard, "shard_id"), _count(epoch, "epoch", 1), _count(first, "first_offset", 1),
                   _effects(effects), _count(acked, "acked_offset"), _count(sync_id, "sync_id"))  # fmt: skip


def _snapshot(raw: dict[str, Any]) -> SnapshotChunk:
    shard, epoch, offset, seq, items, last, sync_id = _fields(
        raw, ("shard_id", "epoch", "offset", "seq", "items", "last", "sync_id")
    )
    if not isinstance(items, list) or len(items) > snapshot_items_per_chunk_max:
        raise ReplWireError(f"items must be a list of at most {snapshot_items_per_chunk_max} items")
    if not isinstance(last, bool) or _count(seq, "seq") >= snapshot_chunks_max:
        raise ReplWireError("last must be a boolean and seq a chunk number")
    return SnapshotChunk(_id(shard, "shard_id"), _count(epoch, "epoch", 1), _count(offset, "offset"), seq,
                         items, last, _count(sync_id, "sync_id"))  # fmt: skip


def _ack(raw: dict[str, Any]) -> Ack:
    shard, replica, epoch, durable, sync_id = _fields(
        raw, ("shard_id", "replica_id", "epoch", "durable_offset", "sync_id")
    )
    return Ack(_id(shard, "shard_id"), _id(replica, "replica_id"), _count(epoch, "epoch", 1),
               _count(durable, "durable_offset"), _count(sync_id, "sync_id"))  # fmt: skip


_DECODERS = {
    "repl_sync": _sync_request,
    "repl_sync_reply": _sync_reply,
    "repl_sync_refused": _sync_refused,
    "repl_records": _records,
    "repl_snapshot": _snapshot,
    "repl_ack": _ack,
}
MESSAGE_TYPES = frozenset(_DECODERS)


def from_wire(raw: Any) -> ReplMessage:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) or raw["type"] not in _DECODERS:
        raise ReplWireError(f"not a replication message: {shown(raw, 80)}")
    return _DECODERS[raw["type"]](raw)
