"""``trionode wal check DIR``: verify every WAL segment, snapshot, the epoch history and the fence offline.

Read-only: nothing is truncated or deleted. For each file it reports the
record count, the last valid offset and any damage. The exit code is 0 when
everything is clean, 1 when the only damage is a torn tail of a WAL's last
segment (startup would cut it off), 2 for anything else (DESIGN §3).
"""

from __future__ import annotations

import os
from pathlib import Path

from trionode import limits
from trionode.core.wal import codec
from trionode.io import history_file, snapshot_file, wal_files

EXIT_CLEAN = 0
EXIT_TORN = 1
EXIT_CORRUPT = 2


def _describe(name: str, result: codec.ScanResult, verdict: str) -> str:
    line = f"{name}: {len(result.records)} records, valid to byte {result.valid_end}"
    damage = result.damage
    if damage is None:
        return line + ", clean"
    return line + f", {verdict} at byte {damage.offset}: {damage.reason}"


def _check_wal(directory: str, prefix: str, record_bytes_max: int) -> tuple[int, list[str]]:
    """One WAL (all segments of a prefix): per-segment lines and the worst exit code."""
    segments = wal_files.list_segments(directory, prefix)
    code, lines = EXIT_CLEAN, []
    expected_seq = segments[0].first_seq
    for index, segment in enumerate(segments):
        result = wal_files.scan_segment(segment, record_bytes_max)
        damage = result.damage
        if segment.first_seq != expected_seq:
            code = EXIT_CORRUPT
            lines.append(f"{segment.name}: starts at seq {segment.first_seq}, expected {expected_seq}")
        if damage is None:
            verdict = "clean"
        elif damage.kind == "torn" and index == len(segments) - 1:
            code, verdict = max(code, EXIT_TORN), "torn tail (repairable)"
        elif damage.kind == "torn":
            code, verdict = EXIT_CORRUPT, "torn record in a segment that is not the last"
        else:
            code, verdict = EXIT_CORRUPT, "CORRUPT"
        lines.append(_describe(segment.name, result, verdict))
        expected_seq = segment.first_seq + len(result.records)
    assert code in (EXIT_CLEAN, EXIT_TORN, EXIT_CORRUPT)
    return code, lines


def _check_snapshot(path: str, record_bytes_max: int) -> tuple[int, str]:
    name = os.path.basename(path)
    try:
        _, chunks = snapshot_file.read_snapshot(path, remove_tmp=False, record_bytes_max=record_bytes_max)
    except codec.WalCorruption as exc:
        return EXIT_CORRUPT, f"{exc} (CORRUPT)"
    return EXIT_CLEAN, f"{name}: snapshot, {len(chunks)} chunks, valid to byte {os.path.getsize(path)}, clean"


def _check_history(directory: str) -> tuple[int, str]:
    try:
        history = history_file.load_history(Path(directory))
    except codec.WalCorruption as exc:
        return EXIT_CORRUPT, f"{exc} (CORRUPT)"
    return EXIT_CLEAN, f"{history_file.HISTORY_NAME}: {len(history)} epochs, clean"


def _check_fence(directory: str) -> tuple[int, str]:
    try:
        fence = history_file.read_fence(Path(directory))
    except codec.WalCorruption as exc:
        return EXIT_CORRUPT, f"{exc} (CORRUPT)"
    assert fence is not None  # the file was listed
    return EXIT_CLEAN, f"{history_file.FENCE_NAME}: epoch {fence[1]} of shard {fence[0][:12]}, clean"


def check(directory: str, *, record_bytes_max: int = limits.wal_record_bytes_max) -> tuple[int, list[str]]:
    """Verify every ``.wal``, ``.snap``, ``data-history`` and ``data-fence`` file in ``directory``.

    Returns (exit code, report lines).
    """
    names = sorted(os.listdir(directory))
    prefixes = sorted({parsed[0] for name in names if (parsed := wal_files.parse_segment_name(name))})
    code, lines = EXIT_CLEAN, []
    for prefix in prefixes:
        wal_code, wal_lines = _check_wal(directory, prefix, record_bytes_max)
        code = max(code, wal_code)
        lines.extend(wal_lines)
    for name in names:
        if name.endswith(snapshot_file.SNAPSHOT_SUFFIX):
            snap_code, line = _check_snapshot(os.path.join(directory, name), record_bytes_max)
            code = max(code, snap_code)
            lines.append(line)
        elif name.endswith(wal_files.SEGMENT_SUFFIX) and wal_files.parse_segment_name(name) is None:
            lines.append(f"{name}: not a segment name (ignored)")
        elif name.endswith(snapshot_file.SNAPSHOT_SUFFIX + snapshot_file.TMP_SUFFIX):
            lines.append(f"{name}: unfinished snapshot from a crash (ignored; deleted at startup)")
        elif name in (history_file.HISTORY_NAME, history_file.FENCE_NAME):
            check_one = _check_history if name == history_file.HISTORY_NAME else _check_fence
            one_code, line = check_one(directory)
            code = max(code, one_code)
            lines.append(line)
    lines.append(f"exit {code}: " + ("clean", "torn tail only", "corruption")[code])
    return code, lines
