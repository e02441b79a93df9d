"""The Raft state machine: roles, terms, timers and the follower's side of the log.

Theory of operation. :class:`Raft` holds one node's volatile and durable
Raft state and reacts to three inputs: ``tick()``, ``step(message)`` and the
leader-side calls made by :mod:`rawnode`. Output goes to ``msgs`` (to send)
and the log's unstable suffix and cursors (to persist and apply); the
RawNode packs both into a Ready, so nothing here leaves the node before the
state it depends on is handed out for persisting.

Roles change only through ``become_follower``, ``become_pre_candidate``,
``become_candidate`` and ``become_leader``. Term rules sit in ``step``: a
message from a higher term makes us a follower of that term (except the
pre-vote family, and vote requests that arrive while we still hear from a
live leader: "leader stickiness"); a message from a lower term is dropped,
though a stale leader is told our term so it steps down. The election rules
live in :mod:`election` and the leader's replication in :mod:`replication`.

Membership changes take effect when applied (``apply_conf_change``); a node
that is not a voter never campaigns.
"""

from collections.abc import Sequence
from typing import Any

from trionode.core.raft import election, membership, replication
from trionode.core.raft.config import RaftConfig
from trionode.core.raft.log import RaftLog
from trionode.core.raft.messages import (
    ConfChange,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MsgType,
    Snapshot,
    SoftState,
)
from trionode.core.raft.role import Role
from trionode.core.raft.tracker import ProgressTracker

LEADER_MESSAGES = (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP)
VOTE_REQUESTS = (MsgType.VOTE, MsgType.PRE_VOTE)


class Raft:
    def __init__(
        self, cfg: RaftConfig, rng: Any, hard_state: HardState, snapshot: Snapshot, entries: Sequence[Entry]
    ) -> None:
        self.id = cfg.node_id
        self.cfg = cfg
        self.rng = rng  # a seeded random.Random-like object: randrange(a, b)
        self.term = hard_state.term  # Invariant: never decreases
        self.vote = hard_state.vote  # Invariant: at most one vote per term ("" = none)
        self.lead = ""
        self.role = Role.FOLLOWER
        self.log = RaftLog(snapshot, entries, hard_state.commit)
        self.tracker = ProgressTracker(snapshot.conf, cfg.inflight_msgs_max)
        self.msgs: list[Message] = []  # Invariant: none addressed to self
        self.election_elapsed = 0  # ticks since the timer was last reset
        self.heartbeat_elapsed = 0
        self.randomized_election_ticks = 0  # Invariant: in [election_ticks, 2*election_ticks)
        self.lead_transferee = ""  # Invariant: "" unless role is LEADER
        self.pending_conf_index = 0  # the leader proposes no CONF entry while this exceeds log.applied
        # (index, conf in force once that index is applied); Invariant: indexes increase.
        self.conf_history: list[tuple[int, ConfState]] = [(snapshot.index, snapshot.conf)]
        self._restore_conf(self.log.slice(snapshot.index + 1, self.log.commit))
        self._reset_election_timer()

    def _restore_conf(self, committed: Sequence[Entry]) -> None:
        # At restart the committed CONF entries take effect at once: membership must
        # be right before the first tick, not only once the shell re-applies them.
        for e in committed:
            if e.kind is EntryKind.CONF:
                self.apply_conf_change(e.index, e.data)

    # --- state views -------------------------------------------------------------------

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.commit)

    def soft_state(self) -> SoftState:
        return SoftState(leader=self.lead, role=self.role_name())

    def role_name(self) -> str:
        if self.role is Role.FOLLOWER and self.id in self.tracker.conf.learners:
            return "learner"
        return self.role.value

    def promotable(self) -> bool:
        return self.tracker.is_voter(self.id)

    def conf_at(self, index: int) -> ConfState:
        return [conf for at, conf in self.conf_history if at <= index][-1]

    # --- output --------------------------------------------------------------------------

    def send(self, m: Message) -> None:
        assert m.to != self.id, "messages to self are handled internally"
        assert m.frm == self.id and m.term > 0
        self.msgs.append(m)

    # --- role transitions ----------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if term != self.term:
            assert term > self.term, "terms never go back"
            self.term = term
            self.vote = ""
        self.lead = ""
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_election_timer()
        self.lead_transferee = ""
        self.tracker.votes = {}
        self.tracker.reset_progress(self.log.last_index(), self.id)

    def _reset_election_timer(self) -> None:
        et = self.cfg.election_ticks
        self.randomized_election_ticks = self.rng.randrange(et, 2 * et)
        assert et <= self.randomized_election_ticks < 2 * et

    def become_follower(self, term: int, lead: str) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def become_pre_candidate(self) -> None:
        assert self.role is not Role.LEADER and self.promotable()
        # A pre-candidate keeps its term and vote: pre-vote changes no durable state.
        self.tracker.votes = {}
        self.lead = ""
        self.role = Role.PRE_CANDIDATE

    def become_candidate(self) -> None:
        assert self.role is not Role.LEADER and self.promotable()
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def become_leader(self) -> None:
        assert self.role is Role.CANDIDATE and self.vote == self.id
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        self.tracker.progress[self.id].become_replicate()
        # Any uncommitted entry may be a CONF change: wait for it before proposing another.
        self.pending_conf_index = self.log.last_index()
        # The NOOP commits every earlier term's entries once it commits (Raft §5.4.2).
        replication.append_entries(self, [(EntryKind.NOOP, None)])

    # --- inputs --------------------------------------------------------------------------

    def tick(self) -> None:
        if self.role is Role.LEADER:
            replication.tick_leader(self)
            return
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_ticks:
            self.election_elapsed = 0
            election.campaign(self, pre_vote=self.cfg.pre_vote, transfer=False)

    def in_lease(self) -> bool:
        """True while we hear from a live leader: vote requests are then ignored (stickiness)."""
        return self.cfg.check_quorum and self.lead != "" and self.election_elapsed < self.cfg.election_ticks

    def step(self, m: Message) -> None:
        if m.to != self.id or m.frm == self.id or m.term <= 0:
            return  # misaddressed or malformed: never crash on network input
        if m.term > self.term and not self._step_higher_term(m):
            return
        if m.term < self.term:
            self._step_lower_term(m)
            return
        if m.type in VOTE_REQUESTS:
            election.handle_vote_request(self, m)
        elif self.role is Role.LEADER:
            replication.step_leader(self, m)
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            self._step_candidate(m)
        else:
            self._step_follower(m)

    def _step_higher_term(self, m: Message) -> bool:
        """Apply the term rules for ``m.term > term``; False if ``m`` must be dropped."""
        if m.type in VOTE_REQUESTS and m.context != "transfer" and self.in_lease():
            return False
        if m.type is MsgType.PRE_VOTE or (m.type is MsgType.PRE_VOTE_RESP and not m.reject):
            return True  # pre-votes are cast for a future term; ours does not move
        self.become_follower(m.term, m.frm if m.type in LEADER_MESSAGES else "")
        return True

    def _step_lower_term(self, m: Message) -> None:
        if m.type in (MsgType.APP, MsgType.HEARTBEAT) and (self.cfg.check_quorum or self.cfg.pre_vote):
            # A leader from an old term would otherwise never learn it is stale:
            # with pre-vote we do not disrupt it by campaigning, so tell it.
            self.send(Message(MsgType.APP_RESP, self.id, m.frm, self.term))
        elif m.type is MsgType.PRE_VOTE:
            self.send(Message(MsgType.PRE_VOTE_RESP, self.id, m.frm, self.term, reject=True))

    def _step_candidate(self, m: Message) -> None:
        if m.type in LEADER_MESSAGES:
            self.become_follower(m.term, m.frm)  # someone won this term
            self._step_follower(m)
        elif m.type in (MsgType.VOTE_RESP, MsgType.PRE_VOTE_RESP):
            election.handle_vote_response(self, m)

    def _step_follower(self, m: Message) -> None:
        if m.type in LEADER_MESSAGES:
            self.election_elapsed = 0
            self.lead = m.frm
        if m.type is MsgType.APP:
            self._handle_append(m)
        elif m.type is MsgType.HEARTBEAT:
            self.log.commit_to(min(m.commit, self.log.last_index()))
            self.send(Message(MsgType.HEARTBEAT_RESP, self.id, m.frm, self.term))
        elif m.type is MsgType.SNAP:
            self._handle_snapshot(m)
        elif m.type is MsgType.TIMEOUT_NOW and self.promotable():
            election.campaign(self, pre_vote=False, transfer=True)

    # --- the follower's log --------------------------------------------------------------

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.commit:
            # Everything up to our commit matches the leader's log already.
            self.send(Message(MsgType.APP_RESP, self.id, m.frm, self.term, index=self.log.commit))
            return
        if not self.log.match_term(m.index, m.log_term):
            last = self.log.last_index()
            hint = last if m.index > last else self.log.conflict_hint(m.index, m.log_term)
            resp = Message(MsgType.APP_RESP, self.id, m.frm, self.term, index=m.index, reject=True, reject_hint=hint)
            self.send(resp)
            return
        conflict = self.log.find_conflict(m.entries)
        if conflict:
            self.log.append(m.entries[conflict - m.entries[0].index :])
        last_new = m.index + len(m.entries)  # not our last index: a longer tail may not match
        self.log.commit_to(min(m.commit, last_new))
        self.send(Message(MsgType.APP_RESP, self.id, m.frm, self.term, index=last_new))

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        assert snap is not None, "a SNAP message carries a snapshot"
        if snap.index <= self.log.commit:
            pass  # stale: we hold everything it covers
        elif self.log.match_term(snap.index, snap.term):
            self.log.commit_to(snap.index)  # our log already has it; just learn it is committed
        else:
            self.log.restore(snap)
            self.tracker.set_conf(snap.conf, self.log.last_index())
            self.conf_history = [(snap.index, snap.conf)]
        self.send(Message(MsgType.APP_RESP, self.id, m.frm, self.term, index=self.log.commit))

    # --- membership ----------------------------------------------------------------------

    def apply_conf_change(self, index: int, cc: ConfChange) -> None:
        """A CONF entry at ``index`` was applied: switch membership (idempotent per index)."""
        if index <= self.conf_history[-1][0]:
            return  # already in force (restart pre-applies committed changes)
        before = membership.members(self.tracker.conf)
        conf = membership.apply_change(self.tracker.conf, cc)
        self.conf_history.append((index, conf))
        self.tracker.set_conf(conf, self.log.last_index())
        if self.role is Role.LEADER and not self.promotable():
            self.become_follower(self.term, "")  # a leader that is no longer a voter steps down
        elif self.role is Role.LEADER:
            self._after_conf_change(membership.members(conf) - before)
        if self.lead_transferee and self.lead_transferee not in conf.voters:
            self.lead_transferee = ""
        assert self.conf_history[-1][1] == self.tracker.conf

    def _after_conf_change(self, joined: set[str]) -> None:
        # A smaller quorum may commit at once; a new member starts probing now, not at the next heartbeat.
        if replication.maybe_commit(self):
            replication.bcast_append(self)
        for node_id in sorted(joined):
            replication.send_append(self, node_id, send_if_empty=True)

    def compact_conf_history(self, index: int) -> None:
        keep = [h for h in self.conf_history if h[0] > index]
        self.conf_history = [(index, self.conf_at(index)), *keep]
