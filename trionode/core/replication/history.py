"""Stream positions, the epoch history, and where two logs diverge (DESIGN §5.2).

Theory of operation
-------------------
A shard's records have dense offsets 1..N. Each record was written by the
primary of some shard epoch. :class:`EpochHistory` is Kafka's leader-epoch
cache: the ordered list of ``(epoch, start_offset)``, the first offset written
in each epoch. Offset ``o`` belongs to the last entry whose start is ``<= o``.

The whole protocol rests on one property, **log matching**: an
``(offset, epoch)`` pair names one record forever. The primary of an epoch is
unique (S2) and only appends during its epoch, and a replica only holds records
of an epoch that it copied from that epoch's primary after a sync that cut
everything past the common prefix. So two logs that agree on the epoch of
offset ``o`` hold identical records at ``1..o``. What this asks of the shells:

- a primary streams a record only once it is durable on its own disk (or it
  never writes again in an epoch in which it crashed): otherwise a crash could
  take back offset ``o`` of epoch ``e`` and reuse it for another record while a
  replica keeps the first one;
- a node persists its history no later than the records it describes (a new
  entry before the first record of its epoch), and after a crash cuts the
  history back to the recovered log end (``truncate_after(log_end)``).

:func:`divergence` therefore compares the two histories offset by offset, as
piecewise-constant functions, and returns the last offset before the first
place where the epochs differ (or where either log ends). That is exactly the
length of the common prefix under log matching, and never more than it
whatever the histories hold (an offset of unknown epoch never matches). The
walk is linear in the number of entries; the follower's whole history travels
in its sync request, so one round trip suffices (Kafka's OffsetsForLeaderEpoch
takes several when histories interleave badly; see the tests).

Invariants of an :class:`EpochHistory`: epochs strictly increase, start offsets
strictly increase, every start is ``>= 1``, at most ``history_entries_max``
entries. An epoch that wrote nothing is replaced by the next epoch starting at
the same offset; the answers of :meth:`EpochHistory.epoch_at` and
:meth:`EpochHistory.end_offset_for` do not change by it.
"""

from bisect import bisect_right
from typing import Any

from trionode.core.shown import shown

history_entries_max = 10_000  # failovers remembered per shard; beyond it promotion is refused (HistoryFull)


class HistoryError(ValueError):
    """An epoch history (from a peer or a file) is malformed."""


class HistoryFull(HistoryError):
    """The history holds ``history_entries_max`` epochs: no new epoch can start here."""


class EpochHistory:
    __slots__ = ("_epochs", "_starts")

    def __init__(self, entries: list[tuple[int, int]] | None = None) -> None:
        self._epochs: list[int] = []  # Invariant: strictly increasing, >= 1.
        self._starts: list[int] = []  # Invariant: strictly increasing, >= 1, same length as _epochs.
        for epoch, start in entries or ():
            self.append_epoch(epoch, start)

    # --- queries ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._epochs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EpochHistory) and self.to_list() == other.to_list()

    def __repr__(self) -> str:
        return f"EpochHistory({self.to_list()!r})"

    def last_epoch(self) -> int:
        """The latest epoch recorded, 0 when empty."""
        return self._epochs[-1] if self._epochs else 0

    def last_start(self) -> int:
        return self._starts[-1] if self._starts else 0

    def epoch_at(self, offset: int) -> int:
        """The epoch that wrote ``offset``; 0 (no epoch) when ``offset`` precedes every entry."""
        assert offset >= 1, offset
        i = bisect_right(self._starts, offset) - 1
        return self._epochs[i] if i >= 0 else 0

    def end_offset_for(self, epoch: int, log_end: int) -> int:
        """The offset after the last record of ``epoch`` (Kafka's OffsetsForLeaderEpoch).

        More exactly: one past the last record written in any epoch ``<= epoch``,
        which is the start of the first later epoch, or ``log_end + 1``. When
        ``epoch`` is not recorded this answers for the largest recorded epoch
        below it; when no epoch ``<= epoch`` is recorded, the first start.
        """
        assert log_end >= 0 and (not self._starts or self._starts[0] >= 1)
        i = bisect_right(self._epochs, epoch)
        if i < len(self._starts):
            return min(self._starts[i], log_end + 1)
        return log_end + 1

    def to_list(self) -> list[list[int]]:
        """CBOR-friendly: ``[[epoch, start_offset], ...]``."""
        return [[e, s] for e, s in zip(self._epochs, self._starts, strict=True)]

    def copy(self) -> "EpochHistory":
        twin = EpochHistory()
        twin._epochs, twin._starts = list(self._epochs), list(self._starts)
        return twin

    # --- changes -----------------------------------------------------------------------
    def append_epoch(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` writes from ``start_offset`` on (at a promotion, or on adopting a leader's)."""
        assert start_offset >= 1 and epoch >= 1, (epoch, start_offset)
        assert epoch > self.last_epoch(), f"epoch {epoch} does not follow {self.last_epoch()}"
        assert start_offset >= self.last_start(), f"epoch {epoch} starts at {start_offset} < {self.last_start()}"
        if self._starts and self._starts[-1] == start_offset:
            # The previous epoch wrote nothing: the new one takes its place.
            self._epochs.pop()
            self._starts.pop()
        if len(self._epochs) >= history_entries_max:
            raise HistoryFull(f"the epoch history holds {history_entries_max} epochs")
        self._epochs.append(epoch)
        self._starts.append(start_offset)
        assert self.epoch_at(start_offset) == epoch

    def truncate_after(self, offset: int) -> None:
        """Forget the epochs that start past ``offset`` (the log is cut back to ``offset``)."""
        assert offset >= 0
        i = bisect_right(self._starts, offset)
        del self._epochs[i:], self._starts[i:]
        assert not self._starts or self._starts[-1] <= offset

    @classmethod
    def from_list(cls, raw: Any) -> "EpochHistory":
        """Parse untrusted ``[[epoch, start], ...]``; anything else is a :class:`HistoryError`."""
        if not isinstance(raw, (list, tuple)) or len(raw) > history_entries_max:
            raise HistoryError(f"an epoch history is a list of at most {history_entries_max} pairs")
        history = cls()
        for pair in raw:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_is_count(v) for v in pair)):
                raise HistoryError(f"an epoch history entry is [epoch, start_offset], not {shown(pair, 60)}")
            epoch, start = pair
            if epoch < 1 or start < 1 or epoch <= history.last_epoch() or start <= history.last_start():
                raise HistoryError(f"epoch history entry {[epoch, start]} does not follow {history.to_list()[-1:]}")
            history._epochs.append(epoch)
            history._starts.append(start)
        return history


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def divergence(leader: EpochHistory, leader_end: int, follower: EpochHistory, follower_end: int) -> int:
    """The highest offset the follower can keep: everything after it must be truncated.

    ``keep`` is the largest ``k <= min(leader_end, follower_end)`` such that the
    two histories name the same (known, non-zero) epoch at every offset in
    ``1..k``. Under log matching that is the common prefix of the two logs.
    """
    assert leader_end >= 0 and follower_end >= 0
    limit = min(leader_end, follower_end)
    # Walk the offsets at which either history changes epoch, up to ``limit``.
    cuts = sorted({1, *(s for s in leader._starts if s <= limit), *(s for s in follower._starts if s <= limit)})
    for cut in cuts:
        if cut > limit:
            break
        e = leader.epoch_at(cut)
        if e == 0 or e != follower.epoch_at(cut):
            return cut - 1
    return limit
