"""The cluster bus: frames cross between nodes; a node of another cluster is refused."""

import os
import random

import pytest
import trio
import trio.testing

from trionode import limits
from trionode.core import bus_auth
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
        assert a.send("b" * 40, {"k": "lease", "req": 1})
        await _eventually(lambda: got_b)
        assert got_b == [("a" * 40, {"k": "lease", "req": 1})]
        # b never configured a; the handshake taught it where a listens.
        assert b.send("a" * 40, {"k": "lease", "req": 2, "ok": True})
        await _eventually(lambda: got_a)
        assert got_a == [("b" * 40, {"k": "lease", "req": 2, "ok": True})]
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
            assert a.send("b" * 40, {"k": "lease", "req": i})
        await _eventually(lambda: a.stats.dropped >= 5)  # the failed dial discarded them
        listeners = await trio.open_tcp_listeners(port_b, host="127.0.0.1")
        b = Bus("b" * 40, lambda: "c" * 40, lambda peer, msg: got.append(msg), random.Random(2), ("127.0.0.1", port_b))
        b.secret = lambda: SECRET
        await nursery.start(b.run, listeners)
        assert a.send("b" * 40, {"k": "lease", "req": 99})
        await _eventually(lambda: got)
        assert got == [{"k": "lease", "req": 99}]
        nursery.cancel_scope.cancel()


async def _raw_peer(port: int, hello: dict, secret: bytes = SECRET) -> tuple[trio.SocketStream, bytearray]:
    """A dialer made by hand: its hello, then its proof under ``secret`` (core/bus_auth.py)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    nonce = os.urandom(bus_auth.NONCE_BYTES)
    await stream.send_all(encode_frame({**hello, "nonce": nonce}))
    buf = bytearray()
    reply = await read_frame(stream, buf)
    assert isinstance(reply, dict)  # the handshake reply
    proof = bus_auth.proof(secret, bus_auth.DIALER, hello["hello"], reply["hello"], nonce, reply["nonce"])
    await stream.send_all(encode_frame({"proof": proof}))
    return stream, buf


@pytest.mark.parametrize("bad", [
    {"k": [1]}, {"k": {"a": 1}}, {"k": "fwd_reply", "id": [1]}, {"k": "fwd_reply", "id": 1, "error": "", "index": -1},
    {"k": "raft", "cluster": "c", "m": {}, "ts": "x"}, {"k": "lease"}, {"k": "lease", "req": 1, "extra": 1},
    {"k": "fwd", "id": 1}, [1, 2], "hello", {"k": "nonesuch"},
])
async def test_a_malformed_message_closes_only_its_connection(bad) -> None:
    got: list = []
    async with trio.open_nursery() as nursery:
        b, port_b = await _start(nursery, "b" * 40, "c" * 40, got)
        # A hello with no cluster key gets through the handshake; what follows must still be checked.
        stream, buf = await _raw_peer(port_b, {"hello": "a" * 40})
        await stream.send_all(encode_frame(bad))
        with trio.fail_after(5):
            assert await read_frame(stream, buf) is None  # closed by b
        assert got == [] and b.stats.malformed == 1
        # Other connections, old and new, are untouched.
        good, _ = await _raw_peer(port_b, {"hello": "d" * 40})
        await good.send_all(encode_frame({"k": "lease", "req": 7}))
        await _eventually(lambda: got)
        assert got == [("d" * 40, {"k": "lease", "req": 7})]
        nursery.cancel_scope.cancel()


async def test_send_queue_is_bounded_in_bytes() -> None:
    async with trio.open_nursery() as nursery:
        a, _ = await _start(nursery, "a" * 40, "c" * 40, [])
        a.set_peer("b" * 40, ("127.0.0.1", 1))  # nobody listens there
        big = {"k": "repl", "m": {"blob": b"x" * (limits.bus_frame_bytes_max // 2)}}
        accepted = sum(a.send("b" * 40, big) for _ in range(10))
        assert accepted <= limits.bus_send_queue_bytes_max // (limits.bus_frame_bytes_max // 2)
        assert not a.send("b" * 40, {"k": "repl", "m": {"blob": b"x" * limits.bus_frame_bytes_max}})  # too big
        nursery.cancel_scope.cancel()


async def test_a_big_handshake_frame_is_refused() -> None:
    async with trio.open_nursery() as nursery:
        _, port_b = await _start(nursery, "b" * 40, "c" * 40, [])
        stream = await trio.open_tcp_stream("127.0.0.1", port_b)
        await stream.send_all((limits.bus_hello_bytes_max + 1).to_bytes(4, "little"))
        with trio.fail_after(5):
            assert await stream.receive_some(100) == b""  # closed without waiting for the frame
        nursery.cancel_scope.cancel()


async def test_inbound_connections_are_bounded_per_peer_and_in_total(monkeypatch) -> None:
    monkeypatch.setattr(limits, "bus_inbound_connections_max", 6)
    async with trio.open_nursery() as nursery:
        b, port_b = await _start(nursery, "b" * 40, "c" * 40, [])
        held = [await _raw_peer(port_b, {"hello": "d" * 40}) for _ in range(limits.bus_inbound_per_peer_max)]
        extra, buf = await _raw_peer(port_b, {"hello": "d" * 40})
        with trio.fail_after(5):  # one more from the same node: closed once it has proved who it is
            assert await read_frame(extra, buf) is None
        held.append(await _raw_peer(port_b, {"hello": "e" * 40}))
        held.append(await _raw_peer(port_b, {"hello": "f" * 40}))
        over, buf = await _raw_peer(port_b, {"hello": "0" * 40})
        with trio.fail_after(5):  # the total is reached: closed once it has proved who it is
            assert await read_frame(over, buf) is None
        await held[0][0].aclose()  # a slot frees up
        await _eventually(lambda: b._inbound_total == 5)
        held.append(await _raw_peer(port_b, {"hello": "0" * 40}))
        nursery.cancel_scope.cancel()


async def test_silent_unauthenticated_connections_do_not_use_up_the_peers_bound(monkeypatch) -> None:
    # Anyone who can reach the port could hold every inbound slot with connections that never
    # prove the secret, cutting the node off from Raft, replication and gossip.
    monkeypatch.setattr(limits, "bus_inbound_connections_max", 2)
    monkeypatch.setattr(limits, "bus_handshakes_max", 3)
    async with trio.open_nursery() as nursery:
        b, port_b = await _start(nursery, "b" * 40, "c" * 40, [])
        silent = [await trio.open_tcp_stream("127.0.0.1", port_b) for _ in range(2)]
        await _eventually(lambda: b._handshaking == 2)
        held = [await _raw_peer(port_b, {"hello": "d" * 40}), await _raw_peer(port_b, {"hello": "e" * 40})]
        await _eventually(lambda: b._inbound_total == 2)
        assert b._handshaking == 2 and held
        for stream in silent:
            await stream.aclose()
        nursery.cancel_scope.cancel()
