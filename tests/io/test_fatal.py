"""What ends a node is named in one line with its documented exit status, whatever groups wrap it."""

import errno

import pytest
import trio

from trionode.config import ConfigError
from trionode.core.wal.codec import WalCorruption
from trionode.io import fatal
from trionode.io.wal_writer import WalFailed


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_a_storage_failure_is_the_cause_whatever_it_took_down_with_it() -> None:
    storage = fatal.StorageFailed("cannot write or fsync WAL segment d/data-1.wal: Input/output error")
    waiter = WalFailed("seq 3 is not durable")
    waiter.__cause__ = storage
    group = ExceptionGroup("root", [waiter, ExceptionGroup("inner", [storage])])
    diagnosis = fatal.diagnose(group)
    assert diagnosis is not None and diagnosis.exit_code == fatal.EXIT_STORAGE == 3
    assert diagnosis.message.startswith("cannot write or fsync WAL segment d/data-1.wal")


@pytest.mark.parametrize(
    ("exc", "code", "start"),
    [
        (ConfigError("unknown configuration key 'x'"), 1, "unknown configuration key"),
        (WalCorruption("data-1.wal", 80, "bad checksum"), 2, ""),
        (OSError(errno.ENOSPC, "No space left on device", "d/snapshot.tmp"), 3, "I/O error: d/snapshot.tmp"),
        (AssertionError("durable_seq ran ahead"), 4, "broken invariant at "),
        (KeyError("shard"), 4, "internal error at "),
    ],
)
def test_each_cause_has_its_exit_status(exc: BaseException, code: int, start: str) -> None:
    diagnosis = fatal.diagnose(ExceptionGroup("root", [_raised(exc)]))
    assert diagnosis is not None and diagnosis.exit_code == code
    assert diagnosis.message.startswith(start) and "\n" not in diagnosis.message


def test_cancellations_alone_name_no_cause() -> None:
    async def cancelled() -> BaseException:
        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                await trio.sleep(1)
            except trio.Cancelled as exc:
                return exc
        raise AssertionError("unreachable")

    assert fatal.diagnose(BaseExceptionGroup("root", [trio.run(cancelled)])) is None
