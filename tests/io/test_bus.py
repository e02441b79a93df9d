"""The cluster bus: frames cross between nodes; a node of another cluster is refused."""

import random

import pytest
import trio
import trio.testing

from trionode import limits
from trionode.io.bus import Bus, FrameError, encode_frame, read_frame

pytestmark = pytest.mark.timeout(30)


SECRET = b"s" * 64


async def _start(
    nursery: trio.Nursery, node_id: str, cluster_id: str, inbox: list, secret: bytes | None = SECRET
) -> tuple[Bus, int]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    bus = Bus(node_id, lambda: cluster_id, lambda peer, msg: inbox.append((peer, msg)), random.Random(1),
              ("127.0.0.1", port))
    bus.secret = lambda: secret
    await nursery.start(bus.run, listeners)
    return bus, port


async def _eventually(predicate) -> None:
    with trio.fail_after(10):
        while not predicate():
            await trio.sleep(0.01)


async def test_messages_flow_both_ways_and_the_dialled_node_learns_the_dialler() -> None:
    got_a: list = []
    got_b: list = []
    async with trio.open_nursery() as nursery:
        a, _ = await _start(nursery, "a" * 40, "c" * 40, got_a)
        b, port_b = await _start(nursery, "b" * 40, "c" * 40, got_b)
        a.set_peer("b" * 40, ("127.0.0.1", port_b))
        assert a.send("b" * 40, {"k": "x", "n": 1})
        await _eventually(lambda: got_b)
        assert got_b == [("a" * 40, {"k": "x", "n": 1})]
        # b never configured a; the handshake taught it where a listens.
        assert b.send("a" * 40, {"k": "y"})
        await _eventually(lambda: got_a)
        assert got_a == [("b" * 40, {"k": "y"})]
        nursery.cancel_scope.cancel()


async def test_a_node_of_another_cluster_is_refused() -> None:
    got: list = []
    async with trio.open_nursery() as nursery:
        a, _ = await _start(nursery, "a" * 40, "c" * 40, [])
        b, port_b = await _start(nursery, "b" * 40, "d" * 40, got)
        a.set_peer("b" * 40, ("127.0.0.1", port_b))
        a.send("b" * 40, {"k": "x"})
        await _eventually(lambda: b.stats.refused >= 2)  # refused, and refused again after the backoff
        assert got == [] and not a.connected("b" * 40) and a.stats.connects == 0
        nursery.cancel_scope.cancel()


async def test_send_queue_is_bounded() -> None:
    async with trio.open_nursery() as nursery:
        a, _ = await _start(nursery, "a" * 40, "c" * 40, [])
        a.set_peer("b" * 40, ("127.0.0.1", 1))  # nobody listens there
        accepted = sum(a.send("b" * 40, {"n": i}) for i in range(limits.bus_send_queue_msgs_max + 10))
        assert accepted <= limits.bus_send_queue_msgs_max
        assert a.stats.dropped >= 10
        nursery.cancel_scope.cancel()


async def test_oversized_frame_is_refused() -> None:
    send, receive = trio.testing.memory_stream_pair()
    header = (limits.bus_frame_bytes_max + 1).to_bytes(4, "little")
    await send.send_all(header)
    with pytest.raises(FrameError, match="exceeds"):
        await read_frame(receive, bytearray())


async def test_frames_round_trip_in_pieces() -> None:
    send, receive = trio.testing.memory_stream_pair()
    data = encode_frame({"a": [1, 2, b"x"]}) + encode_frame({"b": 2})
    for i in range(len(data)):
        await send.send_all(data[i : i + 1])
    buf = bytearray()
    assert await read_frame(receive, buf) == {"a": [1, 2, b"x"]}
    assert await read_frame(receive, buf) == {"b": 2}


async def test_what_was_queued_for_an_unreachable_peer_is_not_delivered_late() -> None:
    got: list = []
    async with trio.open_nursery() as nursery:
        a, _ = await _start(nursery, "a" * 40, "c" * 40, [])
        with trio.socket.socket() as probe:  # a port nobody listens on yet
            await probe.bind(("127.0.0.1", 0))
            port_b = probe.getsockname()[1]
        a.set_peer("b" * 40, ("127.0.0.1", port_b))
        for i in range(5):
            assert a.send("b" * 40, {"stale": i})
        await _eventually(lambda: a.stats.dropped >= 5)  # the failed dial discarded them
        listeners = await trio.open_tcp_listeners(port_b, host="127.0.0.1")
        b = Bus("b" * 40, lambda: "c" * 40, lambda peer, msg: got.append(msg), random.Random(2), ("127.0.0.1", port_b))
        b.secret = lambda: SECRET
        await nursery.start(b.run, listeners)
        assert a.send("b" * 40, {"fresh": 1})
        await _eventually(lambda: got)
        assert got == [{"fresh": 1}]
        nursery.cancel_scope.cancel()
