"""Raft messages as plain CBOR-friendly dicts, for the cluster bus.

Theory of operation. ``to_wire`` flattens a :class:`Message` into a dict of
ints, strings and lists; ``from_wire`` rebuilds it and refuses anything that is
not exactly that shape with :class:`WireError`, because a peer's bytes are
untrusted input and the Raft core assumes well-formed messages. Entries and
snapshots reuse the durable record encoding, so one format serves disk and
network. Every number (terms, indexes, in the message and in its entries and
snapshot) is an integer in [0, 2**63), as everywhere else on the bus: a term of
2**20000 was adopted, and stopped the node when it logged it.
"""

from typing import Any

from trionode.core.raft import durable
from trionode.core.raft.messages import ConfState, Entry, Message, MsgType, Snapshot

_INT_FIELDS = ("term", "log_term", "index", "commit", "reject_hint")
_NUMBER_END = 2**63  # numbers are below this, as every count on the bus


def _number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _NUMBER_END


def _members(conf: ConfState) -> bool:
    return all(isinstance(node, str) for node in (*conf.voters, *conf.learners))


def _well_typed(entries: tuple[Entry, ...], snapshot: Snapshot | None) -> bool:
    """The numbers and node ids that the durable record encoding does not check itself."""
    entries_ok = all(_number(e.index) and _number(e.term) and isinstance(getattr(e.data, "node_id", ""), str)
                     for e in entries)
    return entries_ok and (snapshot is None or (_number(snapshot.index) and _number(snapshot.term)
                                                and _members(snapshot.conf)))


class WireError(ValueError):
    """A bus payload is not a well-formed Raft message."""


def to_wire(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"type": msg.type.value, "frm": msg.frm, "to": msg.to}
    for name in _INT_FIELDS:
        value = getattr(msg, name)
        if value:
            out[name] = value
    if msg.entries:
        out["entries"] = [durable.entry_to_record(e) for e in msg.entries]
    if msg.reject:
        out["reject"] = True
    if msg.snapshot is not None:
        out["snapshot"] = durable.snapshot_record(msg.snapshot)
    if msg.context:
        out["context"] = msg.context
    return out


def from_wire(raw: Any) -> Message:
    if not isinstance(raw, dict):
        raise WireError("a Raft message must be a map")
    try:
        kind = MsgType(raw["type"])
        frm, to = raw["frm"], raw["to"]
        ints = {name: raw.get(name, 0) for name in _INT_FIELDS}
        entries = tuple(durable.entry_from_record(r) for r in raw.get("entries", ()))
        snapshot = durable.snapshot_from_record(raw["snapshot"]) if "snapshot" in raw else None
    except (KeyError, ValueError, TypeError, AssertionError) as e:
        raise WireError(f"malformed Raft message: {e}") from None
    if not (isinstance(frm, str) and isinstance(to, str)):
        raise WireError("Raft message ids must be strings")
    if not all(_number(v) for v in ints.values()) or not _well_typed(entries, snapshot):
        raise WireError("Raft message numbers must be integers in [0, 2**63), and node ids strings")
    context = raw.get("context", "")
    if not isinstance(context, str):
        raise WireError("Raft message context must be a string")
    return Message(
        type=kind, frm=frm, to=to, entries=entries, reject=bool(raw.get("reject", False)),
        snapshot=snapshot, context=context, **ints,
    )
