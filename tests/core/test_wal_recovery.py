"""Recovery's rules (core/wal/recovery.py): what a restart trusts of its disk, and what it replays."""

import pytest

from trionode.core.wal import recovery
from trionode.core.wal.codec import Damage
from trionode.core.wal.recovery import CannotStart, Plan


def test_the_loading_marker_discards_the_local_data_and_a_pending_snapshot_is_never_loaded() -> None:
    assert recovery.on_start(loading_marker=True, pending_snapshot=False).discard_local_data
    assert not recovery.on_start(loading_marker=False, pending_snapshot=True).discard_local_data
    assert recovery.on_start(loading_marker=False, pending_snapshot=True).drop_pending_snapshot


@pytest.mark.parametrize(
    ("snapshot", "acked", "wal_first", "wal_next", "expected"),
    [
        (0, 0, 1, 1, Plan(0, 0, 1, 0, remove_wal=False)),  # a new node
        (0, 0, 1, 6, Plan(0, 0, 1, 5, remove_wal=False)),  # no compaction yet
        (5, 5, 6, 9, Plan(5, 5, 6, 8, remove_wal=False)),  # a compaction that finished
        (5, 4, 1, 9, Plan(5, 4, 6, 8, remove_wal=False)),  # a crash before the WAL's removal
        (5, 5, 6, 6, Plan(5, 5, 6, 5, remove_wal=False)),  # nothing written since
        (8, 7, 1, 7, Plan(8, 7, 9, 8, remove_wal=True)),  # every record inside the snapshot
        (5, 5, 7, 9, CannotStart(7, 5)),  # offset 6 is on no file
        (0, 0, 2, 4, CannotStart(2, 0)),
    ],
)
def test_the_wal_must_start_no_later_than_just_past_the_snapshot(
        snapshot: int, acked: int, wal_first: int, wal_next: int, expected: Plan | CannotStart) -> None:  # fmt: skip
    assert recovery.plan(snapshot, acked, wal_first, wal_next) == expected


def test_only_records_past_the_snapshot_are_replayed_and_a_refusal_says_why() -> None:
    plan = recovery.plan(5, 5, 1, 9)
    assert isinstance(plan, Plan) and [o for o in range(10) if plan.replays(o)] == [6, 7, 8]
    refused = recovery.plan(5, 5, 7, 9)
    assert isinstance(refused, CannotStart)
    assert refused.reason == "the WAL starts at offset 7 but the snapshot ends at 5"


def test_a_torn_tail_is_cut_only_in_the_last_segment_and_corruption_always_stops() -> None:
    torn, corrupt = Damage("torn", 40, "short header"), Damage("corrupt", 40, "checksum mismatch", 80)
    assert recovery.segment_error("s.wal", None, last=False) is None
    assert recovery.segment_error("s.wal", torn, last=True) is None
    assert "not the last" in str(recovery.segment_error("s.wal", torn, last=False))
    error = recovery.segment_error("s.wal", corrupt, last=True)
    assert error is not None and (error.file_name, error.offset) == ("s.wal", 40)
