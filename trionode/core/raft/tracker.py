"""The membership in force and what the leader knows about each member.

Theory of operation. The tracker holds the applied :class:`ConfState`, a
:class:`Progress` per member (voters and learners, including this node), and
the votes of the election in progress. Quorum questions (commit index,
election result, check-quorum) are asked over voters only, so learners get
entries but never decide anything.
"""

from trionode.core.raft import quorum
from trionode.core.raft.inflights import Inflights
from trionode.core.raft.messages import ConfState
from trionode.core.raft.progress import Progress


class ProgressTracker:
    def __init__(self, conf: ConfState, inflight_msgs_max: int) -> None:
        assert inflight_msgs_max >= 1
        self.inflight_msgs_max = inflight_msgs_max
        # Invariant: disjoint voters and learners (checked by membership.apply_change).
        self.conf = conf
        # Invariant: keys == voters | learners.
        self.progress: dict[str, Progress] = {}
        # Invariant: only voters' votes are recorded.
        self.votes: dict[str, bool] = {}
        self.set_conf(conf, last_index=0)

    def is_voter(self, node_id: str) -> bool:
        return node_id in self.conf.voters

    def set_conf(self, conf: ConfState, last_index: int) -> None:
        """Install ``conf``: new members start probing right after ``last_index``; gone ones are dropped."""
        self.conf = conf
        members = set(conf.voters) | set(conf.learners)
        for gone in set(self.progress) - members:
            del self.progress[gone]
        for new in sorted(members - set(self.progress)):
            self.progress[new] = Progress(match=0, next=last_index + 1, inflights=Inflights(self.inflight_msgs_max))
        self.votes = {k: v for k, v in self.votes.items() if k in conf.voters}
        assert set(self.progress) == members

    def reset_progress(self, last_index: int, self_id: str) -> None:
        """A new term: forget everything learnt about followers; this node holds its whole log."""
        for node_id, pr in self.progress.items():
            pr.restart_probe(last_index if node_id == self_id else 0, last_index + 1)
            pr.recent_active = node_id == self_id
        assert all(pr.next == last_index + 1 for pr in self.progress.values())

    def committed(self) -> int:
        """The highest index a majority of voters has stored (0 without voters)."""
        if not self.conf.voters:
            return 0
        return quorum.committed_index(self.conf.voters, {k: pr.match for k, pr in self.progress.items()})

    def record_vote(self, node_id: str, granted: bool) -> None:
        if node_id in self.conf.voters and node_id not in self.votes:
            self.votes[node_id] = granted  # the first answer counts; duplicates are ignored

    def tally(self) -> quorum.VoteResult:
        return quorum.vote_result(self.conf.voters, self.votes)

    def quorum_active(self) -> bool:
        active = [k for k, pr in self.progress.items() if pr.recent_active]
        return bool(self.conf.voters) and quorum.has_quorum(self.conf.voters, active)
