"""The source side of a slot migration: one export job, a pure state machine.

Theory of operation
-------------------
:class:`ExportJob` runs on the source shard's primary. The shell feeds it
inputs (the applied cluster configuration, copy progress, stream offsets,
the target's acknowledgements, ``tick(now_ms)``, ``cancel``) and carries out
the actions it returns, in order. It reads no clock, touches no keyspace and
sends nothing itself::

    starting --start applied--> establishing --target ready--> snapshotting --every slot copied--> streaming
    streaming --lag <= pause bound--> paused --target acked the final offset--> committing
    committing --commit applied--> cleaning --slots empty--> success
    any state before success --failover, timeout, cancel, limit--> aborting --> failed | cancelled

Establishing. The target is told of the job (:class:`Establish`, again every
``establish_retry_ms`` until it answers: it refuses while it has not applied the
start yet) and answers once its staged slots are empty (a failed earlier
attempt may have left keys there); only then does the copy start.

The stream. Copy chunks and the writes made meanwhile to the moving slots
travel to the target in one ordered stream; the shell numbers its records
(dense offsets) and reports them. A copy chunk carries whole keys as they are
when the chunk is read, and replaces them on the target, so writes streamed
before a key's chunk are overwritten by a value that already includes them,
and writes after it apply on top: the target converges without a fork.

The target acknowledges offset N only once everything up to N is durable on
every member of its ISR (DESIGN §6, Valkey #2723). Writes to the moving slots
pause once the unacknowledged lag is small; the shell answers
:class:`PauseWrites` with ``on_paused(final_offset)``, and once the target has
acknowledged that offset the job proposes ``migration_commit`` naming both
shards' epochs as recorded at the start.

Rules that keep S3 and every acknowledged write:

- Once ``migration_commit`` has been proposed its outcome is unknown until the
  configuration shows it (a proposal can commit under a later leader). Writes
  stay paused until then, even past ``migration_pause_ms_max``: a job that
  resumed writes and then saw the commit apply would lose them (Redis PR
  #15629). A pause past the bound proposes the abort and waits for the race
  to resolve. The pause outlives the bound only while the control plane can
  commit nothing, and then the source's lease stops its writes anyway.
- A failover (epoch change) of either shard seen in the configuration
  dooms the job: the applier refuses every later commit of it (seed 001), so
  writes resume at once and the job proposes ``migration_abort``.
- Nothing here deletes keys. Once the commit is applied the slots are no
  longer this shard's, and :mod:`.staging`'s rule hides and deletes their
  keys here; the job stays ``cleaning`` until the shell reports them gone
  (``on_cleaned``). An aborted job leaves the source with its slots and data.
- The job is ended by the configuration: ``cleaning`` starts when it shows
  the commit, ``failed``/``cancelled`` when it shows the migration gone.
  ``cleaning`` ends when the keys are gone here, or when they are no longer
  this job's: this node stopped being the source's primary (its successor
  cleans up), or a later migration moved a slot back (found by the
  simulation: the job stayed ``cleaning`` for ever and counted against
  ``migrations_max``).
"""

from dataclasses import dataclass, field
from typing import Any

from trionode import limits
from trionode.core.cluster.commands import command
from trionode.core.cluster.state import ClusterState, Shard, SlotRange, normalize_ranges, slots_of

STARTING, ESTABLISHING, SNAPSHOTTING = "starting", "establishing", "snapshotting"
STREAMING, PAUSED = "streaming", "paused"
COMMITTING, ABORTING, CLEANING = "committing", "aborting", "cleaning"
SUCCESS, FAILED, CANCELLED = "success", "failed", "cancelled"  # Valkey's names for a finished job
FINISHED = frozenset({SUCCESS, FAILED, CANCELLED})


@dataclass(frozen=True, slots=True)
class ExportBounds:
    """The limits one job obeys (defaults from :mod:`trionode.limits`; tests shrink them)."""

    pause_ms_max: int = limits.migration_pause_ms_max
    copy_keys_max: int = limits.migration_copy_keys_max
    copy_lag_records_max: int = limits.migration_copy_lag_records_max
    pause_lag_records_max: int = limits.migration_pause_lag_records_max
    lag_records_max: int = limits.migration_lag_records_max
    ack_timeout_ms: int = limits.migration_ack_timeout_ms
    propose_retry_ms: int = limits.migration_propose_retry_ms
    start_timeout_ms: int = limits.migration_start_timeout_ms
    establish_retry_ms: int = limits.migration_establish_retry_ms


# --- actions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProposeStart:
    command: dict[str, Any]  # a ``migration_start`` cluster command


@dataclass(frozen=True, slots=True)
class ProposeCommit:
    command: dict[str, Any]  # a ``migration_commit`` naming both recorded epochs


@dataclass(frozen=True, slots=True)
class ProposeAbort:
    command: dict[str, Any]  # a ``migration_abort``


@dataclass(frozen=True, slots=True)
class Establish:
    """Tell the target of the job; it answers (``on_established``) once its staged slots are empty."""

    migration_id: str
    target_node_id: str
    slots: tuple[SlotRange, ...]


@dataclass(frozen=True, slots=True)
class CopyChunk:
    """Append up to ``keys_max`` whole keys of ``slot`` to the stream, from ``cursor``.

    Cursor 0 takes the slot's cut (its key list now); later cursors index that
    cut. The shell answers with ``on_copied``.
    """

    migration_id: str
    slot: int
    cursor: int
    keys_max: int


@dataclass(frozen=True, slots=True)
class PauseWrites:
    """Hold new writes to ``slots`` (they wait, bounded); answer with ``on_paused(offset)``."""

    migration_id: str
    slots: tuple[SlotRange, ...]


@dataclass(frozen=True, slots=True)
class ResumeWrites:
    """Release the held writes; routing decides whether they run here or get MOVED."""

    migration_id: str
    slots: tuple[SlotRange, ...]


Action = ProposeStart | ProposeCommit | ProposeAbort | Establish | CopyChunk | PauseWrites | ResumeWrites


@dataclass(slots=True)
class Progress:
    """What CLUSTER GETSLOTMIGRATIONS and ``status`` show, beyond the state."""

    keys_copied: int = 0
    bytes_copied: int = 0
    sent_offset: int = 0  # Invariant: >= acked_offset; the last stream record appended.
    acked_offset: int = 0  # the last offset the target holds durable on its whole ISR
    pause_started_ms: int | None = None  # Invariant: not None exactly while writes are held.
    write_pause_ms: int = 0  # the longest pause so far
    last_update_ms: int = 0
    last_ack_ms: int = 0

    @property
    def lag(self) -> int:
        return self.sent_offset - self.acked_offset


@dataclass(slots=True)
class ExportJob:
    migration_id: str
    slots: tuple[SlotRange, ...]  # Invariant: normalized, non-empty.
    source_shard_id: str
    target_shard_id: str
    source_node_id: str
    target_node_id: str
    source_epoch: int  # The epochs this job's start named: its commit names them too.
    target_epoch: int
    created_ms: int
    min_insync_replicas: int = 1
    bounds: ExportBounds = field(default_factory=ExportBounds)
    state: str = field(default=STARTING, init=False)
    message: str = field(default="", init=False)  # why the job aborted, for GETSLOTMIGRATIONS
    cancelled: bool = field(default=False, init=False)
    progress: Progress = field(default_factory=Progress, init=False)
    _slot_list: list[int] = field(default_factory=list, init=False)
    slot_set: frozenset[int] = field(default=frozenset(), init=False)  # Invariant: the slots of ``slots``
    _slot_index: int = field(default=0, init=False)  # Invariant: copying _slot_list[_slot_index].
    _cursor: int = field(default=0, init=False)
    _chunk_out: bool = field(default=False, init=False)  # Invariant: at most one CopyChunk unanswered.
    _final_offset: int | None = field(default=None, init=False)  # the stream's end once writes are held
    _abort_proposed_ms: int = field(default=0, init=False)
    _establish_sent_ms: int = field(default=0, init=False)
    _state_since_ms: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.slots = normalize_ranges(self.slots)
        assert self.slots and self.source_shard_id != self.target_shard_id
        self.slot_set = frozenset(slots_of(self.slots))  # asked for every logged write while streaming
        self._slot_list = sorted(self.slot_set)
        self.progress.last_update_ms = self.progress.last_ack_ms = self._state_since_ms = self.created_ms

    def streams(self) -> bool:
        """Whether writes to the slots go into the stream now: from the copy until writes are held.

        Once held (``on_paused``), the only effects on the slots are expiry DELs made by reads
        here; the target repeats them on its own from the same deadlines, so they stay out and
        the stream's end stays where the commit's acknowledgement was counted.
        """
        return self.state in (SNAPSHOTTING, STREAMING) or (self.state == PAUSED and self._final_offset is None)

    # --- inputs ----------------------------------------------------------------------

    def start(self) -> list[Action]:
        assert self.state == STARTING
        return [ProposeStart(command("migration_start", migration_id=self.migration_id,
                                     source_shard_id=self.source_shard_id, target_shard_id=self.target_shard_id,
                                     source_epoch=self.source_epoch, target_epoch=self.target_epoch,
                                     slots=self.slots))]  # fmt: skip

    def on_config(self, state: ClusterState, now_ms: int) -> list[Action]:
        """The applied configuration changed: follow the migration's fate in it."""
        if self.state == CLEANING and self._cleanup_not_ours(state):
            self._set_state(SUCCESS, now_ms)
        if self.state in FINISHED or self.state == CLEANING:
            return []
        outcome = self._outcome(state)
        if outcome == "committed":
            return self._committed(now_ms)
        if outcome == "running":
            if self.state == STARTING:
                self._set_state(ESTABLISHING, now_ms)
                return self._check_shards(state, now_ms) or self._establish(now_ms)
            return self._check_shards(state, now_ms) or self._advance(now_ms)
        if self.state != STARTING or outcome == "aborted":
            return self._ended(now_ms, "the migration was aborted in the cluster configuration")
        return []  # the start is not applied yet

    def on_refused(self, reason: str, now_ms: int) -> list[Action]:
        """The control plane refused this job's start (the applier's reason)."""
        if self.state != STARTING:
            return []
        return self._ended(now_ms, f"migration_start refused: {reason}")

    def on_established(self, now_ms: int) -> list[Action]:
        """The target is ready: its staged slots are empty and it accepts the stream."""
        if self.state != ESTABLISHING:
            return []
        self._set_state(SNAPSHOTTING, now_ms)
        return self._advance(now_ms)

    def on_copied(self, slot: int, next_cursor: int | None, keys: int, nbytes: int, offset: int,
                  now_ms: int) -> list[Action]:  # fmt: skip
        """A CopyChunk was appended (through ``offset``); ``next_cursor`` None: the slot is done."""
        if self.state != SNAPSHOTTING:
            return []  # an answer that arrives after an abort
        assert self._chunk_out and slot == self._slot_list[self._slot_index], slot
        self._chunk_out = False
        self.progress.keys_copied += keys
        self.progress.bytes_copied += nbytes
        self._sent(offset, now_ms)
        if next_cursor is None:
            self._slot_index, self._cursor = self._slot_index + 1, 0
        else:
            assert next_cursor > self._cursor
            self._cursor = next_cursor
        return self._lag_check(now_ms) or self._advance(now_ms)

    def on_stream(self, offset: int, now_ms: int) -> list[Action]:
        """A write to the moving slots was appended to the stream at ``offset``."""
        if self.state in FINISHED:
            return []
        held = self.progress.pause_started_ms is not None and self._final_offset is not None
        assert not held or offset <= self._final_offset, "a write streamed while writes were held"
        self._sent(offset, now_ms)
        return self._lag_check(now_ms)

    def on_paused(self, final_offset: int, now_ms: int) -> list[Action]:
        """Writes to the slots are held; ``final_offset`` is the stream's last record."""
        if self.state != PAUSED:
            return []
        self._sent(final_offset, now_ms)
        self._final_offset = final_offset
        return self._advance(now_ms)

    def on_target_ack(self, offset: int, now_ms: int) -> list[Action]:
        """The target holds everything through ``offset`` durable on its whole ISR."""
        if self.state in FINISHED or offset > self.progress.sent_offset:
            return []  # an ack of something never sent is a confused peer; its timeout will tell
        if offset > self.progress.acked_offset:
            self.progress.acked_offset = offset
            self.progress.last_ack_ms = self.progress.last_update_ms = now_ms
        return self._advance(now_ms)

    def on_cleaned(self, now_ms: int) -> None:
        """The moved slots hold no keys here any more: the job is done."""
        if self.state == CLEANING:
            self._set_state(SUCCESS, now_ms)

    def cancel(self, now_ms: int) -> list[Action]:
        """CLUSTER CANCELSLOTMIGRATIONS: abort unless the commit is already applied."""
        if self.state in FINISHED or self.state in (CLEANING, ABORTING):
            return []
        self.cancelled = True
        return self._abort("cancelled by the operator", now_ms)

    def tick(self, now_ms: int) -> list[Action]:
        p, b = self.progress, self.bounds
        if self.state in FINISHED or self.state == CLEANING:
            return []
        if self.state == ABORTING:
            if now_ms - self._abort_proposed_ms < b.propose_retry_ms:
                return []
            self._abort_proposed_ms = now_ms
            return [ProposeAbort(command("migration_abort", migration_id=self.migration_id))]
        if self.state in (STARTING, ESTABLISHING) and now_ms - self._state_since_ms >= b.start_timeout_ms:
            return self._abort(f"{self.state} took longer than {b.start_timeout_ms} ms", now_ms)
        if self.state == ESTABLISHING and now_ms - self._establish_sent_ms >= b.establish_retry_ms:
            # The target refuses a job whose start it has not applied yet, and the bus may drop
            # either message: ask again until it answers or the start times out.
            return self._establish(now_ms)
        if p.pause_started_ms is not None and now_ms - p.pause_started_ms > b.pause_ms_max:
            return self._abort(f"the write pause exceeded migration_pause_ms_max ({b.pause_ms_max} ms)", now_ms)
        if self.state != COMMITTING and p.lag > 0 and now_ms - p.last_ack_ms >= b.ack_timeout_ms:
            return self._abort(f"no acknowledgement from the target for {b.ack_timeout_ms} ms", now_ms)
        return []

    # --- decisions -------------------------------------------------------------------------

    def _outcome(self, state: ClusterState) -> str:
        if self.migration_id in state.migrations:
            return "running"
        for past in state.migration_history:
            if past.id == self.migration_id:
                return past.state
        if self.state != STARTING and all(state.slot_owners[s] == self.target_shard_id for s in self._slot_list):
            return "committed"  # applied, then scrolled out of the bounded history
        return "absent"

    def _cleanup_not_ours(self, state: ClusterState) -> bool:
        """Whether the moved keys here are no longer this job's to wait for.

        Once this node is not the source's primary, cleanup is its successor's (the slot
        rule is the configuration's). Once a later migration moved a slot back, its keys
        here are owned again. Either way ``on_cleaned`` would never come.
        """
        me = state.nodes.get(self.source_node_id)
        if me is None or me.role != "primary" or me.shard_id != self.source_shard_id:
            return True
        return any(state.slot_owners[slot] != self.target_shard_id for slot in self._slot_list)

    def _check_shards(self, state: ClusterState, now_ms: int) -> list[Action]:
        """Abort for what the configuration says dooms the job."""
        source, target = state.shards.get(self.source_shard_id), state.shards.get(self.target_shard_id)
        for side, shard, epoch in (("source", source, self.source_epoch), ("target", target, self.target_epoch)):
            if shard is None or shard.epoch != epoch:
                # The applier refuses every commit of this job from now on: nothing can
                # move the slots, so held writes may run here again (safe_resume).
                now = shard.epoch if shard else "gone"
                return self._abort(f"the {side} shard failed over (epoch {epoch} -> {now})", now_ms, safe_resume=True)
        assert isinstance(target, Shard)
        if len(target.isr_ids) < self.min_insync_replicas:
            return self._abort(f"the target's ISR fell below min_insync_replicas ({len(target.isr_ids)})", now_ms)
        return []

    def _establish(self, now_ms: int) -> list[Action]:
        self._establish_sent_ms = now_ms
        return [Establish(self.migration_id, self.target_node_id, self.slots)]

    def _lag_check(self, now_ms: int) -> list[Action]:
        if self.progress.lag > self.bounds.lag_records_max and self.state not in (COMMITTING, ABORTING):
            return self._abort(f"the target fell {self.progress.lag} records behind", now_ms)
        return []

    def _advance(self, now_ms: int) -> list[Action]:
        """Take the next step the progress allows: copy, pause, or propose the commit."""
        p, b = self.progress, self.bounds
        if self.state == SNAPSHOTTING and not self._chunk_out:
            if self._slot_index < len(self._slot_list):
                if p.lag > b.copy_lag_records_max:
                    return []  # wait for acknowledgements: the copy never outruns the target far
                self._chunk_out = True
                return [CopyChunk(self.migration_id, self._slot_list[self._slot_index], self._cursor, b.copy_keys_max)]
            self._set_state(STREAMING, now_ms)
        if self.state == STREAMING and p.lag <= b.pause_lag_records_max:
            self._set_state(PAUSED, now_ms)
            p.pause_started_ms = now_ms
            return [PauseWrites(self.migration_id, self.slots)]
        if self.state == PAUSED and self._final_offset is not None and p.acked_offset >= self._final_offset:
            self._set_state(COMMITTING, now_ms)
            return [ProposeCommit(command("migration_commit", migration_id=self.migration_id,
                                          source_epoch=self.source_epoch, target_epoch=self.target_epoch))]  # fmt: skip
        return []

    def _abort(self, reason: str, now_ms: int, safe_resume: bool = False) -> list[Action]:
        """Propose the abort. Held writes resume now unless a commit may still apply."""
        assert self.state not in FINISHED and self.state != CLEANING
        if self.state == ABORTING:
            return self._resume(now_ms) if safe_resume else []
        commit_in_doubt = self.state == COMMITTING
        self.message = reason
        self._set_state(ABORTING, now_ms)
        self._abort_proposed_ms = now_ms
        actions: list[Action] = [ProposeAbort(command("migration_abort", migration_id=self.migration_id))]
        if safe_resume or not commit_in_doubt:
            actions += self._resume(now_ms)
        return actions

    def _committed(self, now_ms: int) -> list[Action]:
        # The slots are the target's now: held writes get MOVED; their keys here are leftovers.
        actions = self._resume(now_ms)
        self.message = ""
        self._set_state(CLEANING, now_ms)
        return actions

    def _ended(self, now_ms: int, reason: str) -> list[Action]:
        actions = self._resume(now_ms)
        self.message = self.message or reason
        self._set_state(CANCELLED if self.cancelled else FAILED, now_ms)
        return actions

    def _resume(self, now_ms: int) -> list[Action]:
        p = self.progress
        if p.pause_started_ms is None:
            return []
        p.write_pause_ms = max(p.write_pause_ms, now_ms - p.pause_started_ms)
        p.pause_started_ms = None
        return [ResumeWrites(self.migration_id, self.slots)]

    def _sent(self, offset: int, now_ms: int) -> None:
        if offset > self.progress.sent_offset:
            self.progress.sent_offset = offset
            self.progress.last_update_ms = now_ms

    def _set_state(self, new: str, now_ms: int) -> None:
        assert self.state not in FINISHED, (self.state, new)
        self.state = new
        self.progress.last_update_ms = self._state_since_ms = now_ms
