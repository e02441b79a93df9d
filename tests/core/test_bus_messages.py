"""Bus envelopes: every message is checked against its kind's schema, and nothing else ever escapes.

The fuzz tests feed random and mutated messages to the envelope check and, for what it lets
through, to the decoder of the message the envelope carries (Raft, replication, gossip): each
may only accept or refuse with its own error, the way a frame from a hostile peer is handled.
"""

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.core.bus_messages import SCHEMAS, BusMessageError, check
from trionode.core.gossip.messages import GossipWireError
from trionode.core.gossip.messages import from_wire as gossip_from_wire
from trionode.core.raft.wire import WireError
from trionode.core.raft.wire import from_wire as raft_from_wire
from trionode.core.replication.messages import ReplWireError
from trionode.core.replication.messages import from_wire as repl_from_wire

ID = "a" * 40
VALID = [
    {"k": "raft", "cluster": "c" * 40, "m": {"type": "app", "frm": ID, "to": ID}, "ts": 5, "echo": 4},
    {"k": "fwd", "id": 1, "cmd": {"op": "node_info"}},
    {"k": "fwd", "id": 2, "conf": ["promote", ID]},
    {"k": "fwd_reply", "id": 1, "error": "", "index": 7},
    {"k": "repl", "m": {"type": "repl_ack"}},
    {"k": "gossip", "m": {"type": "ping"}},
    {"k": "gossip", "m": {"type": "pong", "sender": ID, "incarnation": 1, "seq": 2, "suspects": [],
                          "info": {"fence_shard": "1" * 40, "fence_epoch": 3}}},
    {"k": "lease", "req": 3},
    {"k": "lease", "req": 3, "ok": True},
    {"k": "failover_req", "shard": "1" * 40, "node": ID},
    {"k": "fence", "shard": "1" * 40, "epoch": 4, "term": 3},
    {"k": "fenced", "shard": "1" * 40, "epoch": 4, "term": 3, "offset": 120, "health": "online"},
    {"k": "mig_import", "id": ID, "slots": [[0, 10], [20, 20]]},
    {"k": "mig_ready", "id": ID},
    {"k": "mig_ready", "id": ID, "error": "Target node is not a primary"},
    {"k": "mig_data", "id": ID, "from": 1, "recs": [["w", [b"SET", b"k", b"v"]], ["c", []]]},
    {"k": "mig_ack", "id": ID, "offset": 3},
    {"k": "read_index", "req": 1},
    {"k": "read_index", "req": 1, "index": 40},
]
INNER = {"raft": raft_from_wire, "repl": repl_from_wire, "gossip": gossip_from_wire}
REFUSALS = (WireError, ReplWireError, GossipWireError)

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=50)
    | st.binary(max_size=50) | st.sampled_from([ID, "raft", "fwd", "m", "k", "", "ping", "app"]),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.text(max_size=8) | st.integers() | st.sampled_from(["k", "m", "type", "frm", "to", "id"]), children,
        max_size=6),
    max_leaves=20,
)


def _receive(payload: Any) -> None:
    """What the bus and the handlers do with a payload: anything but their refusals fails the test."""
    try:
        checked = check(payload)
    except BusMessageError:
        return
    decode = INNER.get(checked["k"])
    if decode is not None:
        with contextlib.suppress(*REFUSALS):
            decode(checked["m"])


@pytest.mark.parametrize("payload", VALID)
def test_every_kind_accepts_its_well_formed_message(payload: dict) -> None:
    assert check(payload) is payload


def test_every_schema_has_a_valid_example() -> None:
    assert {p["k"] for p in VALID} == set(SCHEMAS)


@pytest.mark.parametrize("payload", [
    {"k": [1]}, {"k": {"a": 1}}, {"k": "fwd_reply", "id": [1], "error": "", "index": 1}, {"k": "nope"}, {},
    {"k": "lease", "req": True}, {"k": "lease", "req": -1}, {"k": "lease", "req": 2**64}, {"k": "repl", "m": []},
    {"k": "fwd", "id": 1, "cmd": {}, "conf": ["promote", ID]}, {"k": "fwd", "id": 1, "conf": ["promote", "x"]},
    {"k": "fwd_reply", "id": 1, "error": "x" * 5000, "index": 1}, [1], None, b"k",
    {"k": "mig_import", "id": ID, "slots": [[10, 0]]}, {"k": "mig_import", "id": ID, "slots": [[0, 16384]]},
    {"k": "mig_data", "id": ID, "from": 1, "recs": [["x", []]]}, {"k": "mig_data", "id": ID, "from": 1, "recs": []},
])
def test_malformed_messages_are_refused(payload: Any) -> None:
    with pytest.raises(BusMessageError):
        check(payload)


@settings(max_examples=300, deadline=None)
@given(values)
def test_random_messages_are_accepted_or_refused_never_crash(payload: Any) -> None:
    _receive(payload)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID), st.sampled_from(["k", "m", "id", "req", "cluster", "ts", "error", "x"]), values,
       st.booleans())
def test_mutated_messages_are_accepted_or_refused_never_crash(base: dict, name: str, value: Any, drop: bool) -> None:
    payload = dict(base)
    if drop:
        payload.pop(name, None)
    else:
        payload[name] = value
    _receive(payload)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([p for p in VALID if "m" in p]), values)
def test_random_inner_messages_reach_only_their_decoders_refusals(base: dict, inner: Any) -> None:
    _receive({**base, "m": inner})


HUGE = 2**20_000  # more decimal digits than Python prints: repr() raises ValueError


@pytest.mark.parametrize(
    "payload",
    [{"k": HUGE}, {"k": "lease", "req": HUGE}, {"k": "lease", "req": 1, HUGE: 1}, {"k": "lease", "req": [HUGE]}],
)
def test_a_value_too_large_to_print_is_refused_like_any_other(payload: dict) -> None:
    # Issue 12 §3.1: the refusal named the value with !r, which raised ValueError instead: one frame
    # ({"k": "lease", "req": <a 60 KB bignum>}) stopped a live node with exit 4.
    with pytest.raises(BusMessageError, match="too large to show"):
        check(payload)


def test_inner_decoders_refuse_a_value_too_large_to_print_with_their_own_error() -> None:
    ack = {"type": "repl_ack", "shard_id": "a" * 40, "replica_id": "b" * 40, "epoch": 1, "durable_offset": 1,
           "sync_id": HUGE}
    with pytest.raises(ReplWireError, match="too large to show"):
        repl_from_wire(ack)
    with pytest.raises(ReplWireError):
        repl_from_wire({**ack, "sync_id": 1, HUGE: 1})
    ping = {"type": "ping", "sender": "a" * 40, "incarnation": 1, "seq": HUGE, "suspects": []}
    with pytest.raises(GossipWireError, match="too large to show"):
        gossip_from_wire(ping)
    with pytest.raises(GossipWireError):
        gossip_from_wire({**ping, "seq": 1, "info": {"x": [HUGE]}})


def test_a_committed_command_too_large_to_print_is_refused_not_raised() -> None:
    # Applied on every node: an exception here would stop them all, at every restart.
    from trionode.core.cluster import commands
    from trionode.core.cluster.state import ClusterState

    for command in ({"op": HUGE}, {"op": "meet", HUGE: 1}):
        assert not commands.apply(ClusterState(), 1, command).ok


APP = {"type": "app", "frm": "e" * 40, "to": "a" * 40, "term": 3, "index": 1, "log_term": 1, "commit": 1,
       "entries": [{"t": "ent", "k": "normal", "i": 2, "term": 3, "d": {"op": "x"}}]}


@pytest.mark.parametrize(
    "change",
    [
        {"term": HUGE},  # adopted as the node's term, it stopped the node when logged (exit 4, seen live)
        {"commit": 2**63},
        {"entries": [{"t": "ent", "k": "normal", "i": "2", "term": 3, "d": None}]},
        {"entries": [{"t": "ent", "k": "normal", "i": 2, "term": HUGE, "d": None}]},
        {"entries": [{"t": "ent", "k": "conf", "i": 2, "term": 3, "d": {"kind": "promote", "node": [1]}}]},
        {"type": "snap", "snapshot": {"t": "snap", "i": -1, "term": 1, "conf": {"voters": [], "learners": []},
                                       "d": None}},
        {"type": "snap", "snapshot": {"t": "snap", "i": 5, "term": 1, "conf": {"voters": [7], "learners": []},
                                       "d": None}},
    ],
)
def test_a_raft_message_with_a_number_out_of_range_or_a_mistyped_id_is_refused(change: dict) -> None:
    raft_from_wire(APP)  # the message it changes is well formed
    with pytest.raises(WireError):
        raft_from_wire({**APP, **change})
