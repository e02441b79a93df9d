"""The simulated disk with the real WAL codec: unsynced loss, torn tails, injected corruption."""

import random

from trionode.core.wal import codec
from trionode.sim.disk import SimDisk

RECORD_BYTES_MAX = 1 << 20


def _scan(disk: SimDisk) -> codec.ScanResult:
    return codec.scan(disk.read("wal"), file_name="wal", record_bytes_max=RECORD_BYTES_MAX)


def _records(n: int, start: int = 0) -> bytes:
    return b"".join(codec.encode_record({"i": i, "pad": "x" * (i % 50)}) for i in range(start, start + n))


def test_fsynced_bytes_survive_and_unsynced_bytes_are_lost() -> None:
    disk = SimDisk()
    disk.append("wal", _records(3))
    disk.fsync("wal")
    disk.append("wal", _records(2, start=3))
    assert len(_scan(disk).records) == 5  # the process reads its own unsynced writes
    disk.crash(random.Random(1), torn_probability=0.0)
    result = _scan(disk)
    assert [obj["i"] for _, obj in result.records] == [0, 1, 2] and result.damage is None


def test_a_crash_may_leave_a_torn_tail_that_the_codec_calls_torn() -> None:
    torn = 0
    for seed in range(200):
        disk = SimDisk()
        disk.append("wal", _records(4))
        disk.fsync("wal")
        disk.append("wal", _records(3, start=4))
        disk.crash(random.Random(seed), torn_probability=1.0)
        result = _scan(disk)
        assert len(result.records) >= 4, "synced records always survive"
        if result.damage is not None:
            assert result.damage.kind == "torn", result.damage
            torn += 1
            disk.truncate("wal", result.valid_end)
            assert _scan(disk).damage is None
    assert torn > 50


def test_injected_corruption_is_always_reported_as_corrupt() -> None:
    for seed in range(100):
        disk = SimDisk()
        disk.append("wal", _records(5))
        disk.fsync("wal")
        assert disk.corrupt("wal", random.Random(seed), RECORD_BYTES_MAX)
        damage = _scan(disk).damage
        assert damage is not None and damage.kind == "corrupt", (seed, damage)


def test_corruption_needs_a_later_record() -> None:
    disk = SimDisk()
    disk.append("wal", _records(1))
    disk.fsync("wal")
    assert not disk.corrupt("wal", random.Random(0), RECORD_BYTES_MAX)


def test_replace_atomic_is_durable_at_once() -> None:
    disk = SimDisk()
    disk.append("wal", _records(3))
    disk.replace_atomic("snap", _records(1))
    disk.crash(random.Random(0), torn_probability=0.0)
    assert disk.read("wal") == b"" and disk.read("snap") == _records(1)
