"""A slot's keys for a migration's copy, read from a cut in bounded chunks.

Theory of operation. The first chunk of a slot (cursor 0) takes the cut: the
slot's key list at that moment, from the keyspace's per-slot index (a copy
of references, no scan of other slots). Later chunks index that cut, so a
slot is copied in ``len(cut) / keys_max`` steps whatever writes happen in
between, and the event loop is never held longer than one chunk.

Why the result is right without a fork: the chunk holds each key whole as it
is *now* (type, value, deadline) and the target replaces the key with it.
Writes to the slot travel in the same ordered stream. A key deleted after the
cut is skipped (its DEL was streamed); a key created after it is not in the
cut (its write was streamed); a write streamed before the key's chunk is
overwritten by a value that already includes it; one after applies on top.
"""

from dataclasses import dataclass, field
from typing import Any

from trionode.core.keyspace.store import Keyspace
from trionode.core.migration.export import SNAPSHOTTING, Action, CopyChunk, ExportJob
from trionode.core.migration.stream import StreamSender, copy_record


@dataclass(slots=True)
class SlotCopier:
    """Holds the cut of the slot being copied; one per export job."""

    slot: int | None = None
    cut: list[bytes] = field(default_factory=list)

    def chunk(self, keyspace: Keyspace, slot: int, cursor: int, keys_max: int) -> tuple[list[list[Any]], int | None]:
        """The entries of ``slot`` from ``cursor``, and the next cursor (None: the slot is done)."""
        assert keys_max >= 1 and cursor >= 0
        if cursor == 0:
            self.slot, self.cut = slot, list(keyspace.slot_keys[slot])
        assert self.slot == slot and cursor <= len(self.cut), (self.slot, slot, cursor)
        end = cursor + keys_max
        entries = keyspace.dump_keys(self.cut[cursor:end])
        if end >= len(self.cut):
            self.slot, self.cut = None, []
            return entries, None
        return entries, end


def copy_step(job: ExportJob, sender: StreamSender, copier: SlotCopier, keyspace: Keyspace, action: CopyChunk,
              now_ms: int) -> list[Action]:  # fmt: skip
    """Carry out one :class:`CopyChunk`: read it from the cut, append it to the stream, tell the job.

    The shell logs its outbox first, so every write made before the cut is in the stream
    before the chunk. A chunk that waited while its job aborted is dropped.
    """
    if job.state != SNAPSHOTTING:
        return []
    entries, next_cursor = copier.chunk(keyspace, action.slot, action.cursor, action.keys_max)
    offset = sender.append(copy_record(entries), now_ms) if entries else sender.last_offset
    nbytes = sum(len(key) + _plain_bytes(plain) for key, _, plain, _ in entries)
    return job.on_copied(action.slot, next_cursor, len(entries), nbytes, offset, now_ms)


def _plain_bytes(plain: Any) -> int:
    if isinstance(plain, bytes):
        return len(plain)
    if isinstance(plain, dict):
        return sum(len(k) + len(v) for k, v in plain.items())
    return sum(map(len, plain))
