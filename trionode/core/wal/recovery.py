"""What a restarting node trusts of its data directory, and what it replays (DESIGN S5, S6).

Theory of operation
-------------------
A node's data is an installed snapshot (the keyspace at offset S, and how much
of it the ISR had acknowledged) and a WAL of records ``F..E-1`` in segments.
Compaction writes a pending snapshot beside the installed one, installs it by
a rename, and only then removes the segments it covers; a full sync or a cut
in place runs under the durable loading marker. A crash may fall between any
two of those steps, and the restart decides here, in two calls, what to do
with what it finds. ``io/data_store.py`` carries the decisions out on files
(at a restart, and when it reloads after a cut in place), ``sim/data_disk.py``
on the simulated disk, so the simulator's crashes test the very rule the node
runs.

1. :func:`on_start`, before anything is read: with the loading marker present
   the snapshot and the WAL may mix two histories (a full sync or a cut was
   under way), so both are discarded, the marker kept, and the node starts
   empty and ``loading`` until a sync completes. A pending snapshot is never
   loaded: it may be unfinished, and a compaction writes it before the ISR has
   confirmed its offset, so it may hold records a failover cuts.

2. :func:`plan`, once the snapshot and the WAL were read (each segment's damage
   judged by :func:`segment_error`): the WAL must start no later than just past
   the snapshot, ``F <= S + 1``; records ``S+1..F-1`` would be on no file, a
   hole no replay can fill, so the node must not start (:class:`CannotStart`,
   reported as corruption, S6). Otherwise the records past the snapshot,
   ``S+1..E-1``, are replayed, none of them taken as acknowledged (they may
   never have reached the ISR before the crash): the acknowledged offset is the
   snapshot header's. A WAL wholly inside the snapshot (``E <= S``) is removed,
   since the writer cannot continue segments whose seqs do not follow S. The
   node goes on at ``end = max(E - 1, S)``; the epoch history's entries past
   ``end`` describe nothing and are cut (the fence epoch is a promise, kept).

Damage in a segment (:func:`segment_error`): the codec tells a torn tail (no
valid record after it) from corruption, and reads zeros after the last record
of a preallocated segment as its end. Only the last segment can be torn, since
the writer syncs a segment fully before it starts the next: a torn tail there
is cut off, anything else stops the node naming the file and byte.
"""

from dataclasses import dataclass

from trionode.core.wal.codec import Damage, WalCorruption


@dataclass(frozen=True, slots=True)
class Start:
    """What recovery removes before it reads anything."""

    discard_local_data: bool  # the snapshot and every WAL segment go; the loading marker stays
    drop_pending_snapshot: bool


@dataclass(frozen=True, slots=True)
class Plan:
    """How a node whose files agree starts."""

    snapshot_offset: int  # the keyspace is the snapshot's, at this offset
    acked: int  # what the ISR had acknowledged: the snapshot header's, never a replayed record
    replay_from: int  # WAL records replay_from..end are replayed on top of the snapshot
    end: int  # Invariant: >= snapshot_offset; the recovered log end; the WAL goes on at end + 1
    remove_wal: bool  # every segment lies inside the snapshot

    def replays(self, offset: int) -> bool:
        return self.replay_from <= offset <= self.end


@dataclass(frozen=True, slots=True)
class CannotStart:
    """The WAL starts past the snapshot's end: the records between them are on no file."""

    wal_first: int
    snapshot_offset: int

    @property
    def reason(self) -> str:
        return f"the WAL starts at offset {self.wal_first} but the snapshot ends at {self.snapshot_offset}"


def on_start(loading_marker: bool, pending_snapshot: bool) -> Start:
    """What a restart must not trust, from which files exist."""
    return Start(discard_local_data=loading_marker, drop_pending_snapshot=pending_snapshot)


def plan(snapshot_offset: int, snapshot_acked: int, wal_first: int, wal_next: int) -> Plan | CannotStart:
    """How to start from a snapshot at ``snapshot_offset`` and a WAL holding ``wal_first..wal_next - 1``.

    An empty WAL has ``wal_first == wal_next``; a data directory with no snapshot has offset 0.
    """
    assert snapshot_offset >= 0 and 0 <= wal_first <= wal_next, (snapshot_offset, wal_first, wal_next)
    if wal_first > snapshot_offset + 1:
        return CannotStart(wal_first, snapshot_offset)
    end = max(wal_next - 1, snapshot_offset)
    return Plan(snapshot_offset, snapshot_acked, snapshot_offset + 1, end, remove_wal=wal_next <= snapshot_offset)


def segment_error(file_name: str, damage: Damage | None, last: bool) -> WalCorruption | None:
    """The corruption a segment's damage is, or None if recovery may go on (cutting a torn tail off)."""
    if damage is None or (damage.kind == "torn" and last):
        return None
    if damage.kind == "corrupt":
        return WalCorruption(file_name, damage.offset, damage.reason)
    return WalCorruption(file_name, damage.offset, f"torn record in a segment that is not the last ({damage.reason})")
