"""Raft messages as plain CBOR-friendly dicts, for the cluster bus.

Theory of operation. ``to_wire`` flattens a :class:`Message` into a dict of
ints, strings and lists; ``from_wire`` rebuilds it and refuses anything that is
not exactly that shape with :class:`WireError`, because a peer's bytes are
untrusted input and the Raft core assumes well-formed messages. Entries and
snapshots reuse the durable record encoding, so one format serves disk and
network.
"""

from typing import Any

from trionode.core.raft import durable
from trionode.core.raft.messages import Message, MsgType

_INT_FIELDS = ("term", "log_term", "index", "commit", "reject_hint")


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
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints.values()):
        raise WireError("Raft message numbers must be non-negative integers")
    context = raw.get("context", "")
    if not isinstance(context, str):
        raise WireError("Raft message context must be a string")
    return Message(
        type=kind, frm=frm, to=to, entries=entries, reject=bool(raw.get("reject", False)),
        snapshot=snapshot, context=context, **ints,
    )
