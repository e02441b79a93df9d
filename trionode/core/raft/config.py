"""Raft configuration and the errors the core raises to its caller.

Theory of operation. :class:`RaftConfig` is frozen: every bound the core
enforces is a field here, named with its unit last. The errors are operating
errors (a proposal at the wrong node, a refused membership change); the shell
turns them into replies. Programmer errors are assertions, never these.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RaftConfig:
    node_id: str
    election_ticks: int = 10  # randomized timeout in [election_ticks, 2*election_ticks)
    heartbeat_ticks: int = 1
    inflight_msgs_max: int = 64  # pipelined APP messages in flight per follower
    entries_per_msg_max: int = 64
    voters_max: int = 5
    pre_vote: bool = True
    check_quorum: bool = True
    # Proposals beyond this many uncommitted entries are refused (ProposalRefused):
    # a leader cut off from its quorum must not grow its log without bound.
    uncommitted_entries_max: int = 4096
    committed_per_ready_max: int = 1024  # committed entries handed out in one Ready

    def __post_init__(self) -> None:
        assert self.node_id, "a Raft node needs an id"
        assert 0 < self.heartbeat_ticks < self.election_ticks, "heartbeats must come within an election timeout"
        assert self.inflight_msgs_max >= 1 and self.entries_per_msg_max >= 1
        assert self.voters_max >= 1 and self.uncommitted_entries_max >= 1 and self.committed_per_ready_max >= 1


class NotLeader(Exception):
    """A proposal reached a node that is not the leader; ``leader`` is a hint ("" if unknown)."""

    def __init__(self, leader: str, reason: str = "not the leader") -> None:
        super().__init__(reason)
        self.leader = leader


class TransferInProgress(NotLeader):
    """The leader is handing over to ``leader`` and refuses proposals until the transfer ends."""

    def __init__(self, transferee: str) -> None:
        super().__init__(transferee, f"leadership transfer to {transferee} in progress")


class ProposalRefused(Exception):
    """The leader refused a proposal for a bound (too many uncommitted entries); retry later."""


class ConfChangeRefused(Exception):
    """A membership change was refused; the message says why."""


class TransferRefused(Exception):
    """A leadership transfer was refused (target unknown or not a voter); the message says why."""
