"""Majority arithmetic over a set of voters.

Theory of operation. Two questions need a quorum: which index a majority of
voters has durably stored (the commit index), and whether an election is won,
lost, or still open. Both are pure functions of the voter set and a mapping;
learners never appear in ``voters`` and so never count.
"""

from collections.abc import Iterable, Mapping
from enum import StrEnum


class VoteResult(StrEnum):
    WON = "won"
    LOST = "lost"
    PENDING = "pending"


def majority_size(voters_count: int) -> int:
    assert voters_count >= 1, "a quorum needs at least one voter"
    return voters_count // 2 + 1


def committed_index(voters: Iterable[str], match: Mapping[str, int]) -> int:
    """The highest index stored by a majority of ``voters`` (missing voters count as 0)."""
    indexes = sorted((match.get(v, 0) for v in voters), reverse=True)
    assert indexes, "no voters: nothing can commit"
    # Sorted descending, the q-th largest index is held by at least q voters.
    return indexes[majority_size(len(indexes)) - 1]


def vote_result(voters: Iterable[str], votes: Mapping[str, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer grant."""
    voter_list = list(voters)
    assert voter_list, "an election needs voters"
    q = majority_size(len(voter_list))
    granted = sum(1 for v in voter_list if votes.get(v) is True)
    missing = sum(1 for v in voter_list if v not in votes)
    if granted >= q:
        return VoteResult.WON
    if granted + missing >= q:
        return VoteResult.PENDING
    return VoteResult.LOST


def has_quorum(voters: Iterable[str], active: Iterable[str]) -> bool:
    voter_set = set(voters)
    assert voter_set, "a quorum needs voters"
    return len(voter_set & set(active)) >= majority_size(len(voter_set))
