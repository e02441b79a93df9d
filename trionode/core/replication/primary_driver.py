"""The primary's replication driver: every decision of the primary side, as actions (DESIGN §5.3, §5.4).

Theory of operation
-------------------
A :class:`PrimaryDriver` wraps a :class:`PrimaryTracker` (the protocol rules:
sync answers, replica offsets, ISR proposals) and adds what a shell used to
decide on its own: what to stream to whom, when a full sync's snapshot may
go, heartbeats, the ISR fence of a new tracker, and which offset is
acknowledged. The node (``io/replication.py``) and the simulator
(``sim/data_shells.py``) both run it and only carry its actions out:

- :class:`Send` send a sync reply (or refusal) to a replica;
- :class:`CutSnapshot` cut the data at ``offset`` (the shell's applied end,
  now) for a full sync and hold it; the shell then reports how many chunks
  it made (:meth:`PrimaryDriver.on_snapshot_cut`);
- :class:`SendSnapshotChunk` send chunk ``seq`` of that cut;
- :class:`StreamRecords` send records ``first_offset..last_offset`` (none:
  a heartbeat) with the acknowledged offset;
- :class:`Propose` propose a cluster command to Raft (the fence, ISR changes);
- :class:`AckUpTo` the acknowledged offset rose to ``offset``: publish it
  (reads of it become visible, waiting writes are answered);
- :class:`Acked` a replica's ack was accepted (WAIT recounts).

The acknowledged offset has one owner, this driver. It is the tracker's high
watermark (the minimum over the ISR's durable offsets, the primary's own
included) once the fence is applied, and 0 before. Invariant: it never
decreases, and it never exceeds the durable offset of any member of the ISR
the driver last adopted. Shells publish it from :class:`AckUpTo` only.

Rules it keeps (each was once written twice, in both shells):

- only records durable here are streamed (log matching); the tracker's log
  end follows the local durable offset before anything past it goes out;
- a partial sync streams from the divergence point; a full sync cuts a
  snapshot at the applied end *now* but sends it only once that offset is
  acknowledged (durable here: a crash before then could reuse the offsets;
  and on the ISR: a replica cannot cut its snapshot back in place, so one
  holding an unacknowledged record that a failover then drops would have to
  discard everything, acknowledged records included, while in the ISR: sim
  seed 57), then streams from the offset after it;
- a session whose next record is no longer held (``log_start``) is dropped:
  the replica times out and resyncs;
- each stream call sends a replica at most ``chunks_max`` snapshot chunks and
  ``batches_max`` record batches (the shell's flow control), and an empty
  batch (a heartbeat carrying the acknowledged offset) when asked and nothing
  else went;
- the fence: a new tracker acknowledges nothing until the ISR version moved
  past the one it started with (an ISR proposal of a previous life of this
  primary could still commit); it proposes ``isr_fence`` at once, again every
  ``fence_retry_ms`` and after an outcome that did not fence it;
- ISR proposals come from the tracker only once fenced; a refused one ends
  only when it is the tracker's current proposal (a late duplicate of an
  earlier command about the same node must not end a newer one).

The driver never reads a clock: every timed input carries ``now_ms``, from a
monotonic clock.
"""

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from trionode import limits
from trionode.core.cluster.commands import command
from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import Ack, ReplMessage, SyncReply, SyncRequest
from trionode.core.replication.primary import PrimaryTracker

ACCEPTED, REFUSED, UNKNOWN = "accepted", "refused", "unknown"  # a proposal's outcome, as the shell saw it


@dataclass(frozen=True, slots=True)
class Send:
    to: str
    msg: ReplMessage


@dataclass(frozen=True, slots=True)
class CutSnapshot:
    to: str
    sync_id: int
    offset: int


@dataclass(frozen=True, slots=True)
class SendSnapshotChunk:
    to: str
    sync_id: int
    offset: int
    seq: int
    last: bool


@dataclass(frozen=True, slots=True)
class StreamRecords:
    to: str
    sync_id: int
    first_offset: int
    last_offset: int  # first_offset - 1: no records (a heartbeat)
    acked_offset: int


@dataclass(frozen=True, slots=True)
class Propose:
    command: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AckUpTo:
    offset: int


@dataclass(frozen=True, slots=True)
class Acked:
    replica_id: str
    offset: int


PrimaryAction = Send | CutSnapshot | SendSnapshotChunk | StreamRecords | Propose | AckUpTo | Acked


def promotion_history(history: EpochHistory, epoch: int, log_end: int) -> EpochHistory | None:
    """The history a primary of ``epoch`` whose log ends at ``log_end`` persists before it writes; None: unchanged.

    Entries past ``log_end`` describe records this node does not hold (a replica adopts its
    primary's whole history, epochs that start past what it received included; a crash loses
    a tail): they go. Then ``(epoch, log_end + 1)`` follows, unless the history already ends
    with ``epoch`` (a primary that restarted).
    """
    assert log_end >= 0
    out = history.copy()
    out.truncate_after(log_end)
    if out.last_epoch() < epoch:
        out.append_epoch(epoch, log_end + 1)
    assert out.last_start() <= log_end + 1
    return None if out == history else out


@dataclass(slots=True)
class _Session:
    """The stream to one replica, for one ``sync_id``."""

    sync_id: int
    next_offset: int  # the next record to stream
    snapshot_offset: int | None = None  # a full sync's cut still to send (records 1..snapshot_offset)
    chunks: int | None = None  # how many chunks the cut made; None: not reported yet
    chunk_seq: int = 0  # the next chunk to send


class PrimaryDriver:
    def __init__(
        self,
        shard_id: str,
        my_id: str,
        epoch: int,
        history: EpochHistory,
        log_start: int,
        durable_offset: int,
        *,
        appended: int,
        records_per_msg_max: int = limits.repl_records_per_msg_max,
        fence_retry_ms: int = limits.raft_proposal_timeout_ms,
        lag_timeout_ms: int = limits.replica_lag_timeout_ms,
    ) -> None:
        assert records_per_msg_max > 0 and fence_retry_ms > 0 and durable_offset <= appended
        # The epoch starts after the applied end (promotion_history): records of earlier epochs
        # appended but not yet durable lie before it, so it may start past the durable end.
        assert history.last_start() <= appended + 1, (history.last_start(), appended)
        # Configured by the first ``on_config``: until then an ISR of the primary alone, version -1.
        self.tracker = PrimaryTracker(shard_id, my_id, epoch, history, min(log_start, durable_offset + 1),
                                      durable_offset, (), (my_id,), -1, lag_timeout_ms=lag_timeout_ms)  # fmt: skip
        self.records_per_msg_max, self.fence_retry_ms = records_per_msg_max, fence_retry_ms
        self.log_start, self.appended, self.durable = log_start, appended, durable_offset
        self.acked_offset = 0  # Invariant: never decreases; <= every ISR member's durable offset
        self.start_isr_version: int | None = None  # the ISR version of the first configuration adopted
        self._fence_sent_ms: int | None = None  # when the fence in flight was proposed; None: none
        self._proposed: dict[str, Any] | None = None  # the tracker's last ISR proposal
        self._sessions: dict[str, _Session] = {}

    @property
    def epoch(self) -> int:
        return self.tracker.epoch

    @property
    def fenced(self) -> bool:
        """An ISR change (the fence, or any other) committed since this tracker started."""
        start = self.start_isr_version
        return start is not None and self.tracker.isr_version > start

    # --- inputs ---------------------------------------------------------------------------
    def on_config(self, epoch: int, primary_id: str, replica_ids: Collection[str], isr_ids: Collection[str],
                  isr_version: int) -> list[PrimaryAction]:  # fmt: skip
        """The shard's applied configuration; one naming another primary or epoch deposes the driver for good."""
        if self.start_isr_version is None:
            self.start_isr_version = isr_version
        self.tracker.set_config(epoch, primary_id, tuple(replica_ids), tuple(isr_ids), isr_version)
        for gone in set(self._sessions) - set(self.tracker.replica_ids):
            del self._sessions[gone]
        return self._publish()

    def on_log(self, log_start: int, appended: int, durable: int, now_ms: int) -> list[PrimaryAction]:
        """The local log holds ``log_start..appended``, durable up to ``durable``, at ``now_ms``."""
        assert log_start <= appended + 1 and durable <= appended, (log_start, appended, durable)
        self.log_start, self.appended = log_start, appended
        assert durable >= self.durable, f"the durable offset went back from {self.durable} to {durable}"
        if durable > self.durable:
            self.durable = durable
            self.tracker.set_log_end(durable, now_ms)  # before anything up to it is streamed
        return self._publish()

    def on_sync_request(self, req: SyncRequest, now_ms: int) -> list[PrimaryAction]:
        """A replica (re)connects: answer; a partial sync streams from its keep point, a full one cuts a snapshot."""
        reply = self.tracker.on_sync_request(req, min(self.log_start, self.durable + 1), self.durable)
        out: list[PrimaryAction] = [Send(req.replica_id, reply)]
        self._sessions.pop(req.replica_id, None)
        if not isinstance(reply, SyncReply):
            return out
        if reply.mode == "partial":
            self._sessions[req.replica_id] = _Session(req.sync_id, reply.keep_offset + 1)
            return out
        # Cut now, at the applied end, but sent only once that offset is acknowledged (see above).
        cut = self.appended
        self._sessions[req.replica_id] = _Session(req.sync_id, cut + 1, snapshot_offset=cut)
        return [*out, CutSnapshot(req.replica_id, req.sync_id, cut)]

    def on_snapshot_cut(self, replica_id: str, sync_id: int, chunks: int) -> None:
        """The shell cut the snapshot :class:`CutSnapshot` asked for, into ``chunks`` chunks (at least one)."""
        assert chunks >= 1, chunks
        sess = self._sessions.get(replica_id)
        if sess is not None and sess.sync_id == sync_id and sess.snapshot_offset is not None:
            sess.chunks = chunks

    def on_ack(self, ack: Ack, now_ms: int) -> list[PrimaryAction]:
        """A replica's ack (ignored unless of its current session, epoch and shard)."""
        if not self.tracker.on_ack(ack, now_ms):
            return []
        return [Acked(ack.replica_id, ack.durable_offset), *self._publish()]

    def on_proposal_result(self, cmd: dict[str, Any], outcome: str) -> list[PrimaryAction]:
        """What became of a proposed command: ``ACCEPTED``, ``REFUSED`` (applied, refused), or ``UNKNOWN``.

        An ISR change of unknown outcome may still commit: the tracker keeps it and proposes it
        again later. A fence may be proposed twice (the second is refused as stale), so after
        any outcome that left us unfenced it goes again at the next tick.
        """
        assert outcome in (ACCEPTED, REFUSED, UNKNOWN), outcome
        if cmd["op"] == "isr_fence":
            self._fence_sent_ms = None
        elif outcome != UNKNOWN and cmd == self._proposed:
            self.tracker.proposal_done(cmd["node_id"])
            self._proposed = None
        return self._publish()

    def tick(self, now_ms: int) -> list[PrimaryAction]:
        """Time passed (call every ``repl_tick_ms``): the fence until it is applied, then ISR proposals."""
        if self.tracker.deposed:
            return []
        if not self.fenced:
            return self._fence(now_ms)
        out: list[PrimaryAction] = []
        for cmd in self.tracker.isr_changes(now_ms):
            self._proposed = cmd
            out.append(Propose(cmd))
        return out + self._publish()

    # --- streaming ------------------------------------------------------------------------
    def stream(self, heartbeat: bool, *, batches_max: int, chunks_max: int) -> list[PrimaryAction]:
        """What to send every replica now (see :meth:`stream_to`)."""
        return [a for replica_id in list(self._sessions)
                for a in self.stream_to(replica_id, heartbeat, batches_max=batches_max, chunks_max=chunks_max)]

    def stream_to(self, replica_id: str, heartbeat: bool, *, batches_max: int, chunks_max: int) -> list[PrimaryAction]:
        """For ``replica_id``: up to ``chunks_max`` snapshot chunks, then up to ``batches_max`` record batches.

        With nothing else to send, an empty batch when ``heartbeat`` (it carries the acknowledged
        offset, and tells the replica its session is alive).
        """
        assert batches_max >= 1 and chunks_max >= 1
        sess = self._sessions.get(replica_id)
        if sess is None:
            return []
        out: list[PrimaryAction] = []
        if sess.snapshot_offset is not None:
            out += self._chunks(replica_id, sess, chunks_max)
            if sess.snapshot_offset is not None:
                return out  # the rest of the snapshot goes first
        if sess.next_offset < self.log_start:
            self.tracker.note(f"replica {replica_id} fell out of the log at {sess.next_offset}; it must resync")
            del self._sessions[replica_id]
            return out
        end, batches = self.streamable(), 0
        while batches < batches_max and sess.next_offset <= end:
            last = min(end, sess.next_offset + self.records_per_msg_max - 1)
            out.append(StreamRecords(replica_id, sess.sync_id, sess.next_offset, last, self.acked_offset))
            sess.next_offset, batches = last + 1, batches + 1
        if not out and heartbeat:
            out.append(StreamRecords(replica_id, sess.sync_id, sess.next_offset, sess.next_offset - 1,
                                     self.acked_offset))  # fmt: skip
        return out

    def _chunks(self, replica_id: str, sess: _Session, chunks_max: int) -> list[PrimaryAction]:
        offset = sess.snapshot_offset
        assert offset is not None
        if offset > self.acked_offset or sess.chunks is None:
            return []
        out: list[PrimaryAction] = []
        while len(out) < chunks_max and sess.chunk_seq < sess.chunks:
            last = sess.chunk_seq == sess.chunks - 1
            out.append(SendSnapshotChunk(replica_id, sess.sync_id, offset, sess.chunk_seq, last))
            sess.chunk_seq += 1
        if sess.chunk_seq == sess.chunks:
            sess.snapshot_offset = None
        return out

    def streamable(self) -> int:
        """The last offset that may be streamed: only what is durable here (log matching)."""
        return self.durable

    def wal_keep_from(self) -> int:
        """The furthest compaction may move the log's start: the ISR may still need ``acked + 1`` on."""
        return self.acked_offset + 1

    # --- the acknowledged offset ----------------------------------------------------------
    def _publish(self) -> list[PrimaryAction]:
        """The acknowledged offset's only writer: an :class:`AckUpTo` when it rose."""
        if not self.fenced:
            return []  # acknowledge nothing new until the ISR fence is applied
        hw = self.tracker.high_watermark(self.durable)
        assert hw >= self.acked_offset, (hw, self.acked_offset)
        if hw == self.acked_offset:
            return []
        self.acked_offset = hw
        return [AckUpTo(hw)]

    def _fence(self, now_ms: int) -> list[PrimaryAction]:
        sent = self._fence_sent_ms
        if sent is not None and now_ms - sent < self.fence_retry_ms:
            return []
        self._fence_sent_ms = now_ms
        t = self.tracker
        return [Propose(command("isr_fence", shard_id=t.shard_id, epoch=t.epoch, isr_version=t.isr_version))]

    # --- state for others ---------------------------------------------------------------------
    def wait_count(self, offset: int) -> int:
        """WAIT: how many replicas hold ``offset`` durably."""
        return self.tracker.wait_count(offset)

    def take_reports(self) -> list[str]:
        return self.tracker.take_reports()

    def statistics(self) -> dict[str, Any]:
        return {**self.tracker.statistics(), "acked_offset": self.acked_offset, "fenced": self.fenced,
                "sessions": len(self._sessions)}  # fmt: skip
