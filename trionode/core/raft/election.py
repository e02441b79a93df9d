"""Elections: pre-vote, vote, and the rules for granting either.

Theory of operation. A node whose election timer fires first runs a
*pre-vote* (when enabled): it asks the voters whether they would vote for it
at ``term + 1`` without changing any durable state. Only if a quorum says yes
does it become a candidate, bump its term, vote for itself and ask for real
votes. A node cut off from the group therefore cannot inflate its term and
disrupt the leader when it comes back.

A vote (or pre-vote) is granted only to a candidate whose log is at least as
up to date as ours (Raft §5.4.1), and a real vote at most once per term. The
candidate's new term and self-vote, and a voter's granted vote, are written
to ``term``/``vote``; the RawNode hands them out as hard state in the same
Ready as the messages, and the shell persists before sending.
"""

from typing import TYPE_CHECKING

from trionode.core.raft import replication
from trionode.core.raft.messages import Message, MsgType
from trionode.core.raft.quorum import VoteResult
from trionode.core.raft.role import Role

if TYPE_CHECKING:
    from trionode.core.raft.raft import Raft


def campaign(r: "Raft", *, pre_vote: bool, transfer: bool) -> None:
    """Start a pre-vote or a real election; ``transfer`` skips stickiness at the voters."""
    assert r.promotable(), "only voters campaign"
    assert not (pre_vote and transfer), "a transfer goes straight to a real vote"
    if pre_vote:
        r.become_pre_candidate()
        vote_term, msg_type = r.term + 1, MsgType.PRE_VOTE
    else:
        r.become_candidate()
        vote_term, msg_type = r.term, MsgType.VOTE
    r.tracker.record_vote(r.id, True)
    if _settle(r):
        return  # a single-voter group wins at once
    context = "transfer" if transfer else ""
    for voter in r.tracker.conf.voters:
        if voter != r.id:
            last_index, last_term = r.log.last_index(), r.log.last_term()
            r.send(Message(msg_type, r.id, voter, vote_term, log_term=last_term, index=last_index, context=context))


def _settle(r: "Raft") -> bool:
    """Act on the tally; True if the election ended (won or lost)."""
    result = r.tracker.tally()
    if result is VoteResult.WON:
        if r.role is Role.PRE_CANDIDATE:
            campaign(r, pre_vote=False, transfer=False)
        else:
            r.become_leader()
            replication.bcast_append(r)
        return True
    if result is VoteResult.LOST:
        r.become_follower(r.term, "")
        return True
    return False


def handle_vote_request(r: "Raft", m: Message) -> None:
    # Terms are already settled by Raft.step: a VOTE here has m.term == r.term,
    # a PRE_VOTE has m.term >= r.term.
    pre = m.type is MsgType.PRE_VOTE
    can_vote = r.vote == m.frm or (r.vote == "" and r.lead == "") or (pre and m.term > r.term)
    resp_type = MsgType.PRE_VOTE_RESP if pre else MsgType.VOTE_RESP
    if can_vote and r.log.is_up_to_date(m.index, m.log_term):
        # A pre-vote is granted for the candidate's future term, so it is not mistaken for stale.
        r.send(Message(resp_type, r.id, m.frm, m.term))
        if not pre:
            assert r.term == m.term
            r.election_elapsed = 0
            r.vote = m.frm
        return
    r.send(Message(resp_type, r.id, m.frm, r.term, reject=True))


def handle_vote_response(r: "Raft", m: Message) -> None:
    expected = MsgType.PRE_VOTE_RESP if r.role is Role.PRE_CANDIDATE else MsgType.VOTE_RESP
    if m.type is not expected:
        return  # a late answer from an earlier round
    r.tracker.record_vote(m.frm, not m.reject)
    _settle(r)
