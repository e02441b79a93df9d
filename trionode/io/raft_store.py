"""Durable Raft state: the Raft WAL, the Raft snapshot file, and recovery.

What is on disk, and why it is enough:

* ``raft-<seq>.wal`` segments hold the records ``durable.records_for`` makes
  for each Ready, in order: truncations, entries, hard state. A truncation is
  a record of its own, appended (and fsynced with the batch) before the
  entries that replace the cut suffix, so it is durable before anything that
  follows it (DESIGN §3).
* ``raft.snap`` holds a compacted state: the Raft snapshot (cluster state at
  some applied index, with its membership), the hard state, every log entry
  after the snapshot, and ``wal_from_seq``, the first WAL record that is not
  already folded into it. Older segments are deleted only after the file is
  durable.

Recovery reads ``raft.snap`` (if any), then every WAL record from
``wal_from_seq`` on, and replays them with ``durable.replay``. A torn WAL tail
is cut and logged; anything worse stops the node (S6).

A full disk (ENOSPC, EDQUOT) is never fatal here, and nothing that is not
durable is ever reported so. The Raft WAL waits for space (``WalWriter``),
and the control loop waits with it before it sends a vote or an append
acknowledgement, so the node simply takes no part in Raft meanwhile. A
``raft.snap`` that finds no space leaves the old file and the whole WAL in
place: an optional compaction is skipped (``compact_to(wait=False)``
returns False), and a required one (a snapshot from the leader, joining,
resetting or forming a cluster) waits for space the same way, logging once.

This module also keeps an in-memory mirror of the durable log tail (what a
restart would see), which compaction writes into the next ``raft.snap``.
"""

import errno
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from trionode import limits
from trionode.core.raft import durable
from trionode.core.raft.messages import Entry, HardState, Ready, Snapshot
from trionode.core.wal.codec import WalCorruption
from trionode.io import snapshot_file, wal_files
from trionode.io.wal_writer import WalWriter

log = logging.getLogger("trionode.raft")

WAL_PREFIX = "raft"
SNAPSHOT_NAME = "raft" + snapshot_file.SNAPSHOT_SUFFIX
SNAPSHOT_KIND = "trionode-raft"
# What the node does while its disk is full: it sends nothing its disk does not hold.
WHILE_FULL = "this node takes no part in Raft (no vote, no acknowledgement) until space is freed"


@dataclass(slots=True)
class Restored:
    cluster_id: str
    hard_state: HardState
    snapshot: Snapshot
    entries: list[Entry] = field(default_factory=list)


class RaftStore:
    def __init__(self, directory: Path, restored: Restored, wal: WalWriter) -> None:
        self.directory = directory
        self.cluster_id = restored.cluster_id
        self.wal = wal
        # Mirror of the durable state, updated as each Ready is persisted.
        self.hard_state = restored.hard_state
        self.snapshot = restored.snapshot
        self.entries: list[Entry] = list(restored.entries)  # Invariant: contiguous, all > snapshot.index
        self.compactions = 0
        self._snapshot_waits = False  # a required raft.snap waits for space

    @property
    def disk_full(self) -> bool:
        """Whether the Raft WAL or a required raft.snap waits for space."""
        return self.wal.disk_full or self._snapshot_waits

    # --- startup ----------------------------------------------------------
    @classmethod
    def recover(cls, directory: Path) -> "RaftStore":
        header, base_records = _load_snapshot_file(directory)
        wal_from_seq = header.get("wal_from_seq", 1)
        result = wal_files.load(str(directory), WAL_PREFIX, repair=True, empty_next_seq=wal_from_seq)
        for line in result.report:
            log.info("recovery: %s", line)
        if result.first_seq > wal_from_seq:
            raise WalCorruption(
                wal_files.segment_name(WAL_PREFIX, result.first_seq), 0,
                f"the Raft WAL starts at record {result.first_seq} but {SNAPSHOT_NAME} needs {wal_from_seq}",
            )
        records = base_records + [r for seq, r in result.records if seq >= wal_from_seq]
        snapshot = durable.snapshot_from_record(header["snapshot"]) if "snapshot" in header else Snapshot()
        state = durable.replay(snapshot, records)
        restored = Restored(header.get("cluster_id", ""), state.hard_state, state.snapshot, list(state.entries))
        wal = WalWriter(str(directory), WAL_PREFIX, max(result.next_seq, wal_from_seq), while_full=WHILE_FULL)
        log.info(
            "recovery: raft term %d, vote %s, commit %d, snapshot at %d, %d log entries",
            restored.hard_state.term, restored.hard_state.vote[:12] or "-", restored.hard_state.commit,
            restored.snapshot.index, len(restored.entries),
        )
        return cls(directory, restored, wal)

    # --- the Ready path -----------------------------------------------------
    def append_ready(self, ready: Ready) -> int:
        """Queue the Ready's records in the WAL (in order); return the last seq, 0 if none."""
        seq = 0
        for record in durable.records_for(ready):
            seq = self.wal.append_obj(record)
        if ready.entries:
            first = ready.entries[0].index
            self.entries = [e for e in self.entries if e.index < first]
            self.entries.extend(ready.entries)
        if ready.hard_state is not None:
            self.hard_state = ready.hard_state
        return seq

    async def persist_snapshot(self, snapshot: Snapshot) -> None:
        """A snapshot received from the leader replaces the whole log (``RaftLog.restore``).

        Entries past its index belong to the replaced log, perhaps to a term the snapshot
        overrides: folded into ``raft.snap`` they would come back at a restart, where no
        WAL record says they were cut. Entries of the same Ready follow in ``append_ready``.
        """
        await self.compact_to(snapshot, entries=[])

    async def compact_to(self, snapshot: Snapshot, *, entries: list[Entry] | None = None, wait: bool = True) -> bool:
        """Write ``raft.snap`` for ``snapshot`` plus the tail (``entries``, default the log's), then drop
        the WAL it covers. On a full disk: False with nothing changed unless ``wait``, which waits for space.
        """
        assert snapshot.index >= self.snapshot.index
        tail = [e for e in (self.entries if entries is None else entries) if e.index > snapshot.index]
        # Rotated only once raft.snap is written: a skipped compaction must not leave the WAL a new
        # segment to create on a full disk. Records appended meanwhile are past wal_from_seq, and kept.
        wal_from_seq = self.wal.appended_seq + 1
        header = {
            "kind": SNAPSHOT_KIND,
            "cluster_id": self.cluster_id,
            "snapshot": durable.snapshot_record(snapshot),
            "wal_from_seq": wal_from_seq,
        }
        chunks = [_hard_state_record(self.hard_state)] + [durable.entry_to_record(e) for e in tail]
        # Everything before wal_from_seq must be durable in the WAL or in raft.snap; the
        # snapshot holds it all, so it is written first and the old segments go after.
        if not await self._write_snapshot(header, chunks, wait):
            return False
        self.snapshot, self.entries = snapshot, tail
        self.wal.rotate()
        await self.wal.remove_segments_before(wal_from_seq)
        self.compactions += 1
        log.info("raft compaction: snapshot at index %d term %d", snapshot.index, snapshot.term)
        return True

    async def _write_snapshot(self, header: dict[str, Any], chunks: list[dict], wait: bool) -> bool:
        """Write raft.snap; on a full disk False (the old file stays), or wait for space if ``wait``."""
        path = str(self.directory / SNAPSHOT_NAME)
        while True:
            try:
                await trio.to_thread.run_sync(snapshot_file.write_snapshot, path, header, chunks)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                if not wait:
                    log.warning("raft compaction: no space for %s; the WAL is kept, retrying later", SNAPSHOT_NAME)
                    return False
                if not self._snapshot_waits:
                    log.error("raft: no space for %s (%s); %s, retrying every %d ms",
                              SNAPSHOT_NAME, exc.strerror, WHILE_FULL, limits.wal_disk_full_retry_ms)
                    self._snapshot_waits = True
                await trio.sleep(limits.wal_disk_full_retry_ms / 1000)
                continue
            if self._snapshot_waits:
                log.warning("raft: %s written now that disk space is available again", SNAPSHOT_NAME)
                self._snapshot_waits = False
            return True

    async def set_cluster_id(self, cluster_id: str) -> None:
        """Join ``cluster_id``: durable before this node answers its leader."""
        assert not self.cluster_id or self.cluster_id == cluster_id
        self.cluster_id = cluster_id
        await self.compact_to(self.snapshot)

    async def reset(self) -> None:
        """Belong to no cluster: no id, no membership, term 0, no log, in one rename of raft.snap.

        Recovery ignores the WAL records before the new ``wal_from_seq``, and compaction
        deletes their segments once the new file is durable.
        """
        self.cluster_id = ""
        self.hard_state = HardState()
        self.snapshot = Snapshot()
        self.entries = []
        await self.compact_to(self.snapshot)

    async def initialize(self, cluster_id: str, first: Snapshot) -> None:
        """Bootstrap a new cluster: its id and first membership reach disk in one rename."""
        assert not self.cluster_id and not self.entries and self.hard_state.term == 0
        self.cluster_id = cluster_id
        self.hard_state = HardState(term=first.term, vote="", commit=first.index)
        await self.compact_to(first)


def _hard_state_record(hs: HardState) -> dict[str, Any]:
    return durable.records_for(
        Ready(soft_state=None, hard_state=hs, entries=(), snapshot=None, messages=(), committed=(), must_sync=True)
    )[-1]


def _load_snapshot_file(directory: Path) -> tuple[dict[str, Any], list[dict]]:
    path = directory / SNAPSHOT_NAME
    if not path.exists():
        snapshot_file.remove_tmp_files(str(directory))
        return {}, []
    header, chunks = snapshot_file.read_snapshot(str(path))
    if header.get("kind") != SNAPSHOT_KIND:
        raise WalCorruption(SNAPSHOT_NAME, 0, f"not a trionode Raft snapshot (kind {header.get('kind')!r})")
    return header, list(chunks)


__all__ = ["RaftStore", "Restored"]
