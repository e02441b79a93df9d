"""The replica's side of replication: sync, stream, acknowledge, fence (DESIGN §5.2, §5.4, S5, S7).

Theory of operation
-------------------
One :class:`ReplicaState` per shard on each replica. States::

    connecting --partial reply--> syncing --reached the primary's log end--> streaming
        |  \\--full reply--> loading --snapshot complete and durable--> syncing | streaming
        ^------ gap, newer epoch, fence, broken snapshot: resync ------/

- ``sync_request()`` starts a session (new ``sync_id``) and moves to
  ``connecting``; every later message must carry that ``sync_id``.
- ``on_sync_reply`` adopts the primary's epoch and history. Partial: cut the log
  back to ``keep_offset``. Full: discard everything and load a snapshot; until
  it is complete *and durable* the replica reports offset 0 and health
  ``loading``, is never counted and can never be promoted (S5, seed 002).
- ``on_records`` checks contiguity (a gap means resync; duplicates are skipped)
  and hands back ``(offset, effect)`` pairs to append and apply.
- ``ack(durable_offset)`` is called by the shell after an fsync; it never
  acknowledges past what was received, nor anything while loading.
- Epoch fencing: a reply, record or chunk from an epoch older than the newest
  epoch this replica knows is refused, so a deposed primary cannot stream to
  it. ``fence(epoch)`` raises that epoch (the failover's first step) and drops
  the current session; the driver persists every rise before it answers.

Every input returns a :class:`Step`. :class:`ReplicaDriver`
(``replica_driver.py``) turns each step into ordered actions (the marker,
in-place truncation, the snapshot before the history it describes, acks,
timers); the node and the simulator run the driver, never this class alone.
On restart the driver is built with the persisted fence epoch, the recovered
log end (the history is cut back to it here) and with the loading marker, if a
sync was interrupted.
The acknowledged offset (what READONLY reads may see, DESIGN §5.4) is the
driver's: it bounds ``primary_hw`` by what is durable here.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import Ack, Records, SnapshotChunk, SyncRefused, SyncReply, SyncRequest

CONNECTING, SYNCING, LOADING, STREAMING = "connecting", "syncing", "loading", "streaming"
reports_max = 256


@dataclass(frozen=True, slots=True)
class Step:
    """What the shell must do after an input, in field order."""

    start_full_sync: bool = False  # discard the local log and keyspace (a snapshot follows)
    truncate_to: int | None = None  # cut the local log and keyspace back to this offset
    history_changed: bool = False  # persist ``ReplicaState.history`` before the records below
    snapshot_items: list[Any] = field(default_factory=list)  # load into the keyspace
    snapshot_done: int | None = None  # the snapshot is complete; it covers offsets 1..snapshot_done
    records: list[tuple[int, list[bytes]]] = field(default_factory=list)  # append and apply, in order
    resync: str = ""  # the session broke (why): send sync_request() again
    refused: str = ""  # the input was dropped (why), for the log


_NOTHING = Step()


class ReplicaState:
    def __init__(
        self,
        shard_id: str,
        my_id: str,
        epoch: int,
        history: EpochHistory,
        log_end: int,
        sync_id_base: int = 0,
    ) -> None:
        assert epoch >= 0 and log_end >= 0 and sync_id_base >= 0
        self.shard_id, self.my_id = shard_id, my_id
        self.epoch = epoch  # the newest shard epoch known; Invariant: never decreases.
        self.history = history.copy()
        self.history.truncate_after(log_end)  # entries past a crash's recovered end describe nothing
        self.log_end = log_end  # last offset received (appended)
        self.durable_offset = log_end  # Invariant: <= log_end. What restart recovered is durable.
        self.state = CONNECTING
        self.sync_id = sync_id_base
        self.primary_hw = 0  # the primary's high watermark, the highest streamed (the driver bounds it)
        self._target = 0  # the primary's log end at the sync reply
        self._leader_history: EpochHistory | None = None  # full sync: adopted once the snapshot is complete
        self._snapshot_offset: int | None = None
        self._snapshot_seq = 0
        self._snapshot_done = False
        self._reports: deque[str] = deque(maxlen=reports_max)

    # --- session --------------------------------------------------------------------------
    def sync_request(self) -> SyncRequest:
        """Start a new session: the message to send to the primary."""
        self.sync_id += 1
        if self.state == LOADING:
            self._abandon_snapshot()
        self.state = CONNECTING
        # Entries adopted from a primary for records not received yet describe nothing here.
        self.history.truncate_after(self.log_end)
        return SyncRequest(self.shard_id, self.my_id, self.epoch, self.history.copy(), self.log_end, self.sync_id)

    def fence(self, epoch: int) -> bool:
        """Refuse every stream below ``epoch`` from now on; True if that is news (the session ends)."""
        if epoch <= self.epoch:
            return False
        self.epoch = epoch
        if self.state == LOADING:
            self._abandon_snapshot()
        self.state = CONNECTING
        return True

    def _abandon_snapshot(self) -> None:
        # The local data was discarded at the full sync: until a new one completes, the log is empty.
        self._snapshot_offset, self._snapshot_seq, self._snapshot_done = None, 0, False
        self._leader_history = None
        self._cut_log(0)
        self.history = EpochHistory()

    def _check(self, shard_id: str, epoch: int, sync_id: int) -> str:
        if shard_id != self.shard_id:
            return f"wrong_shard: {shard_id}"
        if epoch < self.epoch:
            return f"stale_epoch: {epoch} < known epoch {self.epoch}"
        if sync_id != self.sync_id:
            return f"stale_session: {sync_id} is not the current sync {self.sync_id}"
        return ""

    def on_sync_reply(self, reply: SyncReply | SyncRefused) -> Step:
        refused = self._check(reply.shard_id, reply.epoch, reply.sync_id)
        if not refused and self.state != CONNECTING:
            refused = "duplicate: the session is already synced"
        if refused:
            return Step(refused=refused)
        if isinstance(reply, SyncRefused):
            return Step(resync=f"primary refused: {reply.reason}")
        if reply.mode == "partial" and reply.keep_offset > self.log_end:
            # Computed for a longer log than ours (we crashed since): ask again.
            return Step(resync=f"reply keeps {reply.keep_offset}, past our log end {self.log_end}")
        self.epoch = reply.epoch
        self._target = reply.log_end
        if reply.mode == "full":
            self._abandon_snapshot()
            self._leader_history = reply.history.copy()
            self.state = LOADING
            return Step(start_full_sync=True)
        keep = reply.keep_offset
        self._cut_log(keep)
        # Up to keep both histories agree, so adopting the primary's is exact and also names
        # the epochs of the records to come.
        self.history = reply.history.copy()
        self._enter_stream()
        return Step(truncate_to=keep, history_changed=True)

    def _cut_log(self, keep: int) -> None:
        """The local log now ends at ``keep``: nothing past it is received, durable or acknowledged here.

        The primary's high watermark is bounded too: a cut below it would otherwise count the
        next primary's records up to the old value as acknowledged before it says so.
        """
        self.log_end = keep
        self.durable_offset = min(self.durable_offset, keep)
        self.primary_hw = min(self.primary_hw, keep)

    def lost_records(self, local_end: int) -> None:
        """The local log ends at ``local_end``, before records this state received: claim only what is
        there, and start a new session (the shell asks for a sync at its next tick)."""
        assert local_end < self.log_end and self.state != LOADING, (local_end, self.log_end, self.state)
        self._reports.append(f"resync: the local log ends at {local_end}, before the received {self.log_end}")
        self._cut_log(local_end)
        self.history.truncate_after(local_end)
        self.state = CONNECTING

    def _enter_stream(self) -> None:
        self.state = STREAMING if self.log_end >= self._target else SYNCING

    # --- the stream ---------------------------------------------------------------------------
    def on_records(self, records: Records) -> Step:
        refused = self._check(records.shard_id, records.epoch, records.sync_id)
        if refused:
            return Step(refused=refused)
        if records.epoch > self.epoch:
            # A new primary this replica has not synced with: positions may not match.
            return self._resync(f"records from epoch {records.epoch}, synced at {self.epoch}")
        if self.state == CONNECTING:
            return Step(refused="not synced yet")
        if self.state == LOADING and not self._snapshot_done:
            return self._resync(f"records at {records.first_offset} before the snapshot completed")
        if records.first_offset > self.log_end + 1:
            return self._resync(f"gap: records start at {records.first_offset}, log ends at {self.log_end}")
        skip = self.log_end + 1 - records.first_offset
        fresh = records.effects[skip:] if skip > 0 else records.effects
        start = self.log_end + 1
        out = [(start + i, effect) for i, effect in enumerate(fresh)]
        self.log_end += len(out)
        self.primary_hw = max(self.primary_hw, records.acked_offset)
        if self.state == SYNCING and self.log_end >= self._target:
            self.state = STREAMING
        assert not out or out[-1][0] == self.log_end
        return Step(records=out) if out else _NOTHING

    def on_snapshot_chunk(self, chunk: SnapshotChunk) -> Step:
        refused = self._check(chunk.shard_id, chunk.epoch, chunk.sync_id)
        if refused:
            return Step(refused=refused)
        if chunk.epoch > self.epoch:
            return self._resync(f"snapshot from epoch {chunk.epoch}, synced at {self.epoch}")
        if self.state != LOADING or self._snapshot_done:
            return Step(refused=f"unexpected snapshot chunk {chunk.seq} in state {self.state}")
        if chunk.seq != self._snapshot_seq or (self._snapshot_offset not in (None, chunk.offset)):
            return self._resync(f"snapshot chunk {chunk.seq} at {chunk.offset} out of order")
        assert self._leader_history is not None
        self._snapshot_offset = chunk.offset
        self._snapshot_seq += 1
        if not chunk.last:
            return Step(snapshot_items=chunk.items)
        self._snapshot_done = True
        self.log_end = chunk.offset
        self._target = max(self._target, chunk.offset)
        self.history = self._leader_history
        return Step(snapshot_items=chunk.items, snapshot_done=chunk.offset, history_changed=True)

    def primary_silent(self) -> Step:
        """The shell heard nothing of this session for ``repl_silence_ms``: start a new one.

        A primary streams (at least an empty batch) to every replica of its session each
        tick. Silence means the primary died, restarted with no memory of this session,
        or is cut off; without this the replica would wait forever (a drill found it:
        a primary restarted while its replica was streaming, and the replica's acked
        offset, and every reply waiting on it, stalled for good).
        """
        if self.state == CONNECTING:
            return _NOTHING  # the shell already re-sends sync requests
        return self._resync("the primary went silent")

    def _resync(self, why: str) -> Step:
        self._reports.append(f"resync: {why}")
        abandon = self.state == LOADING
        if abandon:
            self._abandon_snapshot()
        self.state = CONNECTING
        return Step(truncate_to=0, history_changed=True, resync=why) if abandon else Step(resync=why)

    # --- acknowledgement and reads --------------------------------------------------------------
    def ack(self, durable_offset: int) -> Ack | None:
        """The shell fsynced up to ``durable_offset``: the ack to send (None without a session)."""
        if self.state == CONNECTING:
            return None
        assert durable_offset <= self.log_end, f"acking {durable_offset} past the received {self.log_end}"
        self.note_durable(durable_offset)
        if self.state == LOADING and self._snapshot_done and self.durable_offset >= (self._snapshot_offset or 0):
            self._snapshot_offset, self._snapshot_seq, self._snapshot_done = None, 0, False
            self._leader_history = None
            self._enter_stream()
        return Ack(self.shard_id, self.my_id, self.epoch, self.reported_offset(), self.sync_id)

    def note_durable(self, durable_offset: int) -> None:
        """The shell fsynced up to ``durable_offset`` (what lies past the received log is not ours)."""
        assert durable_offset >= 0, durable_offset
        self.durable_offset = max(self.durable_offset, min(durable_offset, self.log_end))

    def reported_offset(self) -> int:
        """The offset this replica may claim (ACKs, INFO, failover ranking): 0 while loading (S5)."""
        return 0 if self.state == LOADING else self.durable_offset

    @property
    def health(self) -> str:
        return "loading" if self.state == LOADING else "online"

    def note(self, line: str) -> None:
        """A decision of the driver worth a log line."""
        self._reports.append(line)

    def take_reports(self) -> list[str]:
        out = list(self._reports)
        self._reports.clear()
        return out

    def statistics(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "epoch": self.epoch,
            "log_end": self.log_end,
            "durable_offset": self.durable_offset,
            "reported_offset": self.reported_offset(),
            "primary_hw": self.primary_hw,
            "sync_id": self.sync_id,
        }
