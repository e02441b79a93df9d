"""A simulated disk: files with an unsynced tail, torn at a crash.

Theory of operation
-------------------
A ``SimFile`` holds ``durable`` bytes (survive any crash) and ``unsynced``
bytes (appended since the last ``fsync``). The running process reads both.
``crash`` models what a real page cache leaves behind: a random prefix of the
unsynced bytes may reach the platter, cut anywhere, even mid-record (a torn
tail), sometimes followed by zeros from a preallocated block. The rest is lost.

``replace_atomic`` models write-temp, fsync, rename, fsync-directory: the new
contents are durable at once and whole (used for snapshots and WAL rewrites).

``corrupt`` flips one byte inside a durable record that has a valid record
after it, so the WAL codec must report "corrupt", never "torn" (DESIGN S6):
damage to a record that is not the last is never a crash artefact.

Invariant: ``durable`` only grows by ``fsync`` or ``replace_atomic``, and only
shrinks by ``truncate`` (the restart path cutting a torn tail).
"""

import random
from dataclasses import dataclass, field

from trionode.core.wal import codec

TORN_ZEROS_BYTES_MAX = 64  # zero fill a crash may leave after a torn tail


@dataclass(slots=True)
class DiskStatistics:
    fsyncs: int = 0
    bytes_appended: int = 0
    bytes_lost: int = 0
    torn_tails_left: int = 0
    corruptions_injected: int = 0


@dataclass(slots=True)
class SimFile:
    durable: bytearray = field(default_factory=bytearray)
    unsynced: bytearray = field(default_factory=bytearray)
    corrupted: bool = False  # the nemesis damaged a record; restart must report "corrupt"

    def contents(self) -> bytes:
        return bytes(self.durable + self.unsynced)

    def size_bytes(self) -> int:
        return len(self.durable) + len(self.unsynced)


class SimDisk:
    """One node's files, by name."""

    def __init__(self) -> None:
        self._files: dict[str, SimFile] = {}
        self.stats = DiskStatistics()

    def exists(self, name: str) -> bool:
        return name in self._files

    def file(self, name: str) -> SimFile:
        return self._files.setdefault(name, SimFile())

    def read(self, name: str) -> bytes:
        return self._files[name].contents() if name in self._files else b""

    def append(self, name: str, data: bytes) -> None:
        self.file(name).unsynced += data
        self.stats.bytes_appended += len(data)

    def fsync(self, name: str) -> None:
        f = self.file(name)
        f.durable += f.unsynced
        f.unsynced.clear()
        self.stats.fsyncs += 1

    def replace_atomic(self, name: str, data: bytes) -> None:
        f = self.file(name)
        f.durable = bytearray(data)
        f.unsynced.clear()
        f.corrupted = False

    def truncate(self, name: str, size_bytes: int) -> None:
        """Cut a file to ``size_bytes`` durably (the restart path cutting a torn tail)."""
        f = self.file(name)
        assert not f.unsynced, "truncate runs at restart, before any append"
        assert 0 <= size_bytes <= len(f.durable), (size_bytes, len(f.durable))
        del f.durable[size_bytes:]

    def crash(self, rng: random.Random, torn_probability: float) -> None:
        """Lose unsynced bytes, except perhaps a torn prefix of them (sorted by name: deterministic)."""
        for name in sorted(self._files):
            f = self._files[name]
            if not f.unsynced:
                continue
            kept_bytes = rng.randint(0, len(f.unsynced)) if rng.random() < torn_probability else 0
            self.stats.bytes_lost += len(f.unsynced) - kept_bytes
            if kept_bytes:
                self.stats.torn_tails_left += 1
                f.durable += f.unsynced[:kept_bytes]
                if rng.random() < 0.25:
                    f.durable += bytes(rng.randint(1, TORN_ZEROS_BYTES_MAX))
            f.unsynced.clear()

    def corrupt(self, name: str, rng: random.Random, record_bytes_max: int) -> bool:
        """Flip a byte inside a durable record that is followed by another; False if there is none."""
        f = self._files.get(name)
        if f is None or f.unsynced:
            return False
        result = codec.scan(bytes(f.durable), file_name=name, record_bytes_max=record_bytes_max)
        offsets = [offset for offset, _ in result.records] + [result.valid_end]
        if len(result.records) < 2:
            return False
        victim = rng.randrange(len(result.records) - 1)
        at = rng.randrange(offsets[victim], offsets[victim + 1])
        f.durable[at] ^= 1 << rng.randrange(8)
        f.corrupted = True
        self.stats.corruptions_injected += 1
        return True
