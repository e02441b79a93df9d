"""The node's active expiry logs deletes only as a primary whose lease holds (issue 10, leftovers)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.io.helpers import node_runtime
from trionode import limits
from trionode.core import routing
from trionode.io.control import monotonic_ms
from trionode.io.node import NodeRuntime

pytestmark = pytest.mark.timeout(30)

WALL_MS = 1_800_000_000_000
KEYS = 20


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NodeRuntime]:
    """A node whose routing names it the primary of every slot, holding keys already past their deadline."""
    monkeypatch.setattr(NodeRuntime, "clock_ms", staticmethod(lambda: WALL_MS))
    with node_runtime(tmp_path) as rt:
        rt.node.routing = routing.serve_everything(rt.node_id)
        set_px = rt.node.lookup[b"set"]
        for i in range(KEYS):
            argv = [b"SET", b"k%d" % i, b"v", b"PXAT", str(WALL_MS - 1).encode()]
            rt.data.execute(set_px, argv, WALL_MS - 10, primary=True)
        rt.store.log_outbox()
        yield rt


async def run_expiry_cycles(rt: NodeRuntime, lease_left_ms: int) -> None:
    """Run the expire loop for a few cycles with a lease that runs out ``lease_left_ms`` from now."""
    rt.node.lease_until_ms = monotonic_ms() + lease_left_ms
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rt.expire_loop)
        await trio.sleep(limits.expire_cycle_interval_ms * 5 / 1000)
        nursery.cancel_scope.cancel()


async def test_a_primary_whose_lease_ran_out_logs_no_expiry_delete(
    runtime: NodeRuntime, autojump_clock: trio.testing.MockClock
) -> None:
    # Deposed or cut off: a new primary may already write these offsets (S2).
    await run_expiry_cycles(runtime, lease_left_ms=0)
    assert runtime.data.applied_offset == KEYS and len(runtime.data.keyspace) == KEYS
    assert runtime.stats.expired_keys == 0


async def test_a_primary_whose_lease_holds_expires_keys(
    runtime: NodeRuntime, autojump_clock: trio.testing.MockClock
) -> None:
    await run_expiry_cycles(runtime, lease_left_ms=3_600_000)
    assert runtime.stats.expired_keys == KEYS and len(runtime.data.keyspace) == 0
    assert runtime.data.applied_offset > KEYS  # the deletes were logged, as any write
