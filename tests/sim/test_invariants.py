"""The checker on hand-made histories: each invariant passes a sound history and fails a broken one."""

import pytest

from trionode.core.raft.messages import ConfState, HardState
from trionode.sim.invariants import InvariantViolation, SafetyChecker
from trionode.sim.mirror import LogMirror, MirrorEntry


def _log(*terms: int, digest: int = 0) -> LogMirror:
    log = LogMirror()
    log.append([MirrorEntry(i, t, digest + i) for i, t in enumerate(terms, start=1)])
    return log


def _persist(checker: SafetyChecker, node: str, log: LogMirror) -> None:
    checker.on_persist(node, [(i, log.term_at(i) or 0, log.chain_at(i) or 0) for i in range(1, log.last_index + 1)])


def test_a_sound_history_passes() -> None:
    checker, a, b = SafetyChecker(), _log(1, 1, 2), _log(1, 1, 2)
    _persist(checker, "a", a)
    _persist(checker, "b", b)
    checker.on_leader("a", 2, a)
    checker.on_commit("a", 3, a, voters=("a", "b", "c"), is_leader=True)
    checker.on_commit("b", 3, b, voters=("a", "b", "c"), is_leader=False)
    for node in ("a", "b"):
        for i in (1, 2, 3):
            checker.on_apply(node, i, a.term_at(i) or 0, 100 + i)
    checker.check_durable_quorum({"a": a, "b": b, "c": LogMirror()})
    checker.on_leader("b", 3, b)


def test_two_leaders_in_one_term() -> None:
    checker = SafetyChecker()
    checker.on_leader("a", 2, LogMirror())
    with pytest.raises(InvariantViolation, match="election safety"):
        checker.on_leader("b", 2, LogMirror())


def test_log_matching() -> None:
    checker = SafetyChecker()
    _persist(checker, "a", _log(1, 2))
    with pytest.raises(InvariantViolation, match="log matching"):
        _persist(checker, "b", _log(1, 2, digest=7))  # same (index, term), different entry


def test_a_commit_that_disagrees() -> None:
    checker, a, b = SafetyChecker(), _log(1, 1), _log(1, 1, digest=9)
    checker.on_commit("a", 2, a, voters=("a",), is_leader=True)
    with pytest.raises(InvariantViolation, match="committed entry changed"):
        checker.on_commit("b", 2, b, voters=("a",), is_leader=True)


def test_leader_completeness() -> None:
    checker, a = SafetyChecker(), _log(1, 1, 1)
    checker.on_commit("a", 3, a, voters=("a", "b", "c"), is_leader=True)
    with pytest.raises(InvariantViolation, match="leader completeness"):
        checker.on_leader("b", 2, _log(1))


def test_state_machine_safety() -> None:
    checker = SafetyChecker()
    checker.on_apply("a", 1, 1, 100)
    with pytest.raises(InvariantViolation, match="state machine safety"):
        checker.on_apply("b", 1, 1, 101)
    with pytest.raises(InvariantViolation, match="expected 2"):
        checker.on_apply("a", 3, 1, 100)  # a gap


def test_committed_entry_lost_from_the_quorum() -> None:
    checker, a = SafetyChecker(), _log(1, 1)
    checker.on_commit("a", 2, a, voters=("a", "b", "c"), is_leader=True)
    checker.check_durable_quorum({"a": a, "b": _log(1, 1), "c": LogMirror()})
    with pytest.raises(InvariantViolation, match="committed entry lost"):
        checker.check_durable_quorum({"a": a, "b": _log(1), "c": LogMirror()})


def test_restart_that_loses_synced_state() -> None:
    checker = SafetyChecker()
    checker.on_restart("a", _log(1, 1), HardState(1, "a", 2), _log(1, 1), HardState(1, "a", 2))
    with pytest.raises(InvariantViolation, match="recovered no entry 2"):
        checker.on_restart("a", _log(1, 1), HardState(1, "a", 2), _log(1), HardState(1, "a", 1))
    with pytest.raises(InvariantViolation, match="synced term 3"):
        checker.on_restart("a", _log(1), HardState(3, "b", 0), _log(1), HardState(3, "c", 0))


def test_one_primary_per_shard_epoch_and_cluster_problems() -> None:
    checker = SafetyChecker()
    checker.on_cluster_state("a", [], [("s1", 1, "p1")])
    checker.on_cluster_state("b", [], [("s1", 1, "p1"), ("s1", 2, "p2")])
    with pytest.raises(InvariantViolation, match="one primary per epoch"):
        checker.on_cluster_state("c", [], [("s1", 2, "p3")])
    with pytest.raises(InvariantViolation, match="slot 7 has two owners"):
        checker.on_cluster_state("a", ["slot 7 has two owners"], [])


def test_state_digests_at_equal_indexes() -> None:
    checker = SafetyChecker()
    checker.on_state_digest("a", 10, 1234)
    checker.on_state_digest("b", 10, 1234)
    with pytest.raises(InvariantViolation, match="different cluster states"):
        checker.on_state_digest("c", 10, 4321)


def test_membership_agreement_at_equal_indexes() -> None:
    checker = SafetyChecker()
    checker.on_membership("a", 1, ConfState(voters=("a",)))
    checker.on_membership("b", 1, ConfState(voters=("a",)))
    with pytest.raises(InvariantViolation, match="membership agreement: c and a"):
        checker.on_membership("c", 1, ConfState(learners=("c",)))
