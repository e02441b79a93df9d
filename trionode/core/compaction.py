"""When to compact the data WAL into a new snapshot.

Theory of operation
-------------------
Compaction rewrites the whole keyspace, so its cost grows with the snapshot,
while what it saves (WAL to replay at start, disk the WAL holds) grows with
the WAL. A fixed WAL size alone gets this wrong at both ends: a 600 MB
snapshot rewritten for every 64 MB of log spends ten times more writing than
it saves. So, as Redis's ``auto-aof-rewrite-percentage`` does, the WAL must
also have grown by ``growth_percent`` of the snapshot (in bytes, and in
records per key) before compacting, and never less than the fixed minimums,
which keep small keyspaces from compacting for every few writes.

``growth_percent = 0`` leaves only the fixed minimums. Pure: the shell
measures, this decides.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CompactionPolicy:
    wal_bytes_min: int      # never compact a WAL smaller than this (unless records_min is reached)...
    wal_records_min: int    # ...or holding fewer records than this
    growth_percent: int     # and only once the WAL is this % of the snapshot's size (0: no such rule)

    def __post_init__(self) -> None:
        assert self.wal_bytes_min > 0 and self.wal_records_min > 0 and self.growth_percent >= 0


def wants_compaction(
    policy: CompactionPolicy, *, wal_bytes: int, wal_records: int, snapshot_bytes: int, keys: int
) -> bool:
    """True once the WAL is big enough, by bytes or by records, to be worth a new snapshot."""
    assert min(wal_bytes, wal_records, snapshot_bytes, keys) >= 0
    bytes_due = max(policy.wal_bytes_min, snapshot_bytes * policy.growth_percent // 100)
    records_due = max(policy.wal_records_min, keys * policy.growth_percent // 100)
    return wal_bytes >= bytes_due or wal_records >= records_due
