"""``trionode wal check DIR``: verify every WAL segment, snapshot, the epoch history and the fence offline.

Read-only: nothing is truncated or deleted. For each file it reports the
record count, the last valid offset and any damage. The exit code is 0 when
everything is clean, 1 when the only damage is a torn tail of a WAL's last
segment (startup would cut it off), 2 for anything else (DESIGN §3), a data
WAL that starts past the data snapshot's end included: startup refuses it
(core/wal/recovery.py decides both, for startup and for this check).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trionode import limits
from trionode.core.wal import codec, recovery
from trionode.io import data_store, history_file, snapshot_file, wal_files

EXIT_CLEAN = 0
EXIT_TORN = 1
EXIT_CORRUPT = 2


def _describe(name: str, result: codec.ScanResult, verdict: str) -> str:
    line = f"{name}: {len(result.records)} records, valid to byte {result.valid_end}"
    damage = result.damage
    if damage is None:
        return line + ", clean"
    return line + f", {verdict} at byte {damage.offset}: {damage.reason}"


def _check_wal(directory: str, prefix: str, record_bytes_max: int) -> tuple[int, list[str], int]:
    """One WAL (all segments of a prefix): per-segment lines, the worst exit code, and the seq after its last record."""
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
        elif recovery.segment_error(segment.name, damage, last=index == len(segments) - 1) is None:
            code, verdict = max(code, EXIT_TORN), "torn tail (repairable)"
        elif damage.kind == "torn":
            code, verdict = EXIT_CORRUPT, "torn record in a segment that is not the last"
        else:
            code, verdict = EXIT_CORRUPT, "CORRUPT"
        lines.append(_describe(segment.name, result, verdict))
        expected_seq = segment.first_seq + len(result.records)
    assert code in (EXIT_CLEAN, EXIT_TORN, EXIT_CORRUPT)
    return code, lines, expected_seq


def _check_data_reach(directory: str, snapshot_header: dict[str, Any], wal_next: int) -> tuple[int, list[str]]:
    """Whether startup takes the data snapshot and the data WAL together (core/wal/recovery.py)."""
    segments = wal_files.list_segments(directory, data_store.WAL_PREFIX)
    offset = snapshot_header.get("offset", 0)
    if not segments or not isinstance(offset, int) or offset < 0:
        return EXIT_CLEAN, []  # nothing to reach back to, or a header startup refuses for itself
    if recovery.on_start(os.path.exists(os.path.join(directory, data_store.LOADING_NAME)), False).discard_local_data:
        return EXIT_CLEAN, [f"{data_store.LOADING_NAME}: startup discards the data snapshot and WAL"]
    plan = recovery.plan(offset, 0, segments[0].first_seq, wal_next)  # (what was acknowledged does not matter here)
    if isinstance(plan, recovery.CannotStart):
        return EXIT_CORRUPT, [f"{segments[0].name}: {plan.reason}, the records between on no file (CORRUPT)"]
    return EXIT_CLEAN, []


def _check_snapshot(path: str, record_bytes_max: int) -> tuple[int, str, dict[str, Any]]:
    """The exit code, the report line and the header (empty if the file is damaged)."""
    name = os.path.basename(path)
    try:
        header, chunks = snapshot_file.read_snapshot(path, remove_tmp=False, record_bytes_max=record_bytes_max)
    except codec.WalCorruption as exc:
        return EXIT_CORRUPT, f"{exc} (CORRUPT)", {}
    return EXIT_CLEAN, f"{name}: snapshot, {len(chunks)} chunks, valid to byte {os.path.getsize(path)}, clean", header


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
    wal_next: dict[str, int] = {}  # prefix -> the seq after its WAL's last record
    for prefix in prefixes:
        wal_code, wal_lines, wal_next[prefix] = _check_wal(directory, prefix, record_bytes_max)
        code = max(code, wal_code)
        lines.extend(wal_lines)
    data_header: dict[str, Any] = {}
    for name in names:
        if name.endswith(snapshot_file.SNAPSHOT_SUFFIX):
            snap_code, line, header = _check_snapshot(os.path.join(directory, name), record_bytes_max)
            data_header = header if name == data_store.SNAPSHOT_NAME else data_header
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
    if data_store.WAL_PREFIX in wal_next:
        reach_code, reach_lines = _check_data_reach(directory, data_header, wal_next[data_store.WAL_PREFIX])
        code = max(code, reach_code)
        lines.extend(reach_lines)
    lines.append(f"exit {code}: " + ("clean", "torn tail only", "corruption")[code])
    return code, lines
