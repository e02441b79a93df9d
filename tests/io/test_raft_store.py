"""The Raft store: what was persisted comes back after a crash, through compaction and torn tails."""

from pathlib import Path

import pytest
import trio

from trionode.core.raft.messages import ConfState, Entry, EntryKind, HardState, Ready, Snapshot
from trionode.io import wal_files
from trionode.io.raft_store import RaftStore

pytestmark = pytest.mark.timeout(30)
ME = "a" * 40


def _ready(entries: list[Entry] | None = None, hs: HardState | None = None) -> Ready:
    return Ready(soft_state=None, hard_state=hs, entries=tuple(entries or ()), snapshot=None, messages=(),
                 committed=(), must_sync=True)


async def _persist(store: RaftStore, ready: Ready) -> None:
    seq = store.append_ready(ready)
    if seq:
        await store.wal.wait_durable(seq)


async def _with_writer(store: RaftStore, body) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(store.wal.run)
        await body(store)
        await store.wal.aclose()
        nursery.cancel_scope.cancel()


def _entries(first: int, last: int, term: int) -> list[Entry]:
    return [Entry(i, term, EntryKind.NORMAL, {"op": f"x{i}"}) for i in range(first, last + 1)]


async def test_entries_truncation_and_hard_state_survive_a_restart(tmp_path: Path) -> None:
    async def body(store: RaftStore) -> None:
        await store.initialize("c" * 40, Snapshot(index=1, term=1, conf=ConfState(voters=(ME,))))
        await _persist(store, _ready(_entries(2, 6, 2), HardState(2, ME, 4)))
        # A new leader replaces the uncommitted suffix from index 5.
        await _persist(store, _ready(_entries(5, 7, 3), HardState(3, "", 5)))

    await _with_writer(RaftStore.recover(tmp_path), body)
    again = RaftStore.recover(tmp_path)
    assert again.cluster_id == "c" * 40
    assert again.hard_state == HardState(3, "", 5)
    assert [(e.index, e.term) for e in again.entries] == [(2, 2), (3, 2), (4, 2), (5, 3), (6, 3), (7, 3)]
    assert again.snapshot.conf.voters == (ME,)


async def test_compaction_keeps_the_tail_and_drops_old_segments(tmp_path: Path) -> None:
    async def body(store: RaftStore) -> None:
        await store.initialize("c" * 40, Snapshot(index=1, term=1, conf=ConfState(voters=(ME,))))
        await _persist(store, _ready(_entries(2, 20, 2), HardState(2, ME, 20)))
        await store.compact_to(Snapshot(index=15, term=2, conf=ConfState(voters=(ME,)), data={"k": 1}))
        await _persist(store, _ready(_entries(21, 22, 2), HardState(2, ME, 22)))

    await _with_writer(RaftStore.recover(tmp_path), body)
    again = RaftStore.recover(tmp_path)
    assert again.snapshot.index == 15 and again.snapshot.data == {"k": 1}
    assert [e.index for e in again.entries] == list(range(16, 23))
    assert again.hard_state.commit == 22
    assert len(wal_files.list_segments(str(tmp_path), "raft")) <= 2


async def test_a_torn_tail_loses_only_the_unfinished_record(tmp_path: Path) -> None:
    async def body(store: RaftStore) -> None:
        await store.initialize("c" * 40, Snapshot(index=1, term=1, conf=ConfState(voters=(ME,))))
        await _persist(store, _ready(_entries(2, 4, 2), HardState(2, ME, 3)))

    await _with_writer(RaftStore.recover(tmp_path), body)
    last = wal_files.list_segments(str(tmp_path), "raft")[-1]
    with open(last.path, "ab") as f:
        f.write(b"\x30\x00\x00\x00\x01\x02")  # a record header that was never finished
    again = RaftStore.recover(tmp_path)
    assert [e.index for e in again.entries] == [2, 3, 4] and again.hard_state == HardState(2, ME, 3)


async def test_a_received_snapshot_never_folds_the_log_it_replaced_into_raft_snap(tmp_path: Path) -> None:
    # The follower holds uncommitted entries 5..8 of term 2; the leader's snapshot at 6 (term 3) replaces its
    # whole log (core/raft/log.py ``restore``), so none of those entries may come back after a restart.
    async def body(store: RaftStore) -> None:
        await store.initialize("c" * 40, Snapshot(index=1, term=1, conf=ConfState(voters=(ME,))))
        await _persist(store, _ready(_entries(2, 8, 2), HardState(2, ME, 4)))
        await store.persist_snapshot(Snapshot(index=6, term=3, conf=ConfState(voters=(ME,)), data={"k": 6}))
        await _persist(store, _ready(hs=HardState(3, "", 6)))

    await _with_writer(RaftStore.recover(tmp_path), body)
    again = RaftStore.recover(tmp_path)
    assert again.snapshot.index == 6 and again.snapshot.term == 3
    assert again.entries == [], [(e.index, e.term) for e in again.entries]


def _disk_full_for(monkeypatch: pytest.MonkeyPatch, writes: int) -> list[int]:
    """The next ``writes`` raft.snap writes find the disk full (ENOSPC, as a full file system gives)."""
    import errno

    from trionode.io import snapshot_file

    real, failed = snapshot_file.write_snapshot, []

    def write_snapshot(*args: object, **kwargs: object) -> int:
        if len(failed) < writes:
            failed.append(1)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(snapshot_file, "write_snapshot", write_snapshot)
    return failed


async def test_a_raft_snap_with_no_room_is_skipped_and_nothing_is_lost(tmp_path: Path, monkeypatch) -> None:
    async def body(store: RaftStore) -> None:
        await store.initialize("c" * 40, Snapshot(index=1, term=1, conf=ConfState(voters=(ME,))))
        await _persist(store, _ready(_entries(2, 9, 2), HardState(2, ME, 9)))
        _disk_full_for(monkeypatch, 1)
        assert not await store.compact_to(Snapshot(index=8, term=2, conf=ConfState(voters=(ME,))), wait=False)
        assert store.snapshot.index == 1 and len(store.entries) == 8 and not store.disk_full

    await _with_writer(RaftStore.recover(tmp_path), body)
    again = RaftStore.recover(tmp_path)
    assert again.snapshot.index == 1 and [e.index for e in again.entries] == list(range(2, 10))


async def test_a_required_raft_snap_waits_for_room_and_says_so(tmp_path: Path, monkeypatch, autojump_clock) -> None:
    async def body(store: RaftStore) -> None:
        await store.initialize("c" * 40, Snapshot(index=1, term=1, conf=ConfState(voters=(ME,))))
        failed, done = _disk_full_for(monkeypatch, 3), trio.Event()

        async def persist() -> None:
            await store.persist_snapshot(Snapshot(index=5, term=2, conf=ConfState(voters=(ME,))))
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(persist)
            while not store.disk_full:
                await trio.sleep(0.01)
            assert store.snapshot.index == 1 and not done.is_set()
            await done.wait()
        assert len(failed) == 3 and not store.disk_full and store.snapshot.index == 5

    await _with_writer(RaftStore.recover(tmp_path), body)
    assert RaftStore.recover(tmp_path).snapshot.index == 5
