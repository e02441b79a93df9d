"""Snapshot files: a header, body chunks and an end record, all codec records.

Layout: record 0 is the header, a dict holding at least ``kind`` (set by the
caller, e.g. ``"data"`` or ``"raft"``) and ``version`` (the file format, set
here), plus the caller's metadata such as the seq the snapshot covers. Every
later record is a two-element array: ``[CHUNK, chunk]`` for each body chunk and
finally ``[END, chunk_count]``. Tagging the body keeps any caller object from
being mistaken for the end record.

A snapshot is written to ``<path>.tmp``, fsynced, renamed over ``<path>`` and
the directory fsynced, so a file under its final name was complete before it
got that name. Any damage to it is therefore corruption, never a torn tail.
A ``.tmp`` file left by a crash mid-write is garbage and is deleted at load.

The functions are synchronous; run them in a worker thread from trio.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

import cbor2

from trionode import limits
from trionode.core.wal import codec
from trionode.io.wal_files import fsync_dir, read_file

log = logging.getLogger(__name__)

SNAPSHOT_SUFFIX = ".snap"
TMP_SUFFIX = ".tmp"
FORMAT_VERSION = 1
CHUNK = 1
END = 2


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        assert written > 0
        view = view[written:]


def _framed(obj: object, record_bytes_max: int) -> bytes:
    payload = cbor2.dumps(obj)
    if codec.record_bytes(len(payload)) > record_bytes_max:
        raise codec.RecordTooLarge(f"snapshot record of {len(payload)} bytes exceeds {record_bytes_max}")
    return codec.frame(payload)


def _write_records(fd: int, header: dict[str, Any], chunks: Iterable[object], record_bytes_max: int) -> int:
    """Write header, chunks and end record; return the bytes written."""
    buffer = bytearray(_framed(header, record_bytes_max))
    total_bytes = 0
    chunk_count = 0
    for chunk in chunks:
        record = _framed([CHUNK, chunk], record_bytes_max)
        chunk_count += 1
        if len(buffer) + len(record) < limits.snapshot_write_buffer_bytes:
            buffer += record
            continue
        # Flush, and write a record as big as the buffer straight away rather than copy it in.
        for data in (buffer, record):
            _write_all(fd, data)
            total_bytes += len(data)
        buffer.clear()
    buffer += _framed([END, chunk_count], record_bytes_max)
    _write_all(fd, buffer)
    return total_bytes + len(buffer)


def write_snapshot(
    path: str,
    header: dict[str, Any],
    chunks: Iterable[object],
    *,
    record_bytes_max: int = limits.wal_record_bytes_max,
) -> int:
    """Durably replace ``path`` with a snapshot; return its size in bytes.

    ``header`` must hold ``kind``; ``version`` is added here.
    """
    size_bytes = write_pending(path, header, chunks, record_bytes_max=record_bytes_max)
    install_pending(path)
    return size_bytes


def write_pending(
    path: str,
    header: dict[str, Any],
    chunks: Iterable[object],
    *,
    record_bytes_max: int = limits.wal_record_bytes_max,
) -> int:
    """Durably write the snapshot that will replace ``path`` beside it; ``path`` is not touched yet.

    :func:`install_pending` puts it in place; :func:`discard_pending` drops it.
    """
    assert "kind" in header and "version" not in header, header
    assert path.endswith(SNAPSHOT_SUFFIX), path
    tmp_path = path + TMP_SUFFIX
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        size_bytes = _write_records(fd, {**header, "version": FORMAT_VERSION}, chunks, record_bytes_max)
        os.fsync(fd)
    except BaseException:
        os.unlink(tmp_path)  # the old snapshot, if any, stays in place
        raise
    finally:
        os.close(fd)
    assert os.path.getsize(tmp_path) == size_bytes
    return size_bytes


def install_pending(path: str) -> None:
    """Replace ``path`` by the snapshot :func:`write_pending` wrote, in one rename."""
    os.replace(path + TMP_SUFFIX, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def discard_pending(path: str) -> None:
    os.unlink(path + TMP_SUFFIX)


def remove_tmp_files(directory: str) -> list[str]:
    """Delete ``*.snap.tmp`` files a crash left behind; return their names."""
    removed = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(SNAPSHOT_SUFFIX + TMP_SUFFIX):
            os.unlink(os.path.join(directory, name))
            log.warning("%s: removed an unfinished snapshot left by a crash", name)
            removed.append(name)
    if removed:
        fsync_dir(directory)
    return removed


def _check_header(records: list[tuple[int, object]], name: str) -> dict[str, Any]:
    if not records:
        raise codec.WalCorruption(name, 0, "snapshot has no header record")
    header = records[0][1]
    if not isinstance(header, dict) or "kind" not in header:
        raise codec.WalCorruption(name, 0, "first record is not a snapshot header")
    if header.get("version") != FORMAT_VERSION:
        raise codec.WalCorruption(name, 0, f"unknown snapshot version {header.get('version')!r}")
    return header


def _check_body(records: list[tuple[int, object]], name: str, end_offset: int) -> list[object]:
    """The chunks between header and end record, checking tags and the count."""
    chunks = []
    for offset, record in records[1:]:
        if not (isinstance(record, list) and len(record) == 2 and record[0] in (CHUNK, END)):
            raise codec.WalCorruption(name, offset, "record is neither a chunk nor the end record")
        if record[0] == END:
            if record[1] != len(chunks):
                raise codec.WalCorruption(name, offset, f"end record counts {record[1]}, found {len(chunks)}")
            if offset != records[-1][0]:
                raise codec.WalCorruption(name, records[-1][0], "records after the end record")
            return chunks
        chunks.append(record[1])
    raise codec.WalCorruption(name, end_offset, "snapshot has no end record")


def read_snapshot(
    path: str, *, remove_tmp: bool = True, record_bytes_max: int = limits.wal_record_bytes_max
) -> tuple[dict[str, Any], list[object]]:
    """Validate a snapshot completely and return (header, chunks).

    Any damage raises WalCorruption naming the file and offset: a renamed
    snapshot was complete, so nothing in it may be cut off. With ``remove_tmp``
    an unfinished ``<path>.tmp`` beside it is deleted.
    """
    name = os.path.basename(path)
    if remove_tmp and os.path.exists(path + TMP_SUFFIX):
        os.unlink(path + TMP_SUFFIX)
        log.warning("%s%s: removed an unfinished snapshot left by a crash", name, TMP_SUFFIX)
    result = codec.scan(read_file(path), file_name=name, record_bytes_max=record_bytes_max)
    if result.damage is not None:
        raise result.error()
    header = _check_header(result.records, name)
    chunks = _check_body(result.records, name, result.valid_end)
    assert len(chunks) == len(result.records) - 2
    return header, chunks
