"""A hostile peer or client must neither kill nor freeze a node (issue 12 §3)."""

import socket
import struct
import time

import cbor2
import pytest

from tests.process.harness import NodeProcess

pytestmark = pytest.mark.timeout(120)


def _frame(obj: object) -> bytes:
    payload = cbor2.dumps(obj)
    return struct.pack("<I", len(payload)) + payload


def _bus_session(node: NodeProcess, frames: list[object]) -> None:
    """Say hello (with no cluster key) on the node's bus port, then send ``frames``."""
    with socket.create_connection(("127.0.0.1", node.port + 10000), timeout=10) as s:
        s.sendall(_frame({"hello": "e" * 40}))
        s.recv(65536)  # the node's hello
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
