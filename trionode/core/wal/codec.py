"""Record framing for every durable file: WAL segments and snapshots.

Theory of operation
-------------------
A record is ``u32 little-endian payload length | u64 xxh3-64 checksum | payload``.
The payload is CBOR; the checksum covers the four length bytes and the payload,
so a damaged length is caught just like a damaged payload. A payload is never
empty (CBOR has no empty encoding), which lets a zero-filled tail never pass for
a record.

``scan`` walks a buffer and stops at the first bad record. What that bad record
means decides whether the node may start (DESIGN S6):

* **torn** -- no valid record starts at any later byte. This is the unfinished
  last write of a crash (a short header, a short payload, garbage or zeros
  after the last good record). The shell may cut it off, and logs that it did.
* **corrupt** -- a valid record starts somewhere after it. Data that was once
  durable has been damaged; the node must stop, naming the file and offset.

WAL segments are preallocated, so a segment still being filled (or one a crash
left behind) ends in zeros. With ``zero_tail=True`` a bad record from which
only zeros follow, up to the end of the buffer, is the end of the log rather
than damage: no valid record can be hidden in zeros, and no writer ever wrote
a zero length.

A record whose checksum verifies but whose payload does not decode is always
corrupt: a torn write cannot produce a matching checksum, so the bytes are
exactly what some writer wrote, and cutting them off could drop a fsynced
record.

The search for later valid records tries every byte position (skipping runs of
zeros in bulk). Its cost is linear in the bytes after the damage; it only runs
when something is already wrong.

This module is pure: bytes in, records and verdicts out. What a verdict means
for a segment that is not the last one is decided in ``recovery.py``; reading
files and truncating them are left to ``trionode/io/wal_files.py``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Literal

import cbor2
import xxhash

HEADER_BYTES = 12
LENGTH_BYTES = 4
PAYLOAD_BYTES_LIMIT = 2**32 - 1  # what the u32 length field can hold

_LENGTH = struct.Struct("<I")
_HEADER = struct.Struct("<IQ")
_NONZERO = re.compile(rb"[^\x00]")

# A small payload is hashed as one concatenated buffer (cheaper than a
# streaming hasher object); a big one is streamed to avoid copying it.
_CONCAT_BYTES_MAX = 64 * 1024


class WalCorruption(Exception):
    """A durable file holds damage the node must not repair by itself.

    ``str(err)`` names the file and the byte offset, e.g.
    ``data-00000000000000000001.wal: corrupt record at byte 1234: checksum mismatch``.
    """

    def __init__(self, file_name: str, offset: int, reason: str) -> None:
        assert offset >= 0, offset
        super().__init__(f"{file_name}: corrupt record at byte {offset}: {reason}")
        self.file_name = file_name
        self.offset = offset
        self.reason = reason


class RecordTooLarge(ValueError):
    """A payload would make a record longer than the record bound."""


@dataclass(frozen=True, slots=True)
class Damage:
    kind: Literal["torn", "corrupt"]
    offset: int  # where the first bad record starts
    reason: str
    next_valid_offset: int | None = None  # for "corrupt": the first valid record after it


@dataclass(slots=True)
class ScanResult:
    file_name: str
    records: list[tuple[int, object]] = field(default_factory=list)  # (byte offset, payload object)
    valid_end: int = 0  # byte just past the last good record
    damage: Damage | None = None

    def error(self) -> WalCorruption:
        """The exception that reports this result's damage."""
        assert self.damage is not None
        return WalCorruption(self.file_name, self.damage.offset, self.damage.reason)


def checksum(length_bytes: bytes | memoryview, payload: bytes | memoryview) -> int:
    """xxh3-64 over the length field followed by the payload."""
    assert len(length_bytes) == LENGTH_BYTES
    if len(payload) <= _CONCAT_BYTES_MAX:
        return xxhash.xxh3_64_intdigest(bytes(length_bytes) + bytes(payload))
    hasher = xxhash.xxh3_64(length_bytes)
    hasher.update(payload)
    return hasher.intdigest()


# Every record of a small payload needs the same few length prefixes: build them once.
_SMALL_LENGTHS = tuple(_LENGTH.pack(n) for n in range(256))


def frame(payload: bytes, *, _small=_SMALL_LENGTHS, _pack=_HEADER.pack, _xxh3=xxhash.xxh3_64_intdigest) -> bytes:
    """Frame an already-encoded (CBOR) payload as one record.

    Runs once per logged write, hence the prebuilt prefixes and the names bound
    as defaults (locals are the cheapest lookups).
    """
    payload_bytes = len(payload)
    assert 0 < payload_bytes <= PAYLOAD_BYTES_LIMIT, payload_bytes
    if payload_bytes < 256:
        return _pack(payload_bytes, _xxh3(_small[payload_bytes] + payload)) + payload
    length_bytes = _LENGTH.pack(payload_bytes)
    return _pack(payload_bytes, checksum(length_bytes, payload)) + payload


# CBOR heads (RFC 8949 §3) for the one shape every effect has: an array of byte
# strings. A short head is the major type ORed with the count; longer counts follow.
_ARRAY_HEADS = tuple(bytes((0x80 | n,)) for n in range(24))
_BYTES_HEADS = tuple(bytes((0x40 | n,)) for n in range(24))


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major | n,))
    if n < 0x100:
        return bytes((major | 24, n))
    if n < 0x10000:
        return bytes((major | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((major | 26,)) + n.to_bytes(4, "big")
    return bytes((major | 27,)) + n.to_bytes(8, "big")


def encode_effect(effect: list[bytes]) -> bytes:
    """CBOR-encode an effect (a list of ``bytes``): exactly the bytes of ``cbor2.dumps``.

    Every write is logged through here, and this is about twice as fast as
    cbor2's general encoder for this one shape. Anything else goes to cbor2;
    ``test_wal_codec`` proves both give the same bytes.
    """
    count = len(effect)
    parts = [_ARRAY_HEADS[count] if count < 24 else _cbor_head(0x80, count)]
    append = parts.append
    for arg in effect:
        if arg.__class__ is not bytes:
            return cbor2.dumps(effect)
        n = len(arg)
        append(_BYTES_HEADS[n] if n < 24 else _cbor_head(0x40, n))
        append(arg)
    return b"".join(parts)


def encode_record(obj: object) -> bytes:
    """CBOR-encode ``obj`` and frame it."""
    return frame(cbor2.dumps(obj))


def record_bytes(payload_bytes: int) -> int:
    """Bytes a record with a payload of this size takes on disk."""
    return HEADER_BYTES + payload_bytes


def _check_frame(buf: memoryview, pos: int, record_bytes_max: int) -> tuple[int, str | None]:
    """Verify the record at ``pos``: (end offset, None) or (0, why it is bad)."""
    buf_bytes = len(buf)
    if buf_bytes - pos < HEADER_BYTES:
        return 0, f"short header ({buf_bytes - pos} of {HEADER_BYTES} bytes)"
    payload_bytes, digest = _HEADER.unpack_from(buf, pos)
    if payload_bytes == 0:
        return 0, "zero length"
    if record_bytes(payload_bytes) > record_bytes_max:
        return 0, f"length {payload_bytes} exceeds the record bound {record_bytes_max}"
    end = pos + HEADER_BYTES + payload_bytes
    if end > buf_bytes:
        return 0, f"short payload ({buf_bytes - pos - HEADER_BYTES} of {payload_bytes} bytes)"
    if checksum(buf[pos : pos + LENGTH_BYTES], buf[pos + HEADER_BYTES : end]) != digest:
        return 0, "checksum mismatch"
    return end, None


def find_valid_record(buf: memoryview, start: int, record_bytes_max: int) -> int | None:
    """The first offset at or after ``start`` where a record verifies, if any."""
    assert start >= 0
    pos = start
    last_pos = len(buf) - HEADER_BYTES - 1  # a record needs a header and a payload byte
    payload_bytes_max = record_bytes_max - HEADER_BYTES
    while pos <= last_pos:
        if buf[pos] == 0 and buf[pos + 1 : pos + LENGTH_BYTES] == b"\x00\x00\x00":
            # A length of zero is never valid, so a record can start no earlier
            # than three bytes before the next non-zero byte.
            match = _NONZERO.search(buf, pos + LENGTH_BYTES)
            if match is None:
                return None
            pos = max(pos + 1, match.start() - (LENGTH_BYTES - 1))
            continue
        # Cheap length test first: at garbage positions it almost always fails.
        payload_bytes = _LENGTH.unpack_from(buf, pos)[0]
        if payload_bytes <= payload_bytes_max and pos + HEADER_BYTES + payload_bytes <= len(buf):
            end, _ = _check_frame(buf, pos, record_bytes_max)
            if end:
                return pos
        pos += 1
    return None


def _classify(buf: memoryview, pos: int, reason: str, record_bytes_max: int) -> Damage:
    later = find_valid_record(buf, pos + 1, record_bytes_max)
    if later is None:
        return Damage("torn", pos, reason)
    assert later > pos
    return Damage("corrupt", pos, reason, later)


def scan(buf: bytes | memoryview, *, file_name: str, record_bytes_max: int, zero_tail: bool = False) -> ScanResult:
    """Decode every record up to the first bad one and classify that one.

    ``file_name`` is carried into the result for error messages; nothing is read here.
    ``zero_tail``: zeros from the first bad record to the end are the (preallocated) end of the log.
    """
    assert record_bytes_max > HEADER_BYTES, record_bytes_max
    view = memoryview(buf)
    result = ScanResult(file_name)
    pos = 0
    while pos < len(view):
        end, reason = _check_frame(view, pos, record_bytes_max)
        if reason is not None:
            if not (zero_tail and _NONZERO.search(view, pos) is None):
                result.damage = _classify(view, pos, reason, record_bytes_max)
            break
        try:
            obj = cbor2.loads(view[pos + HEADER_BYTES : end])
        except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError) as exc:
            # The checksum matched, so these are the bytes a writer wrote: never torn.
            result.damage = Damage("corrupt", pos, f"checksum valid but payload undecodable ({exc})")
            break
        result.records.append((pos, obj))
        pos = end
    result.valid_end = pos
    assert result.damage is None or result.damage.offset == result.valid_end
    assert result.valid_end <= len(view)
    return result
