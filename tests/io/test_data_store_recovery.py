"""Recovery of a real data directory, as core/wal/recovery.py decides it: what a restart trusts and replays."""

from pathlib import Path

import pytest
import trio
import trio.testing

from trionode.config import Config
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.wal import recovery
from trionode.core.wal.codec import WalCorruption
from trionode.io import data_store, snapshot_file, wal_check, wal_files
from trionode.io.data_store import DataStore

from .helpers import running_store

pytestmark = pytest.mark.timeout(30)


async def _write(store: DataStore, keys: range) -> None:
    for i in keys:
        store.data.execute(KEYSPACE_COMMANDS["set"], [b"SET", b"k%d" % i, b"v%d" % i], now_ms=0, primary=True)
    store.log_outbox()
    await store.wal.wait_durable(keys[-1])


async def test_a_cut_in_place_leaves_the_raft_stores_unfinished_snapshot_alone(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The data store reloads after a cut; with no data snapshot it removed every ``*.snap.tmp``,
    the Raft store's snapshot being written in a worker thread at that moment included."""
    async with running_store(tmp_path) as store:
        await _write(store, range(1, 5))
        raft_pending = tmp_path / ("raft" + snapshot_file.SNAPSHOT_SUFFIX + snapshot_file.TMP_SUFFIX)
        raft_pending.write_bytes(b"being written")
        await store.truncate_after(2)
        assert store.data.applied_offset == 2
        assert raft_pending.read_bytes() == b"being written"


async def test_a_cut_in_place_reloads_by_recoverys_plan_as_a_restart_does(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which records go over which snapshot is one rule: the reload after a cut once wrote its own."""
    plans: list[recovery.Plan | recovery.CannotStart] = []
    real = recovery.plan
    monkeypatch.setattr(recovery, "plan", lambda *args: plans.append(real(*args)) or plans[-1])
    async with running_store(tmp_path) as store:
        await _write(store, range(1, 7))
        await store.compact()
        await _write(store, range(7, 10))
        await store.truncate_after(7)
        assert plans[-1] == recovery.Plan(snapshot_offset=6, acked=6, replay_from=7, end=7, remove_wal=False)
        assert [_get(store, b"k%d" % i) for i in (1, 6, 7, 8)] == [b"v1", b"v6", b"v7", None]


async def _two_segments(tmp_path: Path) -> None:
    """A closed store holding k1..k3 in one WAL segment and k4..k6 in the next."""
    async with running_store(tmp_path) as store:
        await _write(store, range(1, 4))
        store.wal.rotate()
        await _write(store, range(4, 7))
    assert [s.first_seq for s in wal_files.list_segments(str(tmp_path), "data")] == [1, 4]


def _get(store: DataStore, key: bytes) -> bytes | None:
    return store.data.execute(KEYSPACE_COMMANDS["get"], [b"GET", key], now_ms=0, primary=True)[0]


async def _wal_past_the_snapshot(tmp_path: Path) -> None:
    """A snapshot of 1..2 and a WAL of 4..6: offset 3 is on no file."""
    await _two_segments(tmp_path)
    header = {"kind": data_store.SNAPSHOT_KIND, "offset": 2, "acked": 2}
    snapshot_file.write_snapshot(str(tmp_path / data_store.SNAPSHOT_NAME), header, [])
    Path(wal_files.list_segments(str(tmp_path), "data")[0].path).unlink()


async def test_a_wal_that_starts_past_the_snapshot_stops_the_node_naming_its_first_segment(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    await _wal_past_the_snapshot(tmp_path)
    with pytest.raises(WalCorruption) as err:
        DataStore.recover(tmp_path, Config(data_dir=str(tmp_path)))
    assert err.value.file_name == wal_files.segment_name("data", 4)
    assert "the WAL starts at offset 4 but the snapshot ends at 2" in str(err.value)


async def test_wal_check_reports_a_wal_that_starts_past_the_snapshot_as_corruption(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The node refuses such a directory; the offline check called it clean (exit 0)."""
    await _wal_past_the_snapshot(tmp_path)
    code, lines = wal_check.check(str(tmp_path))
    assert code == wal_check.EXIT_CORRUPT, lines
    assert any("the WAL starts at offset 4 but the snapshot ends at 2" in line for line in lines), lines
    (tmp_path / data_store.LOADING_NAME).write_bytes(b"")  # a restart discards both: nothing to refuse
    assert wal_check.check(str(tmp_path))[0] == wal_check.EXIT_CLEAN


async def test_a_snapshot_left_pending_by_a_crash_is_removed_and_the_whole_wal_replayed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A compaction wrote its snapshot of 1..5, the ISR had not confirmed it, and the node died."""
    await _two_segments(tmp_path)
    header = {"kind": data_store.SNAPSHOT_KIND, "offset": 5, "acked": 5}
    snapshot_path = str(tmp_path / data_store.SNAPSHOT_NAME)
    snapshot_file.write_pending(snapshot_path, header, [])
    store = DataStore.recover(tmp_path, Config(data_dir=str(tmp_path)))
    assert not Path(snapshot_path + snapshot_file.TMP_SUFFIX).exists()
    assert (store.snapshot_offset, store.data.applied_offset, store.acked_offset) == (0, 6, 0)
    assert [_get(store, b"k%d" % i) for i in (1, 6)] == [b"v1", b"v6"]
    await store.close()


async def test_a_wal_wholly_inside_the_snapshot_is_removed_and_the_writer_goes_on_past_the_snapshot(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    await _two_segments(tmp_path)
    async with running_store(tmp_path) as full:  # its keyspace at 6, as a snapshot of 8 would hold it
        chunks = list(full.data.keyspace.dump(16))
    header = {"kind": data_store.SNAPSHOT_KIND, "offset": 8, "acked": 7}
    snapshot_file.write_snapshot(str(tmp_path / data_store.SNAPSHOT_NAME), header, chunks)
    async with running_store(tmp_path) as store:
        assert wal_files.list_segments(str(tmp_path), "data")[0].first_seq == 9
        assert (store.data.applied_offset, store.acked_offset, _get(store, b"k6")) == (8, 7, b"v6")
        await _write(store, range(9, 10))
    again = DataStore.recover(tmp_path, Config(data_dir=str(tmp_path)))
    assert again.data.applied_offset == 9 and _get(again, b"k9") == b"v9"
    await again.close()
