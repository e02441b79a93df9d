"""The leader's view of one follower's log: how much matches, what to send next.

Theory of operation. Each follower (and learner) is in one of three states:

- ``probe``: the leader does not know where the logs match. It sends one APP
  at a time and waits (``probe_sent``) for the response or a heartbeat
  response before sending another. A rejection moves ``next`` back, using the
  follower's ``reject_hint`` to skip whole runs of mismatching entries.
- ``replicate``: the logs match up to ``match``. The leader streams APP
  messages optimistically, advancing ``next`` as it sends, bounded by the
  :class:`Inflights` window.
- ``snapshot``: the entries the follower needs were compacted away. A SNAP
  is in flight and nothing else is sent until it is acknowledged (or
  ``snapshot_wait_ticks`` passes an election timeout, when the leader probes
  again so a lost SNAP is retried).

``recent_active`` records whether the follower was heard from since the last
check-quorum round.
"""

from dataclasses import dataclass
from enum import StrEnum

from trionode.core.raft.inflights import Inflights


class ProgressState(StrEnum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    match: int
    next: int
    state: str  # "probe" | "replicate" | "snapshot"
    recent_active: bool


@dataclass(slots=True)
class Progress:
    match: int  # Invariant: 0 <= match < next
    next: int  # Invariant: next >= 1
    inflights: Inflights
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False  # Invariant: False unless state is PROBE
    pending_snapshot: int = 0  # Invariant: 0 unless state is SNAPSHOT; then the SNAP's index
    snapshot_wait_ticks: int = 0  # heartbeat rounds spent waiting in SNAPSHOT
    recent_active: bool = False

    def become_probe(self) -> None:
        # After a snapshot, the follower holds at least the snapshot's index.
        if self.state is ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self._reset_state(ProgressState.PROBE)
        assert self.match < self.next

    def restart_probe(self, match: int, next_index: int) -> None:
        """A new term: start over from what we hold ourselves (``next_index``), knowing ``match``."""
        assert 0 <= match < next_index
        self.match, self.next = match, next_index
        self._reset_state(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._reset_state(ProgressState.REPLICATE)

    def become_snapshot(self, snapshot_index: int) -> None:
        assert snapshot_index > 0
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def _reset_state(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_wait_ticks = 0
        self.inflights.reset()

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def sent_entries(self, last_index: int, count: int) -> None:
        """Record an APP carrying ``count`` entries ending at ``last_index``."""
        if self.state is ProgressState.REPLICATE and count > 0:
            assert last_index + 1 > self.next - 1
            self.next = last_index + 1
            self.inflights.add(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True
        assert self.match < self.next

    def maybe_update(self, index: int) -> bool:
        """An APP_RESP acknowledged ``index``; False if it told us nothing new (stale or duplicate)."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        assert self.match < self.next
        return updated

    def maybe_decrease_to(self, rejected: int, hint: int) -> bool:
        """A follower refused an APP whose previous index was ``rejected``; False if that news is stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1  # the window was optimistic; restart right after match
            return True
        if self.next - 1 != rejected:
            return False  # a reply to an older probe
        self.next = max(min(rejected, hint + 1), self.match + 1)
        self.probe_sent = False
        assert self.match < self.next
        return True

    def status(self) -> ProgressStatus:
        return ProgressStatus(self.match, self.next, self.state.value, self.recent_active)
