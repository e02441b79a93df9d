"""The cluster bus: length-prefixed CBOR frames over TCP between nodes.

Each node listens on its bus port. To talk to a peer it keeps one outbound
connection, dialled on demand and re-dialled with bounded exponential backoff;
inbound connections only receive. Every connection starts with a handshake
that names both nodes and the cluster: a node of another cluster, or a dialled
address that turns out to be a different node, is refused and the connection
closed. In the same exchange both ends prove they hold the cluster secret
(``core/bus_auth.py``); until both have, no other frame is read and nothing
the dialer says (its address) is believed.

Sending never blocks the caller: each peer has a queue bounded in messages and
in bytes (frames are encoded when queued), and a message that does not fit is
dropped and counted, as is everything queued for a peer whose dial just
failed. That is safe for everything the bus carries, since Raft, gossip and
replication resend what matters; growing without bound, or delivering a stale
backlog on reconnect, is not.

What a peer can make this node hold is bounded too: inbound connections in
total and per node id, the handshake frame (small, before the peer has said
who it is), and every later frame. Each message is checked against its schema
(``core/bus_messages.py``) before a handler sees it; a malformed one closes
its connection.
"""

import contextlib
import logging
import os
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cbor2
import trio

from trionode import limits
from trionode.core import bus_auth
from trionode.core.bus_messages import BusMessageError, check
from trionode.io.listen import accept_forever

log = logging.getLogger("trionode.bus")

_LENGTH = struct.Struct("<I")


class FrameError(Exception):
    """A peer sent a frame that is too large or does not decode."""


async def read_frame(
    stream: trio.abc.ReceiveStream, buf: bytearray, bytes_max: int = limits.bus_frame_bytes_max
) -> Any:
    """The next frame's payload, of at most ``bytes_max`` bytes; None when the peer closed cleanly."""
    while len(buf) < _LENGTH.size:
        if not await _fill(stream, buf):
            return None
    (length,) = _LENGTH.unpack_from(buf)
    if length > bytes_max:
        raise FrameError(f"frame of {length} bytes exceeds the bound of {bytes_max}")
    while len(buf) < _LENGTH.size + length:
        if not await _fill(stream, buf):
            raise FrameError("connection closed in the middle of a frame")
    payload = bytes(buf[_LENGTH.size : _LENGTH.size + length])
    del buf[: _LENGTH.size + length]
    try:
        return cbor2.loads(payload)
    except (cbor2.CBORDecodeError, ValueError) as e:
        raise FrameError(f"undecodable frame: {e}") from None


async def _fill(stream: trio.abc.ReceiveStream, buf: bytearray) -> bool:
    data = await stream.receive_some(64 * 1024)
    buf += data
    return bool(data)


def _is_addr(addr: Any) -> bool:
    return (
        isinstance(addr, list) and len(addr) == 2 and isinstance(addr[0], str) and isinstance(addr[1], int)
    )


def encode_frame(obj: Any) -> bytes:
    payload = cbor2.dumps(obj)
    if len(payload) > limits.bus_frame_bytes_max:
        raise FrameError(f"frame of {len(payload)} bytes exceeds bus_frame_bytes_max")
    return _LENGTH.pack(len(payload)) + payload


@dataclass(slots=True)
class _Peer:
    node_id: str
    addr: tuple[str, int]
    send: trio.MemorySendChannel
    receive: trio.MemoryReceiveChannel
    connected: bool = False
    queued_bytes: int = 0  # encoded frames waiting in the queue; Invariant: <= limits.bus_send_queue_bytes_max


@dataclass(slots=True)
class BusStats:
    sent: int = 0
    received: int = 0
    dropped: int = 0
    refused: int = 0
    malformed: int = 0   # connections closed for a frame that broke its message schema
    connects: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class Bus:
    """Frames to and from peers. ``on_message(peer_id, payload)`` runs for each received frame."""

    def __init__(
        self,
        node_id: str,
        cluster_id: Callable[[], str],
        on_message: Callable[[str, dict], None],
        rng: random.Random,
        advertise: tuple[str, int],
    ) -> None:
        self.node_id = node_id
        self.advertise = advertise
        self._cluster_id = cluster_id
        self._on_message = on_message
        self._rng = rng
        self._peers: dict[str, _Peer] = {}
        # The cluster secret's HMAC key, None while there is none (then every handshake fails).
        self.secret: Callable[[], bytes | None] = lambda: None
        self._inbound_total = 0  # Invariant: <= limits.bus_inbound_connections_max (proved peers only)
        # Inbound connections still proving the secret, oldest first. Invariant: len <= limits.bus_handshakes_max.
        self._handshakes: dict[trio.CancelScope, None] = {}
        self._inbound_by_peer: dict[str, int] = {}  # Invariant: each <= limits.bus_inbound_per_peer_max
        self._nursery: trio.Nursery | None = None
        self.stats = BusStats()

    # --- sending ------------------------------------------------------------
    def set_peer(self, node_id: str, addr: tuple[str, int]) -> None:
        """Know (or update) where ``node_id`` listens; its sender task starts on demand."""
        assert node_id != self.node_id, "a node does not dial itself"
        peer = self._peers.get(node_id)
        if peer is not None:
            peer.addr = addr
            return
        send, receive = trio.open_memory_channel(limits.bus_send_queue_msgs_max)
        self._peers[node_id] = _Peer(node_id, addr, send, receive)
        if self._nursery is not None:
            self._nursery.start_soon(self._sender, self._peers[node_id])

    def forget_peer(self, node_id: str) -> None:
        peer = self._peers.pop(node_id, None)
        if peer is not None:
            peer.send.close()

    def send(self, node_id: str, payload: dict) -> bool:
        """Queue ``payload`` for ``node_id``; False (and counted) if it had to be dropped."""
        peer = self._peers.get(node_id)
        if peer is None:
            self.stats.dropped += 1
            return False
        try:
            frame = encode_frame(payload)
        except FrameError as e:
            log.warning("bus: dropped a %s message for %s: %s", payload.get("k"), node_id[:12], e)
            self.stats.dropped += 1
            return False
        if peer.queued_bytes + len(frame) > limits.bus_send_queue_bytes_max:
            self.stats.dropped += 1
            return False
        try:
            peer.send.send_nowait(frame)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.stats.dropped += 1
            return False
        peer.queued_bytes += len(frame)
        return True

    @staticmethod
    def _dequeued(peer: _Peer, frame: bytes) -> bytes:
        peer.queued_bytes -= len(frame)
        assert peer.queued_bytes >= 0
        return frame

    def connected(self, node_id: str) -> bool:
        peer = self._peers.get(node_id)
        return peer is not None and peer.connected

    # --- tasks --------------------------------------------------------------
    async def run(self, listeners: list[trio.SocketListener], *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Accept peers on ``listeners`` and run one sender per known peer, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for peer in self._peers.values():
                nursery.start_soon(self._sender, peer)
            for listener in listeners:
                nursery.start_soon(accept_forever, listener, self._receiver, nursery, "cluster bus")
            task_status.started()

    @property
    def _handshaking(self) -> int:
        return len(self._handshakes)

    async def _receiver(self, stream: trio.SocketStream) -> None:
        async with stream:
            # Connections still proving the secret have their own small bound: anyone who can reach
            # the port can hold one open for a handshake timeout, and must not crowd out real peers.
            # At the bound the oldest makes way, not the newcomer: a real peer proves itself in one
            # round trip, so keeping it out takes a flood of connections, not a few silent ones.
            if self._handshaking >= limits.bus_handshakes_max:
                oldest = next(iter(self._handshakes))
                del self._handshakes[oldest]
                oldest.cancel()
                self.stats.refused += 1
            buf, proved = bytearray(), None
            with trio.CancelScope() as scope:
                self._handshakes[scope] = None
                try:
                    proved = await self._handshake(stream, buf)
                finally:
                    self._handshakes.pop(scope, None)  # gone already if it made way
            if proved is None:
                return
            if self._inbound_total >= limits.bus_inbound_connections_max:
                self.stats.refused += 1
                return
            self._inbound_total += 1
            try:
                await self._serve_inbound(stream, buf, *proved)
            finally:
                self._inbound_total -= 1

    async def _handshake(self, stream: trio.SocketStream, buf: bytearray) -> tuple[str, dict] | None:
        """The dialer's node id and hello once it has proved the cluster secret; None if it did not."""
        try:
            with trio.fail_after(limits.bus_handshake_timeout_ms / 1000):
                hello = await read_frame(stream, buf, limits.bus_hello_bytes_max)
            peer_id = self._check_hello(hello)
            if peer_id is None or not await self._prove_inbound(stream, buf, hello, peer_id):
                return None
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, FrameError) as e:
            log.debug("bus: inbound handshake ended: %s", e)
            return None
        return peer_id, hello

    async def _serve_inbound(self, stream: trio.SocketStream, buf: bytearray, peer_id: str, hello: dict) -> None:
        try:
            # Proved before it counts against its node id's bound: an impostor must not use up a real peer's.
            if self._inbound_by_peer.get(peer_id, 0) >= limits.bus_inbound_per_peer_max:
                self.stats.refused += 1
                return
            self._inbound_by_peer[peer_id] = self._inbound_by_peer.get(peer_id, 0) + 1
            try:
                self._learn_peer(peer_id, hello.get("addr"))
                await self._receive_loop(stream, buf, peer_id)
            finally:
                self._leave_inbound(peer_id)
        except BusMessageError as e:
            self._note_malformed(peer_id, e)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, FrameError) as e:
            log.debug("bus: inbound connection ended: %s", e)

    def _leave_inbound(self, peer_id: str) -> None:
        left = self._inbound_by_peer.pop(peer_id) - 1
        if left:
            self._inbound_by_peer[peer_id] = left

    def _note_malformed(self, peer_id: str, error: BusMessageError) -> None:
        # Logged the first time and then once per thousand: a peer that keeps sending garbage must not flood the log.
        self.stats.malformed += 1
        if self.stats.malformed % 1000 == 1:
            log.warning("bus: closed the connection from %s after a malformed message (%d so far): %s",
                        peer_id[:12], self.stats.malformed, error)

    def _check_hello(self, hello: Any) -> str | None:
        if not isinstance(hello, dict) or not isinstance(hello.get("hello"), str):
            self.stats.refused += 1
            return None
        peer_cluster, mine = hello.get("cluster", ""), self._cluster_id()
        if peer_cluster and mine and peer_cluster != mine:
            log.warning("bus: refused node %s of cluster %s (this is cluster %s)", hello["hello"], peer_cluster, mine)
            self.stats.refused += 1
            return None
        if hello.get("to") not in ("", None, self.node_id):
            self.stats.refused += 1
            return None
        return hello["hello"]

    def _learn_peer(self, peer_id: str, addr: Any) -> None:
        """A node that dialled us, and proved it is of our cluster, may be new (joining): learn where to answer it."""
        if peer_id not in self._peers and peer_id != self.node_id and _is_addr(addr):
            self.set_peer(peer_id, (addr[0], addr[1]))

    async def _prove_inbound(self, stream: trio.SocketStream, buf: bytearray, hello: dict, peer_id: str) -> bool:
        """Answer the dialer's hello with our proof, then require its own (core/bus_auth.py)."""
        secret, nonce, theirs = self.secret(), os.urandom(bus_auth.NONCE_BYTES), hello.get("nonce")
        if secret is None or not bus_auth.valid_nonce(theirs):
            self.stats.refused += 1
            return False
        mine = bus_auth.proof(secret, bus_auth.ACCEPTOR, peer_id, self.node_id, theirs, nonce)
        await stream.send_all(encode_frame({"hello": self.node_id, "cluster": self._cluster_id(), "nonce": nonce,
                                            "proof": mine}))
        with trio.fail_after(limits.bus_handshake_timeout_ms / 1000):
            answer = await read_frame(stream, buf, limits.bus_hello_bytes_max)
        if not bus_auth.proof_ok(bus_auth.proof(secret, bus_auth.DIALER, peer_id, self.node_id, theirs, nonce), answer):
            log.warning("bus: refused a connection claiming to be %s: it did not prove it holds the cluster secret",
                        peer_id[:12])
            self.stats.refused += 1
            return False
        return True

    async def _receive_loop(self, stream: trio.SocketStream, buf: bytearray, peer_id: str) -> None:
        while True:
            payload = await read_frame(stream, buf)
            if payload is None:
                return
            self.stats.received += 1
            self._on_message(peer_id, check(payload))

    async def _sender(self, peer: _Peer) -> None:
        backoff_ms = limits.bus_backoff_min_ms
        async with peer.receive:
            while peer.node_id in self._peers:
                stream = await self._dial(peer)
                if stream is None:
                    self._discard_queued(peer)
                    jitter = 0.5 + self._rng.random()
                    await trio.sleep(backoff_ms * jitter / 1000)
                    backoff_ms = min(backoff_ms * 2, limits.bus_backoff_max_ms)
                    continue
                backoff_ms = limits.bus_backoff_min_ms
                await self._send_loop(peer, stream)

    def _discard_queued(self, peer: _Peer) -> None:
        """The peer is unreachable: what waits for it is stale by the time it is back.

        Raft, gossip and replication all resend what still matters. Delivering a backlog
        late does harm: a replica that asked its restarting primary to sync every
        ``repl_sync_retry_ms`` would have every request answered, each with a full
        snapshot of the keyspace (a drill saw six at once).
        """
        with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
            while True:
                self._dequeued(peer, peer.receive.receive_nowait())
                self.stats.dropped += 1

    async def _dial(self, peer: _Peer) -> trio.SocketStream | None:
        secret, nonce = self.secret(), os.urandom(bus_auth.NONCE_BYTES)
        if secret is None:
            return None
        try:
            with trio.fail_after(limits.bus_connect_timeout_ms / 1000):
                stream = await trio.open_tcp_stream(*peer.addr)
                hello = {
                    "hello": self.node_id,
                    "cluster": self._cluster_id(),
                    "to": peer.node_id,
                    "addr": list(self.advertise),
                    "nonce": nonce,
                }
                await stream.send_all(encode_frame(hello))
                reply = await read_frame(stream, bytearray(), limits.bus_hello_bytes_max)
                answer = self._answer_acceptor(secret, peer.node_id, nonce, reply)
                if answer is not None:
                    await stream.send_all(encode_frame(answer))
        except (OSError, trio.TooSlowError, trio.BrokenResourceError, FrameError):
            return None
        if answer is None:
            await stream.aclose()
            return None
        self.stats.connects += 1
        return stream

    def _answer_acceptor(self, secret: bytes, peer_id: str, nonce: bytes, reply: Any) -> dict | None:
        """Our proof for the dialled node, if its reply names it and proves it holds the secret; else None."""
        if self._check_hello(reply) != peer_id or not bus_auth.valid_nonce(reply.get("nonce")):
            return None
        expected = bus_auth.proof(secret, bus_auth.ACCEPTOR, self.node_id, peer_id, nonce, reply["nonce"])
        if not bus_auth.proof_ok(expected, reply):
            log.warning("bus: %s did not prove it holds the cluster secret; not using the connection", peer_id[:12])
            self.stats.refused += 1
            return None
        return {"proof": bus_auth.proof(secret, bus_auth.DIALER, self.node_id, peer_id, nonce, reply["nonce"])}

    async def _send_loop(self, peer: _Peer, stream: trio.SocketStream) -> None:
        peer.connected = True
        try:
            async with stream:
                async for frame in peer.receive:
                    frames = [self._dequeued(peer, frame)]
                    # Coalesce what is already queued into one write.
                    with contextlib.suppress(trio.WouldBlock):
                        while len(frames) < 64:
                            frames.append(self._dequeued(peer, peer.receive.receive_nowait()))
                    await stream.send_all(b"".join(frames))
                    self.stats.sent += len(frames)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            log.debug("bus: connection to %s lost: %s", peer.node_id[:12], e)
        finally:
            peer.connected = False

