"""Replication messages: round trips through the wire form, and refusal of malformed input."""

from typing import Any

import cbor2
import pytest

from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import (
    Ack,
    Records,
    ReplWireError,
    SnapshotChunk,
    SyncRefused,
    SyncReply,
    SyncRequest,
    from_wire,
    records_per_msg_max,
    to_wire,
)

SHARD, NODE = "a1" * 20, "0" * 39 + "2"
H = EpochHistory([(1, 1), (3, 7)])

SAMPLES = [
    SyncRequest(SHARD, NODE, 3, H, 9, 5),
    SyncRequest(SHARD, NODE, 0, EpochHistory(), 0, 0),
    SyncReply(SHARD, 3, "partial", 8, H, 12, 5),
    SyncReply(SHARD, 3, "full", 0, H, 12, 6),
    SyncRefused(SHARD, 3, "not_replica: no", 7),
    Records(SHARD, 3, 9, [[b"SET", b"k", b"v"], [b"DEL", b"k"]], 8, 5),
    Records(SHARD, 3, 11, [], 10, 5),
    SnapshotChunk(SHARD, 3, 100, 0, [[b"k", b"v"]], False, 6),
    SnapshotChunk(SHARD, 3, 100, 1, [], True, 6),
    Ack(SHARD, NODE, 3, 42, 5),
    SyncRequest(SHARD, NODE, 3, H, 9, 6, loading=True),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_through_cbor(msg: Any) -> None:
    raw = cbor2.loads(cbor2.dumps(to_wire(msg)))
    assert from_wire(raw) == msg


def _mutations() -> list[tuple[str, dict[str, Any]]]:
    req = to_wire(SAMPLES[0])
    reply = to_wire(SAMPLES[2])
    rec = to_wire(SAMPLES[5])
    chunk = to_wire(SAMPLES[7])
    ack = to_wire(SAMPLES[9])
    return [
        ("unknown type", {**req, "type": "nope"}),
        ("extra field", {**req, "extra": 1}),
        ("missing field", {k: v for k, v in req.items() if k != "log_end"}),
        ("bad shard id", {**req, "shard_id": "A1" * 20}),
        ("bad replica id", {**req, "replica_id": 5}),
        ("negative log end", {**req, "log_end": -1}),
        ("bool epoch", {**req, "epoch_seen": True}),
        ("loading not a bool", {**req, "loading": 1}),
        ("history past log end", {**req, "log_end": 2}),
        ("bad history", {**req, "history": [[3, 7], [1, 1]]}),
        ("bad mode", {**reply, "mode": "half"}),
        ("keep past end", {**reply, "keep_offset": 13}),
        ("full with keep", {**reply, "mode": "full"}),
        ("history not ending in epoch", {**reply, "epoch": 4}),
        ("epoch zero", {**rec, "epoch": 0}),
        ("offset zero", {**rec, "first_offset": 0}),
        ("effect of str", {**rec, "effects": [["SET", b"k"]]}),
        ("empty effect", {**rec, "effects": [[]]}),
        ("too many effects", {**rec, "effects": [[b"PING"]] * (records_per_msg_max + 1)}),
        ("items not a list", {**chunk, "items": "x"}),
        ("last not a bool", {**chunk, "last": 1}),
        ("negative seq", {**chunk, "seq": -1}),
        ("bad ack offset", {**ack, "durable_offset": "1"}),
        ("long reason", {**to_wire(SAMPLES[4]), "reason": "x" * 1000}),
    ]


@pytest.mark.parametrize(("why", "raw"), _mutations(), ids=[w for w, _ in _mutations()])
def test_malformed_input_is_refused(why: str, raw: dict[str, Any]) -> None:
    with pytest.raises(ReplWireError):
        from_wire(raw)


def test_the_loading_field_is_sent_only_when_set_so_nodes_that_predate_it_still_agree() -> None:
    """A node that predates ``loading`` refuses a request carrying it, and sends none itself."""
    assert "loading" not in to_wire(SAMPLES[0]) and to_wire(SAMPLES[-1])["loading"] is True
    assert from_wire(to_wire(SAMPLES[0])) == SAMPLES[0] and not SAMPLES[0].loading


@pytest.mark.parametrize("raw", [None, [], "repl_ack", {"type": 1}, {}])
def test_non_messages_are_refused(raw: Any) -> None:
    with pytest.raises(ReplWireError):
        from_wire(raw)
