"""The compaction trigger: proportional to the snapshot, never below the fixed minimums."""

from hypothesis import given
from hypothesis import strategies as st

from trionode.core.compaction import CompactionPolicy, wants_compaction

MB = 1024 * 1024
POLICY = CompactionPolicy(wal_bytes_min=64 * MB, wal_records_min=1_000_000, growth_percent=100)


def _wants(wal_mb: int, snapshot_mb: int, records: int = 0, keys: int = 0, policy: CompactionPolicy = POLICY) -> bool:
    return wants_compaction(policy, wal_bytes=wal_mb * MB, wal_records=records, snapshot_bytes=snapshot_mb * MB,
                            keys=keys)


def test_a_big_snapshot_is_not_rewritten_for_every_64_mb_of_log() -> None:
    assert not _wants(64, 600)
    assert not _wants(599, 600)
    assert _wants(600, 600)


def test_a_small_snapshot_still_waits_for_the_minimum() -> None:
    assert not _wants(10, 1)
    assert _wants(64, 1)
    assert _wants(64, 0)  # no snapshot yet


def test_records_are_measured_against_the_number_of_keys() -> None:
    assert _wants(1, 1, records=1_000_000, keys=10)
    assert not _wants(1, 1, records=1_000_000, keys=5_000_000)
    assert _wants(1, 1, records=5_000_000, keys=5_000_000)


def test_zero_percent_leaves_the_fixed_minimums_alone() -> None:
    fixed = CompactionPolicy(wal_bytes_min=64 * MB, wal_records_min=1_000_000, growth_percent=0)
    assert _wants(64, 600, policy=fixed)
    assert not _wants(63, 600, records=999_999, keys=10**9, policy=fixed)


@given(st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 2**30), st.integers(0, 2**30),
       st.integers(0, 1000))
def test_the_rule(wal_bytes: int, snapshot_bytes: int, records: int, keys: int, percent: int) -> None:
    policy = CompactionPolicy(wal_bytes_min=64 * MB, wal_records_min=1_000_000, growth_percent=percent)
    wants = wants_compaction(policy, wal_bytes=wal_bytes, wal_records=records, snapshot_bytes=snapshot_bytes,
                             keys=keys)
    by_bytes = wal_bytes >= 64 * MB and wal_bytes * 100 >= snapshot_bytes * percent - 99
    by_records = records >= 1_000_000 and records * 100 >= keys * percent - 99
    assert wants == (by_bytes or by_records)
    # More WAL never un-triggers it.
    if wants:
        assert wants_compaction(policy, wal_bytes=wal_bytes + 1, wal_records=records + 1,
                                snapshot_bytes=snapshot_bytes, keys=keys)
