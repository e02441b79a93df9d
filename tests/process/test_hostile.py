"""A hostile peer or client must neither kill nor freeze a node (issue 12 §3)."""

import resource
import socket
import struct
import time
from collections.abc import Callable

import cbor2
import pytest

from tests.process.harness import NodeProcess, bus_dial
from trionode import limits

pytestmark = pytest.mark.timeout(120)


def _frame(obj: object) -> bytes:
    payload = cbor2.dumps(obj)
    return struct.pack("<I", len(payload)) + payload


def _bus_session(node: NodeProcess, frames: list[object]) -> None:
    """Say hello (with no cluster key, and the cluster secret) on the node's bus port, then send ``frames``."""
    with bus_dial(node, "e" * 40) as s:
        for obj in frames:
            s.sendall(_frame(obj))
        time.sleep(0.2)


@pytest.mark.parametrize("bad", [{"k": [1]}, {"k": {"a": 1}}, {"k": "fwd_reply", "id": [1]}])
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
