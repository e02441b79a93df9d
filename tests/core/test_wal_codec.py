"""The record codec: framing, and the torn-versus-corrupt verdict of DESIGN S6."""

import cbor2
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.core.wal import codec

RECORD_BYTES_MAX = 1 << 20

payloads = st.recursive(
    st.one_of(st.binary(max_size=64), st.text(max_size=16), st.integers(-(2**63), 2**64 - 1), st.booleans()),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=8,
)
record_lists = st.lists(payloads, min_size=1, max_size=12)
# Damage is about framing, not what the payload holds: byte strings of any length are as good a
# test of it as nested values, and hypothesis makes them far faster (most of these tests' time).
framed_lists = st.lists(st.binary(max_size=300), min_size=1, max_size=12)


def encode_all(objs: list[object]) -> tuple[bytes, list[int]]:
    """The byte stream and the offset where each record starts."""
    offsets, parts, pos = [], [], 0
    for obj in objs:
        record = codec.encode_record(obj)
        offsets.append(pos)
        parts.append(record)
        pos += len(record)
    return b"".join(parts), offsets


def scan(buf: bytes) -> codec.ScanResult:
    return codec.scan(buf, file_name="data-00000000000000000001.wal", record_bytes_max=RECORD_BYTES_MAX)


def test_frame_layout_length_checksum_payload() -> None:
    payload = cbor2.dumps({"k": b"v"})
    record = codec.frame(payload)
    length = len(payload).to_bytes(4, "little")
    assert record[:4] == length
    assert int.from_bytes(record[4:12], "little") == xxhash.xxh3_64_intdigest(length + payload)
    assert record[codec.HEADER_BYTES :] == payload
    assert codec.HEADER_BYTES == 12


def test_large_payload_streams_the_same_checksum() -> None:
    payload = cbor2.dumps(b"x" * 200_000)
    record = codec.frame(payload)
    length = len(payload).to_bytes(4, "little")
    assert int.from_bytes(record[4:12], "little") == xxhash.xxh3_64_intdigest(length + payload)
    assert scan(record).records == [(0, b"x" * 200_000)]


@pytest.mark.parametrize("size", [1, 23, 24, 255, 256, 257, 65_535, 65_536, 65_537])
def test_frame_layout_at_every_length_prefix_boundary(size: int) -> None:
    # Payloads under 256 bytes take prebuilt length prefixes; the layout must not change.
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    record = codec.frame(payload)
    length = size.to_bytes(4, "little")
    assert record == length + xxhash.xxh3_64_intdigest(length + payload).to_bytes(8, "little") + payload


# Byte strings around every CBOR head-size boundary (23/24, 255/256, 65535/65536).
effect_args = st.one_of(
    st.binary(max_size=30),
    st.sampled_from([22, 23, 24, 25, 255, 256, 257, 65_535, 65_536, 65_537]).map(lambda n: b"v" * n),
)


@settings(max_examples=300)
@given(st.lists(effect_args, max_size=30))
def test_encode_effect_is_byte_identical_to_cbor2(effect: list[bytes]) -> None:
    # The hand-written encoder is a fast path for cbor2.dumps; they must never differ.
    assert codec.encode_effect(effect) == cbor2.dumps(effect)
    assert cbor2.loads(codec.encode_effect(effect)) == effect


def test_encode_effect_hands_other_shapes_to_cbor2() -> None:
    for effect in ([b"SET", "k", b"v"], [b"SET", bytearray(b"k")], [b"DEL", 1]):
        assert codec.encode_effect(effect) == cbor2.dumps(effect)  # type: ignore[arg-type]
    assert codec.encode_effect([b"x"] * 300) == cbor2.dumps([b"x"] * 300)


@pytest.mark.parametrize("feed", ["bytes", "memoryview", "bytearray"])
def test_scan_clean_stream(feed: str) -> None:
    buf, offsets = encode_all([1, "two", [3], {"four": b"4"}])
    view = {"bytes": buf, "memoryview": memoryview(buf), "bytearray": bytearray(buf)}[feed]
    result = scan(view)
    assert result.damage is None
    assert result.records == [
        (offsets[0], 1),
        (offsets[1], "two"),
        (offsets[2], [3]),
        (offsets[3], {"four": b"4"}),
    ]
    assert result.valid_end == len(buf)


def test_scan_empty_buffer_is_clean() -> None:
    result = scan(b"")
    assert (result.records, result.valid_end, result.damage) == ([], 0, None)


def test_zero_filled_tail_is_torn() -> None:
    buf, _ = encode_all([b"a", b"b"])
    result = scan(buf + bytes(100_000))
    assert result.damage is not None and result.damage.kind == "torn"
    assert result.damage.offset == len(buf) == result.valid_end
    assert [obj for _, obj in result.records] == [b"a", b"b"]


def test_a_preallocated_zero_tail_is_the_end_of_the_log() -> None:
    buf, _ = encode_all([b"a", b"b"])
    result = codec.scan(buf + bytes(100_000), file_name="x.wal", record_bytes_max=RECORD_BYTES_MAX, zero_tail=True)
    assert result.damage is None and result.valid_end == len(buf)
    assert [obj for _, obj in result.records] == [b"a", b"b"]
    # Anything but zeros after the last record is still damage.
    torn = codec.scan(buf + bytes(100) + b"\x07", file_name="x.wal", record_bytes_max=RECORD_BYTES_MAX,
                      zero_tail=True)
    assert torn.damage is not None and torn.damage.kind == "torn" and torn.damage.offset == len(buf)
    half = codec.scan(buf[:-3] + bytes(100), file_name="x.wal", record_bytes_max=RECORD_BYTES_MAX, zero_tail=True)
    assert half.damage is not None and half.damage.kind == "torn"  # a record cut short, then zeros


def test_garbage_between_records_is_corrupt_and_names_offset() -> None:
    head, _ = encode_all([b"a"])
    tail, _ = encode_all([b"b"])
    result = scan(head + b"\xde\xad\xbe\xef" * 5 + tail)
    damage = result.damage
    assert damage is not None and damage.kind == "corrupt"
    assert damage.offset == len(head) and damage.next_valid_offset == len(head) + 20
    err = result.error()
    assert isinstance(err, codec.WalCorruption) and err.offset == len(head)
    assert str(err).startswith(f"data-00000000000000000001.wal: corrupt record at byte {len(head)}: ")


def test_length_over_bound_is_reported() -> None:
    buf, _ = encode_all([b"x" * 100])
    result = codec.scan(buf, file_name="f.wal", record_bytes_max=50)
    assert result.damage is not None and "exceeds the record bound" in result.damage.reason
    assert result.damage.kind == "torn" and result.records == []


def test_valid_checksum_undecodable_payload_is_always_corrupt() -> None:
    # A matching checksum means a writer wrote these bytes: never cut them as torn.
    buf = codec.frame(b"\xff\xff\xff")
    result = scan(buf)
    assert result.damage is not None and result.damage.kind == "corrupt"
    assert result.damage.offset == 0 and result.records == []


def test_wal_corruption_message_names_file_and_offset() -> None:
    err = codec.WalCorruption("data-1.wal", 1234, "checksum mismatch")
    assert str(err) == "data-1.wal: corrupt record at byte 1234: checksum mismatch"
    assert (err.file_name, err.offset, err.reason) == ("data-1.wal", 1234, "checksum mismatch")


@settings(max_examples=300, deadline=None)
@given(objs=record_lists, data=st.data())
def test_cut_stream_loses_only_the_tail_record(objs: list[object], data: st.DataObject) -> None:
    buf, offsets = encode_all(objs)
    cut = data.draw(st.integers(0, len(buf)), label="cut")
    result = scan(buf[:cut])
    kept = [i for i, off in enumerate(offsets) if off + len(codec.encode_record(objs[i])) <= cut]
    assert [obj for _, obj in result.records] == [objs[i] for i in kept]
    assert [off for off, _ in result.records] == [offsets[i] for i in kept]
    boundary = offsets[len(kept)] if len(kept) < len(objs) else len(buf)
    assert result.valid_end == boundary
    if cut == boundary:
        assert result.damage is None
    else:
        assert result.damage is not None and result.damage.kind == "torn"
        assert result.damage.offset == boundary


@settings(max_examples=300, deadline=None)
@given(objs=framed_lists, data=st.data())
def test_single_flipped_byte_is_detected(objs: list[object], data: st.DataObject) -> None:
    buf, offsets = encode_all(objs)
    position = data.draw(st.integers(0, len(buf) - 1), label="position")
    bit = data.draw(st.integers(0, 7), label="bit")
    damaged = bytearray(buf)
    damaged[position] ^= 1 << bit
    result = scan(bytes(damaged))
    hit = max(i for i, off in enumerate(offsets) if off <= position)
    # Every record before the damaged one comes back intact, and nothing else.
    assert result.records == [(offsets[i], objs[i]) for i in range(hit)]
    assert result.damage is not None and result.damage.offset == offsets[hit] == result.valid_end
    expected_kind = "torn" if hit == len(objs) - 1 else "corrupt"
    assert result.damage.kind == expected_kind
    if expected_kind == "corrupt":
        assert result.damage.next_valid_offset == offsets[hit + 1]


@settings(max_examples=200, deadline=None)
@given(objs=framed_lists, garbage=st.binary(min_size=1, max_size=64), data=st.data())
def test_inserted_garbage_keeps_every_record_before_it(objs: list[object], garbage: bytes, data: st.DataObject) -> None:
    buf, offsets = encode_all(objs)
    ends = [*offsets[1:], len(buf)]
    drawn = data.draw(st.integers(0, len(buf)), label="position")
    damaged = buf[:drawn] + garbage + buf[drawn:]
    # Garbage that repeats the bytes beside it could have been inserted elsewhere in the same
    # stream (b"\x00" before a b"\x00"), so judge by what the scanner can see: records are intact
    # up to where the streams first differ, and again from where their common tail begins.
    same_head = next((i for i, (a, b) in enumerate(zip(buf, damaged, strict=False)) if a != b), len(buf))
    same_tail = next((i for i, (a, b) in enumerate(zip(buf[::-1], damaged[::-1], strict=False)) if a != b), len(buf))
    result = scan(damaged)
    kept = sum(1 for end in ends if end <= same_head)
    survivors = sum(1 for offset in offsets[kept:] if offset >= len(buf) - same_tail)
    assert result.records == [(offsets[i], objs[i]) for i in range(kept)]
    assert result.damage is not None and result.valid_end == result.damage.offset
    # Damage with a whole record after it is corruption; damage at the end is a torn tail.
    assert result.damage.kind == ("corrupt" if survivors > 0 else "torn")


def test_garbage_equal_to_the_byte_after_it_leaves_that_record_intact() -> None:
    # Found by hypothesis: b"\x00" inserted before the last byte of a record whose last byte is
    # 0x00 is the same stream as b"\x00" appended after the record, a torn tail.
    buf, _ = encode_all([b"\x00"])
    assert buf[-1:] == b"\x00"
    result = scan(buf[:-1] + b"\x00" + buf[-1:])
    assert result.records == [(0, b"\x00")]
    assert result.damage is not None and result.damage.kind == "torn" and result.damage.offset == len(buf)


def test_garbage_equal_to_the_byte_before_a_record_leaves_that_record_whole_after_it() -> None:
    # Found by hypothesis: b"\x05" inserted before a record whose length starts with 0x05 is the
    # same stream as b"\x05" then the whole record, which is corruption, not a torn tail.
    buf, _ = encode_all([b"\x00" * 4])
    assert buf[:1] == b"\x05"
    result = scan(b"\x05" + buf)
    assert result.records == [] and result.damage is not None
    assert result.damage.kind == "corrupt" and result.damage.next_valid_offset == 1
