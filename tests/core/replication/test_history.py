"""EpochHistory and divergence: unit cases, brute-force oracles, and logs grown by a model of the protocol."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.core.replication.history import EpochHistory, HistoryError, HistoryFull, divergence


def brute_epoch_at(entries: list[tuple[int, int]], offset: int) -> int:
    epoch = 0
    for e, start in entries:
        if start <= offset:
            epoch = e
    return epoch


def test_epoch_at_and_end_offset_for() -> None:
    h = EpochHistory([(1, 1), (3, 5), (4, 9)])
    assert [h.epoch_at(o) for o in range(1, 12)] == [1, 1, 1, 1, 3, 3, 3, 3, 4, 4, 4]
    assert h.end_offset_for(1, 11) == 5
    assert h.end_offset_for(2, 11) == 5  # epoch 2 is unknown: answer for epoch 1
    assert h.end_offset_for(3, 11) == 9
    assert h.end_offset_for(4, 11) == 12
    assert h.end_offset_for(9, 11) == 12
    assert h.end_offset_for(0, 11) == 1  # no epoch <= 0: nothing of it
    assert EpochHistory().end_offset_for(5, 0) == 1
    assert h.last_epoch() == 4 and h.last_start() == 9


def test_history_starting_late_has_unknown_prefix() -> None:
    h = EpochHistory([(2, 4)])
    assert h.epoch_at(3) == 0 and h.epoch_at(4) == 2
    assert h.end_offset_for(1, 10) == 4


def test_an_empty_epoch_is_replaced_by_the_next_at_the_same_start() -> None:
    h = EpochHistory([(1, 1), (2, 5)])
    h.append_epoch(3, 5)  # epoch 2 wrote nothing
    assert h.to_list() == [[1, 1], [3, 5]]
    assert h.end_offset_for(2, 10) == 5


def test_append_asserts_monotonic() -> None:
    h = EpochHistory([(2, 5)])
    with pytest.raises(AssertionError):
        h.append_epoch(2, 6)
    with pytest.raises(AssertionError):
        h.append_epoch(3, 4)
    with pytest.raises(AssertionError):
        h.append_epoch(3, 0)


def test_truncate_after() -> None:
    h = EpochHistory([(1, 1), (3, 5), (4, 9)])
    h.truncate_after(9)
    assert h.to_list() == [[1, 1], [3, 5], [4, 9]]
    h.truncate_after(8)
    assert h.to_list() == [[1, 1], [3, 5]]
    h.truncate_after(0)
    assert h.to_list() == []


def test_history_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trionode.core.replication.history.history_entries_max", 3)
    h = EpochHistory([(1, 1), (2, 2), (3, 3)])
    with pytest.raises(HistoryFull):
        h.append_epoch(4, 4)
    h.append_epoch(4, 3)  # replaces an empty epoch: no growth
    with pytest.raises(HistoryError):
        EpochHistory.from_list([[1, 1], [2, 2], [3, 3], [4, 4]])


@pytest.mark.parametrize(
    "raw",
    [None, "x", [[1]], [[1, 1, 1]], [[0, 1]], [[1, 0]], [[2, 1], [1, 5]], [[1, 5], [2, 5]], [[1, True]],
     [[1, -1]], [["1", 1]], [[1, 1.0]], [[1, 2**63]]],
)  # fmt: skip
def test_from_list_refuses_malformed(raw: object) -> None:
    with pytest.raises(HistoryError):
        EpochHistory.from_list(raw)


histories = st.lists(st.tuples(st.integers(1, 4), st.integers(1, 5)), max_size=6).map(lambda steps: _build(steps))


def _build(steps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    epoch, start = 0, 1
    for de, ds in steps:
        epoch, start = epoch + de, start + ds - 1
        if out and out[-1][1] == start:
            out.pop()
        out.append((epoch, start))
    return out


@given(histories, st.integers(0, 30))
def test_queries_match_brute_force(entries: list[tuple[int, int]], log_end: int) -> None:
    h = EpochHistory(entries)
    assert EpochHistory.from_list(h.to_list()) == h
    for offset in range(1, 32):
        assert h.epoch_at(offset) == brute_epoch_at(entries, offset)
    for epoch in range(0, 30):
        # one past the last offset <= log_end whose epoch is <= epoch (or the first start if none)
        ends = [o for o in range(1, log_end + 1) if 0 < brute_epoch_at(entries, o) <= epoch]
        later = [s for e, s in entries if e > epoch]
        expected = min(later[0], log_end + 1) if later else log_end + 1
        assert h.end_offset_for(epoch, log_end) == expected
        if ends and ends[-1] < log_end:
            assert expected == ends[-1] + 1
    cut = EpochHistory(entries)
    cut.truncate_after(log_end)
    assert [cut.epoch_at(o) for o in range(1, log_end + 1)] == [h.epoch_at(o) for o in range(1, log_end + 1)]
    assert cut.last_start() <= log_end


@given(histories, st.integers(0, 30), histories, st.integers(0, 30))
def test_divergence_is_the_first_epoch_mismatch(
    lead: list[tuple[int, int]], lead_end: int, foll: list[tuple[int, int]], foll_end: int
) -> None:
    keep = divergence(EpochHistory(lead), lead_end, EpochHistory(foll), foll_end)
    limit = min(lead_end, foll_end)
    expected = 0
    while expected < limit:
        e = brute_epoch_at(lead, expected + 1)
        if e == 0 or e != brute_epoch_at(foll, expected + 1):
            break
        expected += 1
    assert keep == expected


def test_divergence_handles_what_one_shot_offsets_for_leader_epoch_gets_wrong() -> None:
    # Follower F wrote epoch 3 without ever syncing with epoch 2's primary; the leader has epochs 2 and 4.
    leader = EpochHistory([(1, 1), (2, 3), (4, 6)])
    follower = EpochHistory([(1, 1), (3, 4)])
    # Kafka's single round: the leader's end for the largest epoch <= 3 (epoch 2) is 6, keep min(8, 5) = 5.
    assert min(8, leader.end_offset_for(follower.last_epoch(), 10) - 1) == 5
    # But offset 3 is epoch 2 on the leader and epoch 1 on the follower: only 1..2 are common.
    assert divergence(leader, 10, follower, 8) == 2


def test_divergence_basic_cases() -> None:
    h = EpochHistory([(1, 1), (2, 6)])
    assert divergence(h, 10, h, 7) == 7  # a lagging follower keeps all it has
    assert divergence(h, 7, h, 10) == 7  # a follower ahead in the same epoch (impossible if streams are durable)
    stale = EpochHistory([(1, 1)])  # a deposed primary wrote 6..9 in epoch 1
    assert divergence(h, 10, stale, 9) == 5
    assert divergence(h, 10, EpochHistory(), 0) == 0
    assert divergence(EpochHistory([(3, 4)]), 10, EpochHistory([(3, 4)]), 10) == 0  # unknown prefix never matches


# --- logs grown by a model of the protocol --------------------------------------------------------


class Model:
    """Nodes with logs of unique record ids, written by epochs' primaries and copied by syncs.

    It keeps log matching the way the shells must: a record is copied only from the primary of
    the epoch being streamed, after a sync truncated the follower to the common prefix; and a
    primary that crashes never writes in its old epoch again.
    """

    def __init__(self, nodes: int) -> None:
        self.logs: list[list[tuple[int, int]]] = [[] for _ in range(nodes)]  # (epoch, serial)
        self.hist = [EpochHistory() for _ in range(nodes)]
        self.epoch, self.primary, self.open, self.serial = 0, -1, False, 0

    def promote(self, node: int) -> None:
        self.epoch += 1
        self.primary, self.open = node, True
        self.hist[node].append_epoch(self.epoch, len(self.logs[node]) + 1)

    def write(self, count: int) -> None:
        if self.open:
            for _ in range(count):
                self.serial += 1
                self.logs[self.primary].append((self.epoch, self.serial))

    def sync(self, node: int, count: int) -> None:
        p = self.primary
        if p < 0 or node == p:
            return
        keep = divergence(self.hist[p], len(self.logs[p]), self.hist[node], len(self.logs[node]))
        assert keep == common_prefix(self.logs[p], self.logs[node])
        self.logs[node] = self.logs[p][: keep + count]
        self.hist[node] = self.hist[p].copy()
        self.hist[node].truncate_after(len(self.logs[node]))

    def crash(self, node: int, lose: int) -> None:
        self.logs[node] = self.logs[node][: max(0, len(self.logs[node]) - lose)]
        self.hist[node].truncate_after(len(self.logs[node]))
        if node == self.primary:
            self.open = False


def common_prefix(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


ops = st.lists(
    st.one_of(
        st.tuples(st.just("promote"), st.integers(0, 3), st.just(0)),
        st.tuples(st.just("write"), st.just(0), st.integers(1, 4)),
        st.tuples(st.just("sync"), st.integers(0, 3), st.integers(0, 6)),
        st.tuples(st.just("crash"), st.integers(0, 3), st.integers(0, 4)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_divergence_equals_the_true_common_prefix(script: list[tuple[str, int, int]]) -> None:
    model = Model(4)
    model.promote(0)
    for op, node, n in script:
        if op == "promote":
            model.promote(node)
        elif op == "write":
            model.write(n)
        elif op == "sync":
            model.sync(node, n)
        else:
            model.crash(node, n)
        for a in range(4):
            for b in range(4):
                la, lb = model.logs[a], model.logs[b]
                keep = divergence(model.hist[a], len(la), model.hist[b], len(lb))
                assert keep == common_prefix(la, lb), (a, b, la, lb)
