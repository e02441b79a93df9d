"""The Raft WAL record format: random Ready sequences -> records -> replay equals the core's log."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.core.raft.durable import (
    entry_from_record,
    entry_to_record,
    records_for,
    replay,
    snapshot_from_record,
    snapshot_record,
)
from trionode.core.raft.messages import (
    ConfChange,
    ConfChangeKind,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Ready,
    Snapshot,
)


def _ready(entries: tuple[Entry, ...] = (), hs: HardState | None = None, snap: Snapshot | None = None) -> Ready:
    return Ready(None, hs, entries, snap, (), (), bool(entries))


def test_entry_and_snapshot_records_round_trip() -> None:
    conf_entry = Entry(3, 2, EntryKind.CONF, ConfChange(ConfChangeKind.PROMOTE, "n4"))
    for e in (Entry(1, 1, EntryKind.NOOP), Entry(2, 1, EntryKind.NORMAL, {"k": b"v"}), conf_entry):
        assert entry_from_record(entry_to_record(e)) == e
    snap = Snapshot(7, 3, ConfState(voters=("a", "b"), learners=("c",)), data=[1, 2])
    assert snapshot_from_record(snapshot_record(snap)) == snap


@st.composite
def ready_sequences(draw: st.DrawFn) -> list[tuple[int, int, int]]:
    """(first index, count, commit) batches; a batch may start at or below the previous end (a truncation)."""
    batches, last, commit = [], 0, 0
    for _ in range(draw(st.integers(1, 12))):
        first = draw(st.integers(commit + 1, last + 1))
        count = draw(st.integers(1, 4))
        last = first + count - 1
        commit = draw(st.integers(commit, min(commit + 2, last)))  # commit never covers replaced entries
        batches.append((first, count, commit))
    return batches


@settings(max_examples=200, deadline=None)
@given(ready_sequences(), st.integers(0, 10**6))
def test_replay_equals_the_in_memory_log(batches: list[tuple[int, int, int]], seed: int) -> None:
    rng = random.Random(seed)
    log: list[Entry] = []
    records: list[dict] = []
    term = 1
    for first, count, commit in batches:
        term += rng.randrange(2)
        new = tuple(Entry(first + i, term, EntryKind.NORMAL, f"d{first + i}") for i in range(count))
        log = log[: first - 1] + list(new)
        hs = HardState(term, "x", commit)
        records += records_for(_ready(new, hs))
    restored = replay(Snapshot(), records)
    assert list(restored.entries) == log
    assert restored.hard_state == HardState(term, "x", batches[-1][2])


def test_replay_skips_entries_under_the_snapshot_and_drops_a_replaced_suffix() -> None:
    old = tuple(Entry(i, 1) for i in range(1, 8))
    records = records_for(_ready(old, HardState(1, "a", 3)))
    snap = Snapshot(5, 2, ConfState(voters=("a",)))
    # The shell wrote the snapshot file, then crashed before the Ready's records: the
    # WAL's entry 5 has term 1, so 6..7 extended a log the snapshot replaced.
    assert replay(snap, records).entries == ()
    records += records_for(_ready((Entry(6, 2),), HardState(2, "", 5), snap))
    restored = replay(snap, records)
    assert restored.entries == (Entry(6, 2),) and restored.hard_state.commit == 5


def test_replay_of_a_harness_run_restarts_every_node_to_its_log() -> None:
    from tests.core.raft.test_safety import run

    r = run(7, crash_prob=0.0)
    for n in r.ids:
        disk = r.env.disks[n]
        restored = replay(disk.snapshot, disk.records)
        log = r.env.node(n).raft.log
        assert restored.snapshot.index == log.snapshot.index
        assert list(restored.entries) == log.entries
        assert restored.hard_state == r.env.node(n).raft.hard_state()
