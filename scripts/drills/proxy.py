"""A fault proxy for cluster-bus links: network partitions for the drills.

Each node is started with ``bus_announce_port`` set to a proxy port, so every
peer dials the proxy, which forwards to the node's real bus port. The proxy
learns who is talking to whom from the dialer's handshake frame (4-byte
little-endian length, then a CBOR map whose ``hello`` names the dialer and
``to`` the node it meant to reach). That is all it understands of the bus.

Rules:

- A connection whose handshake names a cut pair is black-holed: it stays open,
  nothing is forwarded either way and what arrives is discarded, so the dialer
  times out as if its packets were dropped.
- Cutting a pair severs its live connections at once: both sides are reset, and
  bytes the proxy has read but not yet written are never written.
- Healing closes black-holed connections, so dialers redial without waiting for
  their handshake timeout.
- A connection whose first bytes are not a handshake (or that sends nothing for
  ``hello_timeout_s``) is forwarded untouched, and no cut ever applies to it.

Cuts are symmetric and named by node id. The proxy runs ``trio.run`` in one
daemon thread; its public methods are called from other threads and return only
once their effect is in place (a cut has severed what it must). They must not be
called from the proxy's own thread. Everything is bounded: connections, bytes
buffered per direction, the handshake's size and the time allowed to send it.
"""

import contextlib
import functools
import ipaddress
import logging
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import cbor2
import trio

log = logging.getLogger("drills.proxy")

CONNECTIONS_MAX: Final = 1024  # live connections, all routes together; beyond it new ones are closed
CHUNK_BYTES: Final = 64 * 1024  # read (and so buffered) per direction of a connection, at most
HELLO_BYTES_MAX: Final = 64 * 1024  # a real hello is ~200 bytes; a larger "length" means this is not the bus
CONNECT_TIMEOUT_S: Final = 2.0
START_TIMEOUT_S: Final = 10.0
CLOSE_WAIT_S: Final = 5.0  # how long a cut or heal waits for the connections it closes to be gone

_LENGTH = struct.Struct("<I")
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close sends RST and drops unsent bytes


class NeedData:
    """The sentinel :func:`parse_hello` returns while the handshake is incomplete."""


NEED_DATA: Final = NeedData()


def parse_hello(head: bytes) -> tuple[str, str] | NeedData | None:
    """The (dialer, target) a connection's first bytes name; None if they are not a bus handshake.

    Bytes after the handshake frame are ignored: they belong to the stream.
    """
    if len(head) < _LENGTH.size:
        return NEED_DATA
    (length,) = _LENGTH.unpack_from(head)
    if length > HELLO_BYTES_MAX:
        return None
    if len(head) < _LENGTH.size + length:
        return NEED_DATA
    try:
        hello = cbor2.loads(head[_LENGTH.size : _LENGTH.size + length])
    except cbor2.CBORError:
        return None
    if not isinstance(hello, dict):
        return None
    dialer, target = hello.get("hello"), hello.get("to")
    if isinstance(dialer, str) and isinstance(target, str) and dialer and target:
        return dialer, target
    return None


@dataclass(eq=False, slots=True)
class _Conn:
    """One accepted connection. ``mode`` is hello, forward, blackhole or transparent."""

    client: trio.SocketStream
    mode: str = "hello"
    pair: frozenset[str] | None = None
    target: trio.SocketStream | None = None
    severed: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)


class BusProxy:
    """One listening port per node, forwarding to that node's real bus port."""

    def __init__(self, host: str = "127.0.0.1", *, hello_timeout_s: float = 3.0) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the proxy listens on loopback addresses only, not {host}")
        self.host = host
        self.hello_timeout_s = hello_timeout_s
        self.stats: dict[str, int] = dict.fromkeys(
            ("connections", "forwarded", "transparent", "blackholed", "severed", "refused", "unreachable", "bytes"), 0
        )
        self._lock = threading.Lock()  # guards _routes, _cuts and _token, which other threads touch
        self._routes: dict[int, int] = {}
        self._cuts: set[frozenset[str]] = set()
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        # Only the proxy's thread touches these.
        self._nursery: trio.Nursery | None = None
        self._conns: set[_Conn] = set()

    # --- the interface, for other threads ------------------------------------------
    def add_route(self, listen_port: int, target_port: int) -> None:
        """Listen on ``listen_port`` and forward to ``target_port``; listening once this returns if started."""
        assert 0 < listen_port < 65536 and 0 < target_port < 65536, (listen_port, target_port)
        with self._lock:
            if listen_port in self._routes:
                raise ValueError(f"port {listen_port} already has a route")
            self._routes[listen_port] = target_port
            token = self._token
        if token is not None:
            try:
                trio.from_thread.run(self._open_route, listen_port, target_port, trio_token=token)
            except OSError:
                with self._lock:
                    del self._routes[listen_port]  # so the caller may retry with another port
                raise

    def start(self) -> None:
        assert self._thread is None, "a proxy starts once"
        self._thread = threading.Thread(target=self._thread_main, name="bus-proxy", daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise RuntimeError("the bus proxy did not start")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        with self._lock:
            token, thread = self._token, self._thread
            self._token = None  # later calls only record their change
        if thread is None:
            return
        if token is not None and self._nursery is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._nursery.cancel_scope.cancel, trio_token=token)
        thread.join(START_TIMEOUT_S)
        assert not thread.is_alive(), "the bus proxy thread did not stop"

    def cut(self, a: str, b: str) -> None:
        self._add_cuts([(a, b)])

    def isolate(self, node: str, others: Iterable[str]) -> None:
        self._add_cuts([(node, other) for other in others if other != node])

    def heal(self) -> None:
        with self._lock:
            self._cuts.clear()
        self._enforce_from_thread()

    @property
    def cuts(self) -> set[frozenset[str]]:
        with self._lock:
            return set(self._cuts)

    def _add_cuts(self, pairs: list[tuple[str, str]]) -> None:
        assert all(a != b for a, b in pairs), pairs
        with self._lock:
            self._cuts.update(frozenset(pair) for pair in pairs)
        self._enforce_from_thread()

    def _enforce_from_thread(self) -> None:
        with self._lock:
            token = self._token
        if token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run(self._enforce, trio_token=token)

    # --- the proxy's own thread --------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as e:
            self._error = e
            if self._started.is_set():
                log.exception("bus proxy stopped by an error")
        finally:
            self._started.set()

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            with self._lock:
                # Routes added from now on are opened by add_route through the token.
                routes = list(self._routes.items())
                self._token = trio.lowlevel.current_trio_token()
            try:
                for listen_port, target_port in routes:
                    await self._open_route(listen_port, target_port)
            except OSError as e:  # a port in use: start() raises it
                self._error = e
                nursery.cancel_scope.cancel()
                return
            self._started.set()
            await trio.sleep_forever()  # with no route yet, add_route still needs a running loop

    async def _open_route(self, listen_port: int, target_port: int) -> None:
        assert self._nursery is not None
        listeners = await trio.open_tcp_listeners(listen_port, host=self.host)
        handler = functools.partial(self._serve, target_port=target_port)
        self._nursery.start_soon(functools.partial(trio.serve_listeners, handler, listeners))

    async def _enforce(self) -> None:
        """Sever forwarded connections of cut pairs and release black-holed ones of healed pairs."""
        cuts = self.cuts
        affected = [
            conn for conn in self._conns
            if (conn.mode == "forward" and conn.pair in cuts) or (conn.mode == "blackhole" and conn.pair not in cuts)
        ]  # fmt: skip
        for conn in affected:
            if conn.mode == "forward":
                conn.severed = True
                self.stats["severed"] += 1
            conn.scope.cancel()
        with trio.move_on_after(CLOSE_WAIT_S):
            for conn in affected:
                await conn.done.wait()

    async def _serve(self, client: trio.SocketStream, target_port: int) -> None:
        self.stats["connections"] += 1
        if len(self._conns) >= CONNECTIONS_MAX:
            self.stats["refused"] += 1
            client.socket.close()
            return
        conn = _Conn(client)
        self._conns.add(conn)
        try:
            with conn.scope:
                await self._run(conn, target_port)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            log.debug("bus proxy: connection ended: %s", e)
        except Exception:  # a connection's boundary: whatever went wrong, only this connection ends
            log.exception("bus proxy: connection failed")
        finally:
            self._conns.discard(conn)
            for stream in (conn.client, conn.target):
                if stream is not None:
                    _close(stream, reset=conn.severed)
            conn.done.set()

    async def _run(self, conn: _Conn, target_port: int) -> None:
        head, pair = await self._read_hello(conn.client)
        if pair is not None:
            conn.pair = frozenset(pair)
        if conn.pair is not None and conn.pair in self.cuts:
            conn.mode = "blackhole"
            self.stats["blackholed"] += 1
            while await conn.client.receive_some(CHUNK_BYTES):
                pass
            return
        conn.mode = "forward" if conn.pair is not None else "transparent"
        stat = "forwarded" if conn.pair is not None else "transparent"
        try:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                conn.target = await trio.open_tcp_stream(self.host, target_port)
        except (OSError, trio.TooSlowError) as e:
            self.stats["unreachable"] += 1
            log.debug("bus proxy: cannot reach port %d: %s", target_port, e)
            return
        self.stats[stat] += 1
        if head:
            await conn.target.send_all(head)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, conn, conn.client, conn.target)
            nursery.start_soon(self._pump, conn, conn.target, conn.client)

    async def _read_hello(self, client: trio.SocketStream) -> tuple[bytes, tuple[str, str] | None]:
        """The bytes read so far, and the pair they name (None: forward them transparently)."""
        head = bytearray()
        with trio.move_on_after(self.hello_timeout_s):
            while True:
                found = parse_hello(head)
                if not isinstance(found, NeedData):
                    return bytes(head), found
                # Never past the largest handshake, so the bytes held here stay bounded.
                data = await client.receive_some(_LENGTH.size + HELLO_BYTES_MAX - len(head))
                if not data:
                    break
                head += data
        return bytes(head), None

    async def _pump(self, conn: _Conn, source: trio.SocketStream, sink: trio.SocketStream) -> None:
        try:
            while data := await source.receive_some(CHUNK_BYTES):
                await sink.send_all(data)
                self.stats["bytes"] += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            conn.scope.cancel()  # one side is gone: so is the connection
            return
        # A half-close travels on; the other direction may still have things to say.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await sink.send_eof()


def _close(stream: trio.SocketStream, *, reset: bool) -> None:
    # Closed synchronously: the caller may be cancelled, and a cancelled checkpoint must not skip a close.
    if reset:
        with contextlib.suppress(OSError):
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    stream.socket.close()


__all__ = ["NEED_DATA", "BusProxy", "NeedData", "parse_hello"]
