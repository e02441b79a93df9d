"""Compaction writes a consistent cut while commands run, without holding the keyspace twice."""

import itertools
import tracemalloc
from collections.abc import Iterable
from pathlib import Path

import pytest
import trio
import trio.testing

from trionode import limits
from trionode.config import Config
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.io import data_store, snapshot_file
from trionode.io.data_store import DataStore

KEYS = 200_000


def _run(store: DataStore, *argv: bytes) -> None:
    store.data.execute(KEYSPACE_COMMANDS[argv[0].decode().lower()], list(argv), now_ms=0, primary=True)
    store.log_outbox()


async def test_compaction_snapshots_the_cut_while_writes_go_on_holding_one_chunk_at_a_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DataStore.recover(tmp_path, Config(data_dir=str(tmp_path)))
    for i in range(KEYS):  # a large keyspace of strings, as if recovered from a snapshot
        store.data.keyspace.add(b"key:%08d" % i, b"v" * 100)
    _run(store, b"RPUSH", b"list", b"a")
    _run(store, b"HSET", b"hash", b"f", b"1")
    cut_offset = store.data.applied_offset
    write = snapshot_file.write_snapshot

    def write_while_commands_run(path: str, header: dict, chunks: Iterable[list]) -> int:
        chunks = iter(chunks)
        first = next(chunks)
        trio.from_thread.run_sync(lambda: [_run(store, *argv) for argv in (
            [b"RPUSH", b"list", b"b"], [b"HSET", b"hash", b"f", b"2"], [b"SET", b"key:00000000", b"new"],
            [b"DEL", b"key:00000001"], [b"SET", b"added", b"x"])])
        return write(path, header, itertools.chain([first], chunks))

    monkeypatch.setattr(data_store.snapshot_file, "write_snapshot", write_while_commands_run)
    tracemalloc.start()  # the keyspace, allocated above, is not counted
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.compact()
            nursery.cancel_scope.cancel()
        traced_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    header, chunks = snapshot_file.read_snapshot(str(tmp_path / data_store.SNAPSHOT_NAME))
    entries = {entry[0]: entry[1:] for chunk in chunks for entry in chunk}
    assert header["offset"] == cut_offset
    assert len(entries) == KEYS + 2
    assert entries[b"list"] == ["list", [b"a"], None] and entries[b"hash"] == ["hash", {b"f": b"1"}, None]
    assert entries[b"key:00000000"][1] == entries[b"key:00000001"][1] == b"v" * 100
    assert b"added" not in entries
    # The cut is a pointer or two per key; entries exist a chunk at a time (a whole dump would be ~100 B a key).
    assert traced_peak < 32 * KEYS + 3 * limits.snapshot_write_buffer_bytes, traced_peak


async def test_a_snapshot_is_installed_only_once_its_cut_is_acknowledged(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A node cannot cut back into its snapshot after a failover drops records past the acknowledged
    offset: it would have to discard everything while in the ISR. So a compaction keeps its WAL
    until the ISR confirms the cut, and gives up (to retry later) if that does not come soon."""
    store = DataStore.recover(tmp_path, Config(data_dir=str(tmp_path)))
    store.on_durable = lambda: None  # acknowledgements come from replication, which is silent here
    snapshot = tmp_path / data_store.SNAPSHOT_NAME
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        _run(store, b"SET", b"a", b"1")
        _run(store, b"SET", b"b", b"2")
        await store.compact()  # nothing acknowledged: no snapshot, the WAL is whole
        assert not snapshot.exists() and store.snapshot_offset == 0 and store.compactions == 0
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
        store.publish_acked(1)
        async with trio.open_nursery() as compacting:
            compacting.start_soon(store.compact)
            await trio.sleep(limits.compact_ack_wait_ms / 1000 / 2)
            assert not snapshot.exists()  # 2 is not acknowledged yet
            store.publish_acked(2)
        header, _ = snapshot_file.read_snapshot(str(snapshot))
        assert (header["offset"], header["acked"], store.snapshot_offset) == (2, 2, 2)
        nursery.cancel_scope.cancel()


async def test_replies_waiting_on_the_old_data_are_aborted_when_a_resync_replaces_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Drill replica-churn, seed 2: a replica's READONLY read waited for offset 1232 of its old data
    when a full resync replaced it; the wait then asked the new WAL (at 512) for 1232 and the node
    died on a broken invariant (exit 4). The reply was computed from discarded records: it is aborted."""
    store = DataStore.recover(tmp_path, Config(data_dir=str(tmp_path)))
    store.on_durable = lambda: None  # a replica: acknowledgements come from its primary
    outcome: list[str] = []

    async def reader() -> None:
        try:
            await store.wait_acked(2)
            outcome.append("answered")
        except data_store.AckAborted:
            outcome.append("aborted")

    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        _run(store, b"SET", b"a", b"1")
        _run(store, b"SET", b"b", b"2")
        nursery.start_soon(reader)
        await trio.sleep(1)
        await store.truncate_after(0)  # a full resync discards every local record
        await trio.sleep(1)
        assert outcome == ["aborted"] and store.data.applied_offset == 0
        nursery.cancel_scope.cancel()
