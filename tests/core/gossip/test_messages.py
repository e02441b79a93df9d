"""The gossip wire form: exact round trips, and every malformed payload refused."""

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.core.cluster.state import Shard
from trionode.core.failover.fences import reported_fence
from trionode.core.gossip import GossipWireError, Ping, Pong, from_wire
from trionode.core.gossip.messages import info_keys_max, suspects_max, valid_info

A, B, C = (c * 40 for c in "abc")


def good() -> dict:
    return {"type": "ping", "sender": A, "incarnation": 3, "seq": 9, "suspects": [B, C],
            "info": {"offset": 17, "role": "replica", "loading": False, "shard": None}}  # fmt: skip


@pytest.mark.parametrize(
    "msg",
    [Ping(A, 0, 1, ()), Ping(A, 3, 9, (B, C), {"offset": 2**64 - 1, "role": "primary"}), Pong(B, 1, 2, (A,), {}),
     Pong(B, 1, 3, (), {"fence_shard": C, "fence_epoch": 4})],
)
def test_round_trip_through_cbor_is_exact(msg: Ping | Pong) -> None:
    wire = msg.to_wire()
    assert from_wire(cbor2.loads(cbor2.dumps(wire))) == msg
    assert type(msg).from_wire(wire) == msg


def test_a_pong_is_not_a_ping() -> None:
    wire = Pong(A, 0, 1, ()).to_wire()
    with pytest.raises(GossipWireError, match="expected a gossip ping"):
        Ping.from_wire(wire)


def test_the_good_payload_is_accepted() -> None:
    msg = from_wire(good())
    assert isinstance(msg, Ping) and msg.key == (3, 9) and msg.suspects == (B, C)


def test_suspects_are_sorted_on_arrival() -> None:
    assert from_wire(good() | {"suspects": [C, B]}).suspects == (B, C)


def _without(key: str) -> dict:
    raw = good()
    del raw[key]
    return raw


BAD = {
    "not a map": [good()],
    "unknown type": good() | {"type": "pang"},
    "type not a string": good() | {"type": 1},
    "missing sender": _without("sender"),
    "missing seq": _without("seq"),
    "extra field": good() | {"hops": 1},
    "short sender": good() | {"sender": "abc"},
    "upper-case sender": good() | {"sender": "A" * 40},
    "bool seq": good() | {"seq": True},
    "negative seq": good() | {"seq": -1},
    "huge incarnation": good() | {"incarnation": 2**63},
    "float seq": good() | {"seq": 1.0},
    "suspects not a list": good() | {"suspects": B},
    "suspect not an id": good() | {"suspects": [B, 7]},
    "repeated suspect": good() | {"suspects": [B, B]},
    "sender suspects itself": good() | {"suspects": [A]},
    "too many suspects": good() | {"suspects": [f"{i:040x}" for i in range(1, suspects_max + 2)]},
    "info not a map": good() | {"info": [1]},
    "info key not a string": good() | {"info": {1: 2}},
    "empty info key": good() | {"info": {"": 2}},
    "nested info": good() | {"info": {"a": {"b": 1}}},
    "float info": good() | {"info": {"a": 0.5}},
    "bytes info": good() | {"info": {"a": b"x"}},
    "long info string": good() | {"info": {"a": "x" * 257}},
    "huge info int": good() | {"info": {"a": 2**64}},
    "too many info keys": good() | {"info": {f"k{i}": i for i in range(info_keys_max + 1)}},
    "fence shard without epoch": good() | {"info": {"fence_shard": C}},
    "fence epoch without shard": good() | {"info": {"fence_epoch": 2}},
    "fence shard not an id": good() | {"info": {"fence_shard": "s1", "fence_epoch": 2}},
    "fence epoch zero": good() | {"info": {"fence_shard": C, "fence_epoch": 0}},
    "fence epoch a bool": good() | {"info": {"fence_shard": C, "fence_epoch": True}},
    "fence epoch a string": good() | {"info": {"fence_shard": C, "fence_epoch": "2"}},
    "fence epoch negative": good() | {"info": {"fence_shard": C, "fence_epoch": -2}},
    "fence epoch huge": good() | {"info": {"fence_shard": C, "fence_epoch": 2**63}},
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_payloads_are_refused(name: str) -> None:
    with pytest.raises(GossipWireError):
        from_wire(BAD[name])


def test_valid_info_agrees_with_the_wire_check() -> None:
    assert valid_info({"offset": 1, "role": "replica"}) and valid_info({})
    assert valid_info({"fence_shard": C, "fence_epoch": 2, "offset": 1})  # the leader reads it (core/failover)
    assert not valid_info({"fence_shard": C})
    assert not valid_info({"a": 0.5}) and not valid_info(None)


fence_values = st.none() | st.booleans() | st.integers(-3, 2**64) | st.sampled_from([C, "c" * 39, "C" * 40, ""])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["fence_shard", "fence_epoch", "offset"]), fence_values))
def test_a_fence_report_the_boundary_lets_through_is_one_the_leader_can_read(info: dict) -> None:
    # The failover controller reads these keys of a peer's info (core/failover/fences.py).
    try:
        msg = from_wire(good() | {"info": info})
    except GossipWireError:
        return
    shard = Shard(C, 1, A, (B,), (A, B))
    epoch = reported_fence(shard, {B: msg.info})
    assert epoch is None or (info["fence_shard"] == C and epoch == info["fence_epoch"] > 1)
