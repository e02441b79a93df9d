"""Protected mode at the listener: a remote client is told why and let go, before any command."""

from types import SimpleNamespace

import trio

from trionode.config import Config
from trionode.core import errors
from trionode.core.auth import Users
from trionode.io import resp_server


class _RemoteStream:
    """A connection from ``peer`` (process tests may bind only loopback, so no real one is possible)."""

    def __init__(self, peer: str) -> None:
        self.socket = SimpleNamespace(getpeername=lambda: (peer, 50000))
        self.sent = bytearray()

    async def send_all(self, data: bytes) -> None:
        self.sent += data

    async def aclose(self) -> None:
        pass

    async def __aenter__(self) -> "_RemoteStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


def test_a_remote_client_of_an_unprotected_public_node_gets_denied() -> None:
    runtime = SimpleNamespace(
        config=Config(bind="0.0.0.0"), node=SimpleNamespace(users=Users.build("")),
        stats=SimpleNamespace(connected=0), next_client_id=lambda: 1,
    )
    stream = _RemoteStream("10.0.0.9")

    async def main() -> None:
        with trio.fail_after(5):
            await resp_server._handle(runtime, stream)  # type: ignore[arg-type]

    trio.run(main)
    assert bytes(stream.sent) == f"-{errors.DENIED}\r\n".encode()
    assert runtime.stats.connected == 0
