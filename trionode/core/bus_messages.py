"""The cluster bus's message envelopes, checked at the boundary before any handler sees them.

Theory of operation
-------------------
Every bus frame after the handshake is a CBOR map whose ``"k"`` names its kind.
The kind selects a schema: which fields the envelope may hold, which of them
are required, and what type each one has. :func:`check` accepts a payload only
if it matches its kind's schema exactly; anything else (not a map, an unknown
kind, a missing or extra field, a field of the wrong type) raises
:class:`BusMessageError`, and the shell closes that one connection, as the
RESP parser's protocol errors close one client.

The envelope is what the shells branch on (dict look-ups by ``"k"``, by a
request ``"id"``, comparisons of ``"ts"``), so a well-typed envelope is what
keeps a hostile frame from raising inside the node. The message a kind
carries in ``"m"`` (Raft, replication, gossip) is checked here only as a map:
its own core module decodes it and refuses it field by field
(``core/raft/wire.py``, ``core/replication/messages.py``,
``core/gossip/messages.py``).

Deliberately left to the shells: the handshake (``hello``), which the bus
checks itself, and what a well-formed message means (a stale term, an unknown
request id).
"""

from collections.abc import Callable
from typing import Any

from trionode.core.cluster.state import is_id
from trionode.core.shown import shown

text_chars_max = 4096  # error strings and other free text in an envelope


class BusMessageError(ValueError):
    """A bus payload does not match the schema of its kind."""


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= text_chars_max


def _map(value: Any) -> bool:
    return isinstance(value, dict)


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _conf(value: Any) -> bool:
    """A forwarded membership change: ``[change kind, node id]``."""
    return isinstance(value, list) and len(value) == 2 and _text(value[0]) and is_id(value[1])


def _ranges(value: Any) -> bool:
    """Slot ranges: ``[[start, end], ...]``, each within the slot space."""
    return isinstance(value, list) and 0 < len(value) <= 16384 and all(
        isinstance(r, list) and len(r) == 2 and all(_count(x) and x < 16384 for x in r) and r[0] <= r[1]
        for r in value
    )


def _records(value: Any) -> bool:
    """Migration stream records: ``[kind, body]`` each; ``core/migration/stream.py`` reads the bodies."""
    return isinstance(value, list) and 0 < len(value) <= 1024 and all(
        isinstance(r, list) and len(r) == 2 and r[0] in ("c", "w") and isinstance(r[1], list) for r in value
    )


# kind -> field -> (validator, required). "k" itself is implied.
Field = tuple[Callable[[Any], bool], bool]
SCHEMAS: dict[str, dict[str, Field]] = {
    "raft": {"cluster": (_text, True), "m": (_map, True), "ts": (_count, False), "echo": (_count, False)},
    "fwd": {"id": (_count, True), "cmd": (_map, False), "conf": (_conf, False)},
    "fwd_reply": {"id": (_count, True), "error": (_text, True), "index": (_count, True)},
    "repl": {"m": (_map, True)},
    "gossip": {"m": (_map, True)},
    "lease": {"req": (_count, True), "ok": (_flag, False)},
    "failover_req": {"shard": (is_id, True), "node": (is_id, True)},
    # The failover's fencing round (core/failover/controller.py): the leader asks, a replica answers.
    "fence": {"shard": (is_id, True), "epoch": (_count, True), "term": (_count, True)},
    "fenced": {"shard": (is_id, True), "epoch": (_count, True), "term": (_count, True), "offset": (_count, True),
               "health": (_text, True)},
    # Slot migration (core/migration): the source asks the target to import, the target says it is
    # ready (or why not), the source streams records from offset "from", the target acknowledges.
    "mig_import": {"id": (is_id, True), "slots": (_ranges, True)},
    "mig_ready": {"id": (is_id, True), "error": (_text, False)},
    "mig_data": {"id": (is_id, True), "from": (_count, True), "recs": (_records, True)},
    "mig_ack": {"id": (is_id, True), "offset": (_count, True)},
    # The leader's read index (io/control.py): whether a node's configuration has caught up with what was
    # committed before it asked (a restarted node's cleanup, a redirect for a slot its shard imports).
    "read_index": {"req": (_count, True), "index": (_count, False)},
}


def check(payload: Any) -> dict[str, Any]:
    """``payload`` itself if it is a well-formed bus message; :class:`BusMessageError` otherwise."""
    if not isinstance(payload, dict):
        raise BusMessageError(f"a bus message must be a map, not {type(payload).__name__}")
    kind = payload.get("k")
    schema = SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise BusMessageError(f"unknown bus message kind {shown(kind, 40)}")
    extra = [shown(name, 40) for name in payload if name != "k" and name not in schema]
    if extra:
        raise BusMessageError(f"{kind}: unexpected fields {extra[:4]}")
    for name, (valid, required) in schema.items():
        if name not in payload:
            if required:
                raise BusMessageError(f"{kind}: missing field {name!r}")
        elif not valid(payload[name]):
            raise BusMessageError(f"{kind}: field {name!r} is malformed: {shown(payload[name], 60)}")
    if kind == "fwd" and ("cmd" in payload) == ("conf" in payload):
        raise BusMessageError("fwd: exactly one of 'cmd' and 'conf'")
    return payload
