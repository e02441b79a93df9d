"""A node's role in its current term.

Theory of operation. Exactly one role at a time; ``Raft.become_*`` are the
only writers. "learner" is not a role here: a learner is a follower that is
not a voter (see ``Raft.role_name``).
"""

from enum import StrEnum


class Role(StrEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"
