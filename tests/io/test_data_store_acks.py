"""The acknowledgement wait: held until the ISR confirms, and given up when this node is deposed."""

from pathlib import Path

import pytest
import trio
import trio.testing

from trionode.config import Config
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.io.data_store import AckAborted, DataStore

pytestmark = pytest.mark.timeout(30)


async def test_a_write_waits_for_the_isr_and_its_waiter_gives_up_when_the_node_is_deposed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    store = DataStore.recover(tmp_path, Config(data_dir=str(tmp_path)))
    replica_acked = 0
    store.on_durable = lambda: store.publish_acked(min(store.wal.durable_seq, replica_acked))  # the owner's rule
    outcome: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        store.data.execute(KEYSPACE_COMMANDS["set"], [b"SET", b"k", b"v"], now_ms=0, primary=True)
        store.log_outbox()

        async def client() -> None:
            try:
                await store.wait_acked(1)
                outcome.append("acked")
            except AckAborted:
                outcome.append("aborted")

        nursery.start_soon(client)
        await store.wal.wait_durable(1)
        await trio.sleep(0.05)
        assert outcome == []  # durable here, but the replica has not confirmed it
        assert store.acked_offset == 0 and store.data.visibility.required(b"k") == 1
        store.abort_waiters("deposed")
        await trio.sleep(0.05)
        assert outcome == ["aborted"]
        replica_acked = 1
        store.on_durable()
        assert store.acked_offset == 1
        await store.wait_acked(1)  # a fresh wait for what is now acknowledged returns at once
        await store.close()
        nursery.cancel_scope.cancel()


async def test_records_replayed_at_startup_stay_invisible_until_the_isr_confirms_them_again(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    config = Config(data_dir=str(tmp_path))
    store = DataStore.recover(tmp_path, config)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        store.on_durable = lambda: None  # the replica never confirms
        for argv in ([b"SET", b"k", b"v"], [b"FLUSHALL"], [b"SET", b"j", b"w"]):
            store.data.execute(KEYSPACE_COMMANDS[argv[0].lower().decode()], argv, now_ms=0, primary=True)
        store.log_outbox()
        await store.wal.wait_durable(3)
        await store.close()  # a crash: durable here, never acknowledged
        nursery.cancel_scope.cancel()

    restarted = DataStore.recover(tmp_path, config)
    assert restarted.data.applied_offset == 3 and restarted.acked_offset == 0
    get, dbsize = KEYSPACE_COMMANDS["get"], KEYSPACE_COMMANDS["dbsize"]
    assert restarted.data.execute(get, [b"GET", b"j"], now_ms=0, primary=True) == (b"w", 3)
    assert restarted.data.execute(get, [b"GET", b"k"], now_ms=0, primary=True) == (None, 2)  # behind the FLUSHALL
    assert restarted.data.execute(dbsize, [b"DBSIZE"], now_ms=0, primary=True) == (1, 3)


async def test_a_full_sync_installed_above_the_acknowledged_offset_stays_invisible_and_survives_a_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # A full-sync snapshot is cut at the primary's applied offset, which may be above its high
    # watermark. The replica used to treat the whole snapshot as acknowledged: its next smaller
    # watermark from the primary tripped "the acknowledged offset never goes back" (a crash at
    # every restart), and after a restart it served the unacknowledged tail at once.
    config = Config(data_dir=str(tmp_path))
    store = DataStore.recover(tmp_path, config)
    watermark = 0
    store.on_durable = lambda: store.publish_acked(min(store.wal.durable_seq, watermark))
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await store.install_snapshot(100, [[[b"k", "string", b"v", None]]])
        assert store.acked_offset == 0 and store.data.visibility.required(b"k") == 100
        watermark = 50
        store.on_durable()  # the primary's watermark lags the snapshot's offset: no crash
        assert store.acked_offset == 50 and store.data.visibility.required(b"k") == 100
        await store.close()
        nursery.cancel_scope.cancel()
    restarted = DataStore.recover(tmp_path, config)  # knows what was acknowledged when the snapshot was made
    assert restarted.acked_offset == 0 and restarted.data.visibility.required(b"k") == 100
