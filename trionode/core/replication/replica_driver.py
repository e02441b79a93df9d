"""The replica's replication driver: every decision of the replica side, as actions (DESIGN §2, §5.2).

Theory of operation
-------------------
A :class:`ReplicaDriver` wraps a :class:`ReplicaState` (the protocol rules:
sessions, fencing, contiguity) and adds what a shell used to decide on its
own: the order of disk work, the durable loading marker, when to ack, when to
ask for a sync again, and when a silent primary means a new session. The node
(``io/replication.py``) and the simulator (``sim/data_shells.py``) both run it
and only carry its actions out, in list order:

- :class:`SetLoadingMarker` persist (or clear) the marker that says "the local
  data is junk until a sync completes";
- :class:`Truncate` cut the log and keyspace back to ``offset`` *in place*,
  keeping offsets ``1..offset`` (0: discard everything);
- :class:`LoadChunk` hold a full sync's snapshot items;
- :class:`InstallSnapshot` replace the data by the held items, covering
  ``1..offset``, durably (old WAL segments removed);
- :class:`SaveHistory` persist the epoch history;
- :class:`Append` append and apply streamed records;
- :class:`Send` send a message to the primary;
- :class:`SaveFence` persist the epoch below which every stream is refused;
- :class:`AnswerFence` answer a failover's fencing round (to the Raft leader);
- :class:`AckUpTo` (the primary driver's action) the acknowledged offset rose
  to ``offset``: publish it (reads of it become visible).

The acknowledged offset has one owner here too, this driver: the primary's
high watermark as streamed, bounded by what this replica holds durably,
``min(durable offset, primary's acknowledged offset)``, and nothing while the
loading marker is set. Invariant: it never decreases, except that a cut of
the local data lowers it to the cut (the store's own acknowledged offset
follows the cut too); it never exceeds the local durable offset nor the
highest acknowledged offset the primary streamed. Shells publish it from
:class:`AckUpTo` only.

Rules it keeps (each was once a shell's, and one of them was missing there):

- a full sync: the ack that says offset 0 goes out, then the marker is set,
  and only then is anything discarded (S5: the replica reports 0 before it
  discards; a crash from here on brings it back empty and loading). The
  snapshot is installed, *then* the primary's history is saved, and the marker
  is cleared only once the replica is durable and caught up (``streaming``):
  until then it reports 0 and ``loading``, so it is never counted or promoted.
  A crash at any point before that is a full sync again;
- a partial sync that keeps less than we hold truncates in place, then saves
  the history. No marker: the cut must be crash-safe on its own (the node cuts
  only its WAL, newest records first, so a crash leaves a prefix of the log
  before the cut), because a marker would make a crash discard everything,
  acknowledged records of an ISR member included (S1);
- ``truncate_floor``: the lowest offset the local store can cut back to in
  place (its snapshot's offset: given at the start, raised by each compaction
  the shell reports, :meth:`on_compacted`; a full sync's snapshot sets it and
  a discard clears it). A cut below it discards everything and asks for a
  sync from empty: the marker is set before anything is discarded and stays
  until that sync completes, so the replica is ``loading`` (reports 0, is
  never promoted) meanwhile, and its request says so: the primary takes it
  out of the ISR at once instead of waiting for it, as for a full sync (it
  holds nothing the watermark could count on). Every snapshot holds
  acknowledged offsets only (compaction and a full sync's; a cut in place
  writes none) and no cut goes below the acknowledged offset, so an ISR
  member should never get here. Still no assert: it would crash a replica,
  again at every restart, where a resync costs time;
- a restart with the marker: the data is junk; the driver starts from an empty
  log, keeps the marker and reports ``loading`` until a sync completes;
- acks: whenever the durable offset moved, while loading (the primary's sign
  of life), and otherwise every ``ack_heartbeat_ms`` (a heartbeat that carries
  the position, so a caught-up idle replica is seen as caught up);
- a sync request every ``sync_retry_ms`` until answered; a new session when
  the current one heard nothing accepted for ``silence_ms``;
- the fence: the driver is built with the configuration's epoch and the one
  its disk says it was fenced at, and refuses streams below both. Every rise
  of that epoch (the configuration's, a failover's fencing round, a sync
  reply's) is persisted (``SaveFence``) before anything is sent that names
  it, so before the fencing round's answer: a fenced replica that crashes
  and restarts still refuses the deposed primary's stream, whatever stale
  configuration it starts with (DESIGN §6, failover step 1).

The driver never reads a clock: every timed input carries ``now_ms``, from a
monotonic clock (DESIGN: wall time only for key expiry).
"""

from dataclasses import dataclass, replace
from typing import Any

from trionode import limits
from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import ReplMessage, SnapshotChunk, SyncRefused, SyncReply
from trionode.core.replication.primary_driver import AckUpTo
from trionode.core.replication.replica import CONNECTING, LOADING, STREAMING, ReplicaState, Step

ack_heartbeat_ms = limits.repl_tick_ms * 10  # an unchanged position is re-acked this often


@dataclass(frozen=True, slots=True)
class SetLoadingMarker:
    on: bool


@dataclass(frozen=True, slots=True)
class Truncate:
    offset: int


@dataclass(frozen=True, slots=True)
class LoadChunk:
    items: list[Any]


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    offset: int


@dataclass(frozen=True, slots=True)
class SaveHistory:
    history: EpochHistory


@dataclass(frozen=True, slots=True)
class Append:
    records: list[tuple[int, list[bytes]]]


@dataclass(frozen=True, slots=True)
class Send:
    msg: ReplMessage


@dataclass(frozen=True, slots=True)
class SaveFence:
    epoch: int  # refuse every stream below this epoch, across restarts too


@dataclass(frozen=True, slots=True)
class AnswerFence:
    """The answer to a fencing round: fenced at ``epoch``, with this durable offset and health."""

    to: str  # the Raft leader that asked
    epoch: int
    term: int  # the leader's term when it asked, so that an answer counts only in its own round
    offset: int
    health: str


ReplicaAction = (
    SetLoadingMarker | Truncate | LoadChunk | InstallSnapshot | SaveHistory | Append | Send | SaveFence | AnswerFence
    | AckUpTo
)


class ReplicaDriver:
    def __init__(
        self,
        shard_id: str,
        my_id: str,
        epoch: int,
        history: EpochHistory,
        log_end: int,
        now_ms: int,
        *,
        sync_id_base: int = 0,
        loading_marker: bool = False,
        acked_offset: int = 0,
        truncate_floor: int = 0,
        fence_epoch: int | None = None,
        sync_retry_ms: int = limits.repl_sync_retry_ms,
        silence_ms: int = limits.repl_silence_ms,
    ) -> None:
        assert 0 <= truncate_floor <= log_end or loading_marker, (truncate_floor, log_end)
        assert 0 <= acked_offset <= log_end or loading_marker, (acked_offset, log_end)
        self.marker = loading_marker  # Invariant: mirrors the persisted marker once the actions ran
        if loading_marker:  # a restart in the middle of a sync: the local data is junk
            history, log_end, truncate_floor, acked_offset = EpochHistory(), 0, 0, 0
        # What the local data says was acknowledged when it was saved (a snapshot's); then see _publish.
        self.acked_offset = acked_offset
        # ``epoch``: the shard epoch the configuration names; ``fence_epoch``: the one the disk says
        # this replica was fenced at (None: ``epoch`` is durable already). It refuses streams below both.
        fence_epoch = epoch if fence_epoch is None else fence_epoch
        self.rs = ReplicaState(shard_id, my_id, max(epoch, fence_epoch), history, log_end, sync_id_base)
        self._fence_saved = fence_epoch  # Invariant: == rs.epoch before anything is sent (SaveFence)
        self.truncate_floor = truncate_floor
        self.sync_retry_ms, self.silence_ms = sync_retry_ms, silence_ms
        self._next_request_ms = now_ms  # CONNECTING: when to (re)send the sync request
        self._heard_ms = now_ms  # when the session last got a message it accepted
        self._acked: tuple[int, int] | None = None  # (sync_id, offset) of the last ack sent
        self._acked_ms = now_ms

    # --- inputs ---------------------------------------------------------------------------
    def on_message(self, msg: ReplMessage, now_ms: int) -> list[ReplicaAction]:
        """A message from the primary (sync reply or refusal, records, snapshot chunk)."""
        if isinstance(msg, (SyncReply, SyncRefused)):
            step = self.rs.on_sync_reply(msg)
        elif isinstance(msg, SnapshotChunk):
            step = self.rs.on_snapshot_chunk(msg)
        else:
            step = self.rs.on_records(msg)
        if not step.refused:
            self._heard_ms = now_ms
        return self._carry_out(step, now_ms) + self._publish()  # records may carry a higher watermark

    def on_local_end(self, local_end: int) -> list[ReplicaAction]:
        """The local log ends at ``local_end`` (call before each message): it must hold what we received.

        A replica's log holds only the primary's records. One past our stream's end was
        written here (a command a replica should have refused, issue 10): keeping it would
        put a record the primary never wrote at an offset the primary fills with another.

        A log that ends before our stream's end lost records we counted (a cut this driver
        did not ask for: the node's replica side was once rebuilt in the middle of a cut,
        from the data about to go). We claim only what is here and sync again, as a restart
        would from the same disk. Not an assert: the restart costs the shard a member for
        nothing, and whatever we reported before cannot be taken back either way.
        """
        if self.marker or local_end == self.rs.log_end:
            return []
        if local_end < self.rs.log_end:
            self.rs.lost_records(local_end)
            self._next_request_ms = self._heard_ms  # in the past: the next tick asks for a sync
            return self._cut(local_end)  # the acknowledged offset follows; the store holds the cut already
        self.rs.note(f"local records {self.rs.log_end + 1}..{local_end} were not streamed: cut")
        return self._truncate(self.rs.log_end)

    def on_durable(self, durable_offset: int, now_ms: int) -> list[ReplicaAction]:
        """Everything up to ``durable_offset`` is fsynced here: the ack to send, if one is due,
        and the acknowledged offset, if it rose."""
        rs = self.rs
        rs.note_durable(durable_offset)
        if rs.state == CONNECTING:
            return self._publish()
        ack = rs.ack(min(durable_offset, rs.log_end))
        assert ack is not None
        out: list[ReplicaAction] = []
        if self.marker and rs.state == STREAMING:
            out.append(SetLoadingMarker(False))  # synced, durable and caught up: the data is whole again
            self.marker = False
        ack = replace(ack, durable_offset=self.reported_offset())
        position = (ack.sync_id, ack.durable_offset)
        if position != self._acked or self.health == "loading" or now_ms - self._acked_ms >= ack_heartbeat_ms:
            self._acked, self._acked_ms = position, now_ms
            out.append(Send(ack))
        return out + self._publish()

    def on_local_durable(self, durable_offset: int) -> list[ReplicaAction]:
        """The local WAL is durable up to ``durable_offset``, heard between two inputs: at most an
        :class:`AckUpTo`. Acks and the marker wait for :meth:`on_durable`, which comes in order with
        the other inputs: this may run while the shell is still carrying out an earlier list."""
        self.rs.note_durable(durable_offset)
        out = self._publish()
        assert all(isinstance(a, AckUpTo) for a in out), out
        return out

    def on_compacted(self, snapshot_offset: int) -> None:
        """The local store's snapshot now covers ``1..snapshot_offset`` (a compaction, heard at any time):
        a cut in place can no longer go below it (``truncate_floor``)."""
        assert snapshot_offset >= 0, snapshot_offset
        self.truncate_floor = max(self.truncate_floor, snapshot_offset)

    def tick(self, now_ms: int) -> list[ReplicaAction]:
        """Time passed: re-send an unanswered sync request; start again after a silence."""
        if self.rs.state != CONNECTING and now_ms - self._heard_ms > self.silence_ms:
            self._heard_ms = now_ms
            return self._carry_out(self.rs.primary_silent(), now_ms)
        if self.rs.state == CONNECTING and now_ms >= self._next_request_ms:
            return self._sync_request(now_ms)
        return []

    def fence(self, epoch: int, now_ms: int) -> list[ReplicaAction]:
        """The shard epoch is at least ``epoch`` now (the applied configuration, or a fencing round):
        refuse every stream below it, durably first, and start a new session if that is news."""
        if not self.rs.fence(epoch):
            return []
        return self._save_fence() + self._restart_session(now_ms)

    def on_fence_round(self, leader: str, epoch: int, term: int, now_ms: int) -> list[ReplicaAction]:
        """The Raft leader fences this replica for a failover (DESIGN §6 step 1): fence, then answer.

        The answer carries the offset this replica may claim (durable, 0 while loading) and comes
        last, after the fence is durable: the leader may promote another member on the strength
        of it, and a restarted replica must not take the deposed primary's stream again.
        """
        out = self.fence(epoch, now_ms)
        assert self._fence_saved >= epoch, "answering a fence that is not durable"
        return [*out, AnswerFence(leader, epoch, term, self.reported_offset(), self.health)]

    def restart_session(self, now_ms: int) -> list[ReplicaAction]:
        """Start a new session now (a new process, or the caller's own reason)."""
        return self._restart_session(now_ms)

    # --- state for others ---------------------------------------------------------------------
    @property
    def health(self) -> str:
        return "loading" if self.marker or self.rs.state == LOADING else "online"

    def reported_offset(self) -> int:
        """The offset this replica may claim (ACKs, INFO, failover): 0 while its data is junk (S5)."""
        return 0 if self.marker else self.rs.reported_offset()

    def read_bound(self) -> int | None:
        """READONLY reads may see offsets up to this; None: do not serve (loading, or not caught up: S7)."""
        return None if self.marker or self.rs.state != STREAMING else self.acked_offset

    def take_reports(self) -> list[str]:
        return self.rs.take_reports()

    # --- carrying out a step ---------------------------------------------------------------------
    def _sync_request(self, now_ms: int) -> list[ReplicaAction]:
        self._next_request_ms = now_ms + self.sync_retry_ms
        self._heard_ms = now_ms
        # It names the epoch we refuse below, and says whether our data is junk (the primary
        # then takes us out of the ISR at once: we report 0 until we have caught up).
        out = [*self._save_fence(), Send(replace(self.rs.sync_request(), loading=self.marker))]
        assert self._fence_saved == self.rs.epoch
        return out

    def _restart_session(self, now_ms: int) -> list[ReplicaAction]:
        self._next_request_ms = now_ms
        return self.tick(now_ms)

    def _save_fence(self) -> list[ReplicaAction]:
        if self.rs.epoch <= self._fence_saved:
            return []
        self._fence_saved = self.rs.epoch
        return [SaveFence(self.rs.epoch)]

    def _carry_out(self, step: Step, now_ms: int) -> list[ReplicaAction]:
        out = self._save_fence()  # a sync reply may have taught us a newer epoch
        if step.start_full_sync:
            ack = self.rs.ack(0)  # reports 0 (loading) before anything is discarded
            assert ack is not None and ack.durable_offset == 0
            out += [Send(ack), *self._mark(), *self._cut(0)]
        if step.truncate_to is not None and not step.start_full_sync:
            if step.truncate_to < self.truncate_floor:
                return out + self._discard_below_floor(step.truncate_to, now_ms)
            out += self._truncate(step.truncate_to)
        if step.snapshot_items:
            out.append(LoadChunk(step.snapshot_items))
        if step.snapshot_done is not None:
            out.append(InstallSnapshot(step.snapshot_done))
            self.truncate_floor = step.snapshot_done
        if step.history_changed:
            out.append(SaveHistory(self.rs.history.copy()))  # after the snapshot it describes
        if step.records:
            out.append(Append(step.records))
        if step.resync:
            out += self._restart_session(now_ms)
        return out

    def _mark(self) -> list[ReplicaAction]:
        if self.marker:
            return []
        self.marker = True
        return [SetLoadingMarker(True)]

    def _truncate(self, keep: int) -> list[ReplicaAction]:
        # In place (a no-op when nothing lies past ``keep``) and without the marker: a crash
        # in the middle of the cut leaves the old log or the cut one, and the history saved
        # after the cut describes either. Under the marker such a crash wiped the whole log,
        # and an ISR member lost acknowledged writes (sim seeds 20 and 38, issue 10 §4).
        return self._cut(keep)

    def _cut(self, keep: int) -> list[ReplicaAction]:
        """Cut the local data back to ``keep``: what was acknowledged past it is gone from here."""
        if keep < self.acked_offset:
            self.rs.note(f"cut to {keep}, below the acknowledged offset {self.acked_offset} seen here")
            self.acked_offset = keep
        self.truncate_floor = min(self.truncate_floor, keep)  # a cut of everything leaves no snapshot
        return [Truncate(keep)]

    def _publish(self) -> list[ReplicaAction]:
        """The acknowledged offset's only writer: an :class:`AckUpTo` when it rose."""
        if self.marker:
            return []  # junk data acknowledges nothing
        rs = self.rs
        assert rs.durable_offset <= rs.log_end, (rs.durable_offset, rs.log_end)
        acked = min(rs.durable_offset, rs.primary_hw)
        if acked <= self.acked_offset:
            return []
        self.acked_offset = acked
        return [AckUpTo(acked)]

    def _discard_below_floor(self, keep: int, now_ms: int) -> list[ReplicaAction]:
        """The local snapshot holds records past the cut to ``keep``: discard everything and sync from empty.

        The marker is durable before anything is discarded, and the new session's request says
        we are loading, so the primary leaves us out of the ISR (see the top). The session that
        asked for the cut had reset our offset there to 0 already: nothing here was counted.
        """
        rs, floor = self.rs, self.truncate_floor
        out: list[ReplicaAction] = [*self._mark(), *self._cut(0), SaveHistory(EpochHistory())]
        assert self.marker and self.reported_offset() == 0 and self.truncate_floor == 0
        self.rs = ReplicaState(rs.shard_id, rs.my_id, rs.epoch, EpochHistory(), 0, rs.sync_id)
        self.rs.note(f"cut to {keep} below the local snapshot at {floor}: everything was discarded")
        return out + self._restart_session(now_ms)

    def statistics(self) -> dict[str, Any]:
        return {**self.rs.statistics(), "acked_offset": self.acked_offset, "loading_marker": self.marker,
                "truncate_floor": self.truncate_floor}  # fmt: skip
