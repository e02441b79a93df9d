"""Accept loops outlive accept() errors; the open-files budget for clients."""

import errno

import pytest
import trio
import trio.testing

from trionode import limits
from trionode.io.listen import accept_forever, clients_max_within

pytestmark = pytest.mark.timeout(30)


class _FlakyListener:
    """Fails accept() with EMFILE ``failures`` times, then hands out ``streams`` memory streams."""

    def __init__(self, failures: int, streams: int) -> None:
        self.failures = failures
        self.streams = streams

    async def __aenter__(self) -> "_FlakyListener":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def accept(self) -> object:
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        if not self.streams:
            await trio.sleep_forever()
        self.streams -= 1
        return trio.testing.memory_stream_pair()[0]


async def test_accept_errors_never_end_the_listener(autojump_clock) -> None:
    handled: list = []

    async def handle(stream: object) -> None:
        handled.append(stream)

    listener = _FlakyListener(failures=5, streams=3)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept_forever, listener, handle, nursery, "client")
        await trio.sleep(6 * limits.accept_backoff_ms / 1000)
        assert len(handled) == 3  # every connection after the failures was served
        nursery.cancel_scope.cancel()


def test_clients_are_fitted_to_the_open_files_limit() -> None:
    reserve = limits.fds_reserved + limits.fds_bus_max
    assert clients_max_within(1_000_000, 10_000) == 10_000
    assert clients_max_within(reserve + 100, 10_000) == 100
    assert clients_max_within(reserve, 10_000) == 0
    assert clients_max_within(10, 10_000) == 0
