"""Unit tests for the small pieces: inflights, progress, quorum, membership, log."""

import pytest

from tests.core.raft.harness import Env
from trionode.core.raft.inflights import Inflights
from trionode.core.raft.log import RaftLog
from trionode.core.raft.membership import apply_change, refusal
from trionode.core.raft.messages import ConfChange, ConfChangeKind, ConfState, Entry, Snapshot
from trionode.core.raft.progress import Progress, ProgressState
from trionode.core.raft.quorum import VoteResult, committed_index, has_quorum, majority_size, vote_result


def test_inflights_fill_free_and_reset() -> None:
    w = Inflights(3)
    for i in (5, 7, 9):
        w.add(i)
    assert w.full() and w.as_tuple() == (5, 7, 9)
    w.free_le(7)
    assert w.as_tuple() == (9,) and not w.full()
    w.free_first_one()
    assert len(w) == 0
    with pytest.raises(AssertionError):
        w.add(9)
        w.add(8)  # indexes must grow


def _progress(match: int = 0, nxt: int = 1) -> Progress:
    return Progress(match=match, next=nxt, inflights=Inflights(2))


def test_probe_sends_one_at_a_time_and_backs_off_with_the_hint() -> None:
    pr = _progress(0, 11)
    pr.sent_entries(12, 2)
    assert pr.is_paused() and pr.next == 11  # probing does not move next optimistically
    assert not pr.maybe_decrease_to(8, 3), "a reply to an older probe is stale"
    assert pr.maybe_decrease_to(10, 3)
    assert pr.next == 4 and not pr.is_paused()


def test_replicate_pipelines_up_to_the_window() -> None:
    pr = _progress(5, 6)
    pr.become_replicate()
    pr.sent_entries(8, 3)
    pr.sent_entries(10, 2)
    assert pr.next == 11 and pr.is_paused()
    assert pr.maybe_update(8) and pr.match == 8
    pr.inflights.free_le(8)
    assert not pr.is_paused()
    assert not pr.maybe_decrease_to(7, 0), "rejections at or below match are stale"
    assert pr.maybe_decrease_to(9, 0) and pr.next == 9


def test_snapshot_state_pauses_until_acknowledged() -> None:
    pr = _progress(2, 3)
    pr.become_snapshot(20)
    assert pr.is_paused() and pr.state is ProgressState.SNAPSHOT
    pr.become_probe()
    assert pr.next == 21, "after a snapshot the follower is assumed to hold it"


@pytest.mark.parametrize(
    ("matches", "expected"), [((5,), 5), ((5, 3), 3), ((9, 5, 1), 5), ((9, 8, 2, 1), 2), ((7, 7, 6, 1, 1), 6)]
)
def test_committed_index_is_held_by_a_majority(matches: tuple[int, ...], expected: int) -> None:
    voters = [str(i) for i in range(len(matches))]
    assert committed_index(voters, dict(zip(voters, matches, strict=True))) == expected


def test_vote_results_and_quorum() -> None:
    v = ["a", "b", "c"]
    assert majority_size(3) == 2 and majority_size(4) == 3
    assert vote_result(v, {"a": True}) is VoteResult.PENDING
    assert vote_result(v, {"a": True, "b": True}) is VoteResult.WON
    assert vote_result(v, {"a": True, "b": False, "c": False}) is VoteResult.LOST
    assert vote_result(v, {"x": True, "y": True}) is VoteResult.PENDING, "non-voters never count"
    assert has_quorum(v, ["a", "c", "learner"]) and not has_quorum(v, ["a", "learner"])


def test_membership_refusals_and_changes() -> None:
    conf = ConfState(voters=("a",), learners=("b",))
    assert refusal(conf, ConfChange(ConfChangeKind.REMOVE, "a"), 5) == "cannot remove the last voter"
    assert refusal(conf, ConfChange(ConfChangeKind.DEMOTE, "a"), 5) == "cannot demote the last voter"
    assert "exceed 1 voters" in refusal(conf, ConfChange(ConfChangeKind.PROMOTE, "b"), 1)
    assert "already a member" in refusal(conf, ConfChange(ConfChangeKind.ADD_LEARNER, "a"), 5)
    assert "not a member" in refusal(conf, ConfChange(ConfChangeKind.REMOVE, "z"), 5)
    promoted = apply_change(conf, ConfChange(ConfChangeKind.PROMOTE, "b"))
    assert promoted == ConfState(voters=("a", "b"))
    assert apply_change(promoted, ConfChange(ConfChangeKind.PROMOTE, "zz")) == promoted, "stale changes are no-ops"


def _log(*terms: int) -> RaftLog:
    return RaftLog(Snapshot(), [Entry(i + 1, t) for i, t in enumerate(terms)], commit=0)


def test_log_truncates_a_conflicting_suffix_and_rewinds_unstable() -> None:
    log = _log(1, 1, 2, 2)
    log.unstable_from = 5  # everything was handed out
    assert log.find_conflict([Entry(2, 1), Entry(3, 3)]) == 3
    log.append([Entry(3, 3)])
    assert [e.term for e in log.entries] == [1, 1, 3] and log.unstable_from == 3
    assert [e.index for e in log.unstable()] == [3]


def test_log_conflict_hint_skips_a_whole_term() -> None:
    log = _log(1, 1, 3, 3, 3)
    assert log.conflict_hint(5, 2) == 2  # the leader has term 2 at 5: our term-3 run cannot match
    assert log.is_up_to_date(5, 3) and not log.is_up_to_date(9, 2)


def test_log_compaction_and_snapshot_restore() -> None:
    log = _log(1, 1, 2, 2)
    log.commit_to(3)
    log.applied_to(3)
    log.compact(Snapshot(index=2, term=1))
    assert log.first_index() == 3 and log.term(2) == 1 and log.term(1) is None
    log.restore(Snapshot(index=10, term=4))
    assert log.last_index() == 10 and log.commit == 10 and log.pending_snapshot is not None
    with pytest.raises(AssertionError):
        log.compact(Snapshot(index=11, term=4))  # nothing beyond applied can be compacted


def _stabilize(env: Env) -> None:
    for _ in range(100):
        busy = False
        for n in env.live():
            busy |= bool(env.deliver(n))
            while env.node(n).has_ready():
                env.process_ready(n)
                busy = True
        if not busy:
            return
    raise AssertionError("did not settle")


def test_the_leader_hands_over_to_the_most_caught_up_voter() -> None:
    env = Env()
    for n in ("1", "2", "3"):
        env.add_node(n, ConfState(voters=("1", "2", "3")), election_ticks=5)
    env.node("1").campaign()
    _stabilize(env)
    leader = env.node("1")
    env.groups = [{"1", "2"}, {"3"}]  # 3 misses what follows
    leader.propose({"op": "x"})
    _stabilize(env)
    assert leader.transfer_target() == "2" and leader.transfer_target(avoid={"2"}) == "3"
    assert env.node("2").transfer_target() == ""  # only a leader hands over
    leader.transfer_leadership("2")
    _stabilize(env)
    assert env.node("2").is_leader and not leader.is_leader


def test_read_index_waits_for_an_entry_of_the_leaders_own_term() -> None:
    env = Env()
    for n in ("1", "2", "3"):
        env.add_node(n, ConfState(voters=("1", "2", "3")), election_ticks=5)
    env.node("1").campaign()
    assert env.node("1").read_index() is None  # not leader yet
    elected_without_commit = False
    for _ in range(20):  # step until the moment it is elected: its term's no-op is not committed yet
        for n in env.live():
            env.deliver(n)
            while env.node(n).has_ready():
                env.process_ready(n)
            if env.node("1").is_leader and not elected_without_commit:
                elected_without_commit = env.node("1").read_index() is None
    assert env.node("1").is_leader and elected_without_commit
    _stabilize(env)
    leader = env.node("1")
    assert leader.read_index() == leader.status().commit > 0
    assert env.node("2").read_index() is None  # only a leader answers
