"""A connection's pipeline: every command's lease check uses a clock read after the last wait."""

from types import SimpleNamespace
from typing import Any

import pytest
import trio

from trionode import limits
from trionode.config import Config
from trionode.core import errors, routing
from trionode.core.data_state import DataState
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.server_specs import SERVER_COMMANDS
from trionode.core.session import Node, NodeFacts
from trionode.core.slots import key_slot
from trionode.io import resp_server

pytestmark = pytest.mark.timeout(30)

LEASE_UNTIL_MS = 1_000
TABLE = {name.encode(): spec for name, spec in {**KEYSPACE_COMMANDS, **SERVER_COMMANDS}.items()}


class _Stream:
    """Hands the connection one pipelined batch, then end of input; keeps what it is sent."""

    def __init__(self, data: bytes) -> None:
        self.inbox = [data]
        self.sent = bytearray()

    async def receive_some(self, max_bytes: int) -> bytes:
        return self.inbox.pop(0) if self.inbox else b""

    async def send_all(self, data: bytes) -> None:
        self.sent += data


def _runtime(clock: dict[str, int]) -> Any:
    async def stalls(*args: Any) -> int:
        await trio.sleep(0)
        clock["mono_ms"] = LEASE_UNTIL_MS + 1  # the lease ran out while this command waited
        return 0

    async def no_wait(offset: int) -> None:
        pass

    data = DataState()
    data.execute(TABLE[b"set"], [b"SET", b"k", b"v"], now_ms=0, primary=True)
    facts = NodeFacts("n1", "s1", "127.0.0.1", 7000, 17000, 1, 0, "", "0")
    node = Node(data, TABLE, facts, dict, routing.serve_everything("s1"), lease_until_ms=LEASE_UNTIL_MS)
    return SimpleNamespace(
        config=Config(), node=node, wal=SimpleNamespace(has_room=lambda: True), shutting_down=False,
        clock_ms=lambda: 0, log_outbox=data.take_outbox, wait_acked=no_wait, wait_replicas=stalls,
        stats=SimpleNamespace(commands=0), stalls=stalls,
    )


@pytest.mark.parametrize("waiting", [b"WAIT 1 100", b"CLUSTER FORGET " + b"a" * 40], ids=["WAIT", "CLUSTER"])
async def test_a_read_pipelined_after_a_wait_sees_the_lease_that_ran_out(waiting: bytes, monkeypatch) -> None:
    clock = {"mono_ms": 0}
    runtime = _runtime(clock)
    monkeypatch.setattr(resp_server, "monotonic_ms", lambda: clock["mono_ms"])
    monkeypatch.setattr(resp_server.cluster_admin, "run", lambda runtime, args: runtime.stalls())
    stream = _Stream(b"GET k\r\n" + waiting + b"\r\nGET k\r\nDBSIZE\r\n")
    await resp_server.Connection(runtime, stream, 1, "127.0.0.1:1").serve()  # type: ignore[arg-type]
    replies = bytes(stream.sent).split(b"\r\n")
    assert replies[:2] == [b"$1", b"v"]  # served while the lease held
    assert replies[3:5] == [f"-{errors.LEASE_EXPIRED}".encode()] * 2, replies


@pytest.mark.parametrize("commit_applied", [True, False])
async def test_a_command_for_an_imported_slot_runs_again_once_the_configuration_caught_up(
    commit_applied: bool, monkeypatch
) -> None:
    # The target's primary, before it applied the commit that gives it k's slot: its routing names the
    # source (s2). The command waits for the control plane to catch up, then runs again.
    slot = key_slot(b"k")
    runtime = _runtime({"mono_ms": 0})
    monkeypatch.setattr(resp_server, "monotonic_ms", lambda: 0)  # within the lease
    before = routing.Routing(("s2",) * limits.slots_count, "s1", True, {"s1": "h:1", "s2": "h:2"},
                             importing=frozenset({slot}))  # fmt: skip
    runtime.node.routing = before
    caught_up: list[int] = []

    async def catch_up(timeout_ms: int) -> bool:
        caught_up.append(timeout_ms)
        await trio.sleep(0)
        if commit_applied:
            runtime.node.routing = routing.serve_everything("s1")
        return commit_applied

    runtime.control = SimpleNamespace(catch_up=catch_up)
    stream = _Stream(b"GET k\r\n")
    await resp_server.Connection(runtime, stream, 1, "127.0.0.1:1").serve()  # type: ignore[arg-type]
    assert caught_up == [limits.routing_catch_up_ms_max]
    assert bytes(stream.sent) == (b"$1\r\nv\r\n" if commit_applied else f"-MOVED {slot} h:2\r\n".encode())
