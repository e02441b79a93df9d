"""The node's durable data: recovery at startup, the data WAL, and compaction.

Recovery loads ``data.snap`` (the keyspace at some offset N), then replays the
data WAL's records after N; a torn WAL tail is cut off and logged, anything
worse stops the node (DESIGN S6). What it trusts and replays is decided in
``core/wal/recovery.py``, whose rules the simulator's restarts run too. Record
``seq`` equals the replication offset of the effect it holds, which makes
"nothing skipped, nothing doubled" a plain equality that is asserted on every
append and every replayed record.

Compaction, in an order that is safe at every crash point:
1. at one synchronous moment, note offset N, rotate the WAL to a new segment
   and take a cut of the keyspace (``Keyspace.dump``: keys and values, with
   aggregates copied, so later writes cannot leak in);
2. wait until the WAL is durable to N, so the old segments are complete;
3. write the snapshot to a temp file, fsync, rename, fsync the directory
   (``snapshot_file``), in a worker thread that builds, encodes and writes
   the cut a chunk at a time, so only one chunk and one write buffer are
   held beside the keyspace;
4. only then delete the segments that the snapshot covers.
A crash between any two steps leaves either the old snapshot plus a complete
WAL, or the new snapshot plus a contiguous WAL that reaches back past N.

A replica's full sync replaces the snapshot and removes every WAL segment. It
runs under the durable loading marker (``data-loading``, set and cleared as the
replication driver says): a crash between the snapshot's rename and the
segments' removal would otherwise replay the old WAL over the primary's
snapshot, two histories mixed. Recovery that finds the marker discards the
data directory's keyspace files and starts empty, keeping the marker, so the
replica reports offset 0 and ``loading`` until a sync completes (S5).

A replica's truncation in place cuts only the WAL, newest records first, and
leaves the snapshot alone: a crash in the middle gives back a prefix of the
log before the cut, which the history (saved only after the cut) still
describes, so it needs no marker (with one, a crash there discarded an in-sync
replica's acknowledged records). Every snapshot holds acknowledged offsets
only (a compaction waits for the ISR, a full sync's snapshot is sent once
acknowledged), and no cut goes below the acknowledged offset, so an in-sync
replica can always cut in place (``ReplicaDriver.truncate_floor``).
"""

import errno
import logging
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from trionode import limits
from trionode.config import Config
from trionode.core.compaction import CompactionPolicy, wants_compaction
from trionode.core.data_state import DataState
from trionode.core.visibility import Visibility
from trionode.core.wal import recovery
from trionode.core.wal.codec import WalCorruption, encode_effect
from trionode.io import snapshot_file, wal_files
from trionode.io.datadir import DataDir, DataDirError, write_file_durably
from trionode.io.wal_writer import WalWriter

log = logging.getLogger("trionode.data")

WAL_PREFIX = "data"
_BACKLOG_ENTRY_BYTES = 16
SNAPSHOT_NAME = "data" + snapshot_file.SNAPSHOT_SUFFIX
SNAPSHOT_KIND = "trionode-data"
LOADING_NAME = "data-loading"


class AckAborted(Exception):
    """The acknowledgement a reply waited for will not come from this node (it was deposed)."""


def open_datadir(path: str) -> DataDir:
    from trionode.io import logs

    datadir = DataDir(path)
    logs.set_node(datadir.node_id)
    return datadir


class DataStore:
    def __init__(self, directory: Path, data: DataState, wal: WalWriter, snapshot_offset: int, summary: str) -> None:
        self.directory = directory
        self.data = data
        self.wal = wal
        self.snapshot_offset = snapshot_offset
        self.recovery_summary = summary
        self.snapshot_bytes = _size(directory / SNAPSHOT_NAME)
        self.compactions = 0
        self._waiting = 0
        self._compacting = trio.Lock()
        # Acknowledged = durable on every ISR member. Replication decides it (on a primary, its
        # PrimaryDriver alone) and publishes it here; ``on_durable`` tells it the WAL moved on.
        self.acked_offset = snapshot_offset  # the snapshot was taken from acknowledged state
        self.on_durable: Callable[[], None] = lambda: self.publish_acked(self.wal.durable_seq)
        self.on_compacted: Callable[[int], None] = lambda snapshot_offset: None  # a compaction moved the snapshot
        self._acked_changed = trio.Event()
        # Recent effects, for replicas that reconnect (Redis's replication backlog).
        self.backlog: deque[tuple[int, list[bytes]]] = deque()
        self._backlog_bytes = 0
        self._backlog_sizes: deque[int] = deque()  # Invariant: parallel to backlog; sums to _backlog_bytes
        self._new_writer: trio.Event | None = None
        self._abort_generation = 0  # bumped by abort_waiters; a waiter that sees it move gives up
        self._abort_reason = ""
        self._writer_bounds: dict[str, int] = {}
        # Called when the WAL finds the disk full and when space is back (the node refuses writes meanwhile).
        self.on_disk_full: Callable[[], None] = lambda: None
        # Sees every batch of effects right after it is logged, in offset order (a slot migration's stream).
        self.on_logged: Callable[[list[tuple[int, tuple[bytes, ...]]]], None] | None = None
        wal.on_disk_full = self._disk_full_changed
        self.loading_marker = (directory / LOADING_NAME).exists()

    # --- startup ----------------------------------------------------------
    @classmethod
    def recover(cls, directory: Path, config: Config) -> "DataStore":
        """Start from what the directory holds, as core/wal/recovery.py decides."""
        snapshot_path = directory / SNAPSHOT_NAME
        pending_path = Path(str(snapshot_path) + snapshot_file.TMP_SUFFIX)
        start = recovery.on_start((directory / LOADING_NAME).exists(), pending_path.exists())
        if start.discard_local_data:
            log.warning("recovery: %s is present; the local data is discarded and a full sync follows", LOADING_NAME)
            snapshot_path.unlink(missing_ok=True)
            segments = wal_files.list_segments(str(directory), WAL_PREFIX)
            _remove_segments(directory, segments, f"{LOADING_NAME} is present")
        if start.drop_pending_snapshot:
            snapshot_file.discard_pending(str(snapshot_path))
            wal_files.fsync_dir(str(directory))
            log.warning("recovery: %s removed: a compaction's snapshot that was never installed", pending_path.name)
        data, plan, result = _rebuild(directory, repair=True)
        for line in result.report:
            log.info("recovery: %s", line)
        wal = WalWriter(str(directory), WAL_PREFIX, plan.end + 1, **_writer_bounds(config))
        summary = f"snapshot at offset {plan.snapshot_offset}, {plan.end - plan.snapshot_offset} WAL records replayed"
        if result.torn is not None:
            summary += f", torn tail cut at byte {result.torn.offset}"
        store = cls(directory, data, wal, plan.snapshot_offset, summary)
        store.acked_offset = plan.acked
        store._writer_bounds = _writer_bounds(config)
        return store

    # --- the writer task ------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the WAL writer; after a full resync replaced it, run the new one."""
        while True:
            await self.wal.run(task_status=task_status)
            task_status = trio.TASK_STATUS_IGNORED
            if self._new_writer is None:
                return  # closed for good
            await self._new_writer.wait()

    def set_loading_marker(self, on: bool) -> None:
        """Persist (or clear) the marker that says the local data is junk until a sync completes."""
        path = self.directory / LOADING_NAME
        if on:
            write_file_durably(path, b"")
        else:
            path.unlink(missing_ok=True)
            wal_files.fsync_dir(str(self.directory))
        self.loading_marker = on

    async def install_snapshot(self, offset: int, chunks: list[list]) -> None:
        """A full resync: replace the keyspace, the snapshot and the WAL with the primary's state at ``offset``.

        The new snapshot is durable before the old WAL goes; the caller holds the loading
        marker across this, since a crash between the two would mix them at recovery.
        """
        data = DataState(offset)
        for chunk in chunks:
            data.keyspace.load_chunk(chunk)
        await self._replace(data, chunks)
        log.info("full resync installed: %d keys at offset %d", len(self.data.keyspace), offset)

    async def truncate_after(self, keep: int) -> None:
        """Cut the log and the keyspace back to ``keep`` in place: offsets ``1..keep`` stay.

        Only the WAL is cut (``wal_files.cut_after``: a crash leaves a prefix of the old log, at
        least ``keep`` long, which the history, saved only after the cut, still describes); the
        snapshot stays as it is. It holds acknowledged offsets only, which no cut goes below, so an
        in-sync replica can always cut in place. Writing the kept prefix as the snapshot instead put
        unacknowledged records in it, and a second failover that cut them off found the cut below
        the snapshot: the replica had to discard everything (issue 10). ``keep`` 0 discards
        everything, snapshot included.
        """
        if keep >= self.data.applied_offset:
            return
        if keep == 0:
            await self._replace(DataState(), [])
            log.info("truncation: every local record discarded")
            return
        self.abort_waiters("this node's log was cut by a resync")
        async with self._compacting:
            assert keep >= self.snapshot_offset, f"cannot cut to {keep} below the snapshot at {self.snapshot_offset}"
            self.log_outbox()
            await self._stop_writer()
            data = await trio.to_thread.run_sync(self._cut_and_reload, keep)
            log.info("truncation: local records %d..%d discarded, %d kept", keep + 1, self.data.applied_offset, keep)
            self._restart_writer(data)

    def _cut_and_reload(self, keep: int) -> DataState:
        """Cut the WAL after ``keep`` and rebuild the keyspace from the snapshot and what is left, as a restart does."""
        for line in wal_files.cut_after(str(self.directory), WAL_PREFIX, keep):
            log.info("truncation: %s", line)
        data, plan, _ = _rebuild(self.directory, repair=False)
        assert plan.snapshot_offset == self.snapshot_offset and plan.end == keep, (plan, self.snapshot_offset, keep)
        return data

    async def _replace(self, data: DataState, chunks: list[list]) -> None:
        """Make ``data`` (with ``chunks``, its dump) the snapshot and the keyspace, with an empty WAL."""
        offset = data.applied_offset
        # Replies waiting for offsets of the old data (a replica's READONLY reads) were computed from
        # records this discards: they must never be sent, and the old offsets mean nothing in the new WAL.
        self.abort_waiters("this node's data was replaced by a resync")
        async with self._compacting:
            await self._stop_writer()
            # What the ISR has confirmed stays as it was (never more than the new data holds),
            # in memory and in the header, so a restart serves nothing it had not confirmed.
            header = {"kind": SNAPSHOT_KIND, "offset": offset, "acked": min(self.acked_offset, offset)}
            path = str(self.directory / SNAPSHOT_NAME)
            self.snapshot_bytes = await trio.to_thread.run_sync(snapshot_file.write_snapshot, path, header, chunks)
            _remove_segments(self.directory, wal_files.list_segments(str(self.directory), WAL_PREFIX), "replaced")
            self.snapshot_offset = offset
            self._clear_backlog_after(0)  # records of the old data, whatever their offsets
            self._restart_writer(data)

    async def _stop_writer(self) -> None:
        """Close the WAL (everything appended is durable) and have ``run`` wait for the next writer."""
        self._new_writer = trio.Event()
        await self.wal.aclose()

    def _restart_writer(self, data: DataState) -> None:
        """Adopt ``data`` as the keyspace and start a new WAL writer after its last offset.

        The acknowledged offset stays as it was, but never past the new data (the snapshot's header
        says as much), and the backlog keeps only records the new data holds.
        """
        assert self._new_writer is not None, "the writer was not stopped"
        offset = data.applied_offset
        acked = min(self.acked_offset, offset)
        self.data.replace_with(data, acked)
        self.acked_offset = acked
        # A waiter that started while the data was being replaced waits for an offset of the old data.
        self.abort_waiters("this node's data was replaced by a resync")
        self._clear_backlog_after(offset)
        self.wal = WalWriter(str(self.directory), WAL_PREFIX, offset + 1, **self._writer_bounds)
        self.wal.on_disk_full = self._disk_full_changed
        self._new_writer.set()
        self._new_writer = None

    def _clear_backlog_after(self, offset: int) -> None:
        backlog, sizes = self.backlog, self._backlog_sizes
        while backlog and backlog[-1][0] > offset:
            backlog.pop()
            self._backlog_bytes -= sizes.pop()
        assert self._backlog_bytes >= 0 and (backlog or self._backlog_bytes == 0)

    def _disk_full_changed(self, full: bool) -> None:
        self.on_disk_full()

    # --- the write path -----------------------------------------------------
    def log_outbox(self) -> None:
        """Move the effects applied since the last call into the WAL, in offset order."""
        if not self.data.outbox:
            return
        append, backlog, sizes = self.wal.append, self.backlog, self._backlog_sizes
        added = 0
        batch = self.data.take_outbox()
        for offset, effect in batch:
            payload = encode_effect(effect)
            seq = append(payload)
            assert seq == offset, f"WAL seq {seq} != offset {offset}"
            backlog.append((offset, effect))
            # The encoded size stands in for the effect's; Python's own overhead per entry is
            # larger, which the bound's value allows for.
            size = _BACKLOG_ENTRY_BYTES + len(payload)
            sizes.append(size)
            added += size
        self._backlog_bytes += added
        while self._backlog_bytes > limits.repl_backlog_bytes_max and len(backlog) > 1:
            backlog.popleft()
            self._backlog_bytes -= sizes.popleft()
        if self.on_logged is not None:
            self.on_logged(batch)

    def backlog_since(self, offset: int) -> list[tuple[int, list[bytes]]] | None:
        """Effects after ``offset`` if the backlog still reaches back that far, else None."""
        backlog = self.backlog
        if offset >= self.data.applied_offset:
            return []
        if not backlog or backlog[0][0] > offset + 1:
            return None
        start = offset + 1 - backlog[0][0]
        return [backlog[i] for i in range(start, len(backlog))]

    async def wait_acked(self, offset: int) -> None:
        """Return once ``offset`` is acknowledged: durable here and on every ISR member."""
        if offset <= self.acked_offset:
            return
        self.on_durable()  # the owner may not have heard of the latest fsync yet
        if offset <= self.acked_offset:
            return
        self._waiting += 1
        generation = self._abort_generation
        try:
            while self.acked_offset < offset:
                if self._abort_generation != generation:
                    raise AckAborted(self._abort_reason)
                if self.wal.durable_seq < offset:
                    await self.wal.wait_durable(offset)
                    self.on_durable()
                else:
                    await self._acked_changed.wait()
        finally:
            self._waiting -= 1

    def abort_waiters(self, reason: str) -> None:
        """This node stopped being the primary: what waits for an acknowledgement never gets one here.

        The writes may still be acknowledged by the new primary, or lost if they never
        reached the ISR; either way this node cannot say, so its waiters give up.
        """
        self._abort_generation += 1
        self._abort_reason = reason
        self._acked_changed.set()
        self._acked_changed = trio.Event()

    def publish_acked(self, acked: int) -> None:
        """Replication acknowledged up to ``acked``: what waits for it is answered, reads of it become visible."""
        assert acked <= self.data.applied_offset, (acked, self.data.applied_offset)
        if acked > self.acked_offset:
            self.acked_offset = acked
            self.data.visibility.advance(acked)
            self._acked_changed.set()
            self._acked_changed = trio.Event()

    def replies_waiting(self) -> bool:
        return self._waiting > 0

    # --- compaction ---------------------------------------------------------
    def wants_compaction(self, config: Config) -> bool:
        policy = CompactionPolicy(config.compact_wal_bytes_min, config.compact_wal_records_min,
                                  config.compact_wal_percent)
        return wants_compaction(policy, wal_bytes=self.wal_bytes(), wal_records=self.data.applied_offset -
                                self.snapshot_offset, snapshot_bytes=self.snapshot_bytes,
                                keys=len(self.data.keyspace))

    async def compact(self) -> None:
        async with self._compacting:
            self.log_outbox()
            offset = self.data.applied_offset
            if offset == self.snapshot_offset and self.snapshot_bytes:
                return
            self.wal.rotate()
            # The cut is taken now; the worker thread builds and writes the entries a chunk
            # at a time while commands go on, so the keyspace is never held twice.
            chunks = self.data.keyspace.dump(limits.snapshot_chunk_keys_max)
            # Installed only once the ISR has confirmed the cut (below), so a restart may serve it all.
            header = {"kind": SNAPSHOT_KIND, "offset": offset, "acked": offset}
            path = str(self.directory / SNAPSHOT_NAME)
            await self.wal.wait_durable(offset)
            try:
                size_bytes = await trio.to_thread.run_sync(snapshot_file.write_pending, path, header, chunks)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                # The old snapshot and the whole WAL are still in place: nothing is lost, try again later.
                log.warning("compaction: no space for a snapshot at offset %d; will retry", offset)
                return
            if not await self._acknowledged_soon(offset):
                snapshot_file.discard_pending(path)
                return
            await trio.to_thread.run_sync(snapshot_file.install_pending, path)
            self.snapshot_bytes = size_bytes
            await self.wal.remove_segments_before(offset + 1)
            self.snapshot_offset = offset
            self.compactions += 1
            self.on_compacted(offset)
            log.info("compaction: snapshot at offset %d (%d bytes); older WAL segments removed",
                     offset, self.snapshot_bytes)

    async def _acknowledged_soon(self, offset: int) -> bool:
        """Whether the ISR confirms ``offset`` within ``compact_ack_wait_ms``.

        A snapshot must hold acknowledged records only: a failover may cut the records past the
        acknowledged offset, and a node cannot cut back into its snapshot, only discard it all
        and resync from nothing, which an ISR member must never do (S1). The cut is taken at the
        applied offset, which the ISR confirms about one round trip later; a node cut off from
        its shard keeps its WAL and tries again at the next compaction check.
        """
        with trio.move_on_after(limits.compact_ack_wait_ms / 1000):
            try:
                await self.wait_acked(offset)
            except AckAborted:
                pass
            else:
                return True
        log.info("compaction: offset %d is not acknowledged yet; the WAL is kept, retrying later", offset)
        return False

    async def close(self) -> None:
        await self.wal.aclose()

    # --- reporting ----------------------------------------------------------
    def wal_bytes(self) -> int:
        """Bytes of records in the WAL (the current segment's preallocated tail does not count)."""
        current = self.wal.statistics()
        closed = wal_files.list_segments(str(self.directory), WAL_PREFIX)
        return current.segment_bytes + sum(
            _size(Path(s.path)) for s in closed if s.first_seq != current.segment_first_seq
        )

    def info(self) -> dict[str, Any]:
        stats = self.wal.statistics()
        return {
            "aof_enabled": 1,
            "wal_bytes": self.wal_bytes(),
            "wal_segments": stats.segments,
            "wal_appended_offset": stats.appended_seq,
            "wal_durable_offset": stats.durable_seq,
            "wal_pending_bytes": stats.pending_bytes,
            "wal_batches": stats.batches,
            "wal_batch_records_largest": stats.batch_records_largest,
            "snapshot_bytes": self.snapshot_bytes,
            "snapshot_offset": self.snapshot_offset,
            "compactions": self.compactions,
            "fsyncs": stats.fsyncs,
            "fsync_last_ms": round(stats.fsync_seconds_last * 1000, 3),
            "fsync_avg_ms": round(stats.fsync_seconds_ewma * 1000, 3),
            "fsync_max_ms": round(stats.fsync_seconds_max * 1000, 3),
        }


def _writer_bounds(config: Config) -> dict[str, int]:
    return {
        "batch_records_max": config.wal_batch_records_max,
        "batch_bytes_max": config.wal_batch_bytes_max,
        "pending_bytes_max": config.wal_pending_bytes_max,
        "segment_bytes_max": limits.wal_segment_bytes_max,
    }


def _rebuild(directory: Path, *, repair: bool) -> tuple[DataState, recovery.Plan, wal_files.LoadResult]:
    """The keyspace the snapshot and the WAL give, and recovery's plan, carried out: its records replayed, a WAL
    wholly inside the snapshot removed.

    A restart and the reload after a cut in place both rebuild here, so one rule says which records go over
    which snapshot. ``repair``: cut a torn tail off (at startup; a cut's WAL was closed cleanly).
    """
    data, snapshot_offset, snapshot_acked = _load_snapshot(directory)
    result = wal_files.load(str(directory), WAL_PREFIX, repair=repair, empty_next_seq=snapshot_offset + 1)
    plan = recovery.plan(snapshot_offset, snapshot_acked, result.first_seq, result.next_seq)
    if isinstance(plan, recovery.CannotStart):
        raise WalCorruption(wal_files.segment_name(WAL_PREFIX, plan.wal_first), 0, plan.reason)
    for seq, effect in result.records:
        if plan.replays(seq):
            # Not acknowledged yet: after a crash, what the WAL holds past the snapshot may
            # never have reached the ISR. Reads of it wait until the ISR confirms it (S7).
            data.replay(seq, effect)
    if plan.remove_wal:
        _remove_segments(directory, result.segments, f"wholly covered by {SNAPSHOT_NAME}")
    assert data.applied_offset == plan.end, (data.applied_offset, plan)
    return data, plan, result


def _load_snapshot(directory: Path) -> tuple[DataState, int, int]:
    """The keyspace of ``data.snap``, its offset, and how much of it the ISR had acknowledged.

    Files beside it are left alone: a cut in place reloads while the Raft store may be writing its own.
    """
    path = directory / SNAPSHOT_NAME
    if not path.exists():
        return DataState(), 0, 0
    header, chunks = snapshot_file.read_snapshot(str(path), remove_tmp=False)  # recovery decides on that
    offset, acked = header.get("offset"), header.get("acked", header.get("offset"))
    if header.get("kind") != SNAPSHOT_KIND or not isinstance(offset, int) or not isinstance(acked, int):
        raise WalCorruption(SNAPSHOT_NAME, 0, f"not a trionode data snapshot (header {header!r})")
    data = DataState(offset)
    for chunk in chunks:
        data.keyspace.load_chunk(chunk)
    if acked < offset:
        # Which keys changed after ``acked`` is not recorded: every read waits for ``offset``.
        data.visibility = Visibility(acked)
        data.visibility.wrote_everything(offset)
    log.info("recovery: %s holds %d keys at offset %d (acknowledged to %d)", SNAPSHOT_NAME,
             len(data.keyspace), offset, acked)
    return data, offset, acked


def _remove_segments(directory: Path, segments: list[wal_files.Segment], why: str) -> None:
    for segment in segments:
        log.info("removing %s (%s)", segment.name, why)
        os.unlink(segment.path)
    wal_files.fsync_dir(str(directory))


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


__all__ = ["DataDirError", "DataStore", "open_datadir"]
