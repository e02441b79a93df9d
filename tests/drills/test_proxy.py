"""The drills' bus fault proxy, between fake peers made of plain sockets.

A "dialer" connects to a proxy port and sends a bus hello naming itself and its
target; the "node" behind the route is a listening socket the test accepts on.
"""

import socket
import struct
import threading
from collections.abc import Iterator

import cbor2
import pytest

from scripts.drills.proxy import HELLO_BYTES_MAX, NEED_DATA, BusProxy, parse_hello

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"
WAIT_S = 5.0  # for things that must happen; a loaded machine may be slow
QUIET_S = 0.5  # for things that must not: how long a test watches for them


def hello(dialer: str, target: str) -> bytes:
    payload = cbor2.dumps({"hello": dialer, "cluster": "c", "to": target, "addr": [HOST, 1]})
    return struct.pack("<I", len(payload)) + payload


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Node:
    """A bus listener standing in for a node, behind its own proxy port."""

    def __init__(self, proxy: BusProxy) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(WAIT_S)
        self.proxy_port = free_port()
        proxy.add_route(self.proxy_port, self.listener.getsockname()[1])

    def dial(self, dialer: str, target: str, first: bytes | None = None) -> socket.socket:
        sock = socket.create_connection((HOST, self.proxy_port), timeout=WAIT_S)
        sock.sendall(hello(dialer, target) if first is None else first)
        return sock

    def accept(self, timeout_s: float = WAIT_S) -> socket.socket:
        self.listener.settimeout(timeout_s)
        sock, _ = self.listener.accept()
        sock.settimeout(WAIT_S)
        return sock

    def nothing_arrives(self) -> bool:
        try:
            self.accept(QUIET_S).close()
        except TimeoutError:
            return True
        return False


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, f"closed after {len(data)} of {count} bytes"
        data += chunk
    return data


def is_closed(sock: socket.socket) -> bool:
    """The peer closed or reset the connection (and sent nothing first)."""
    sock.settimeout(WAIT_S)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def is_open_and_silent(sock: socket.socket) -> bool:
    sock.settimeout(QUIET_S)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    return False


@pytest.fixture
def proxy() -> Iterator[BusProxy]:
    proxy = BusProxy(HOST, hello_timeout_s=0.3)
    yield proxy
    proxy.stop()


@pytest.fixture
def nodes(proxy: BusProxy) -> Iterator[dict[str, Node]]:
    nodes = {name: Node(proxy) for name in ("a", "b", "c")}
    proxy.start()
    yield nodes
    for node in nodes.values():
        node.listener.close()


def connected(nodes: dict[str, Node], dialer: str, target: str) -> tuple[socket.socket, socket.socket]:
    """A forwarded link from ``dialer`` to ``target``: (dialer's end, target's end), hello consumed."""
    out = nodes[target].dial(dialer, target)
    inbound = nodes[target].accept()
    assert recv_exactly(inbound, len(hello(dialer, target))) == hello(dialer, target)
    return out, inbound


def test_parse_hello_whole_byte_by_byte_and_with_trailing_data() -> None:
    frame = hello("a", "b")
    assert parse_hello(frame) == ("a", "b")
    assert parse_hello(frame + b"\x00\x00\x00\x05trailing") == ("a", "b")
    for cut in range(len(frame)):
        assert parse_hello(frame[:cut]) is NEED_DATA


@pytest.mark.parametrize(
    "head",
    [
        b"*1\r\n$4\r\nPING\r\n",  # RESP: its "length" is far beyond any hello
        struct.pack("<I", HELLO_BYTES_MAX + 1),
        struct.pack("<I", 2) + b"\xff\xff",  # not CBOR
        struct.pack("<I", 1) + b"\x01",  # CBOR, not a map
        hello("a", ""),  # no target
        struct.pack("<I", 13) + cbor2.dumps({"hello": 1, "to": "b"}),  # the dialer is not a node id
    ],
)
def test_parse_hello_rejects_what_is_not_a_bus_hello(head: bytes) -> None:
    assert parse_hello(head) is None


def test_forwards_both_ways(nodes: dict[str, Node], proxy: BusProxy) -> None:
    out, inbound = connected(nodes, "a", "b")
    out.sendall(b"ping")
    assert recv_exactly(inbound, 4) == b"ping"
    inbound.sendall(b"pong")
    assert recv_exactly(out, 4) == b"pong"
    out.shutdown(socket.SHUT_WR)  # a half-close travels through, and the other way keeps working
    assert is_closed(inbound)
    inbound.sendall(b"late")
    assert recv_exactly(out, 4) == b"late"
    assert proxy.stats["forwarded"] == 1


def test_a_cut_severs_live_links_both_ways_and_black_holes_new_ones(nodes: dict[str, Node], proxy: BusProxy) -> None:
    a_to_b, at_b = connected(nodes, "a", "b")
    b_to_a, at_a = connected(nodes, "b", "a")
    proxy.cut("b", "a")
    assert proxy.cuts == {frozenset({"a", "b"})}
    for sock in (a_to_b, at_b, b_to_a, at_a):
        assert is_closed(sock)
    assert proxy.stats["severed"] == 2
    fresh = nodes["b"].dial("a", "b")
    fresh.sendall(b"x" * 100_000)  # discarded, not buffered
    assert nodes["b"].nothing_arrives()
    assert is_open_and_silent(fresh)  # like dropped packets: the dialer's handshake times out
    assert proxy.stats["blackholed"] == 1


def test_other_pairs_keep_working_during_a_cut(nodes: dict[str, Node], proxy: BusProxy) -> None:
    c_to_b, at_b = connected(nodes, "c", "b")
    proxy.isolate("a", ["b", "c", "a"])
    assert proxy.cuts == {frozenset({"a", "b"}), frozenset({"a", "c"})}
    c_to_b.sendall(b"still")
    assert recv_exactly(at_b, 5) == b"still"
    b_to_c, at_c = connected(nodes, "b", "c")
    at_c.sendall(b"here")
    assert recv_exactly(b_to_c, 4) == b"here"
    nodes["c"].dial("a", "c")
    assert nodes["c"].nothing_arrives()


def test_heal_releases_black_holed_dialers_and_forwards_again(nodes: dict[str, Node], proxy: BusProxy) -> None:
    proxy.cut("a", "b")
    waiting = nodes["b"].dial("a", "b")
    assert nodes["b"].nothing_arrives()
    proxy.heal()
    assert proxy.cuts == set()
    assert is_closed(waiting)  # at once, so the dialer redials without waiting out its timeout
    out, inbound = connected(nodes, "a", "b")
    out.sendall(b"back")
    assert recv_exactly(inbound, 4) == b"back"


def test_what_is_not_a_hello_is_forwarded_untouched_and_never_cut(nodes: dict[str, Node], proxy: BusProxy) -> None:
    garbage = b"*1\r\n$4\r\nPING\r\n"
    out = nodes["b"].dial("a", "b", first=garbage)
    inbound = nodes["b"].accept()
    assert recv_exactly(inbound, len(garbage)) == garbage
    # A peer that says nothing at all is connected once the hello timeout passes.
    silent = socket.create_connection((HOST, nodes["c"].proxy_port), timeout=WAIT_S)
    at_c = nodes["c"].accept()
    at_c.sendall(b"banner")
    assert recv_exactly(silent, 6) == b"banner"
    proxy.isolate("a", ["b", "c"])
    proxy.isolate("b", ["c"])
    inbound.sendall(b"+PONG\r\n")
    assert recv_exactly(out, 7) == b"+PONG\r\n"
    assert proxy.stats["transparent"] == 2 and proxy.stats["severed"] == 0


def test_cuts_made_before_start_apply_and_routes_can_be_added_after(proxy: BusProxy) -> None:
    proxy.cut("a", "b")
    proxy.start()
    late = Node(proxy)  # add_route on a running proxy: listening once it returns
    late.dial("a", "b")
    assert late.nothing_arrives()
    late.dial("c", "b")
    late.accept().close()
    late.listener.close()


def test_cuts_and_heals_from_many_threads_leave_no_link_half_cut(nodes: dict[str, Node], proxy: BusProxy) -> None:
    def churn() -> None:
        for _ in range(20):
            proxy.cut("a", "b")
            proxy.heal()

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert proxy.cuts == set()
    out, inbound = connected(nodes, "a", "b")
    out.sendall(b"ok")
    assert recv_exactly(inbound, 2) == b"ok"


def test_stop_closes_listeners_and_links(nodes: dict[str, Node], proxy: BusProxy) -> None:
    out, inbound = connected(nodes, "a", "b")
    proxy.stop()
    assert is_closed(out) and is_closed(inbound)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, nodes["b"].proxy_port), timeout=WAIT_S)
    proxy.stop()  # twice is harmless


def test_a_port_in_use_is_reported_by_start_and_add_route() -> None:
    with socket.create_server((HOST, 0)) as taken:
        proxy = BusProxy(HOST)
        proxy.add_route(taken.getsockname()[1], free_port())
        with pytest.raises(OSError):
            proxy.start()
        proxy.stop()
        running = BusProxy(HOST)
        running.start()
        with pytest.raises(OSError):
            running.add_route(taken.getsockname()[1], free_port())
        running.stop()


def test_only_loopback_is_allowed() -> None:
    with pytest.raises(ValueError, match="loopback"):
        BusProxy("0.0.0.0")
