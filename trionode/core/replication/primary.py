"""The primary's side of replication: who holds what, the high watermark, ISR proposals (DESIGN §5.3).

Theory of operation
-------------------
One :class:`PrimaryTracker` per shard on its primary, for one shard epoch. It
is pure bookkeeping driven by the shell:

- ``on_sync_request`` answers a replica's (re)connect: partial resync from the
  divergence point when the WAL still reaches back to it, full sync otherwise;
- ``on_ack`` records a replica's durable offset for its current session;
- ``high_watermark(local_durable)`` is the acknowledged offset: the minimum of
  the durable offsets of the ISR members, the primary's own included (S1), and
  of a replica whose expansion is proposed (Kafka's "maximal ISR", KIP-497:
  otherwise writes acknowledged between the proposal and its commit would be
  missing on a member that could then be promoted). It never decreases;
- ``isr_changes(now_ms)`` returns ISR shrink/expand commands for the shell to
  *propose* to Raft; the tracker never changes the ISR itself. The ISR changes
  only through ``set_config``, called with the applied Raft configuration.
  So while an ISR member lags, the watermark waits for it; only once the
  shrink is committed and applied does it move on without it.

Rules:

- shrink an ISR member (never the primary) that is loading (a full sync, or a
  request that says its data is junk; it reports 0, S5) at once, or whose
  *lag* exceeds ``lag_timeout_ms``. The lag is measured from
  the first record it has not acknowledged: the time since that record was
  appended here (``set_log_end``), or since this tracker started watching the
  replica if the record is older. A replica that holds everything has no lag,
  however long nothing is written (an idle shard keeps its ISR, issue 12), and
  one that keeps pace under a steady load lags by about one round trip;
- expand a replica outside the ISR only once it has caught up since its last
  sync, is not loading and is acknowledging (S8);
- at most one proposal in flight per shard (ISR commands are a compare-and-set
  on ``isr_version``, so a second one at the same version could only fail). It
  ends when ``set_config`` shows the ISR version moved (or the node left the
  replica set), or on ``proposal_done`` once the shell saw it applied and
  refused. A proposal that may still commit is never forgotten: after
  ``proposal_retry_ms`` the same command is returned again (a proposal lost
  with a Raft leader), and a proposed expansion keeps holding the watermark.

At a promotion the shell cuts the node's history back to its applied log end,
appends ``(epoch, applied_end + 1)`` and persists it before the first write of
the epoch; then it builds the tracker, whose ``log_end`` is the durable end and
may still lag behind that start.

What it leaves to its driver (``primary_driver.py``, run by both shells):
streaming (from ``keep_offset + 1`` of the reply, or a snapshot and then its
tail, each message stamped with the session's ``sync_id``); heartbeats (an
empty ``Records``) well within ``lag_timeout_ms``; streaming only records that
are durable locally (see ``history``: log matching); calling ``set_log_end``
before it streams a record; the ISR fence; and to the shell: keeping the WAL
back to ``high_watermark() + 1`` so that no ISR member ever needs a full sync,
logging ``take_reports()``, dropping the tracker once ``deposed`` (a newer
epoch exists: it must not acknowledge anything more, S2). A fresh tracker
(after a restart) knows no replica offsets: its watermark starts at 0,
and records in the WAL are not acknowledged until the ISR confirms them.
"""

from collections import deque
from dataclasses import dataclass
from typing import Any

from trionode import limits
from trionode.core.cluster.commands import command
from trionode.core.replication.history import EpochHistory, divergence
from trionode.core.replication.messages import Ack, SyncRefused, SyncReply, SyncRequest

reports_max = 256  # protocol violations kept for the shell's log; older ones are dropped
append_marks_max = 1024  # (log end, ms) marks kept for lag measurement; the oldest two merge beyond this
proposal_retry_ms = 10_000  # a proposal not reported done is forgotten (and may be made again) after this

CONNECTING, SYNCING, LOADING, STREAMING = "connecting", "syncing", "loading", "streaming"


@dataclass(slots=True)
class _Follower:
    node_id: str
    sync_id: int = -1  # the session acks must name; -1: none yet with this tracker
    state: str = CONNECTING
    offset: int = 0  # durable offset acknowledged in this session. Invariant: <= log_end; 0 while loading.
    target: int = 0  # the primary's log end at the sync: reaching it ends "syncing"
    since_ms: int | None = None  # when this tracker started watching it (the grace period)
    last_ack_ms: int | None = None
    caught_up_ms: int | None = None  # last moment it held all the primary had; None: not since its sync
    prev_ack_ms: int | None = None
    prev_ack_log_end: int = 0


class PrimaryTracker:
    def __init__(
        self,
        shard_id: str,
        my_id: str,
        epoch: int,
        history: EpochHistory,
        log_start: int,
        log_end: int,
        replica_ids: tuple[str, ...] | list[str],
        isr_ids: tuple[str, ...] | list[str],
        isr_version: int,
        lag_timeout_ms: int = limits.replica_lag_timeout_ms,
    ) -> None:
        assert history.last_epoch() == epoch, f"the primary's history must end with its epoch {epoch}"
        # Not ``history.last_start() <= log_end + 1``: ``log_end`` is the durable end, and a primary
        # promoted with records of earlier epochs appended but not yet durable starts its epoch after
        # them (the driver checks the history against the appended end; log_end catches up).
        assert 1 <= log_start <= log_end + 1, (log_start, log_end)
        assert lag_timeout_ms > 0
        self.shard_id, self.my_id, self.epoch = shard_id, my_id, epoch
        self.history = history
        self.log_start, self.log_end = log_start, log_end
        self.lag_timeout_ms = lag_timeout_ms
        self.deposed = False  # Invariant: once True, the watermark never moves again.
        self._hw = 0  # Invariant: never decreases.
        self._now_ms = 0  # the latest time an input carried; never decreases
        # When the log end moved: (end, ms) means records up to ``end`` were appended by ``ms``.
        # Records up to ``_marks_floor`` have no mark (appended before, or pruned): due since ``since_ms``.
        self._marks: deque[tuple[int, int]] = deque()
        self._marks_floor = log_end
        self._followers: dict[str, _Follower] = {}
        self._pending: tuple[str, dict[str, Any], int] | None = None  # (node_id, command, proposed at ms)
        self._reports: deque[str] = deque(maxlen=reports_max)
        self.replica_ids: tuple[str, ...] = ()
        self.isr_ids: tuple[str, ...] = ()
        self.isr_version = -1
        self.set_config(epoch, my_id, replica_ids, isr_ids, isr_version)

    # --- configuration and positions ---------------------------------------------------
    def set_config(
        self,
        epoch: int,
        primary_id: str,
        replica_ids: tuple[str, ...] | list[str],
        isr_ids: tuple[str, ...] | list[str],
        isr_version: int,
    ) -> bool:
        """Adopt the shard's applied Raft configuration; False (and ``deposed``) once we are not its primary."""
        assert epoch >= self.epoch, f"configuration went back from epoch {self.epoch} to {epoch}"
        if epoch != self.epoch or primary_id != self.my_id:
            self._depose(f"the configuration names {primary_id} primary at epoch {epoch}")
            return False
        assert self.my_id in isr_ids and self.my_id not in replica_ids, "the primary is in its ISR, not a replica"
        assert set(isr_ids) <= {self.my_id, *replica_ids}
        self.replica_ids, self.isr_ids = tuple(replica_ids), tuple(isr_ids)
        if isr_version != self.isr_version or (self._pending and self._pending[0] not in self.replica_ids):
            self._pending = None  # applied, or can never apply now (compare-and-set on the version)
        self.isr_version = isr_version
        self._followers = {r: self._followers.get(r) or _Follower(r) for r in self.replica_ids}
        return True

    def set_log_end(self, log_end: int, now_ms: int | None = None) -> None:
        """The primary may stream up to ``log_end`` (call before streaming a record), appended by ``now_ms``.

        Without ``now_ms`` the latest time an input carried stands in: earlier than the truth,
        so a lag measured from it errs towards shrinking, never towards keeping a laggard.
        """
        assert log_end >= self.log_end, f"the log end went back from {self.log_end} to {log_end}"
        if log_end > self.log_end:
            self._now_ms = max(self._now_ms, now_ms if now_ms is not None else 0)
            self._marks.append((log_end, self._now_ms))
            if len(self._marks) > append_marks_max:
                # Merge the two oldest under the earlier time: lags only grow (the safe side).
                (_, first_ms), (end, _) = self._marks.popleft(), self._marks.popleft()
                self._marks.appendleft((end, first_ms))
        self.log_end = log_end

    def _due_ms(self, f: "_Follower") -> int | None:
        """Since when ``f`` owes an ack for a record it lacks; None: it holds everything."""
        assert f.since_ms is not None
        first_missing = f.offset + 1
        if first_missing > self.log_end:
            return None
        if first_missing <= self._marks_floor:
            return f.since_ms
        appended_ms = next(ms for end, ms in self._marks if end >= first_missing)
        return max(f.since_ms, appended_ms)

    def _prune_marks(self) -> None:
        """Forget marks no ISR member can still need (it acknowledged past them)."""
        held = [self._followers[n].offset for n in self.isr_ids if n != self.my_id]
        low = min(held, default=self.log_end)
        while self._marks and self._marks[0][0] <= low:
            self._marks_floor = self._marks.popleft()[0]

    def _depose(self, why: str) -> None:
        if not self.deposed:
            self.deposed = True
            self._report(f"deposed at epoch {self.epoch}: {why}")

    def _report(self, line: str) -> None:
        self._reports.append(f"shard {self.shard_id} epoch {self.epoch}: {line}")

    def note(self, line: str) -> None:
        """A decision of the driver worth a log line."""
        self._report(line)

    def take_reports(self) -> list[str]:
        """Protocol violations and decisions worth a log line, oldest first."""
        out = list(self._reports)
        self._reports.clear()
        return out

    # --- inputs -----------------------------------------------------------------------------
    def on_sync_request(self, req: SyncRequest, log_start: int, log_end: int) -> SyncReply | SyncRefused:
        """Answer a replica's (re)connect. ``log_start`` is the first offset still in the WAL."""
        assert 1 <= log_start <= log_end + 1
        self.set_log_end(log_end)
        self.log_start = log_start

        def refuse(reason: str) -> SyncRefused:
            return SyncRefused(req.shard_id, self.epoch, reason, req.sync_id)

        if req.shard_id != self.shard_id:
            return refuse(f"wrong_shard: this node is primary of {self.shard_id}")
        if req.epoch_seen > self.epoch:
            self._depose(f"replica {req.replica_id} has seen epoch {req.epoch_seen}")
        if self.deposed:
            return refuse(f"not_primary: epoch {self.epoch} is over")
        follower = self._followers.get(req.replica_id)
        if follower is None:
            return refuse(f"not_replica: {req.replica_id} is not a replica of shard {self.shard_id}")
        # A replica that has seen only an older epoch is welcome: it learns ours from the reply
        # (a deposed primary rejoining this way is how its unacknowledged suffix gets cut).
        keep = divergence(self.history, log_end, req.history, req.log_end)
        assert keep <= min(log_end, req.log_end)
        partial = keep >= log_start - 1
        if keep < follower.offset:
            self._report(f"replica {req.replica_id} resyncs at {keep} below its acknowledged {follower.offset}")
        follower.sync_id, follower.target = req.sync_id, log_end
        # Nothing is known durable there until it acks in this session: ``keep`` may cover records it
        # received but never fsynced, and a full sync discards everything (S5).
        follower.offset = 0
        # A replica whose data is junk (it discarded everything: a cut below its snapshot, or a
        # sync cut short) reports 0 until it has caught up, as one in a full sync does: loading
        # (unless there is nothing to catch up: its acks of 0 would keep it loading for good).
        follower.state = LOADING if not partial or (req.loading and log_end > 0) else SYNCING
        follower.caught_up_ms = follower.prev_ack_ms = None
        if not partial:
            self._report(f"replica {req.replica_id} needs a full sync: keep {keep}, WAL starts at {log_start}")
        elif follower.state == LOADING:
            self._report(f"replica {req.replica_id} is loading: it syncs from {keep} and holds nothing until then")
        mode = "partial" if partial else "full"
        return SyncReply(self.shard_id, self.epoch, mode, keep if partial else 0, self.history, log_end, req.sync_id)

    def on_ack(self, ack: Ack, now_ms: int) -> bool:
        """Record a replica's durable offset; False (ignored) for acks of another session, epoch or shard."""
        follower = self._followers.get(ack.replica_id)
        if ack.shard_id != self.shard_id or follower is None:
            return False
        if ack.epoch > self.epoch:
            self._depose(f"replica {ack.replica_id} acknowledges at epoch {ack.epoch}")
        if self.deposed or ack.epoch != self.epoch or ack.sync_id != follower.sync_id:
            return False
        if ack.durable_offset > self.log_end:
            self._report(f"replica {ack.replica_id} acknowledged {ack.durable_offset} past log end {self.log_end}")
            return False
        follower.last_ack_ms = now_ms
        self._now_ms = max(self._now_ms, now_ms)
        if follower.state == LOADING:
            if ack.durable_offset == 0:
                return True  # alive, still loading
            follower.state = SYNCING
        follower.offset = max(follower.offset, ack.durable_offset)
        if follower.offset >= self.log_end:
            follower.caught_up_ms = now_ms
        elif follower.prev_ack_ms is not None and follower.offset >= follower.prev_ack_log_end:
            follower.caught_up_ms = max(follower.caught_up_ms or 0, follower.prev_ack_ms)
        follower.prev_ack_ms, follower.prev_ack_log_end = now_ms, self.log_end
        if follower.state == SYNCING and follower.offset >= follower.target:  # acked what it was behind
            follower.state = STREAMING
        return True

    def proposal_done(self, node_id: str) -> None:
        """The proposal about ``node_id`` was applied and refused (call ``set_config`` first when accepted).

        Not for a proposal that timed out: it may still commit; the tracker re-proposes it.
        """
        if self._pending is not None and self._pending[0] == node_id:
            self._pending = None

    # --- outputs ----------------------------------------------------------------------------
    def high_watermark(self, local_durable: int) -> int:
        """The acknowledged offset: durable on every ISR member. It never decreases."""
        assert 0 <= local_durable <= self.log_end, (local_durable, self.log_end)
        if self.deposed:
            return self._hw
        hw = local_durable
        for node_id in self.isr_ids:
            if node_id != self.my_id:
                hw = min(hw, self._followers[node_id].offset)
        if self._pending is not None and self._pending[1]["op"] == "isr_expand":
            hw = min(hw, self._followers[self._pending[0]].offset)
        elif (joining := self._joining()) is not None:
            # A caught-up replica about to join holds the watermark where it is until it
            # reaches it: under a steady write load it would otherwise stay one round trip
            # behind the watermark forever and never qualify for the ISR (S8 needs offset >= hw).
            hw = min(hw, max(self._hw, joining.offset))
        self._hw = max(self._hw, hw)
        return self._hw

    def _joining(self) -> "_Follower | None":
        """A replica that qualifies for the ISR but for its offset (see ``_expand_candidate``)."""
        for node_id in sorted(set(self.replica_ids) - set(self.isr_ids)):
            f = self._followers[node_id]
            fresh = f.last_ack_ms is not None and self._now_ms - f.last_ack_ms <= self.lag_timeout_ms
            if f.state == STREAMING and f.caught_up_ms is not None and fresh:
                return f
        return None

    def wait_count(self, offset: int) -> int:
        """WAIT: how many replicas (not the primary) hold ``offset`` durably."""
        return sum(1 for f in self._followers.values() if f.state != LOADING and f.offset >= offset)

    def isr_changes(self, now_ms: int) -> list[dict[str, Any]]:
        """At most one ISR command to propose to Raft (shrinks first); [] when none or one is in flight.

        A tracker checks the rules only here, so the shell calls it every ``repl_tick_ms``.
        """
        self._now_ms = max(self._now_ms, now_ms)
        if self.deposed:
            return []
        if self._pending is not None:
            node_id, cmd, proposed_ms = self._pending
            if now_ms - proposed_ms < proposal_retry_ms:
                return []
            self._pending = (node_id, cmd, now_ms)
            return [dict(cmd)]
        for f in self._followers.values():
            if f.since_ms is None:
                f.since_ms = now_ms
            if f.state != LOADING and f.sync_id != -1 and f.offset >= self.log_end:
                f.caught_up_ms = now_ms  # nothing to send it: idle and level
        self._prune_marks()
        proposal = self._shrink_candidate(now_ms)
        op = "isr_shrink"
        if proposal is None:
            proposal, op = self._expand_candidate(now_ms), "isr_expand"
        if proposal is None:
            return []
        cmd = command(op, shard_id=self.shard_id, epoch=self.epoch, isr_version=self.isr_version, node_id=proposal)
        self._pending = (proposal, cmd, now_ms)
        self._report(f"proposing {op} of {proposal} at ISR version {self.isr_version}")
        return [dict(cmd)]

    def _shrink_candidate(self, now_ms: int) -> str | None:
        for node_id in sorted(self.isr_ids):
            if node_id == self.my_id:
                continue
            f = self._followers[node_id]
            due_ms = self._due_ms(f)
            if f.state == LOADING or (due_ms is not None and now_ms - due_ms > self.lag_timeout_ms):
                return node_id
        return None

    def _expand_candidate(self, now_ms: int) -> str | None:
        for node_id in sorted(set(self.replica_ids) - set(self.isr_ids)):
            f = self._followers[node_id]
            fresh = f.last_ack_ms is not None and now_ms - f.last_ack_ms <= self.lag_timeout_ms
            if f.state == STREAMING and f.caught_up_ms is not None and fresh and f.offset >= self._hw:
                return node_id
        return None

    def replica_status(self) -> dict[str, dict[str, Any]]:
        """Per replica, for INFO replication and ``trionode status``."""
        return {
            f.node_id: {
                "offset": f.offset,
                "lag": self.log_end - f.offset,
                "in_isr": f.node_id in self.isr_ids,
                "state": f.state,
            }
            for f in self._followers.values()
        }

    def statistics(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "log_end": self.log_end,
            "high_watermark": self._hw,
            "isr_version": self.isr_version,
            "deposed": self.deposed,
            "pending_proposal": self._pending[0] if self._pending else None,
        }
