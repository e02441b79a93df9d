"""The Raft core's public face: inputs in, :class:`Ready` out (etcd's RawNode).

Theory of operation. The shell drives a :class:`RawNode` with ``tick()``,
``step(message)`` and the leader's calls (``propose``, ``propose_conf_change``,
``transfer_leadership``, ``compact``). Whenever ``has_ready()`` it takes a
``ready()``, persists it, sends its messages, applies its committed entries,
and calls ``advance(ready)`` (the contract is spelled out in
:mod:`messages`). Between ``ready()`` and ``advance()`` the node may still be
stepped; anything that produces goes into the next Ready.

A Ready hands out state exactly once: entries from the log's unstable
suffix, a hard state only when it differs from the last one handed out, and
the messages queued since the last Ready. Because messages travel in the
same Ready as the hard state and entries they depend on, "persist before
send" (a vote, a candidacy, an ACK, a truncation) is the shell's ordering,
not a promise this module has to keep elsewhere.

Bootstrap: a founding membership must sit in a snapshot at index 1 or later
(or be given to every founding member). Replication never carries index 0,
so a node that joins later with an empty log would never learn a membership
kept there, and once promoted it would count itself as the only voter.

Restart: the shell passes what it persisted (hard state, snapshot, entries)
and the node resumes with ``applied = snapshot.index``; committed entries
after it are handed out again to be re-applied.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from trionode.core.raft import replication
from trionode.core.raft.config import (
    ConfChangeRefused,
    NotLeader,
    ProposalRefused,
    RaftConfig,
    TransferInProgress,
)
from trionode.core.raft.election import campaign
from trionode.core.raft.membership import refusal
from trionode.core.raft.messages import (
    ConfChange,
    ConfChangeKind,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    Ready,
    Snapshot,
)
from trionode.core.raft.progress import ProgressStatus
from trionode.core.raft.raft import Raft
from trionode.core.raft.role import Role

_FRESH_HARD_STATE = HardState()
_EMPTY_SNAPSHOT = Snapshot()


@dataclass(frozen=True, slots=True)
class RaftStatus:
    id: str
    term: int
    vote: str
    role: str  # "leader" | "follower" | "candidate" | "pre_candidate" | "learner"
    leader: str
    commit: int
    applied: int
    last_index: int
    first_index: int
    conf: ConfState
    progress: dict[str, ProgressStatus]  # the leader's view; empty on other nodes
    lead_transferee: str = ""


class RawNode:
    def __init__(
        self,
        config: RaftConfig,
        rng: Any,
        *,
        hard_state: HardState = _FRESH_HARD_STATE,
        snapshot: Snapshot = _EMPTY_SNAPSHOT,
        entries: Sequence[Entry] = (),
    ) -> None:
        assert all(e.index > snapshot.index for e in entries), "entries start after the snapshot"
        self.raft = Raft(config, rng, hard_state, snapshot, entries)  # read-only for tests and the simulator
        # Invariant: what the shell has been handed (and so has persisted or will before sending).
        self._prev_hard = hard_state
        self._prev_soft = self.raft.soft_state()
        self._outstanding: Ready | None = None  # Invariant: set between ready() and advance()

    # --- read-only views -------------------------------------------------------------------

    @property
    def term(self) -> int:
        return self.raft.term

    @property
    def leader(self) -> str:
        return self.raft.lead

    @property
    def role(self) -> str:
        return self.raft.role_name()

    @property
    def is_leader(self) -> bool:
        return self.raft.role is Role.LEADER

    @property
    def conf(self) -> ConfState:
        return self.raft.tracker.conf

    @property
    def snapshot(self) -> Snapshot:
        return self.raft.log.snapshot

    def status(self) -> RaftStatus:
        r = self.raft
        progress = {k: pr.status() for k, pr in r.tracker.progress.items()} if self.is_leader else {}
        return RaftStatus(
            id=r.id, term=r.term, vote=r.vote, role=r.role_name(), leader=r.lead, commit=r.log.commit,
            applied=r.log.applied, last_index=r.log.last_index(), first_index=r.log.first_index(),
            conf=r.tracker.conf, progress=progress, lead_transferee=r.lead_transferee,
        )  # fmt: skip

    def read_index(self) -> int | None:
        """On a leader that has committed an entry of its own term, its commit index (None otherwise).

        Raft's read-index rule: every entry committed anywhere, before this call, is at or below it.
        """
        log = self.raft.log
        return log.commit if self.is_leader and log.term(log.commit) == self.raft.term else None

    def caught_up(self, node_id: str) -> bool:
        """The leader's view: ``node_id`` holds every committed entry."""
        pr = self.raft.tracker.progress.get(node_id)
        return self.is_leader and pr is not None and pr.match >= self.raft.log.commit

    # --- inputs --------------------------------------------------------------------------

    def tick(self) -> None:
        self.raft.tick()

    def step(self, msg: Message) -> None:
        self.raft.step(msg)

    def campaign(self) -> None:
        """Start an election now (tests, and a shell that wants a prompt first leader); voters only."""
        if self.raft.promotable() and not self.is_leader:
            campaign(self.raft, pre_vote=self.raft.cfg.pre_vote, transfer=False)

    def _check_proposal(self) -> None:
        r = self.raft
        if r.role is not Role.LEADER:
            raise NotLeader(r.lead)
        if r.lead_transferee:
            raise TransferInProgress(r.lead_transferee)
        if r.log.last_index() - r.log.commit >= r.cfg.uncommitted_entries_max:
            raise ProposalRefused(f"{r.cfg.uncommitted_entries_max} entries are waiting to commit")

    def propose(self, data: Any) -> int:
        self._check_proposal()
        index = replication.append_entries(self.raft, [(EntryKind.NORMAL, data)])
        replication.bcast_append(self.raft, send_if_empty=False)
        return index

    def propose_conf_change(self, cc: ConfChange) -> int:
        self._check_proposal()
        r = self.raft
        if r.pending_conf_index > r.log.applied:
            raise ConfChangeRefused("another membership change is pending")
        reason = refusal(r.tracker.conf, cc, r.cfg.voters_max)
        if not reason and cc.kind is ConfChangeKind.PROMOTE and not self.caught_up(cc.node_id):
            reason = f"learner {cc.node_id} has not caught up"
        if not reason and cc.node_id == r.id and cc.kind in (ConfChangeKind.DEMOTE, ConfChangeKind.REMOVE):
            reason = "the leader cannot demote or remove itself; transfer leadership first"
        if reason:
            raise ConfChangeRefused(reason)
        index = replication.append_entries(r, [(EntryKind.CONF, cc)])
        r.pending_conf_index = index
        replication.bcast_append(r, send_if_empty=False)
        return index

    def transfer_leadership(self, to: str) -> None:
        if not self.is_leader:
            raise NotLeader(self.raft.lead)
        replication.transfer_leadership(self.raft, to)

    def transfer_target(self, avoid: Collection[str] = ()) -> str:
        """The voter to hand leadership to: recently heard from, then most caught up ("" if none).

        The leader's choice at a clean shutdown or before removing itself (DESIGN §4): the
        transferee must catch up before it gets TIMEOUT_NOW, so the most caught-up wins.
        """
        r = self.raft
        if not self.is_leader:
            return ""
        ranked = [
            (pr.recent_active, pr.match, node_id) for node_id, pr in r.tracker.progress.items()
            if node_id != r.id and node_id not in avoid and r.tracker.is_voter(node_id)
        ]
        return max(ranked)[2] if ranked else ""

    def compact(self, index: int, data: Any) -> Snapshot:
        """The shell snapshotted its state machine at applied ``index``: drop the log up to it.

        Returns the new :class:`Snapshot` (with the term and membership at ``index``) so the
        shell can persist it; the log keeps serving SNAP from it to lagging members.
        """
        r = self.raft
        if index <= r.log.snapshot.index:
            return r.log.snapshot  # already covered by a newer snapshot
        term = r.log.term(index)
        assert term is not None and index <= r.log.applied, f"compact({index}) beyond applied {r.log.applied}"
        snap = Snapshot(index=index, term=term, conf=r.conf_at(index), data=data)
        r.log.compact(snap)
        r.compact_conf_history(index)
        return snap

    # --- output --------------------------------------------------------------------------

    def has_ready(self) -> bool:
        if self._outstanding is not None:
            return False  # the shell must advance() the Ready it holds first
        r, log = self.raft, self.raft.log
        return bool(
            r.msgs
            or log.pending_snapshot is not None
            or log.unstable_from <= log.last_index()
            or log.commit > max(log.applied, log.snapshot.index)
            or r.soft_state() != self._prev_soft
            or r.hard_state() != self._prev_hard
        )

    def ready(self) -> Ready:
        assert self._outstanding is None, "advance() the previous Ready before taking another"
        r, log = self.raft, self.raft.log
        soft, hard = r.soft_state(), r.hard_state()
        entries = tuple(log.unstable())
        snapshot = log.pending_snapshot
        vote_changed = (hard.term, hard.vote) != (self._prev_hard.term, self._prev_hard.vote)
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._prev_hard else None,
            entries=entries,
            snapshot=snapshot,
            messages=tuple(r.msgs),
            # Safe to apply: each is already persisted or in ``entries`` of this Ready.
            committed=tuple(log.next_committed(r.cfg.committed_per_ready_max)),
            must_sync=bool(entries) or snapshot is not None or vote_changed,
        )
        r.msgs = []
        log.unstable_from = log.last_index() + 1
        log.pending_snapshot = None
        self._prev_soft, self._prev_hard = soft, hard
        self._outstanding = rd
        assert not rd.entries or rd.entries[-1].index == log.last_index()
        return rd

    def advance(self, ready: Ready) -> None:
        """The shell persisted, sent and applied ``ready``: move the apply cursor past it."""
        assert ready is self._outstanding, "advance() takes the Ready last returned by ready()"
        r = self.raft
        if ready.snapshot is not None and ready.snapshot.index > r.log.applied:
            r.log.applied_to(ready.snapshot.index)
        for e in ready.committed:
            if e.kind is EntryKind.CONF:
                r.apply_conf_change(e.index, e.data)
        if ready.committed:
            r.log.applied_to(ready.committed[-1].index)
        self._outstanding = None
        assert r.log.applied <= r.log.commit
