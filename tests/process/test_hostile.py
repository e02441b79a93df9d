"""A hostile peer or client must neither kill nor freeze a node (issue 12 §3)."""

import contextlib
import resource
import socket
import struct
import time
from collections.abc import Callable

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.process.harness import NodeProcess, bus_dial
from trionode import limits

pytestmark = pytest.mark.timeout(120)


def _frame(obj: object) -> bytes:
    payload = cbor2.dumps(obj)
    return struct.pack("<I", len(payload)) + payload


def _bus_session(node: NodeProcess, frames: list[object], linger_s: float = 0.2) -> None:
    """Say hello (with no cluster key, and the cluster secret) on the node's bus port, then send ``frames``."""
    with bus_dial(node, "e" * 40) as s:
        for obj in frames:
            s.sendall(_frame(obj))
        time.sleep(linger_s)


@pytest.mark.parametrize(
    "bad",
    [{"k": [1]}, {"k": {"a": 1}}, {"k": "fwd_reply", "id": [1]},
     {"k": "lease", "req": 2**20_000}],  # too long to print: naming it in the refusal raised (exit 4)
)
def test_a_malformed_bus_frame_does_not_kill_the_node(node_factory, bad) -> None:
    node = node_factory().start()
    node.client().set("before", "1")
    _bus_session(node, [bad])
    _bus_session(node, [bad])
    assert node.proc.poll() is None, node.log()[-2000:]
    assert node.client().get("before") == b"1"
    assert node.log().count("malformed message") == 1  # logged once, not per frame


def _files_limit(soft: int, hard: int) -> Callable[[], None]:
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_running_out_of_file_descriptors_does_not_kill_the_node(node_factory) -> None:
    # Soft 300, hard 700: the node raises its soft limit to 700 and fits clients_max to it.
    node = node_factory(preexec_fn=_files_limit(300, 700)).start()
    node.client().set("before", "1")
    fitted = 700 - limits.fds_reserved - limits.fds_bus_max
    assert node.client().info("clients")["maxclients"] == fitted
    assert f"clients_max lowered from 10000 to {fitted}" in node.log()
    sockets = []
    try:
        for _ in range(500):  # more than the limit allows
            s = socket.create_connection(("127.0.0.1", node.port), timeout=10)
            sockets.append(s)
            s.sendall(b"PING\r\n")
        replies = [s.recv(100) for s in sockets]
        assert replies.count(b"+PONG\r\n") >= fitted - 5  # the test's own client may still hold one
        assert set(replies) <= {b"+PONG\r\n", b"-ERR max number of clients reached\r\n"}
    finally:
        for s in sockets:
            s.close()
    assert node.proc.poll() is None, node.log()[-2000:]
    assert node.client().get("before") == b"1"


# --- fuzz: random RESP and random bus frames against a live node --------------------------------

COMMANDS = [b"GET", b"SET", b"MGET", b"MSET", b"INCR", b"APPEND", b"LPUSH", b"LRANGE", b"HSET", b"HGETALL",
            b"SADD", b"SMEMBERS", b"EXPIRE", b"TTL", b"SCAN", b"KEYS", b"TYPE", b"EXISTS", b"PING", b"ECHO",
            b"HELLO", b"CLIENT", b"COMMAND", b"INFO", b"WAIT", b"GETSET", b"SETNX", b"LINDEX", b"HINCRBY"]
args = st.lists(st.binary(max_size=20) | st.sampled_from([b"*", b"-1", b"0", b"3", b"MATCH", b"COUNT", b"EX"]),
                max_size=6)


def _multibulk(argv: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv)


def _mutate(data: bytes, at: int, how: int, byte: int) -> bytes:
    at %= max(len(data), 1)
    return [data[:at], data[:at] + bytes([byte]) + data[at + 1 :], data[:at] + bytes([byte]) + data[at:]][how]


resp_inputs = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda c, a: _multibulk([c, *a]), st.sampled_from(COMMANDS), args),
    st.builds(lambda c, a, at, how, b: _mutate(_multibulk([c, *a]), at, how, b), st.sampled_from(COMMANDS), args,
              st.integers(0, 400), st.integers(0, 2), st.integers(0, 255)),
)
bus_frames = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=20)
    | st.sampled_from(["raft", "fwd", "fwd_reply", "repl", "gossip", "lease", "failover_req", "e" * 40]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["k", "m", "id", "req", "ok", "cluster", "type", "frm", "to", "cmd", "conf", "error"]),
        children, max_size=5),
    max_leaves=12,
)


def _send_resp(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.settimeout(0.05)
        with contextlib.suppress(OSError):
            s.recv(65536)


@pytest.mark.timeout(600)
def test_fuzzed_resp_and_bus_frames_neither_kill_the_node_nor_touch_its_keys(node_factory) -> None:
    node = node_factory().start()
    r = node.client()
    kept = {f"keep:{i}:{'f' * 32}": f"value-{i}" for i in range(50)}
    for key, value in kept.items():
        r.set(key, value)
    counts = {"resp": 0, "bus": 0}

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(resp_inputs)
    def fuzz_resp(data: bytes) -> None:
        counts["resp"] += 1
        _send_resp(node.port, data)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(bus_frames, min_size=1, max_size=4))
    def fuzz_bus(frames: list) -> None:
        counts["bus"] += 1
        with contextlib.suppress(OSError):
            _bus_session(node, frames, linger_s=0)

    fuzz_resp()
    fuzz_bus()
    assert node.proc.poll() is None, node.log()[-3000:]
    r = node.client()
    assert r.ping() and {key: r.get(key) for key in kept} == {k: v.encode() for k, v in kept.items()}
    assert "Traceback" not in node.log(), node.log()[-3000:]
    print(f"fuzz cases run: {counts}")
