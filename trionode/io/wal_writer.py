"""Group commit: the one task that writes and fsyncs a WAL.

Appenders call the synchronous ``append()``: it frames the payload, queues it,
and returns the record's seq. They then ``await wait_durable(seq)``. The writer
task (``run()``) takes everything queued, up to the batch bounds, writes it with
one ``write()`` and one fsync in a worker thread, and then wakes every waiter of
that batch at once (one ``trio.Event`` per batch). Records queued by many
connections while an fsync is in flight share the next fsync.

Invariants:
- ``durable_seq <= taken_seq <= appended_seq``; a seq is durable only after the
  fsync of the batch holding it returned.
- Records reach the file in seq order; a batch never spans two segments.
- A segment is complete and fsynced before the next one is created, so only
  the last segment can ever end in a torn record (see ``wal_files``).
- A failed fsync is fatal (DESIGN §3), and so is a failed write for any reason
  but a full disk: ``run()`` raises StorageFailed and no waiter is ever told
  its record is durable.
- A full disk (ENOSPC, EDQUOT) is not fatal. Segments are preallocated
  (``wal_prealloc_bytes`` at a time, with ``posix_fallocate``), so space runs out
  when a segment is created or extended, before any byte of a batch is written.
  The writer then keeps the batch, sets ``disk_full`` (the node refuses writes
  meanwhile), retries every ``wal_disk_full_retry_ms`` and resumes by itself
  once space is free. Batches are written with ``pwrite`` at the segment's
  tracked end, so even a write that ran out of space halfway is retried in
  place. Its waiters simply wait longer: their effects are already applied in
  memory, so the records can be neither dropped nor reported failed. Opened
  on a full disk (a restart before space was freed), the writer starts on an
  empty segment with ``disk_full`` set and ``run()`` preallocates it once it can.
- A preallocated segment ends in zeros until it is full; recovery reads a zero
  tail as the end of the log (``codec.scan``). A segment is cut to its used
  length when it is rotated out and when the WAL is closed.

Memory is bounded by ``pending_bytes_max`` (appenders wait in ``wait_room()``)
plus one batch in flight. A single record larger than the room left may still
be queued when the queue is below its bound, so the queue overshoots by at most
one record.
"""

from __future__ import annotations

import errno
import itertools
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import cbor2
import trio

from trionode import limits
from trionode.core.wal import codec
from trionode.io import wal_files
from trionode.io.fatal import StorageFailed

log = logging.getLogger("trionode.wal")

_EWMA_WEIGHT = 0.1  # weight of the newest fsync in the moving average
_DISK_FULL_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT))


class WalFull(Exception):
    """append() found the pending queue at its bound; await wait_room() first."""


class WalFailed(Exception):
    """The writer died (a failed write or fsync, or it was stopped): nothing more is durable."""


class WalClosed(Exception):
    """append() after aclose()."""


class DiskFull(Exception):
    """Creating, extending or writing a segment found no space; retried, never fatal."""


def _space_errors(what: str) -> Callable[[OSError], NoReturn]:
    def reraise(exc: OSError) -> NoReturn:
        if exc.errno in _DISK_FULL_ERRNOS:
            raise DiskFull(f"{what}: {exc.strerror or exc}") from exc
        raise exc

    return reraise


def sync_file(fd: int) -> None:
    """Flush a file's data, and the size that finds it, to stable storage."""
    os.fdatasync(fd)


def write_all(fd: int, data: bytes, offset: int) -> None:
    """Write ``data`` at ``offset`` (not appended: a retried write lands in the same place)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        assert written > 0, written
        view = view[written:]
        offset += written


def preallocate(fd: int, allocated: int, needed: int) -> int:
    """Reserve the segment's blocks up to at least ``needed`` bytes; return the new allocated end."""
    end = max(needed, allocated + limits.wal_prealloc_bytes)
    try:
        os.posix_fallocate(fd, allocated, end - allocated)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            return needed  # no preallocation here: writes extend the file as they go
        _space_errors("preallocating a WAL segment")(exc)
    return end


def create_segment(
    directory: str, prefix: str, first_seq: int, needed: int = 0, *, allocate: bool = True
) -> tuple[int, int]:
    """Create a segment, preallocated unless ``allocate`` is false, and make its name durable;
    return (fd, allocated bytes).

    On a full disk the half-made file is removed again and DiskFull raised.
    """
    path = os.path.join(directory, wal_files.segment_name(prefix, first_seq))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        allocated = preallocate(fd, 0, needed) if allocate else 0
        wal_files.fsync_dir(directory)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    return fd, allocated


def close_segment(fd: int, used: int) -> None:
    """Give back the preallocated tail a segment did not use, and close it."""
    try:
        os.ftruncate(fd, used)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class WalWriterStatistics:
    appended_seq: int
    durable_seq: int
    pending_records: int
    pending_bytes: int
    batches: int
    records_written: int
    bytes_written: int
    batch_records_largest: int
    fsyncs: int
    fsync_seconds_last: float
    fsync_seconds_max: float
    fsync_seconds_ewma: float
    fsync_seconds_total: float
    segments: int
    segment_first_seq: int
    segment_bytes: int
    disk_full: bool


@dataclass(slots=True)
class _Batch:
    first_seq: int
    records: list[bytes]
    size_bytes: int
    new_segment_seq: int | None  # create this segment before writing

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.records) - 1


class WalWriter:
    """One WAL's appenders and its single writer task."""

    def __init__(
        self,
        directory: str,
        prefix: str,
        next_seq: int,
        *,
        batch_records_max: int = limits.wal_batch_records_max,
        batch_bytes_max: int = limits.wal_batch_bytes_max,
        pending_bytes_max: int = limits.wal_pending_bytes_max,
        segment_bytes_max: int = limits.wal_segment_bytes_max,
        record_bytes_max: int = limits.wal_record_bytes_max,
        while_full: str = "writes are refused until space is freed",
    ) -> None:
        """Open the WAL for appending at ``next_seq`` (from ``wal_files.load(repair=True)``).

        ``while_full`` tells the operator, in the log, what the node does while the disk is full.
        Blocking file I/O: call it at startup, before the node's tasks run.
        """
        assert batch_records_max >= 1 and 0 < batch_bytes_max <= pending_bytes_max
        assert next_seq >= 0 and segment_bytes_max > 0
        self._directory = directory
        self.prefix = prefix
        self._batch_records_max = batch_records_max
        self._batch_bytes_max = batch_bytes_max
        self._pending_bytes_max = pending_bytes_max
        self._segment_bytes_max = segment_bytes_max
        self._record_bytes_max = record_bytes_max

        self.appended_seq = next_seq - 1  # Invariant: the seq of the newest queued record.
        self.durable_seq = next_seq - 1  # Invariant: every seq <= this is fsynced.
        self._taken_seq = next_seq - 1  # newest seq handed to a batch
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._rotations: deque[int] = deque()  # seqs where a new segment must start, ascending
        self._rotate_requested_seq = 0
        # The first seq of the newest segment on disk, being created, or queued. rotate() compares
        # against it, not against _segments: a segment whose creation is in flight is in neither
        # _rotations nor _segments, and asking for it again would create the same file twice.
        self._newest_segment_seq = next_seq

        self._work = trio.Event()  # set by appenders when the writer sleeps
        self._writer_idle = False
        self._batch_done = trio.Event()  # swapped after every batch
        self._room = trio.Event()  # swapped when the queue drops below its bound
        self._failure: BaseException | None = None
        self._closing = False
        # What append() compares the pending bytes against: the pending bound while
        # appends are allowed, -1 once failed or closing. One test on the hot path
        # covers all three refusals; _refuse() tells them apart.
        self._append_bytes_max = pending_bytes_max
        self._payload_bytes_max = record_bytes_max - codec.HEADER_BYTES
        self._closed = trio.Event()
        self._running = False
        self._removing = False

        # Full disk: set while a batch waits for space; the node refuses writes meanwhile.
        self.disk_full = False
        self.on_disk_full: Callable[[bool], None] = lambda full: None
        self._while_full = while_full
        self._segments, self._fd, self._allocated = self._open_for_append(next_seq)
        self._segment_bytes = 0  # Invariant: the write offset in the current segment, <= _allocated
        self._stats = dict.fromkeys(("batches", "records", "bytes", "batch_records_largest", "fsyncs"), 0)
        self._fsync_seconds = dict.fromkeys(("last", "max", "ewma", "total"), 0.0)

    def _open_for_append(self, next_seq: int) -> tuple[list[wal_files.Segment], int, int]:
        """Always append to a fresh segment, so a tail left unrepaired can never get records after it.

        Returns (segments, fd, allocated bytes).
        """
        segments = wal_files.list_segments(self._directory, self.prefix)
        if segments and segments[-1].first_seq > next_seq:
            raise ValueError(f"{segments[-1].name} starts after next_seq {next_seq}")
        if segments and segments[-1].first_seq == next_seq:
            if wal_files.read_file(segments[-1].path).strip(b"\x00"):
                raise codec.WalCorruption(
                    segments[-1].name,
                    0,
                    f"holds bytes but no records before seq {next_seq}; load with repair",
                )
            fd = os.open(segments[-1].path, os.O_WRONLY)
            return segments, fd, self._reserve_at_start(fd, os.fstat(fd).st_size)
        try:
            fd, allocated = create_segment(self._directory, self.prefix, next_seq)
        except DiskFull as full:
            # Not fatal at startup either (a node restarted before space was freed would crash-loop):
            # start on an empty segment, a name without blocks, and let run() wait for the space.
            fd, allocated = create_segment(self._directory, self.prefix, next_seq, allocate=False)
            self._set_disk_full(True, str(full))
        return [*segments, wal_files.Segment(next_seq, self._segment_path(next_seq))], fd, allocated

    def _reserve_at_start(self, fd: int, allocated: int) -> int:
        """Preallocate a reused empty segment now, so that ``disk_full`` says at start whether a record fits."""
        if allocated:
            return allocated
        try:
            return preallocate(fd, 0, 0)
        except DiskFull as full:
            self._set_disk_full(True, str(full))
            return 0

    def _segment_path(self, first_seq: int) -> str:
        return os.path.join(self._directory, wal_files.segment_name(self.prefix, first_seq))

    # --- appenders ---------------------------------------------------------------

    def has_room(self) -> bool:
        return self._pending_bytes < self._pending_bytes_max

    def append(self, payload: bytes) -> int:
        """Queue one already-encoded payload and return its seq. Never blocks.

        Raises WalFull when the queue is at its bound (check ``has_room()`` or
        await ``wait_room()`` first), RecordTooLarge past the record bound.
        """
        # Runs once per logged write: one comparison guards every refusal.
        if self._pending_bytes >= self._append_bytes_max or len(payload) > self._payload_bytes_max:
            self._refuse(len(payload))
        record = codec.frame(payload)
        self._pending.append(record)
        self._pending_bytes += len(record)
        seq = self.appended_seq = self.appended_seq + 1
        if self._writer_idle:
            self._wake_writer()
        return seq

    def _refuse(self, payload_bytes: int) -> NoReturn:
        if self._failure is not None:
            raise WalFailed("the WAL writer has failed") from self._failure
        if self._closing:
            raise WalClosed("the WAL is closed")
        if self._pending_bytes >= self._pending_bytes_max:
            raise WalFull(f"{self._pending_bytes} bytes pending, bound {self._pending_bytes_max}")
        assert codec.record_bytes(payload_bytes) > self._record_bytes_max
        raise codec.RecordTooLarge(f"record of {payload_bytes} bytes exceeds {self._record_bytes_max}")

    def append_obj(self, obj: object) -> int:
        """CBOR-encode ``obj`` and append it."""
        return self.append(cbor2.dumps(obj))

    async def wait_durable(self, seq: int) -> None:
        """Return once ``seq`` is fsynced; raise WalFailed if it never will be.

        Returns at once, without a checkpoint, when ``seq`` is already durable.
        """
        assert seq <= self.appended_seq, (seq, self.appended_seq)
        while self.durable_seq < seq:
            if self._failure is not None:
                raise WalFailed(f"seq {seq} is not durable: the WAL writer failed") from self._failure
            await self._batch_done.wait()

    async def wait_room(self) -> None:
        """Return once append() will not raise WalFull."""
        while not self.has_room():
            if self._failure is not None:
                raise WalFailed("the WAL writer has failed") from self._failure
            await self._room.wait()

    # --- segments -----------------------------------------------------------------

    def rotate(self) -> int:
        """Start a new segment at the next seq; return that seq.

        Records appended before this call go to the old segment, later ones to
        the new. A no-op when the current segment would be left empty.
        """
        seq = self.appended_seq + 1
        planned = self._newest_segment_seq
        assert seq >= planned, (seq, planned)
        if seq != planned:
            self._rotations.append(seq)
            self._newest_segment_seq = seq
            self._rotate_requested_seq = seq
            self._wake_writer()
        return seq

    async def remove_segments_before(self, seq: int) -> list[str]:
        """Delete the segments all of whose records are below ``seq``; return their names.

        Call it once a snapshot covering every seq below ``seq`` is durable. The
        segment being appended to is never removed.
        """
        assert seq <= self.appended_seq + 1, (seq, self.appended_seq)
        assert not self._removing, "remove_segments_before is not reentrant"
        # A rotation asked for at or below seq must exist on disk first, so that
        # the old segment it closes can go now rather than at the next compaction.
        while self._rotate_requested_seq <= seq and self._segments[-1].first_seq < self._rotate_requested_seq:
            if self._failure is not None:
                raise WalFailed("the WAL writer has failed") from self._failure
            await self._batch_done.wait()
        segments = self._segments
        doomed = [a for a, b in itertools.pairwise(segments) if b.first_seq <= seq]
        if not doomed:
            return []
        self._removing = True
        try:
            await trio.to_thread.run_sync(self._unlink_segments, doomed)
        finally:
            self._removing = False
        self._segments = [segment for segment in self._segments if segment not in doomed]
        assert self._segments, "the current segment is never removed"
        return [segment.name for segment in doomed]

    def _unlink_segments(self, segments: list[wal_files.Segment]) -> None:
        for segment in segments:
            os.unlink(segment.path)
        wal_files.fsync_dir(self._directory)

    # --- the writer task ------------------------------------------------------------

    def _wake_writer(self) -> None:
        self._writer_idle = False
        self._work.set()

    def _has_work(self) -> bool:
        return bool(self._pending) or bool(self._rotations and self._rotations[0] == self._taken_seq + 1)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The single writer task: batch, write, fsync, wake. Returns only after aclose().

        A failed write or fsync propagates out of here and should take the node down.
        """
        assert not self._running, "only one writer task per WAL"
        task_status.started()
        if self._closed.is_set():
            return  # aclose() ran before this task started, and closed the file itself
        self._running = True
        try:
            await self._wait_for_first_space()
            while True:
                while not self._has_work():
                    if self._closing:
                        await trio.to_thread.run_sync(close_segment, self._fd, self._segment_bytes)
                        self._closed.set()
                        return
                    self._writer_idle = True
                    await self._work.wait()
                    self._work = trio.Event()
                await self._write_one_batch(self._take_batch())
        except BaseException as exc:
            # Whatever stopped us, the batch in hand may be lost: no waiter may succeed now.
            self._fail(exc)
            raise

    async def _wait_for_first_space(self) -> None:
        """Opened on a full disk: preallocate the empty segment once there is room (or until closing)."""
        while self.disk_full and not self._closing:
            try:
                self._allocated = await trio.to_thread.run_sync(preallocate, self._fd, self._allocated, 0)
            except DiskFull:
                await trio.sleep(limits.wal_disk_full_retry_ms / 1000)
                continue
            self._set_disk_full(False)

    def _take_batch(self) -> _Batch:
        """Dequeue everything queued up to the batch bounds and the next segment start."""
        first_seq = self._taken_seq + 1
        new_segment_seq = None
        if self._rotations and self._rotations[0] == first_seq:
            new_segment_seq = self._rotations.popleft()
        elif self._segment_bytes >= self._segment_bytes_max and self._segments[-1].first_seq < first_seq:
            new_segment_seq = first_seq
            self._newest_segment_seq = max(self._newest_segment_seq, first_seq)
        assert not self._rotations or self._rotations[0] >= first_seq, (self._rotations, first_seq)
        records_max = self._batch_records_max
        if self._rotations:
            records_max = min(records_max, self._rotations[0] - first_seq)
        pending = self._pending
        if len(pending) <= records_max and self._pending_bytes <= self._batch_bytes_max:
            # Everything queued fits one batch (the usual case): take the queue
            # whole instead of record by record. Same result as the loop below.
            records = list(pending)
            size_bytes = self._pending_bytes
            pending.clear()
        else:
            records, size_bytes = self._take_records(records_max)
        self._pending_bytes -= size_bytes
        self._taken_seq += len(records)
        assert records or new_segment_seq is not None
        assert self._taken_seq <= self.appended_seq and self._pending_bytes >= 0
        if self.has_room():
            self._swap_event("_room")
        return _Batch(first_seq, records, size_bytes, new_segment_seq)

    def _take_records(self, records_max: int) -> tuple[list[bytes], int]:
        """Dequeue records up to ``records_max`` and the batch byte bound."""
        records: list[bytes] = []
        size_bytes = 0
        pending = self._pending
        while pending and len(records) < records_max:
            record_bytes = len(pending[0])
            # A record bigger than the whole batch bound still goes, alone.
            if records and size_bytes + record_bytes > self._batch_bytes_max:
                break
            records.append(pending.popleft())
            size_bytes += record_bytes
        return records, size_bytes

    async def _write_one_batch(self, batch: _Batch) -> None:
        while True:
            try:
                await self._make_room(batch)
                fsync_seconds = await trio.to_thread.run_sync(self._write_batch, batch, self._fd, self._segment_bytes)
                break
            except DiskFull as full:
                if self._closing and not batch.records:
                    return  # stopping: a segment that would stay empty is not needed
                if self._closing:  # stopping: what is still unwritten is not durable, and its waiters are told so
                    raise StorageFailed(f"cannot write WAL segment {self._segments[-1].path}: {full}") from full
                self._set_disk_full(True, str(full))
                await trio.sleep(limits.wal_disk_full_retry_ms / 1000)
            except OSError as exc:
                seq = batch.new_segment_seq
                path = self._segments[-1].path if seq is None else self._segment_path(seq)
                raise StorageFailed(f"cannot write or fsync WAL segment {path}: {exc.strerror or exc}") from exc
        self._set_disk_full(False)
        self._segment_bytes += batch.size_bytes
        if batch.records:
            assert batch.last_seq == self.durable_seq + len(batch.records)
            self.durable_seq = batch.last_seq
            self._record_batch(batch, fsync_seconds)
        self._swap_event("_batch_done")

    async def _make_room(self, batch: _Batch) -> None:
        """Start the batch's new segment, or extend the current one, so the batch fits; DiskFull if it cannot."""
        if batch.new_segment_seq is not None:
            seq = batch.new_segment_seq
            fd, allocated = await trio.to_thread.run_sync(self._start_segment, seq, batch.size_bytes)
            self._segments.append(wal_files.Segment(seq, self._segment_path(seq)))
            self._fd, self._segment_bytes, self._allocated = fd, 0, allocated
            batch.new_segment_seq = None  # done: a retry after a full disk must not create it twice
        needed = self._segment_bytes + batch.size_bytes
        if needed > self._allocated:
            self._allocated = await trio.to_thread.run_sync(preallocate, self._fd, self._allocated, needed)

    def _start_segment(self, seq: int, needed: int) -> tuple[int, int]:
        """Worker thread: create the next segment, then close the old one (its last batch is fsynced)."""
        fd, allocated = create_segment(self._directory, self.prefix, seq, needed)
        close_segment(self._fd, self._segment_bytes)
        return fd, allocated

    def _write_batch(self, batch: _Batch, fd: int, offset: int) -> float:
        """Worker thread: write at ``offset``, fsync. Returns the fsync's seconds."""
        if not batch.records:
            return 0.0
        try:
            write_all(fd, b"".join(batch.records), offset)
        except OSError as exc:
            _space_errors("writing a WAL batch")(exc)
        start = time.perf_counter()
        sync_file(fd)
        return time.perf_counter() - start

    def _set_disk_full(self, full: bool, why: str = "") -> None:
        if full == self.disk_full:
            return
        self.disk_full = full
        if full:
            log.error("%s WAL: the disk is full (%s); %s, retrying every %d ms",
                      self.prefix, why, self._while_full, limits.wal_disk_full_retry_ms)
        else:
            log.warning("%s WAL: disk space is available again; writes resume", self.prefix)
        self.on_disk_full(full)

    def _record_batch(self, batch: _Batch, fsync_seconds: float) -> None:
        stats = self._stats
        stats["batches"] += 1
        stats["fsyncs"] += 1
        stats["records"] += len(batch.records)
        stats["bytes"] += batch.size_bytes
        stats["batch_records_largest"] = max(stats["batch_records_largest"], len(batch.records))
        seconds = self._fsync_seconds
        seconds["ewma"] = (
            fsync_seconds
            if stats["fsyncs"] == 1
            else ((1 - _EWMA_WEIGHT) * seconds["ewma"] + _EWMA_WEIGHT * fsync_seconds)
        )
        seconds["last"] = fsync_seconds
        seconds["max"] = max(seconds["max"], fsync_seconds)
        seconds["total"] += fsync_seconds
        assert math.isfinite(seconds["ewma"])

    def _swap_event(self, name: str) -> None:
        event = getattr(self, name)
        setattr(self, name, trio.Event())
        event.set()

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._append_bytes_max = -1
        self._swap_event("_batch_done")
        self._swap_event("_room")
        self._closed.set()

    # --- shutdown and introspection -----------------------------------------------------

    async def aclose(self) -> None:
        """Make everything appended durable, then stop the writer (run() returns)."""
        self._closing = True
        self._append_bytes_max = -1
        if not self._running and not self._closed.is_set():
            assert not self._pending, "records were appended but no writer task ever ran"
            close_segment(self._fd, self._segment_bytes)
            self._closed.set()
        self._wake_writer()
        await self._closed.wait()
        if self._failure is not None:
            raise WalFailed("the WAL writer failed before it could flush") from self._failure
        assert self.durable_seq == self.appended_seq

    def statistics(self) -> WalWriterStatistics:
        stats, seconds = self._stats, self._fsync_seconds
        return WalWriterStatistics(
            appended_seq=self.appended_seq,
            durable_seq=self.durable_seq,
            pending_records=len(self._pending),
            pending_bytes=self._pending_bytes,
            batches=stats["batches"],
            records_written=stats["records"],
            bytes_written=stats["bytes"],
            batch_records_largest=stats["batch_records_largest"],
            fsyncs=stats["fsyncs"],
            fsync_seconds_last=seconds["last"],
            fsync_seconds_max=seconds["max"],
            fsync_seconds_ewma=seconds["ewma"],
            fsync_seconds_total=seconds["total"],
            segments=len(self._segments),
            segment_first_seq=self._segments[-1].first_seq,
            segment_bytes=self._segment_bytes,
            disk_full=self.disk_full,
        )
