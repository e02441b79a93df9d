"""The replicated log: a snapshot followed by entries, with commit and apply cursors.

Theory of operation. The core keeps the whole live log in memory: the last
snapshot (which stands for every entry up to ``snapshot.index``) and the
entries after it. Three cursors move forward through it:

- ``unstable_from``: entries from here on have not yet been handed out in a
  Ready, so the shell has not persisted them. A truncation of a conflicting
  suffix moves it back, so the replacement is handed out again.
- ``commit``: the highest index known to be stored by a quorum.
- ``applied``: the highest index handed to the shell to apply.

The shell owns the disk; this module only decides what to hand it. A
received snapshot waits in ``pending_snapshot`` until a Ready carries it.
"""

from collections.abc import Sequence

from trionode.core.raft.messages import Entry, Snapshot


class RaftLog:
    def __init__(self, snapshot: Snapshot, entries: Sequence[Entry], commit: int) -> None:
        self.snapshot = snapshot  # Invariant: snapshot.index <= applied <= commit
        # Invariant: entries[i].index == snapshot.index + 1 + i; terms never decrease.
        self.entries: list[Entry] = list(entries)
        self.commit = min(max(commit, snapshot.index), snapshot.index + len(self.entries))
        self.applied = snapshot.index  # Invariant: applied <= commit
        self.unstable_from = self.last_index() + 1  # Invariant: snapshot.index < unstable_from <= last + 1
        self.pending_snapshot: Snapshot | None = None  # received; to hand out in the next Ready
        self._check_contiguous()

    def _check_contiguous(self) -> None:
        for offset, e in enumerate(self.entries):
            assert e.index == self.snapshot.index + 1 + offset, f"log gap at {e.index}"
        assert self.applied <= self.commit <= self.last_index()

    def first_index(self) -> int:
        return self.snapshot.index + 1

    def last_index(self) -> int:
        return self.snapshot.index + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot.term

    def term(self, index: int) -> int | None:
        """The term of entry ``index``; None if it was compacted away or does not exist yet."""
        if index == self.snapshot.index:
            return self.snapshot.term
        if index < self.snapshot.index or index > self.last_index():
            return None
        return self.entries[index - self.snapshot.index - 1].term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries ``lo..hi`` inclusive; every one must be in memory."""
        assert self.snapshot.index < lo, f"entry {lo} was compacted"
        assert hi <= self.last_index()
        base = self.snapshot.index + 1
        return self.entries[lo - base : hi - base + 1]

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: a candidate's log at least as up to date as ours."""
        return last_term > self.last_term() or (last_term == self.last_term() and last_index >= self.last_index())

    def append(self, entries: Sequence[Entry]) -> None:
        """Append ``entries``, first cutting the log at ``entries[0].index`` if it is already there."""
        if not entries:
            return
        first = entries[0].index
        assert self.commit < first <= self.last_index() + 1, f"cannot append at {first}: commit {self.commit}"
        del self.entries[first - self.snapshot.index - 1 :]
        self.entries.extend(entries)
        self.unstable_from = min(self.unstable_from, first)
        assert self.last_index() == entries[-1].index

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """The first index in ``entries`` that is new or has a different term (0 if none)."""
        for e in entries:
            if not self.match_term(e.index, e.term):
                assert e.index > self.commit, f"conflict at committed index {e.index}"
                return e.index
        return 0

    def conflict_hint(self, index: int, term: int) -> int:
        """Where a leader should probe after our entry ``index`` did not have ``term``.

        The largest index <= ``index`` whose term is <= ``term``: entries above it
        cannot match the leader's, so the leader can skip them in one round trip.
        """
        i = min(index, self.last_index())
        while i > self.snapshot.index and (self.term(i) or 0) > term:
            i -= 1
        return max(i, self.snapshot.index)

    def commit_to(self, index: int) -> None:
        if index > self.commit:
            assert index <= self.last_index(), f"commit {index} beyond last index {self.last_index()}"
            self.commit = index

    def unstable(self) -> list[Entry]:
        return self.entries[self.unstable_from - self.snapshot.index - 1 :]

    def next_committed(self, count_max: int) -> list[Entry]:
        """Committed entries not yet applied, at most ``count_max``."""
        lo = max(self.applied, self.snapshot.index) + 1
        hi = min(self.commit, lo + count_max - 1)
        return self.slice(lo, hi) if hi >= lo else []

    def applied_to(self, index: int) -> None:
        assert self.applied <= index <= self.commit, f"applied {index} outside [{self.applied}, {self.commit}]"
        self.applied = index

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log with a received snapshot; the next Ready carries it."""
        assert snapshot.index > self.commit, "a snapshot behind our commit is never installed"
        self.snapshot = snapshot
        self.entries = []
        self.commit = snapshot.index
        self.unstable_from = snapshot.index + 1
        self.pending_snapshot = snapshot

    def compact(self, snapshot: Snapshot) -> None:
        """Drop the prefix covered by ``snapshot`` (taken by the shell at an applied index)."""
        assert self.snapshot.index < snapshot.index <= self.applied, "compact only what was applied"
        assert self.term(snapshot.index) == snapshot.term
        del self.entries[: snapshot.index - self.snapshot.index]
        self.snapshot = snapshot
        self._check_contiguous()
