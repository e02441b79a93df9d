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

This module also keeps an in-memory mirror of the durable log tail (what a
restart would see), which compaction writes into the next ``raft.snap``.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from trionode.core.raft import durable
from trionode.core.raft.messages import Entry, HardState, Ready, Snapshot
from trionode.core.wal.codec import WalCorruption
from trionode.io import snapshot_file, wal_files
from trionode.io.wal_writer import WalWriter

log = logging.getLogger("trionode.raft")

WAL_PREFIX = "raft"
SNAPSHOT_NAME = "raft" + snapshot_file.SNAPSHOT_SUFFIX
SNAPSHOT_KIND = "trionode-raft"


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
        wal = WalWriter(str(directory), WAL_PREFIX, max(result.next_seq, wal_from_seq))
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
        self.snapshot = snapshot
        self.entries = []
        await self.compact_to(snapshot)

    async def compact_to(self, snapshot: Snapshot) -> None:
        """Write ``raft.snap`` for ``snapshot`` plus the tail, then drop the WAL it covers."""
        assert snapshot.index >= self.snapshot.index
        self.snapshot = snapshot
        self.entries = [e for e in self.entries if e.index > snapshot.index]
        wal_from_seq = self.wal.rotate()
        header = {
            "kind": SNAPSHOT_KIND,
            "cluster_id": self.cluster_id,
            "snapshot": durable.snapshot_record(snapshot),
            "wal_from_seq": wal_from_seq,
        }
        chunks = [_hard_state_record(self.hard_state)] + [durable.entry_to_record(e) for e in self.entries]
        # Everything before wal_from_seq must be durable in the WAL or in raft.snap; the
        # snapshot holds it all, so it is written first and the old segments go after.
        path = str(self.directory / SNAPSHOT_NAME)
        await trio.to_thread.run_sync(snapshot_file.write_snapshot, path, header, chunks)
        await self.wal.remove_segments_before(wal_from_seq)
        self.compactions += 1
        log.info("raft compaction: snapshot at index %d term %d", snapshot.index, snapshot.term)

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
