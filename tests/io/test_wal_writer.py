"""Group commit, segments and recovery, on real files in a temporary directory."""

import errno
import logging
import os
import threading
from pathlib import Path

import cbor2
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode import limits
from trionode.core.wal import codec
from trionode.io import wal_check, wal_files, wal_writer
from trionode.io.fatal import StorageFailed
from trionode.io.wal_writer import WalFailed, WalFull, WalWriter

PREFIX = "data"


def make_writer(directory: Path, next_seq: int = 1, **bounds: int) -> WalWriter:
    return WalWriter(str(directory), PREFIX, next_seq, **bounds)


def load(directory: Path, repair: bool = True) -> wal_files.LoadResult:
    return wal_files.load(str(directory), PREFIX, repair=repair)


def segment_paths(directory: Path) -> list[Path]:
    return [Path(segment.path) for segment in wal_files.list_segments(str(directory), PREFIX)]


async def write_records(directory: Path, objs: list[object], next_seq: int = 1) -> WalWriter:
    """Append ``objs`` through a writer, flush and close it."""
    writer = make_writer(directory, next_seq)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for obj in objs:
            writer.append_obj(obj)
        await writer.aclose()
    return writer


# --- group commit ---------------------------------------------------------------------


async def test_concurrent_appenders_share_fsyncs(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    tasks, rounds = 50, 20

    async def appender(task: int) -> None:
        for n in range(rounds):
            seq = writer.append_obj([task, n])
            await writer.wait_durable(seq)
            assert writer.durable_seq >= seq

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        async with trio.open_nursery() as appenders:
            for task in range(tasks):
                appenders.start_soon(appender, task)
        await writer.aclose()

    stats = writer.statistics()
    assert stats.records_written == tasks * rounds == stats.durable_seq
    assert stats.fsyncs <= tasks * rounds // 5, stats  # fsyncs coalesce across tasks
    assert stats.batch_records_largest > 1
    loaded = load(tmp_path)
    assert [seq for seq, _ in loaded.records] == list(range(1, tasks * rounds + 1))
    for task in range(tasks):  # each task's records are in its own order
        mine = [obj[1] for _, obj in loaded.records if obj[0] == task]
        assert mine == list(range(rounds))


async def test_waiters_are_not_released_before_fsync_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release = threading.Event(), threading.Event()
    real_sync = wal_writer.sync_file

    def blocking_sync(fd: int) -> None:
        entered.set()
        assert release.wait(timeout=30)
        real_sync(fd)

    monkeypatch.setattr(wal_writer, "sync_file", blocking_sync)
    writer = make_writer(tmp_path)
    released: list[int] = []

    async def waiter(seq: int) -> None:
        await writer.wait_durable(seq)
        released.append(seq)

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for seq in (writer.append(b"\x01"), writer.append(b"\x02"), writer.append(b"\x03")):
            nursery.start_soon(waiter, seq)
        await trio.to_thread.run_sync(entered.wait)
        await trio.testing.wait_all_tasks_blocked()
        assert released == [] and writer.durable_seq == 0  # written, but fsync still running
        release.set()
        await writer.wait_durable(3)
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(released) == [1, 2, 3]
        await writer.aclose()


async def test_batches_respect_record_and_byte_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[bytes] = []
    real_write_all = wal_writer.write_all

    def recording_write_all(fd: int, data: bytes, offset: int) -> None:
        writes.append(data)
        real_write_all(fd, data, offset)

    monkeypatch.setattr(wal_writer, "write_all", recording_write_all)
    small, big = cbor2.dumps(b"A" * 20), cbor2.dumps(b"B" * 200)
    record_bytes = len(codec.frame(small))
    writer = make_writer(tmp_path, batch_records_max=4, batch_bytes_max=3 * record_bytes)
    for _ in range(10):
        writer.append(small)
    big_seq = writer.append(big)  # bigger than a whole batch: goes alone
    for _ in range(2):
        writer.append(small)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.aclose()

    sizes = [len(data) for data in writes]
    assert sizes == [3 * record_bytes] * 3 + [record_bytes, len(codec.frame(big)), 2 * record_bytes]
    assert writer.statistics().fsyncs == len(writes) == 6
    assert load(tmp_path).records[big_seq - 1] == (big_seq, b"B" * 200)

    writes.clear()
    writer = make_writer(tmp_path, next_seq=14, batch_records_max=4)
    for _ in range(10):
        writer.append(b"\x41")
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.aclose()
    assert [data.count(codec.frame(b"\x41")) for data in writes] == [4, 4, 2]


def reference_batches(sizes: list[int], records_max: int, bytes_max: int) -> list[list[int]]:
    """Batches as the bounds define them: greedy, and an oversized record goes alone."""
    batches: list[list[int]] = []
    for size in sizes:
        last = batches[-1] if batches else None
        if last is not None and len(last) < records_max and sum(last) + size <= bytes_max:
            last.append(size)
        else:
            batches.append([size])
    return batches


@settings(max_examples=200, deadline=None)
@given(
    payload_sizes=st.lists(st.integers(1, 60), min_size=1, max_size=30),
    records_max=st.integers(1, 8),
    bytes_max=st.integers(13, 400),
    take_after=st.integers(1, 30),
)
def test_taking_the_whole_queue_at_once_matches_the_bounds(
    tmp_path_factory: pytest.TempPathFactory,
    payload_sizes: list[int],
    records_max: int,
    bytes_max: int,
    take_after: int,
) -> None:
    # _take_batch takes the whole queue when it fits one batch, else goes record by
    # record; either way the batches must be exactly the greedy ones the bounds define.
    writer = make_writer(tmp_path_factory.mktemp("wal"), batch_records_max=records_max, batch_bytes_max=bytes_max)
    got: list[list[int]] = []
    appended = 0
    for start in range(0, len(payload_sizes), take_after):
        chunk = payload_sizes[start : start + take_after]
        for size in chunk:
            writer.append(b"\x01" * size)
        appended += len(chunk)
        while writer._pending:
            batch = writer._take_batch()
            got.append([len(record) for record in batch.records])
            assert batch.size_bytes == sum(got[-1])
        want = [
            batch
            for part in range(0, appended, take_after)
            for batch in reference_batches(
                [codec.record_bytes(size) for size in payload_sizes[part : part + take_after]], records_max, bytes_max
            )
        ]
        assert got == want
    assert writer.statistics().pending_bytes == 0
    os.close(writer._fd)  # the writer task never ran, so nothing else closes it


async def test_failed_fsync_crashes_run_and_never_reports_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_sync(fd: int) -> None:
        raise OSError(errno.EIO, "simulated EIO")

    monkeypatch.setattr(wal_writer, "sync_file", failing_sync)
    writer = make_writer(tmp_path)
    outcomes: list[str] = []

    async def waiter(seq: int) -> None:
        try:
            await writer.wait_durable(seq)
            outcomes.append("durable")
        except WalFailed:
            outcomes.append("failed")

    with pytest.raises(ExceptionGroup) as failure:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(waiter, writer.append(b"\x01"))
            await trio.testing.wait_all_tasks_blocked()
            await nursery.start(writer.run)
    assert failure.group_contains(StorageFailed, match="simulated EIO")
    assert outcomes == ["failed"] * 3
    assert writer.durable_seq == 0
    with pytest.raises(WalFailed):
        writer.append(b"\x02")
    with pytest.raises(WalFailed):
        await writer.wait_durable(1)


async def test_failed_write_is_fatal_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_write(fd: int, data: bytes, offset: int) -> None:
        raise OSError(errno.EIO, "simulated EIO")

    monkeypatch.setattr(wal_writer, "write_all", failing_write)
    writer = make_writer(tmp_path)
    writer.append(b"\x01")
    with pytest.raises(ExceptionGroup) as failure:
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
    assert failure.group_contains(StorageFailed, match="simulated EIO")
    assert writer.durable_seq == 0 and writer.statistics().fsyncs == 0


async def test_pending_bound_refuses_then_wait_room_resumes(tmp_path: Path) -> None:
    record_bytes = len(codec.frame(b"\x01" * 50))
    writer = make_writer(tmp_path, batch_bytes_max=2 * record_bytes, pending_bytes_max=4 * record_bytes)
    for _ in range(4):
        assert writer.has_room()
        writer.append(b"\x01" * 50)
    assert not writer.has_room()
    with pytest.raises(WalFull):
        writer.append(b"\x01")
    assert writer.statistics().pending_bytes == 4 * record_bytes

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.wait_room()
        assert writer.has_room()
        seq = writer.append(b"\x01")
        await writer.wait_durable(seq)
        await writer.aclose()
    assert writer.durable_seq == 5


async def test_oversized_record_is_refused(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, record_bytes_max=100)
    with pytest.raises(codec.RecordTooLarge):
        writer.append(b"\x00" * 100)
    assert writer.append(b"\x00" * 88) == 1  # exactly at the bound: 12 header bytes + 88
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.aclose()
    assert writer.durable_seq == 1


async def test_aclose_flushes_everything_and_run_returns(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for n in range(100):
            writer.append_obj(n)
        await writer.aclose()  # run() returns, so the nursery can end
    assert writer.durable_seq == writer.appended_seq == 100
    assert [obj for _, obj in load(tmp_path).records] == list(range(100))
    with pytest.raises(wal_writer.WalClosed):
        writer.append(b"\x01")


# --- segments ---------------------------------------------------------------------------


async def test_rotate_splits_segments_at_the_call(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for n in range(3):
            writer.append_obj(n)
        assert writer.rotate() == 4
        assert writer.rotate() == 4  # nothing appended since: no empty segment
        for n in range(3, 5):
            writer.append_obj(n)
        await writer.aclose()

    paths = segment_paths(tmp_path)
    assert [path.name for path in paths] == [
        wal_files.segment_name(PREFIX, 1),
        wal_files.segment_name(PREFIX, 4),
    ]
    per_segment = [
        [obj for _, obj in wal_files.scan_segment(s, 1 << 20).records]
        for s in wal_files.list_segments(str(tmp_path), PREFIX)
    ]
    assert per_segment == [[0, 1, 2], [3, 4]]
    assert load(tmp_path).records == [(n + 1, n) for n in range(5)]


async def test_rotating_again_while_the_new_segment_is_being_created_does_not_create_it_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI, test_a_snapshot_is_installed_only_once_its_cut_is_acknowledged: a compaction that gave up
    rotated again while the writer thread was still creating the segment the first one asked for;
    the writer then created that file a second time and the node died on EEXIST (StorageFailed)."""
    creating, release = threading.Event(), threading.Event()
    create = wal_writer.create_segment

    def slow_create(*args: object, **kwargs: object) -> tuple[int, int]:
        creating.set()
        release.wait(10)
        return create(*args, **kwargs)

    writer = make_writer(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        writer.append_obj(0)
        await writer.wait_durable(1)
        monkeypatch.setattr(wal_writer, "create_segment", slow_create)
        assert writer.rotate() == 2
        await trio.to_thread.run_sync(creating.wait, 10)  # the writer thread is creating segment 2
        assert writer.rotate() == 2  # nothing appended since: no second request for segment 2
        release.set()
        writer.append_obj(1)
        await writer.wait_durable(2)
        await writer.aclose()
    assert [path.name for path in segment_paths(tmp_path)] == [
        wal_files.segment_name(PREFIX, 1), wal_files.segment_name(PREFIX, 2)]
    assert load(tmp_path).records == [(1, 0), (2, 1)]


async def test_rotate_on_fresh_writer_is_noop(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, next_seq=7)
    assert writer.rotate() == 7
    assert writer.statistics().segments == 1
    await writer.aclose()


async def test_segments_rotate_by_size_and_removal_keeps_seqs_continuous(tmp_path: Path) -> None:
    record_bytes = len(codec.encode_record(0))
    writer = make_writer(tmp_path, batch_records_max=2, segment_bytes_max=4 * record_bytes)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for n in range(20):
            await writer.wait_durable(writer.append_obj(n % 10))
        assert len(segment_paths(tmp_path)) >= 4
        for path in segment_paths(tmp_path)[:-1]:  # rotated out: cut to what they hold
            assert path.stat().st_size <= 4 * record_bytes + 2 * record_bytes  # bound plus one batch

        cut = writer.rotate()
        removed = await writer.remove_segments_before(cut)
        assert removed and len(segment_paths(tmp_path)) == 1  # only the new, current segment
        for n in range(3):
            writer.append_obj(n)
        await writer.aclose()
    loaded = load(tmp_path)
    assert loaded.first_seq == cut == 21
    assert loaded.records == [(21, 0), (22, 1), (23, 2)] and loaded.next_seq == 24


async def test_remove_segments_keeps_segments_with_records_at_or_above_seq(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for _ in range(3):  # segments starting at 1, 4, 7
            for n in range(3):
                writer.append_obj(n)
            writer.rotate()
        await writer.wait_durable(writer.appended_seq)
        assert await writer.remove_segments_before(6) == [wal_files.segment_name(PREFIX, 1)]
        assert await writer.remove_segments_before(6) == []
        await writer.aclose()
    loaded = load(tmp_path)
    assert loaded.first_seq == 4 and [seq for seq, _ in loaded.records] == list(range(4, 10))


# --- recovery -----------------------------------------------------------------------------


async def test_restart_continues_seqs(tmp_path: Path) -> None:
    await write_records(tmp_path, ["a", "b"])
    first = load(tmp_path)
    assert first.next_seq == 3
    await write_records(tmp_path, ["c"], next_seq=first.next_seq)
    assert load(tmp_path).records == [(1, "a"), (2, "b"), (3, "c")]


def test_empty_directory_loads_empty(tmp_path: Path) -> None:
    loaded = wal_files.load(str(tmp_path), PREFIX, repair=True, empty_next_seq=5)
    assert (loaded.records, loaded.first_seq, loaded.next_seq) == ([], 5, 5)


@pytest.mark.parametrize("damage", ["garbage", "mid_record"])
async def test_torn_tail_is_cut_and_logged(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    await write_records(tmp_path, [f"value-{n}" for n in range(10)])
    (path,) = segment_paths(tmp_path)
    good_bytes = path.stat().st_size
    last_record_bytes = len(codec.encode_record("value-9"))
    with path.open("r+b") as file:
        if damage == "garbage":
            file.seek(0, os.SEEK_END)
            file.write(b"\x07\x00\x00\x00partial")
        else:
            file.truncate(good_bytes - 3)
    kept = 10 if damage != "mid_record" else 9
    valid_end = good_bytes if damage != "mid_record" else good_bytes - last_record_bytes

    assert load(tmp_path, repair=False).next_seq == kept + 1
    assert path.stat().st_size != valid_end  # check-only load leaves the file alone
    assert wal_check.check(str(tmp_path))[0] == wal_check.EXIT_TORN

    with caplog.at_level(logging.WARNING):
        loaded = load(tmp_path)
    assert [obj for _, obj in loaded.records] == [f"value-{n}" for n in range(kept)]
    assert loaded.torn is not None and loaded.torn.offset == valid_end
    assert path.stat().st_size == valid_end
    assert f"{path.name}: torn tail at byte {valid_end}" in caplog.text
    assert wal_check.check(str(tmp_path))[0] == wal_check.EXIT_CLEAN

    await write_records(tmp_path, ["after"], next_seq=loaded.next_seq)
    assert load(tmp_path).records[-1] == (kept + 1, "after")


async def test_mid_log_corruption_raises_with_file_and_offset(tmp_path: Path) -> None:
    await write_records(tmp_path, [f"value-{n}" for n in range(10)])
    (path,) = segment_paths(tmp_path)
    offset = 3 * len(codec.encode_record("value-0"))  # start of the fourth record
    with path.open("r+b") as file:
        file.seek(offset + codec.HEADER_BYTES + 2)
        file.write(b"X")
    size_bytes = path.stat().st_size
    with pytest.raises(codec.WalCorruption) as info:
        load(tmp_path)
    assert info.value.file_name == path.name and info.value.offset == offset
    assert f"{path.name}: corrupt record at byte {offset}: checksum mismatch" == str(info.value)
    assert path.stat().st_size == size_bytes  # corruption is never "repaired"
    code, lines = wal_check.check(str(tmp_path))
    assert code == wal_check.EXIT_CORRUPT and any(f"at byte {offset}" in line for line in lines)


async def test_unrepaired_torn_tail_becomes_fatal_once_not_last(tmp_path: Path) -> None:
    await write_records(tmp_path, ["a", "b"])
    (path,) = segment_paths(tmp_path)
    good_bytes = path.stat().st_size
    with path.open("ab") as file:
        file.write(b"\x05\x00\x00")
    loaded = load(tmp_path, repair=False)
    await write_records(tmp_path, ["c"], next_seq=loaded.next_seq)  # appends to a new segment
    with pytest.raises(codec.WalCorruption, match=f"{path.name}: corrupt record at byte {good_bytes}: torn"):
        load(tmp_path)
    assert wal_check.check(str(tmp_path))[0] == wal_check.EXIT_CORRUPT


@pytest.mark.parametrize("damage", ["torn", "corrupt"])
async def test_a_cut_right_before_damage_removes_the_damage(tmp_path: Path, damage: str) -> None:
    """The cut keeps 1..3 and the damage that follows record 3 goes with the rest: it used to stay when no
    good record followed it, and failed the check-only load right after the cut (corrupt), or the next
    start once the writer had opened a new segment (torn: "a segment that is not the last")."""
    await write_records(tmp_path, [f"value-{n}" for n in range(1, 6)])
    (path,) = segment_paths(tmp_path)
    record_bytes = len(codec.encode_record("value-1"))
    with path.open("r+b") as file:
        if damage == "torn":
            file.truncate(3 * record_bytes + 5)  # record 4 half written, no 5
        else:
            file.seek(3 * record_bytes + codec.HEADER_BYTES + 2)
            file.write(b"X")  # record 4's checksum fails; 5 is whole
    wal_files.cut_after(str(tmp_path), PREFIX, 3)
    assert load(tmp_path, repair=False).torn is None
    await write_records(tmp_path, ["after"], next_seq=4)  # a new segment, as after a store's cut
    assert [obj for _, obj in load(tmp_path, repair=False).records] == ["value-1", "value-2", "value-3", "after"]
    assert path.stat().st_size == 3 * record_bytes


async def test_seq_gap_between_segments_raises(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for _ in range(3):
            writer.append_obj("x")
            writer.append_obj("y")
            writer.rotate()
        await writer.aclose()
    middle = segment_paths(tmp_path)[1]
    middle.unlink()
    with pytest.raises(codec.WalCorruption, match="seq gap"):
        load(tmp_path)
    assert wal_check.check(str(tmp_path))[0] == wal_check.EXIT_CORRUPT


async def test_writer_refuses_unrepaired_segment_at_next_seq(tmp_path: Path) -> None:
    (tmp_path / wal_files.segment_name(PREFIX, 1)).write_bytes(b"\x01\x00")  # torn, holds no record
    with pytest.raises(codec.WalCorruption, match="load with repair"):
        make_writer(tmp_path, next_seq=1)
    assert load(tmp_path).next_seq == 1
    writer = make_writer(tmp_path, next_seq=1)  # repaired: empty, reused
    assert writer.statistics().segments == 1
    await writer.aclose()


# --- preallocation and a full disk ------------------------------------------------------


async def test_segments_are_preallocated_and_cut_to_size_when_closed(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.wait_durable(writer.append_obj("x"))
        (path,) = segment_paths(tmp_path)
        assert path.stat().st_size >= limits.wal_prealloc_bytes
        assert load(tmp_path, repair=False).records == [(1, "x")]  # the zero tail reads as the end
        await writer.aclose()
    assert path.stat().st_size == len(codec.encode_record("x"))


async def test_a_zero_tail_left_by_a_crash_is_the_end_of_the_log(tmp_path: Path) -> None:
    await write_records(tmp_path, ["a", "b"])
    (path,) = segment_paths(tmp_path)
    size_bytes = path.stat().st_size
    with path.open("ab") as file:
        file.write(bytes(limits.wal_prealloc_bytes))  # what a crash leaves of a preallocated segment
    assert wal_check.check(str(tmp_path))[0] == wal_check.EXIT_CLEAN
    loaded = load(tmp_path)
    assert [obj for _, obj in loaded.records] == ["a", "b"] and loaded.torn is None
    assert path.stat().st_size == size_bytes  # the unused tail is given back at start
    await write_records(tmp_path, ["c"], next_seq=loaded.next_seq)
    assert [obj for _, obj in load(tmp_path).records] == ["a", "b", "c"]


def _full_disk(monkeypatch: pytest.MonkeyPatch, failures: list[str]) -> None:
    """posix_fallocate fails with ENOSPC while ``failures`` is not empty."""
    real = os.posix_fallocate

    def fallocate(fd: int, offset: int, length: int) -> None:
        if failures:
            failures.pop()
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, offset, length)

    monkeypatch.setattr(wal_writer.os, "posix_fallocate", fallocate)


async def test_a_full_disk_pauses_the_writer_until_space_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    writer = make_writer(tmp_path)
    changes: list[bool] = []
    writer.on_disk_full = changes.append
    failures: list[str] = []
    _full_disk(monkeypatch, failures)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.wait_durable(writer.append_obj("before"))
        failures.extend(["full"] * 1000)
        writer.rotate()  # the new segment cannot be made: the disk is full
        seq = writer.append_obj("during")
        while not changes:
            await trio.sleep(0.01)
        await trio.sleep(5 * limits.wal_disk_full_retry_ms / 1000)  # it keeps trying, in vain
        assert (writer.disk_full, writer.durable_seq, changes) == (True, 1, [True])
        failures.clear()  # space is free again: the writer resumes by itself
        await writer.wait_durable(seq)
        assert not writer.disk_full and changes == [True, False]
        await writer.aclose()
    # The many failed attempts left exactly the one segment that finally worked, and nothing else.
    assert len(segment_paths(tmp_path)) == 2 and len(os.listdir(tmp_path)) == 2
    assert [obj for _, obj in load(tmp_path).records] == ["before", "during"]


async def test_a_writer_opened_on_a_full_disk_waits_for_space_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    # A node restarted on a still-full disk died at start (DiskFull out of the constructor, exit 4).
    await write_records(tmp_path, ["before"])
    failures = ["full"] * 1000
    _full_disk(monkeypatch, failures)
    writer = make_writer(tmp_path, next_seq=2)
    changes: list[bool] = []
    writer.on_disk_full = changes.append
    assert writer.disk_full
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        seq = writer.append_obj("during")
        await trio.sleep(5 * limits.wal_disk_full_retry_ms / 1000)
        assert (writer.disk_full, writer.durable_seq) == (True, 1)
        failures.clear()  # space is free again: the writer resumes by itself
        await writer.wait_durable(seq)
        assert not writer.disk_full and changes == [False]
        await writer.aclose()
    assert [obj for _, obj in load(tmp_path).records] == ["before", "during"]


def test_a_segment_that_cannot_be_preallocated_is_removed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _full_disk(monkeypatch, ["full"])
    with pytest.raises(wal_writer.DiskFull):
        wal_writer.create_segment(str(tmp_path), "wal", 1)
    assert os.listdir(tmp_path) == []  # no half-made segment left behind


async def test_a_write_that_ran_out_of_space_halfway_is_redone_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    real_write_all = wal_writer.write_all
    failures = ["full"]

    def half_then_full(fd: int, data: bytes, offset: int) -> None:
        if failures:
            failures.pop()
            real_write_all(fd, data[: len(data) // 2], offset)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(fd, data, offset)

    monkeypatch.setattr(wal_writer, "write_all", half_then_full)
    writer = make_writer(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.wait_durable(writer.append_obj("first"))
        await writer.wait_durable(writer.append_obj("second"))
        await writer.aclose()
    assert [obj for _, obj in load(tmp_path).records] == ["first", "second"]
    assert wal_check.check(str(tmp_path))[0] == wal_check.EXIT_CLEAN
