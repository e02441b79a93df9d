"""The node's durable data: recovery at startup, the data WAL, and compaction.

Recovery loads ``data.snap`` (the keyspace at some offset N), then replays the
data WAL's records after N; a torn WAL tail is cut off and logged, anything
worse stops the node (DESIGN S6). Record ``seq`` equals the replication offset
of the effect it holds, which makes "nothing skipped, nothing doubled" a plain
equality that is asserted on every append and every replayed record.

Compaction, in an order that is safe at every crash point:
1. at one synchronous moment, note offset N, rotate the WAL to a new segment
   and copy the keyspace into chunks (so later writes cannot leak in);
2. wait until the WAL is durable to N, so the old segments are complete;
3. write the snapshot to a temp file, fsync, rename, fsync the directory
   (``snapshot_file``), in a worker thread;
4. only then delete the segments that the snapshot covers.
A crash between any two steps leaves either the old snapshot plus a complete
WAL, or the new snapshot plus a contiguous WAL that reaches back past N.
"""

import logging
import os
from pathlib import Path
from typing import Any

import cbor2
import trio

from trionode import limits
from trionode.config import Config
from trionode.core.data_state import DataState
from trionode.core.wal.codec import WalCorruption
from trionode.io import snapshot_file, wal_files
from trionode.io.datadir import DataDir, DataDirError
from trionode.io.wal_writer import WalWriter

log = logging.getLogger("trionode.data")

WAL_PREFIX = "data"
SNAPSHOT_NAME = "data" + snapshot_file.SNAPSHOT_SUFFIX
SNAPSHOT_KIND = "trionode-data"


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

    # --- startup ----------------------------------------------------------
    @classmethod
    def recover(cls, directory: Path, config: Config) -> "DataStore":
        data, snapshot_offset = _load_snapshot(directory)
        result = wal_files.load(str(directory), WAL_PREFIX, repair=True, empty_next_seq=snapshot_offset + 1)
        for line in result.report:
            log.info("recovery: %s", line)
        if result.first_seq > snapshot_offset + 1:
            raise WalCorruption(
                wal_files.segment_name(WAL_PREFIX, result.first_seq), 0,
                f"the WAL starts at offset {result.first_seq} but the snapshot ends at {snapshot_offset}",
            )
        replayed = 0
        for seq, effect in result.records:
            if seq > snapshot_offset:
                data.replay(seq, effect)
                replayed += 1
        if result.segments and result.next_seq <= snapshot_offset:
            # Every record the WAL holds is inside the snapshot, and the writer cannot
            # continue a segment whose implied seqs would not match: drop them.
            _remove_segments(directory, result.segments)
        next_seq = max(result.next_seq, snapshot_offset + 1)
        assert data.applied_offset == next_seq - 1, (data.applied_offset, next_seq)
        wal = WalWriter(
            str(directory), WAL_PREFIX, next_seq,
            batch_records_max=config.wal_batch_records_max,
            batch_bytes_max=config.wal_batch_bytes_max,
            pending_bytes_max=config.wal_pending_bytes_max,
            segment_bytes_max=limits.wal_segment_bytes_max,
        )
        summary = f"snapshot at offset {snapshot_offset}, {replayed} WAL records replayed"
        if result.torn is not None:
            summary += f", torn tail cut at byte {result.torn.offset}"
        return cls(directory, data, wal, snapshot_offset, summary)

    # --- the write path -----------------------------------------------------
    def log_outbox(self) -> None:
        """Move the effects applied since the last call into the WAL, in offset order."""
        if not self.data.outbox:
            return
        append = self.wal.append
        for offset, effect in self.data.take_outbox():
            seq = append(cbor2.dumps(effect))
            assert seq == offset, f"WAL seq {seq} != offset {offset}"

    async def wait_acked(self, offset: int) -> None:
        """Return once ``offset`` is acknowledged: on a single node, fsynced to the data WAL."""
        if offset > self.wal.durable_seq:
            self._waiting += 1
            try:
                await self.wal.wait_durable(offset)
            finally:
                self._waiting -= 1
        durable = self.wal.durable_seq
        if durable > self.data.visibility.acked:
            self.data.visibility.advance(durable)

    def replies_waiting(self) -> bool:
        return self._waiting > 0

    # --- compaction ---------------------------------------------------------
    def wants_compaction(self, config: Config) -> bool:
        records = self.data.applied_offset - self.snapshot_offset
        return records >= config.compact_wal_records_min or self.wal_bytes() >= config.compact_wal_bytes_min

    async def compact(self) -> None:
        async with self._compacting:
            self.log_outbox()
            offset = self.data.applied_offset
            if offset == self.snapshot_offset and self.snapshot_bytes:
                return
            self.wal.rotate()
            chunks = list(self.data.keyspace.dump(limits.snapshot_chunk_keys_max))
            header = {"kind": SNAPSHOT_KIND, "offset": offset}
            path = str(self.directory / SNAPSHOT_NAME)
            await self.wal.wait_durable(offset)
            self.snapshot_bytes = await trio.to_thread.run_sync(snapshot_file.write_snapshot, path, header, chunks)
            await self.wal.remove_segments_before(offset + 1)
            self.snapshot_offset = offset
            self.compactions += 1
            log.info("compaction: snapshot at offset %d (%d bytes); older WAL segments removed",
                     offset, self.snapshot_bytes)

    async def close(self) -> None:
        await self.wal.aclose()

    # --- reporting ----------------------------------------------------------
    def wal_bytes(self) -> int:
        return sum(_size(Path(s.path)) for s in wal_files.list_segments(str(self.directory), WAL_PREFIX))

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


def _load_snapshot(directory: Path) -> tuple[DataState, int]:
    path = directory / SNAPSHOT_NAME
    if not path.exists():
        snapshot_file.remove_tmp_files(str(directory))
        return DataState(), 0
    header, chunks = snapshot_file.read_snapshot(str(path))
    if header.get("kind") != SNAPSHOT_KIND or not isinstance(header.get("offset"), int):
        raise WalCorruption(SNAPSHOT_NAME, 0, f"not a trionode data snapshot (header {header!r})")
    data = DataState(header["offset"])
    for chunk in chunks:
        data.keyspace.load_chunk(chunk)
    log.info("recovery: %s holds %d keys at offset %d", SNAPSHOT_NAME, len(data.keyspace), header["offset"])
    return data, header["offset"]


def _remove_segments(directory: Path, segments: list[wal_files.Segment]) -> None:
    for segment in segments:
        log.info("recovery: removing %s, wholly covered by %s", segment.name, SNAPSHOT_NAME)
        os.unlink(segment.path)
    wal_files.fsync_dir(str(directory))


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


__all__ = ["DataDirError", "DataStore", "open_datadir"]
