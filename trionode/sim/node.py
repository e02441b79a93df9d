"""One simulated node: a RawNode, its cluster state and its disk, driven like the real shell.

Theory of operation
-------------------
A node handles each Ready in the order the Raft contract demands:

1. **persist** -- a received snapshot is written atomically (``raft.snap``),
   then the WAL is rewritten around it; otherwise the Ready's WAL records
   (``durable.records_for``) are appended to ``raft.wal`` through the real
   codec and fsynced when ``must_sync``. The nemesis may crash the node right
   here, after the append and before the fsync: that is how torn tails arise.
2. **send** -- messages go to the simulated network only after step 1.
3. **apply** -- committed entries go to the cluster state machine.
4. **advance**.

Periodically the node compacts: it snapshots the cluster state at its applied
index, writes the snapshot atomically and rewrites the WAL with only what
follows (hard state and the entries after the snapshot).

A restart reads ``raft.snap`` and ``raft.wal`` with the codec, cuts a torn
tail, replays with ``durable.replay`` and builds a new RawNode. Damage the
codec calls "corrupt" is a failure unless the nemesis injected it; then the
node stops for good (DESIGN S6: never skip a corrupt record).

Two mirrors of the log (mirror.py) feed the checker: ``written`` (what the
process has appended) and ``synced`` (what survives any crash). Invariant:
``synced`` is a copy of ``written`` taken at the last fsync.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trionode.core.raft.messages import (
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    Ready,
    Snapshot,
)
from trionode.core.wal import codec
from trionode.sim.backend import Backend
from trionode.sim.disk import SimDisk
from trionode.sim.invariants import InvariantViolation, SafetyChecker
from trionode.sim.mirror import LogMirror, MirrorEntry, data_digest
from trionode.sim.trace import Recorder

WAL = "raft.wal"
SNAP = "raft.snap"
RECORD_BYTES_MAX = 16 * 1024 * 1024  # one simulated WAL record (a snapshot of the cluster state fits)
READY_ROUNDS_MAX = 16  # Readies handled back to back before the node yields the step


class NodeCrashed(Exception):
    """The nemesis crashed this node in the middle of handling a Ready."""


class DiskFailed(Exception):
    """A restart found injected corruption: the node stops for good, as a real one would."""


@dataclass(frozen=True, slots=True)
class NodeFaults:
    crash_mid_persist_probability: float = 0.003
    torn_probability: float = 0.7  # a crash leaves part of the unsynced tail
    compact_every_entries: int = 40


class SimNode:
    def __init__(
        self,
        node_id: str,
        name: str,
        backend: Backend,
        checker: SafetyChecker,
        recorder: Recorder,
        rng_for: Callable[[str], random.Random],
        faults: NodeFaults,
    ) -> None:
        self.id, self.name = node_id, name
        self.backend, self.checker, self.recorder = backend, checker, recorder
        self._rng_for = rng_for
        self._fault_rng = rng_for(f"faults/{name}")
        self.faults = faults
        self.disk = SimDisk()
        self.raw: Any = None  # None while down
        self.incarnation = 0
        self.dead = False  # stopped for good (corrupt disk) or retired from the group
        self.retired = False  # removed from the group; its disk is kept for the durability check
        self.state: Any = backend.new_state()
        self.state_changed = False  # applied a command since the last check_state()
        self.applied = 0
        self.entries: list[Entry] = []  # the written log after the snapshot, for WAL rewrites
        self.snapshot = Snapshot()
        self.written, self.synced = LogMirror(), LogMirror()
        self.written_hs, self.synced_hs = HardState(), HardState()
        self.seen_leader_term = 0

    @property
    def up(self) -> bool:
        return self.raw is not None

    # --- lifecycle -----------------------------------------------------------------------

    def boot(self, voters: tuple[str, ...]) -> None:
        """First start: the seed node bootstraps with itself as voter; joiners start empty.

        As in the real shell's bootstrap, the first membership lives in a snapshot at index 1:
        a joiner replicates from an empty log, and no APP carries index 0, so a membership
        kept only there would never reach it (it would count itself as the only voter).
        """
        assert not self.up and self.incarnation == 0
        if voters:
            data = self.backend.to_snapshot(self.state)
            snapshot = Snapshot(index=1, term=1, conf=ConfState(voters=voters), data=data)
            self.checker.on_bootstrap(self.id, snapshot.term, data_digest("state", data))
            self._write_snapshot(snapshot)
        self.start()

    def start(self) -> None:
        """(Re)start from the simulated disk."""
        assert not self.up and not self.dead
        snapshot = self._read_snapshot()
        records = self._read_wal()
        restored = self.backend.replay(snapshot, [obj for _, obj in records])
        self.incarnation += 1
        self.raw = self.backend.make_raw_node(
            self.id,
            self._rng_for(f"raft/{self.name}/{self.incarnation}"),
            hard_state=restored.hard_state,
            snapshot=restored.snapshot,
            entries=restored.entries,
        )
        self._restore(restored.snapshot, restored.hard_state, restored.entries)

    def _restore(self, snapshot: Snapshot, hard_state: HardState, entries: tuple[Entry, ...]) -> None:
        self.snapshot = snapshot
        self.state = self._state_from(snapshot)
        self.applied = snapshot.index
        self.entries = list(entries)
        self.written = LogMirror()
        self.written.reset(snapshot.index, snapshot.term, self._chain_of_snapshot(snapshot))
        self.checker.on_persist(self.id, self.written.append([self._mirror_entry(e) for e in entries]))
        self.checker.on_restart(self.id, self.synced, self.synced_hs, self.written, hard_state)
        self.checker.on_restore(self.id, snapshot.index)
        self.written_hs = hard_state
        self._synced_now()

    def crash(self) -> None:
        """Stop without warning: unsynced bytes are lost or torn."""
        assert self.up
        self.raw = None
        self.disk.crash(self._fault_rng, self.faults.torn_probability)

    # --- reading the disk ----------------------------------------------------------------

    def _read_snapshot(self) -> Snapshot:
        if not self.disk.exists(SNAP):
            return Snapshot()
        result = codec.scan(self.disk.read(SNAP), file_name=SNAP, record_bytes_max=RECORD_BYTES_MAX)
        if result.damage is not None or len(result.records) != 1:
            raise InvariantViolation(f"{self.name}: snapshot file damaged: {result.damage}")
        return self.backend.snapshot_from_record(result.records[0][1])

    def _read_wal(self) -> list[tuple[int, object]]:
        buf = self.disk.read(WAL)
        result = codec.scan(buf, file_name=WAL, record_bytes_max=RECORD_BYTES_MAX)
        damage = result.damage
        if damage is not None and damage.kind == "corrupt":
            if not self.disk.file(WAL).corrupted:
                raise InvariantViolation(f"{self.name}: uninjected corruption: {result.error()}")
            self.recorder.coverage.corruptions_detected += 1
            self.recorder.note(f"{self.name} stops: {result.error()}")
            raise DiskFailed(str(result.error()))
        if damage is not None:
            self.disk.truncate(WAL, result.valid_end)
            self.recorder.coverage.torn_tails_cut += 1
            self.recorder.note(f"{self.name} cut torn tail at byte {damage.offset} ({damage.reason})")
        return result.records

    # --- the Ready loop --------------------------------------------------------------------

    def handle_ready(self, *, allow_crash: bool) -> list[Message]:
        """Persist, send, apply, advance, until the node has nothing ready; the messages to send.

        With ``allow_crash`` the nemesis may crash the node between append and fsync (NodeCrashed).
        """
        out: list[Message] = []
        for _ in range(READY_ROUNDS_MAX):
            if not self.up or not self.raw.has_ready():
                break
            ready = self.raw.ready()
            self._persist(ready, allow_crash)
            if ready.hard_state is not None:
                voters = self.raw.conf.voters
                self.checker.on_commit(self.id, ready.hard_state.commit, self.written, voters=voters,
                                       is_leader=self.raw.is_leader)  # fmt: skip
            out.extend(ready.messages)
            self._apply(ready)
            self.raw.advance(ready)
            self.checker.on_membership(self.id, *self.raw.raft.conf_history[-1])
        if self.up:
            self._maybe_compact()
        self.check_state()
        return out

    def _persist(self, ready: Ready, allow_crash: bool) -> None:
        if ready.hard_state is not None:
            self.written_hs = ready.hard_state
        if ready.snapshot is not None:
            self._install_snapshot_files(ready)
            return
        data = b"".join(codec.encode_record(r) for r in self.backend.records_for(ready))
        if data:
            self.disk.append(WAL, data)
        self._mirror_append(ready.entries)
        crash_roll = self._fault_rng.random() < self.faults.crash_mid_persist_probability
        if ready.must_sync and allow_crash and crash_roll:
            self.recorder.coverage.crashes_mid_persist += 1
            raise NodeCrashed(self.id)
        if ready.must_sync:
            self.disk.fsync(WAL)
            self._synced_now()

    def _mirror_append(self, entries: tuple[Entry, ...]) -> None:
        if not entries:
            return
        first = entries[0].index
        del self.entries[first - self.written.snap_index - 1 :]
        self.entries.extend(entries)
        self.checker.on_persist(self.id, self.written.append([self._mirror_entry(e) for e in entries]))

    def _synced_now(self) -> None:
        self.synced = self.written.copy()
        self.synced_hs = self.written_hs

    def _install_snapshot_files(self, ready: Ready) -> None:
        snapshot = ready.snapshot
        assert snapshot is not None
        self._write_snapshot(snapshot)
        self.written.reset(snapshot.index, snapshot.term, self._chain_of_snapshot(snapshot))
        self.entries = []
        self._mirror_append(ready.entries)
        self._rewrite_wal()
        self.recorder.coverage.snapshots_installed += 1
        self.recorder.note(f"{self.name} installs snapshot at index {snapshot.index} term {snapshot.term}")

    def _write_snapshot(self, snapshot: Snapshot) -> None:
        record = codec.encode_record(self.backend.snapshot_record(snapshot))
        self.disk.replace_atomic(SNAP, record)
        self.snapshot = snapshot

    def _rewrite_wal(self) -> None:
        """Replace the WAL atomically with the hard state and the entries after the snapshot."""
        entries = tuple(self.entries)
        ready = Ready(None, self.written_hs, entries, None, (), (), True)
        self.disk.replace_atomic(WAL, b"".join(codec.encode_record(r) for r in self.backend.records_for(ready)))
        self._synced_now()

    # --- applying ------------------------------------------------------------------------

    def _apply(self, ready: Ready) -> None:
        if ready.snapshot is not None and ready.snapshot.index > self.applied:
            self.checker.on_state_digest(self.id, ready.snapshot.index, data_digest("state", ready.snapshot.data))
            self.state = self._state_from(ready.snapshot)
            self.applied = ready.snapshot.index
            self.checker.on_restore(self.id, self.applied)
        for entry in ready.committed:
            if entry.index <= self.applied:
                continue
            self.checker.on_apply(self.id, entry.index, entry.term, data_digest(entry.kind, entry.data))
            if entry.kind is EntryKind.NORMAL:
                result = self.backend.apply(self.state, entry.index, entry.data)
                self.state_changed = True
                self._count_first_apply(entry, result)
            elif entry.kind is EntryKind.CONF:
                self._count_first_apply(entry, None)
            self.applied = entry.index

    def check_state(self) -> None:
        """The cluster state's own invariants, once per step in which it changed (they cost a slot scan)."""
        if self.state_changed:
            self.state_changed = False
            problems = self.backend.check_invariants(self.state)
            self.checker.on_cluster_state(self.id, problems, self.backend.primaries(self.state))

    def _count_first_apply(self, entry: Entry, result: Any) -> None:
        """Coverage counts each committed entry once: on its first apply anywhere."""
        if entry.index <= self.recorder.applied_max:
            return
        self.recorder.applied_max = entry.index
        coverage = self.recorder.coverage
        if entry.kind is EntryKind.CONF:
            coverage.conf_changes += 1
            kind, target = entry.data.kind.value, self.recorder.name(entry.data.node_id)
            self.recorder.note(f"{self.name} applies {kind} {target} at {entry.index}")
        elif getattr(result, "ok", True):
            coverage.proposals_committed += 1
        else:
            coverage.stale_rejected += 1

    def _maybe_compact(self) -> None:
        if self.applied - self.snapshot.index < self.faults.compact_every_entries:
            return
        index = self.applied
        data = self.backend.to_snapshot(self.state)
        self.checker.on_state_digest(self.id, index, data_digest("state", data))
        snapshot = self.raw.compact(index, data)
        assert (snapshot.index, snapshot.term) == (index, self.written.term_at(index)), (snapshot, index)
        self._write_snapshot(snapshot)
        del self.entries[: index - self.written.snap_index]
        self.written.compact(index)
        self._rewrite_wal()

    # --- helpers -------------------------------------------------------------------------

    def _state_from(self, snapshot: Snapshot) -> Any:
        return self.backend.new_state() if snapshot.data is None else self.backend.from_snapshot(snapshot.data)

    def _chain_of_snapshot(self, snapshot: Snapshot) -> int:
        if snapshot.index == 0:
            return 0
        found = self.checker.chains.get((snapshot.index, snapshot.term))
        if found is None:
            raise InvariantViolation(f"{self.name}: snapshot at ({snapshot.index}, {snapshot.term}) matches no entry")
        return found[0]

    @staticmethod
    def _mirror_entry(entry: Entry) -> MirrorEntry:
        return MirrorEntry(entry.index, entry.term, data_digest(entry.kind, entry.data))
