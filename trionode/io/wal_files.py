"""WAL segment files on disk, and recovery at startup.

A WAL is a sequence of segment files ``<prefix>-<first_seq:020d>.wal`` in one
directory. The n-th record of the segment whose first seq is F has seq F + n;
seqs run on without gaps from one segment to the next. Payloads are opaque
here: the codec decodes them, the caller interprets them.

Only the last segment can end in a torn record: the writer fsyncs a segment
completely before it creates the next one. So a torn tail anywhere else, any
corruption (both judged by ``core/wal/recovery.py``), or a seq gap or overlap
between segments stops recovery with a WalCorruption naming the file and the
byte offset (DESIGN S6).

These helpers are synchronous. They run before the node's trio tasks start, in
``trionode wal check``, or inside ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from trionode import limits
from trionode.core.wal import codec, recovery

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".wal"
_SEGMENT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<first_seq>\d{20})\.wal$")


@dataclass(frozen=True, slots=True)
class Segment:
    first_seq: int
    path: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass(slots=True)
class LoadResult:
    records: list[tuple[int, object]]  # (seq, payload object), seqs consecutive
    first_seq: int  # seq of the first record the WAL holds (== next_seq when empty)
    next_seq: int  # seq the next appended record gets
    report: list[str] = field(default_factory=list)  # one line per recovery decision
    segments: list[Segment] = field(default_factory=list)
    torn: codec.Damage | None = None  # the torn tail of the last segment, if one was found


def segment_name(prefix: str, first_seq: int) -> str:
    assert first_seq >= 0 and "/" not in prefix, (prefix, first_seq)
    return f"{prefix}-{first_seq:020d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> tuple[str, int] | None:
    """(prefix, first_seq) for a segment file name, None for anything else."""
    match = _SEGMENT_NAME.match(name)
    if match is None:
        return None
    return match["prefix"], int(match["first_seq"])


def list_segments(directory: str, prefix: str) -> list[Segment]:
    """The prefix's segments, in seq order."""
    segments = []
    for name in os.listdir(directory):
        parsed = parse_segment_name(name)
        if parsed is not None and parsed[0] == prefix:
            segments.append(Segment(parsed[1], os.path.join(directory, name)))
    segments.sort(key=lambda segment: segment.first_seq)
    assert all(a.first_seq < b.first_seq for a, b in itertools.pairwise(segments))
    return segments


def read_file(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def fsync_dir(directory: str) -> None:
    """Make creations, renames and deletions in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def truncate_file(path: str, size_bytes: int) -> None:
    """Cut ``path`` to ``size_bytes`` and make the cut durable."""
    fd = os.open(path, os.O_WRONLY)
    try:
        assert os.fstat(fd).st_size >= size_bytes
        os.ftruncate(fd, size_bytes)
        os.fsync(fd)
    finally:
        os.close(fd)
    assert os.path.getsize(path) == size_bytes


def sync_path(path: str) -> None:
    """fsync a file by name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def scan_segment(segment: Segment, record_bytes_max: int) -> codec.ScanResult:
    # Segments are preallocated: zeros after the last record are unused space, not a torn tail.
    return codec.scan(read_file(segment.path), file_name=segment.name, record_bytes_max=record_bytes_max,
                      zero_tail=True)


def _check_continuity(previous: Segment, expected_seq: int, segment: Segment, valid_end: int) -> None:
    """A segment must start exactly where the previous one ended."""
    if segment.first_seq != expected_seq:
        what = "gap" if segment.first_seq > expected_seq else "overlap"
        raise codec.WalCorruption(
            segment.name,
            0,
            f"seq {what}: {previous.name} ends before seq {expected_seq} at byte {valid_end}, "
            f"this segment starts at seq {segment.first_seq}",
        )


def _cut_torn_tail(segment: Segment, result: codec.ScanResult, repair: bool, report: list[str]) -> None:
    damage = result.damage
    assert damage is not None and damage.kind == "torn"
    size_bytes = os.path.getsize(segment.path)
    action = "cut off" if repair else "would be cut off (check only)"
    line = (
        f"{segment.name}: torn tail at byte {damage.offset} ({damage.reason}); "
        f"{size_bytes - result.valid_end} bytes {action}, {len(result.records)} records kept"
    )
    log.warning("%s", line)
    report.append(line)
    if repair:
        truncate_file(segment.path, result.valid_end)


def iter_segment_results(
    segments: list[Segment], record_bytes_max: int
) -> Iterator[tuple[Segment, codec.ScanResult]]:
    """Scan segments in order, raising on anything only the last one may have."""
    for index, segment in enumerate(segments):
        result = scan_segment(segment, record_bytes_max)
        error = recovery.segment_error(segment.name, result.damage, last=index == len(segments) - 1)
        if error is not None:
            raise error
        yield segment, result


def load(
    directory: str,
    prefix: str,
    *,
    repair: bool,
    empty_next_seq: int = 1,
    record_bytes_max: int = limits.wal_record_bytes_max,
) -> LoadResult:
    """Read every segment of ``prefix``; cut a torn tail of the last one if ``repair``.

    With no segments at all the WAL is empty and the next seq is ``empty_next_seq``.
    A torn tail is reported (log and ``report``) whether or not it is cut.
    """
    segments = list_segments(directory, prefix)
    if not segments:
        return LoadResult([], empty_next_seq, empty_next_seq, [f"{prefix}: no WAL segments"], [])
    records: list[tuple[int, object]] = []
    report: list[str] = []
    torn = None
    expected_seq = segments[0].first_seq
    previous = segments[0]
    for segment, result in iter_segment_results(segments, record_bytes_max):
        _check_continuity(previous, expected_seq, segment, os.path.getsize(previous.path))
        records.extend((segment.first_seq + n, obj) for n, (_, obj) in enumerate(result.records))
        expected_seq = segment.first_seq + len(result.records)
        previous = segment
        if result.damage is not None:
            torn = result.damage
            _cut_torn_tail(segment, result, repair, report)
        elif repair and os.path.getsize(segment.path) > result.valid_end:
            # The unused, preallocated tail a crash left: not damage, but no need to keep or reread it.
            truncate_file(segment.path, result.valid_end)
    if repair:
        # A process killed between write() and fsync() leaves records that we just
        # read from the page cache; make them durable before anyone counts on them (S5).
        sync_path(segments[-1].path)
    report.append(
        f"{prefix}: {len(segments)} segments, seqs {segments[0].first_seq}..{expected_seq - 1} "
        f"({len(records)} records)"
    )
    assert not records or records[-1][0] == expected_seq - 1
    return LoadResult(records, segments[0].first_seq, expected_seq, report, segments, torn)


def cut_after(
    directory: str, prefix: str, keep: int, record_bytes_max: int = limits.wal_record_bytes_max
) -> list[str]:
    """Cut the WAL back to ``keep`` in place (no writer may be open on it); one line per step.

    The newest segment goes first and every step is durable before the next (an unlink, then
    the directory's fsync; the cut of the segment holding ``keep`` to that record's end, then
    its fsync): a crash at any point leaves a WAL that holds a prefix of the old records,
    ``keep`` of them or more, never a gap. ``keep`` may not lie before the WAL's first record.
    """
    segments = list_segments(directory, prefix)
    assert not segments or segments[0].first_seq <= keep + 1, (segments[0].name, keep)
    report: list[str] = []
    for segment in reversed(segments):
        if segment.first_seq > keep:
            os.unlink(segment.path)
            fsync_dir(directory)
            report.append(f"{segment.name}: removed (all of it after {keep})")
            continue
        result = scan_segment(segment, record_bytes_max)
        kept = keep - segment.first_seq + 1
        if len(result.records) < kept:
            raise codec.WalCorruption(segment.name, result.valid_end, f"holds no record {keep} to cut after")
        # Up to the end of record ``keep``, whatever follows it: damage behind the last good record
        # left in place failed the next load (corrupt), or the next start once a segment followed (torn).
        end = result.records[kept][0] if kept < len(result.records) else result.valid_end
        if os.path.getsize(segment.path) > end:
            truncate_file(segment.path, end)
            dropped = f" and damage at byte {result.damage.offset}" if result.damage is not None else ""
            report.append(f"{segment.name}: cut after seq {keep} ({len(result.records) - kept} records{dropped})")
        break
    return report


def check(directory: str) -> tuple[int, list[str]]:
    """``trionode wal check DIR``: (exit code 0/1/2, report lines); see ``wal_check``."""
    from trionode.io import wal_check  # imported here: wal_check reads snapshots, which import this module

    return wal_check.check(directory)
