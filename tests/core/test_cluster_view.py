"""CLUSTER SLOTS / SHARDS / NODES / INFO against Valkey 8's layouts and redis-py's parsers."""

import dataclasses

import pytest
from redis._parsers.helpers import parse_cluster_info, parse_cluster_nodes
from redis.cluster import parse_cluster_shards, parse_cluster_shards_unified, parse_cluster_slots

from trionode.core.cluster_view import (
    ClusterView,
    NodeView,
    cluster_info,
    cluster_nodes,
    cluster_shards,
    cluster_slots,
    ranges_from_slots,
    slot_owner,
)
from trionode.core.reply import Simple, Verbatim

A, B, C, D, E, F = (c * 40 for c in "abcdef")
SHARD_1, SHARD_2, SHARD_3 = ("1" * 40, "2" * 40, "3" * 40)
LOCAL = "127.0.0.1"


def resp2(value):
    """What a RESP2 client reads back: maps flatten, sets become arrays, text becomes bytes."""
    if isinstance(value, dict):
        return [item for key, val in value.items() for item in (resp2(key), resp2(val))]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [resp2(item) for item in value]
    if isinstance(value, (Simple, Verbatim)):
        return value.encode()
    assert not isinstance(value, str), f"plain str has no wire form: {value!r}"
    return value


def primary(node_id, port, shard, slots, **kw):
    return NodeView(id=node_id, ip=LOCAL, port=port, bus_port=port + 10000, role="primary",
                    primary_id=None, shard_id=shard, slots=slots, **kw)  # fmt: skip


def replica(node_id, port, shard, of, **kw):
    return NodeView(id=node_id, ip=LOCAL, port=port, bus_port=port + 10000, role="replica",
                    primary_id=of, shard_id=shard, **kw)  # fmt: skip


@pytest.fixture
def single():
    node = primary(A, 7000, SHARD_1, ((0, 16383),), config_epoch=1, replication_offset=42)
    return ClusterView(myself_id=A, current_epoch=1, nodes=(node,), state_ok=True)


@pytest.fixture
def six():
    """3 shards; B (a primary) is suspect, F (a replica) is loading; A's slots come in two pieces."""
    nodes = (
        primary(A, 7000, SHARD_1, ((0, 99), (100, 5460)), config_epoch=1, replication_offset=500),
        primary(B, 7001, SHARD_2, ((5461, 10922),), config_epoch=2, replication_offset=400,
                health="suspect", link_connected=False, ping_sent_ms=1700000000100),
        primary(C, 7002, SHARD_3, ((10923, 16383),), config_epoch=3, replication_offset=300,
                hostname="node-c.example", pong_recv_ms=1700000000300),
        replica(D, 7003, SHARD_1, A, config_epoch=1, replication_offset=500),
        replica(E, 7004, SHARD_2, B, config_epoch=2, replication_offset=390),
        replica(F, 7005, SHARD_3, C, config_epoch=0, replication_offset=0, health="loading"),
    )  # fmt: skip
    return ClusterView(myself_id=A, current_epoch=6, nodes=nodes, state_ok=True)


def endpoint(node_id, port, metadata=None):
    return [LOCAL.encode(), port, node_id.encode(), metadata or {}]


# --- CLUSTER SLOTS ---------------------------------------------------------------


def test_slots_single_node(single):
    assert cluster_slots(single) == [[0, 16383, endpoint(A, 7000)]]


def test_slots_merges_touching_ranges_and_hides_loading_replicas(six):
    assert cluster_slots(six) == [
        [0, 5460, endpoint(A, 7000), endpoint(D, 7003)],
        [5461, 10922, endpoint(B, 7001), endpoint(E, 7004)],  # suspect is still listed
        [10923, 16383, endpoint(C, 7002, {b"hostname": b"node-c.example"})],  # F is loading
    ]


def test_slots_hides_failed_replica(six):
    nodes = tuple(dataclasses.replace(n, health="failed") if n.id == D else n for n in six.nodes)
    view = dataclasses.replace(six, nodes=nodes)
    assert cluster_slots(view)[0] == [0, 5460, endpoint(A, 7000)]


def test_slots_split_ranges_of_one_node_are_separate_entries():
    node = primary(A, 7000, SHARD_1, ((0, 10), (20, 30)))
    view = ClusterView(myself_id=A, current_epoch=0, nodes=(node,), state_ok=False)
    assert [entry[:2] for entry in cluster_slots(view)] == [[0, 10], [20, 30]]


def test_slots_parse_in_redis_py(six):
    parsed = parse_cluster_slots(resp2(cluster_slots(six)))
    assert parsed == {
        (0, 5460): {"primary": (LOCAL, 7000), "replicas": [(LOCAL, 7003)]},
        (5461, 10922): {"primary": (LOCAL, 7001), "replicas": [(LOCAL, 7004)]},
        (10923, 16383): {"primary": (LOCAL, 7002), "replicas": []},
    }


# --- CLUSTER SHARDS --------------------------------------------------------------


def shard_node(node_id, port, role, offset, health, hostname=None):
    entry = {b"id": node_id.encode(), b"port": port, b"ip": LOCAL.encode(), b"endpoint": LOCAL.encode()}
    if hostname:
        entry[b"hostname"] = hostname
    entry.update({b"role": role, b"replication-offset": offset, b"health": health})
    return entry


def test_shards_single_node(single):
    assert cluster_shards(single) == [
        {b"slots": [0, 16383], b"nodes": [shard_node(A, 7000, b"master", 42, b"online")]}
    ]


def test_shards_six_nodes(six):
    shards = cluster_shards(six)
    assert shards == [
        {b"slots": [0, 5460], b"nodes": [
            shard_node(A, 7000, b"master", 500, b"online"),
            shard_node(D, 7003, b"replica", 500, b"online")]},
        {b"slots": [5461, 10922], b"nodes": [
            shard_node(B, 7001, b"master", 400, b"online"),  # PFAIL is not FAIL
            shard_node(E, 7004, b"replica", 390, b"online")]},
        {b"slots": [10923, 16383], b"nodes": [
            shard_node(C, 7002, b"master", 300, b"online", b"node-c.example"),
            shard_node(F, 7005, b"replica", 0, b"loading")]},
    ]  # fmt: skip
    # Key order is part of the wire format (RESP2 flattens maps in this order).
    assert list(shards[2][b"nodes"][0]) == [
        b"id",
        b"port",
        b"ip",
        b"endpoint",
        b"hostname",
        b"role",
        b"replication-offset",
        b"health",
    ]


def test_shards_failed_node_and_slotless_shard_last(six):
    lonely = primary("9" * 40, 7009, "9" * 40, (), health="failed")
    view = dataclasses.replace(six, nodes=(lonely, *six.nodes))
    shards = cluster_shards(view)
    assert shards[-1] == {b"slots": [], b"nodes": [shard_node("9" * 40, 7009, b"master", 0, b"fail")]}


def test_shards_parse_in_redis_py(six):
    parsed = parse_cluster_shards(resp2(cluster_shards(six)))
    assert parsed[0]["slots"] == [(0, 5460)]
    assert [node[b"id"] for node in parsed[0]["nodes"]] == [A.encode(), D.encode()]
    assert parsed[2]["nodes"][0][b"hostname"] == b"node-c.example"
    assert parsed[2]["nodes"][1][b"health"] == b"loading"


# --- CLUSTER NODES ---------------------------------------------------------------


def test_nodes_single_node(single):
    text = cluster_nodes(single)
    assert isinstance(text, Verbatim)
    assert text == f"{A} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-16383\n"


def test_nodes_six_nodes(six):
    assert cluster_nodes(six).split("\n") == [
        f"{A} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460",
        f"{B} 127.0.0.1:7001@17001 master,fail? - 1700000000100 0 2 disconnected 5461-10922",
        f"{C} 127.0.0.1:7002@17002,node-c.example master - 0 1700000000300 3 connected 10923-16383",
        f"{D} 127.0.0.1:7003@17003 slave {A} 0 0 1 connected",
        f"{E} 127.0.0.1:7004@17004 slave {B} 0 0 2 connected",
        # A replica reports its primary's config epoch, as Valkey's nodeEpoch() does.
        f"{F} 127.0.0.1:7005@17005 slave {C} 0 0 3 connected",
        "",
    ]


def test_nodes_single_slots_and_failed_flag():
    node = primary(A, 7000, SHARD_1, ((7, 7), (9, 12)))
    other = primary(B, 7001, SHARD_2, ((8, 8),), health="failed")
    view = ClusterView(myself_id=B, current_epoch=0, nodes=(node, other), state_ok=False)
    lines = cluster_nodes(view).splitlines()
    assert lines[0].endswith(" connected 7 9-12")
    assert f"{B} 127.0.0.1:7001@17001 myself,master,fail - 0 0 0 connected 8" == lines[1]


def test_nodes_parse_in_redis_py(six):
    parsed = parse_cluster_nodes(resp2(cluster_nodes(six)))
    assert parsed["127.0.0.1:7000"]["flags"] == "myself,master"
    assert parsed["127.0.0.1:7000"]["slots"] == [["0", "5460"]]
    assert parsed["127.0.0.1:7001"]["connected"] is False
    assert parsed["127.0.0.1:7002"]["hostname"] == "node-c.example"
    assert parsed["127.0.0.1:7005"]["master_id"] == C


# --- CLUSTER INFO ----------------------------------------------------------------


def test_info_single_node(single):
    assert cluster_info(single) == (
        "cluster_state:ok\r\n"
        "cluster_slots_assigned:16384\r\n"
        "cluster_slots_ok:16384\r\n"
        "cluster_slots_pfail:0\r\n"
        "cluster_slots_fail:0\r\n"
        "cluster_known_nodes:1\r\n"
        "cluster_size:1\r\n"
        "cluster_current_epoch:1\r\n"
        "cluster_my_epoch:1\r\n"
        "cluster_stats_messages_sent:0\r\n"
        "cluster_stats_messages_received:0\r\n"
        "total_cluster_links_buffer_limit_exceeded:0\r\n"
    )


def test_info_six_nodes_counts_pfail_and_messages(six):
    text = cluster_info(
        six,
        messages_sent={"pong": 7, "ping": 5, "fail": 0},
        messages_received={"meet": 1},
        links_buffer_limit_exceeded=2,
    )
    assert isinstance(text, Verbatim)
    assert text.split("\r\n") == [
        "cluster_state:ok",
        "cluster_slots_assigned:16384",
        "cluster_slots_ok:10922",
        "cluster_slots_pfail:5462",
        "cluster_slots_fail:0",
        "cluster_known_nodes:6",
        "cluster_size:3",
        "cluster_current_epoch:6",
        "cluster_my_epoch:1",
        "cluster_stats_messages_ping_sent:5",  # Valkey's type order, zero counts omitted
        "cluster_stats_messages_pong_sent:7",
        "cluster_stats_messages_sent:12",
        "cluster_stats_messages_meet_received:1",
        "cluster_stats_messages_received:1",
        "total_cluster_links_buffer_limit_exceeded:2",
        "",
    ]
    assert parse_cluster_info(resp2(text))["cluster_slots_pfail"] == "5462"


def test_info_fail_state_and_unassigned_slots():
    node = primary(A, 7000, SHARD_1, ((0, 99),), health="failed")
    view = ClusterView(myself_id=A, current_epoch=0, nodes=(node,), state_ok=False)
    fields = parse_cluster_info(cluster_info(view))
    assert (fields["cluster_state"], fields["cluster_slots_assigned"]) == ("fail", "100")
    assert (fields["cluster_slots_ok"], fields["cluster_slots_fail"]) == ("0", "100")


# --- helpers and invariants -------------------------------------------------------


def test_slot_owner(six):
    assert [slot_owner(six, s).id for s in (0, 99, 100, 5460, 5461, 10922, 10923, 16383)] == [
        A, A, A, A, B, B, C, C,
    ]  # fmt: skip
    lonely = ClusterView(
        myself_id=A, current_epoch=0, nodes=(primary(A, 1, SHARD_1, ((5, 5),)),), state_ok=False
    )
    assert slot_owner(lonely, 4) is None and slot_owner(lonely, 5).id == A
    with pytest.raises(AssertionError):
        slot_owner(six, 16384)


def test_ranges_from_slots():
    assert ranges_from_slots([5, 1, 2, 3, 7, 7, 16383]) == ((1, 3), (5, 5), (7, 7), (16383, 16383))
    assert ranges_from_slots(range(16384)) == ((0, 16383),)
    assert ranges_from_slots([]) == ()


def test_view_rejects_overlapping_slots():
    with pytest.raises(AssertionError, match="overlap"):
        ClusterView(myself_id=A, current_epoch=0, state_ok=True, nodes=(
            primary(A, 7000, SHARD_1, ((0, 10),)), primary(B, 7001, SHARD_2, ((10, 20),))))  # fmt: skip


def test_node_rejects_bad_shapes():
    with pytest.raises(AssertionError):
        replica(D, 7003, SHARD_1, A, slots=((0, 1),))
    with pytest.raises(AssertionError):
        primary(A, 7000, SHARD_1, ((5, 9), (3, 4)))
    with pytest.raises(AssertionError):
        primary("xyz", 7000, SHARD_1, ())
    with pytest.raises(AssertionError):
        ClusterView(myself_id=B, current_epoch=0, nodes=(primary(A, 7000, SHARD_1, ()),), state_ok=True)


# --- on the wire, through the real serializer and redis-py's own protocol parsers ---


class _Wire:
    """The slice of redis-py's SocketBuffer its parsers use, over bytes already received."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def readline(self, timeout=None) -> bytes:
        end = self.data.index(b"\r\n", self.pos)
        line, self.pos = self.data[self.pos : end], end + 2
        return line

    def read(self, length: int, timeout=None) -> bytes:
        chunk, self.pos = self.data[self.pos : self.pos + length], self.pos + length + 2
        return chunk

    def get_pos(self) -> int:
        return self.pos

    def rewind(self, pos: int) -> None:
        self.pos = pos

    def purge(self) -> None:
        assert self.pos == len(self.data), "trailing bytes after one reply"


def through_redis_py(value, proto):
    from redis._parsers import _RESP2Parser, _RESP3Parser
    from redis.connection import Encoder

    resp = pytest.importorskip("trionode.core.resp")
    parser = (_RESP2Parser if proto == 2 else _RESP3Parser)(socket_read_size=65536)
    parser._buffer, parser.encoder = _Wire(resp.encode(value, proto)), Encoder("utf-8", "strict", False)
    return parser.read_response()


def test_wire_slots_single_node(single):
    resp = pytest.importorskip("trionode.core.resp")
    node = b"*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$40\r\n" + A.encode() + b"\r\n"
    assert resp.encode(cluster_slots(single), 2) == b"*1\r\n*3\r\n:0\r\n:16383\r\n" + node + b"*0\r\n"
    assert resp.encode(cluster_slots(single), 3) == b"*1\r\n*3\r\n:0\r\n:16383\r\n" + node + b"%0\r\n"


def test_wire_nodes_is_verbatim_in_resp3(single):
    resp = pytest.importorskip("trionode.core.resp")
    text = cluster_nodes(single).encode()
    assert resp.encode(cluster_nodes(single), 3) == b"=%d\r\ntxt:%b\r\n" % (len(text) + 4, text)
    assert resp.encode(cluster_nodes(single), 2) == b"$%d\r\n%b\r\n" % (len(text), text)


@pytest.mark.parametrize("proto", [2, 3])
def test_wire_round_trip_in_redis_py(six, proto):
    slots = parse_cluster_slots(through_redis_py(cluster_slots(six), proto))
    assert slots[(10923, 16383)] == {"primary": (LOCAL, 7002), "replicas": []}
    shards = parse_cluster_shards_unified(through_redis_py(cluster_shards(six), proto))
    assert [node["health"] for node in shards[2]["nodes"]] == [b"online", b"loading"]
    nodes = parse_cluster_nodes(through_redis_py(cluster_nodes(six), proto))
    assert nodes["127.0.0.1:7001"]["flags"] == "master,fail?"
    info = parse_cluster_info(through_redis_py(cluster_info(six), proto))
    assert info["cluster_known_nodes"] == "6"
