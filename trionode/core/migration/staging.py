"""The slot rule that hides, stages and deletes migrating keys, and the target's import job.

Theory of operation
-------------------
A node serves, counts and expires only the keys of slots its shard owns in
the applied configuration (:class:`SlotRoles`). It may hold keys of other
slots, which are of two kinds:

- **staged**: a running migration moves the slot to this shard. They arrive
  on the target's primary through the migration stream and are written like
  any write: into its data WAL and replicated to its ISR, so they are durable
  there and survive a restart or failover of the target. They are not served
  (routing still sends the slot's clients to the source), not counted by
  DBSIZE, KEYS, SCAN or COUNTKEYSINSLOT, and not expired here: the source's
  DEL arrives in the stream;
- **leftovers**: nothing moves the slot here: the keys of a committed export
  on the source, or the staged keys of an aborted import on the target. They
  stay hidden and the primary deletes them in bounded chunks
  (:func:`cleanup_delete`, only while it may write: :class:`WriteGate`);
  replicas follow its DELs.

The rule reads only the Raft configuration, so every member of a shard, a
restarted node and a freshly promoted replica all reach the same answer
without any marker in the data WAL. A commit makes staged keys owned in the
same step that moves ownership (one entry, S3), so they become visible
exactly when the slot's clients are sent here.

One precondition: leftovers may be deleted only from a configuration that is
caught up (S7). A node that restarts replays its Raft log from an older
point, and during that window a slot whose import committed before the crash
still looks foreign; deleting it then would lose acknowledged writes.

:class:`ImportJob` is the target primary's side of one migration. It accepts
a source's :class:`ImportRequest` only when the applied configuration agrees (a
running migration of those slots from the source's shard to this one). The
staged slots must be empty before the stream is applied, because the keys of
an earlier aborted attempt would otherwise come back (a key the source
deleted in between would reappear); it deletes them first. It then maps each
applied stream record to the data offset it was written at, and
acknowledges a stream offset only once the shard's acknowledged offset (durable
on every ISR member) has reached it (Valkey #2723).
"""

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from trionode import limits
from trionode.core.cluster.state import ClusterState, SlotRange, normalize_ranges, slots_of
from trionode.core.cluster_view import ranges_from_slots
from trionode.core.keyspace.store import Keyspace

OWNED, STAGED, FOREIGN = 0, 1, 2
CountInSlot = Callable[[int], int]


@dataclass(frozen=True, slots=True)
class SlotRoles:
    """Per slot: OWNED by this node's shard, STAGED for it by a running migration, or FOREIGN."""

    roles: bytes  # Invariant: len == slots_count, values in (OWNED, STAGED, FOREIGN).
    hidden_slots: tuple[int, ...] = field(default=(), init=False)  # Invariant: the slots not OWNED, ascending

    def __post_init__(self) -> None:
        # Cleanup looks at these slots for every chunk it deletes: a walk of all 16384 cost more than the DEL.
        object.__setattr__(self, "hidden_slots", tuple(slot for slot, role in enumerate(self.roles) if role != OWNED))

    @classmethod
    def from_config(cls, state: ClusterState, shard_id: str) -> "SlotRoles":
        roles = bytearray(FOREIGN if owner != shard_id else OWNED for owner in state.slot_owners)
        for m in state.migrations.values():
            if m.target_shard_id == shard_id:
                for slot in slots_of(m.slots):
                    assert roles[slot] == FOREIGN, f"slot {slot} is owned by the migration's target"
                    roles[slot] = STAGED
        assert len(roles) == limits.slots_count
        return cls(bytes(roles))

    def serves(self, slot: int) -> bool:
        """Reads, writes, counts and expiry see this slot's keys."""
        return self.roles[slot] == OWNED

    def staged(self, slot: int) -> bool:
        return self.roles[slot] == STAGED

    def hidden(self) -> frozenset[int]:
        """The slots whose keys the keyspace keeps but does not serve, count or expire (``Keyspace.hidden``)."""
        return frozenset(self.hidden_slots)


@dataclass(frozen=True, slots=True)
class DeleteChunk:
    """Delete up to ``keys_max`` keys of ``slots`` (all hidden), as ordinary logged DELs."""

    slots: tuple[SlotRange, ...]
    keys_max: int


def cleanup_chunk(roles: SlotRoles, count_in_slot: CountInSlot, *, config_caught_up: bool,
                  clearing: frozenset[int] = frozenset(), keys_max: int = limits.migration_delete_keys_max,
                  occupied: Iterable[int] | None = None) -> DeleteChunk | None:  # fmt: skip
    """The next bounded deletion a primary should make, or None when nothing is left.

    It deletes the keys of FOREIGN slots (leftovers) and of ``clearing``
    slots (staged for an import that must start empty), never of an OWNED or
    any other STAGED slot. Nothing is deleted before ``config_caught_up``.
    ``occupied``, if given, holds every hidden slot with keys (the others are not looked at).
    """
    if not config_caught_up:
        return None
    slots = range(limits.slots_count) if occupied is None else occupied
    doomed = [slot for slot in slots
              if (roles.roles[slot] == FOREIGN or (roles.roles[slot] == STAGED and slot in clearing))
              and count_in_slot(slot)]  # fmt: skip
    assert all(not roles.serves(slot) for slot in doomed)
    return DeleteChunk(ranges_from_slots(doomed), keys_max) if doomed else None


@dataclass(frozen=True, slots=True)
class WriteGate:
    """What the shell knows, right now, of this node's right to make a write of its own."""

    primary: bool
    lease_valid: bool
    disk_full: bool
    wal_room: bool  # the WAL's queue has room; a full one would raise or block

    def open(self) -> bool:
        return self.primary and self.lease_valid and not self.disk_full and self.wal_room


def cleanup_delete(roles: SlotRoles | None, keyspace: Keyspace, gate: WriteGate, *, config_caught_up: bool,
                   clearing: frozenset[int] = frozenset(),
                   keys_max: int = limits.migration_delete_keys_max) -> list[bytes] | None:  # fmt: skip
    """The ``DEL`` a primary should log now to clean up hidden keys, or None.

    Only a primary whose lease holds, with disk and WAL room, deletes (a deposed or
    stalled one would log a write no one acknowledges); which keys is :func:`cleanup_chunk`'s.
    """
    if roles is None or not gate.open():
        return None
    slot_keys = keyspace.slot_keys
    occupied = [slot for slot in roles.hidden_slots if slot_keys[slot]]  # only hidden slots are ever deleted
    chunk = cleanup_chunk(roles, keyspace.count_in_slot, config_caught_up=config_caught_up, clearing=clearing,
                          keys_max=keys_max, occupied=occupied)  # fmt: skip
    if chunk is None:
        return None
    keys: list[bytes] = []
    for slot in sorted(slots_of(chunk.slots)):
        keys += keyspace.keys_in_slot(slot, chunk.keys_max - len(keys))
        if len(keys) >= chunk.keys_max:
            break
    assert keys and not any(roles.serves(slot) for slot in slots_of(chunk.slots))
    return [b"DEL", *keys]


@dataclass(slots=True)
class ConfigCatchUp:
    """``config_caught_up`` for :func:`cleanup_chunk`: has this process applied what was committed before it started?

    The shell asks the Raft leader for its read index (a commit index that covers every
    entry committed before the question) and feeds it here; once the applied index reaches
    it, the configuration is as new as anything this node may have acted on before a
    restart, and it stays so (applying only moves forward).
    """

    target: int | None = None
    done: bool = False

    def on_read_index(self, index: int) -> None:
        if self.target is None:
            self.target = index

    def caught_up(self, applied_index: int) -> bool:
        if not self.done and self.target is not None and applied_index >= self.target:
            self.done = True
        return self.done


# --- the target's import job -------------------------------------------------------------

CLEARING, RECEIVING = "clearing", "receiving"


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """A source's request to start streaming ``slots`` of ``migration_id`` here."""

    migration_id: str
    source_node_id: str
    slots: tuple[SlotRange, ...]


@dataclass(frozen=True, slots=True)
class Ready:
    """Tell the source the staged slots are empty: it may stream."""

    migration_id: str
    source_node_id: str


@dataclass(frozen=True, slots=True)
class AckSource:
    """Tell the source everything through ``offset`` is durable on this shard's whole ISR."""

    migration_id: str
    source_node_id: str
    offset: int


def refuse_import(request: ImportRequest, state: ClusterState, myself_id: str) -> str | None:
    """Why this node may not import ``request`` (Valkey's wording), or None if it may."""
    me = state.nodes.get(myself_id)
    if me is None or me.role != "primary":
        return "Target node is not a primary"
    source = state.nodes.get(request.source_node_id)
    if source is None:
        return "Target node does not know the source node"
    if source.id == myself_id:
        return "Source node is target node itself"
    m = state.migrations.get(request.migration_id)
    agreed = (m is not None and m.target_shard_id == me.shard_id and m.source_shard_id == source.shard_id
              and source.role == "primary" and m.slots == normalize_ranges(request.slots))  # fmt: skip
    return None if agreed else "Target node does not agree about current slot ownership"


def answer_import(jobs: dict[str, "ImportJob"], request: ImportRequest, state: ClusterState, myself_id: str,
                  count_in_slot: CountInSlot, lag_records_max: int = limits.migration_lag_records_max,
                  ) -> tuple[list["Ready"], str | None]:  # fmt: skip
    """A source's request, perhaps asked again: the answers to send now, or the refusal.

    An accepted new request adds its :class:`ImportJob` to ``jobs``; it answers once its
    staged slots are empty (the caller wakes the cleanup to empty them).
    """
    job = jobs.get(request.migration_id)
    if job is not None:
        return job.on_asked_again(count_in_slot), None
    reason = refuse_import(request, state, myself_id)
    if reason is not None:
        return [], reason
    job = jobs[request.migration_id] = ImportJob(request.migration_id, request.source_node_id, request.slots,
                                                  lag_records_max)  # fmt: skip
    return job.on_cleared(count_in_slot), None


def import_over(state: ClusterState, migration_id: str, myself_id: str) -> bool:
    """An import ends once its migration is not running any more (committed: its keys are served
    here now; aborted: they are leftovers for cleanup) or this node is no longer a primary."""
    me = state.nodes.get(myself_id)
    return migration_id not in state.migrations or me is None or me.role != "primary"


@dataclass(slots=True)
class ImportJob:
    """One accepted import on the target primary (see the module docstring)."""

    migration_id: str
    source_node_id: str
    slots: tuple[SlotRange, ...]
    lag_records_max: int = limits.migration_lag_records_max
    state: str = field(default=CLEARING, init=False)
    acked: int = field(default=0, init=False)  # Invariant: the last stream offset acknowledged to the source.
    received: int = field(default=0, init=False)  # Invariant: >= acked; the last stream offset applied.
    # (stream offset, data offset) of applied records not yet durable on the ISR, both increasing.
    _pending: deque[tuple[int, int]] = field(default_factory=deque, init=False)
    _slot_set: frozenset[int] = field(default=frozenset(), init=False)  # Invariant: the slots of ``slots``

    def __post_init__(self) -> None:
        self._slot_set = frozenset(slots_of(self.slots))  # asked for every stream record applied

    def slot_set(self) -> frozenset[int]:
        return self._slot_set

    def on_cleared(self, count_in_slot: CountInSlot) -> list[Ready]:
        """A deletion finished; once the staged slots are empty the source may stream."""
        if self.state != CLEARING or any(count_in_slot(slot) for slot in self.slot_set()):
            return []
        self.state = RECEIVING
        return [Ready(self.migration_id, self.source_node_id)]

    def on_asked_again(self, count_in_slot: CountInSlot) -> list[Ready]:
        """The source asked again (it may have lost our answer): answer again once the slots are clear."""
        if self.state == CLEARING:
            return self.on_cleared(count_in_slot)
        return [Ready(self.migration_id, self.source_node_id)]

    def accepts_stream(self) -> bool:
        """Stream records are applied only once the slots were cleared (else dropped; the source times out)."""
        return self.state == RECEIVING

    def admit(self, stream_offset: int) -> bool:
        """Apply this record? Only the next one: duplicates and records after a gap (the bus
        dropped one) are not, and the source's resend brings them again (:mod:`.stream`)."""
        return self.state == RECEIVING and stream_offset == self.received + 1

    def reack(self) -> list[AckSource]:
        """The last acknowledgement again, for a source resending what it may not know we hold."""
        return [AckSource(self.migration_id, self.source_node_id, self.acked)] if self.acked else []

    def on_applied(self, stream_offset: int, data_offset: int) -> bool:
        """Record ``stream_offset`` written at ``data_offset``. False: too far behind, abort the import."""
        assert self.state == RECEIVING and stream_offset == self.received + 1, (stream_offset, self.received)
        self.received = stream_offset
        last = self._pending[-1] if self._pending else (self.acked, 0)
        assert stream_offset > last[0] and data_offset >= last[1], (stream_offset, data_offset, last)
        self._pending.append((stream_offset, data_offset))
        return len(self._pending) <= self.lag_records_max

    def on_durable(self, acked_data_offset: int) -> list[AckSource]:
        """The shard's acknowledged offset (durable on every ISR member) reached ``acked_data_offset``."""
        newest = None
        while self._pending and self._pending[0][1] <= acked_data_offset:
            newest, _ = self._pending.popleft()
        if newest is None:
            return []
        self.acked = newest
        return [AckSource(self.migration_id, self.source_node_id, newest)]
