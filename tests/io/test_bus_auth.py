"""Bus handshake authentication: without the cluster secret, no frame gets through, either way."""

import os

import pytest
import trio

from tests.io.test_bus import SECRET, _eventually, _raw_peer, _start
from trionode import limits
from trionode.core import bus_auth
from trionode.io.bus import encode_frame, read_frame

pytestmark = pytest.mark.timeout(30)

A, B, CLUSTER = "a" * 40, "b" * 40, "c" * 40


async def test_nodes_with_different_secrets_never_exchange_a_frame() -> None:
    got: list = []
    async with trio.open_nursery() as nursery:
        a, _ = await _start(nursery, A, CLUSTER, got, secret=b"x" * 64)
        b, port_b = await _start(nursery, B, CLUSTER, got)
        a.set_peer(B, ("127.0.0.1", port_b))
        a.send(B, {"k": "x"})
        await _eventually(lambda: a.stats.refused >= 2 and b.stats.refused >= 2)
        assert got == [] and not a.connected(B) and a.stats.connects == 0
        assert not b.connected(A) and A not in b._peers  # b did not believe a's address either
        nursery.cancel_scope.cancel()


async def test_a_node_without_a_secret_neither_dials_nor_accepts() -> None:
    got: list = []
    async with trio.open_nursery() as nursery:
        a, _ = await _start(nursery, A, CLUSTER, got, secret=None)
        _, port_b = await _start(nursery, B, CLUSTER, got)
        a.set_peer(B, ("127.0.0.1", port_b))
        a.send(B, {"k": "x"})
        await trio.sleep(0.3)
        assert got == [] and a.stats.connects == 0
        nursery.cancel_scope.cancel()


async def test_a_process_without_the_secret_gets_no_frame_accepted() -> None:
    got: list = []
    async with trio.open_nursery() as nursery:
        b, port_b = await _start(nursery, B, CLUSTER, got)
        stream, buf = await _raw_peer(port_b, {"hello": A, "addr": ["127.0.0.1", 1]}, secret=b"y" * 64)
        await stream.send_all(encode_frame({"k": "lease", "req": 1}))
        with trio.fail_after(5):
            assert await _closed_by_peer(stream, buf)
        # One that skips the proof and sends a message straight away fares no better.
        skipper = await trio.open_tcp_stream("127.0.0.1", port_b)
        await skipper.send_all(encode_frame({"hello": A, "nonce": os.urandom(bus_auth.NONCE_BYTES)}))
        reply = await read_frame(skipper, bytearray())
        assert SECRET not in encode_frame(reply)  # the acceptor proves; it never sends the secret
        await skipper.send_all(encode_frame({"k": "lease", "req": 2}))
        with trio.fail_after(5):
            assert await _closed_by_peer(skipper, bytearray())
        await trio.sleep(0.1)
        assert got == [] and A not in b._peers and b.stats.refused == 2
        nursery.cancel_scope.cancel()


async def _closed_by_peer(stream: trio.SocketStream, buf: bytearray) -> bool:
    """True once the peer closed: cleanly, or with a reset when our unread frame was still in its buffer.

    False if a frame arrived instead.
    """
    try:
        return await read_frame(stream, buf) is None
    except trio.BrokenResourceError:
        return True


async def test_a_dialer_does_not_prove_itself_to_an_acceptor_that_cannot() -> None:
    """An impostor listening where B should be learns no proof it could replay to B."""
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        seen: list = []

        async def fake_b(stream: trio.SocketStream) -> None:
            buf = bytearray()
            hello = await read_frame(stream, buf)
            await stream.send_all(encode_frame({"hello": B, "cluster": CLUSTER, "nonce": b"m" * 16,
                                                "proof": b"\0" * 32}))
            seen.append(hello)
            with trio.move_on_after(0.5):
                seen.append(await read_frame(stream, buf))

        nursery.start_soon(trio.serve_listeners, fake_b, listeners)
        a, _ = await _start(nursery, A, CLUSTER, [])
        a.set_peer(B, ("127.0.0.1", port))
        a.send(B, {"k": "x"})
        await _eventually(lambda: len(seen) >= 2)
        assert seen[1] is None  # a hung up instead of sending its proof
        assert a.stats.refused >= 1 and a.stats.connects == 0
        nursery.cancel_scope.cancel()


async def test_silent_handshakes_do_not_keep_a_real_peer_out(monkeypatch) -> None:
    # Anyone who could reach the port held every handshake slot with connections that say nothing,
    # opening a new one as each timed out: every real peer's dial was refused, cutting the node off.
    # Now the oldest pending handshake makes way; a real peer needs only one round trip.
    monkeypatch.setattr(limits, "bus_handshakes_max", 3)
    monkeypatch.setattr(limits, "bus_handshake_timeout_ms", 600_000)  # the silent ones never time out here
    async with trio.open_nursery() as nursery:
        b, port_b = await _start(nursery, B, CLUSTER, [])
        silent = [await trio.open_tcp_stream("127.0.0.1", port_b) for _ in range(3)]
        await _eventually(lambda: b._handshaking == 3)
        closed: list = []
        for s in silent:
            nursery.start_soon(_note_closed, s, closed)
        stream, _ = await _raw_peer(port_b, {"hello": A})
        await _eventually(lambda: b._inbound_total == 1 and len(closed) == 1)  # one silent one made way
        assert b._handshaking == 2
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def _note_closed(stream: trio.SocketStream, closed: list) -> None:
    if await _closed_by_peer(stream, bytearray()):
        closed.append(stream)
