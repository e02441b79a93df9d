"""Snapshot files: roundtrip, damage detection, and crash leftovers."""

from pathlib import Path

import cbor2
import pytest

from trionode.core.wal import codec
from trionode.io import snapshot_file, wal_check
from trionode.io.snapshot_file import read_snapshot, write_snapshot

HEADER = {"kind": "data", "covers_seq": 41, "shard_epoch": 3}
CHUNKS: list[object] = [
    [[b"key-%d" % n, b"value-%d" % n] for n in range(start, start + 50)] for start in range(0, 500, 50)
]


def record_offsets(data: bytes) -> list[int]:
    result = codec.scan(data, file_name="x.snap", record_bytes_max=1 << 30)
    assert result.damage is None
    return [offset for offset, _ in result.records]


def test_roundtrip(tmp_path: Path) -> None:
    path = str(tmp_path / "data.snap")
    size_bytes = write_snapshot(path, HEADER, iter(CHUNKS))
    assert size_bytes == Path(path).stat().st_size
    header, chunks = read_snapshot(path)
    assert header == {**HEADER, "version": snapshot_file.FORMAT_VERSION}
    assert chunks == CHUNKS
    assert not Path(path + ".tmp").exists()


def test_empty_body_and_chunks_that_look_like_end_records(tmp_path: Path) -> None:
    path = str(tmp_path / "raft.snap")
    write_snapshot(path, {"kind": "raft"}, [])
    assert read_snapshot(path) == ({"kind": "raft", "version": 1}, [])
    tricky: list[object] = [[snapshot_file.END, 0], {"end": 1}, None]
    write_snapshot(path, {"kind": "raft"}, tricky)  # replaces the previous snapshot
    assert read_snapshot(path)[1] == tricky


def test_rewrite_replaces_atomically(tmp_path: Path) -> None:
    path = str(tmp_path / "data.snap")
    write_snapshot(path, HEADER, CHUNKS)
    write_snapshot(path, {**HEADER, "covers_seq": 99}, CHUNKS[:1])
    header, chunks = read_snapshot(path)
    assert header["covers_seq"] == 99 and chunks == CHUNKS[:1]


@pytest.mark.parametrize("record_index", [0, 3, -1])
def test_flipped_byte_raises_with_offset(tmp_path: Path, record_index: int) -> None:
    path = tmp_path / "data.snap"
    write_snapshot(str(path), HEADER, CHUNKS)
    data = bytearray(path.read_bytes())
    offset = record_offsets(bytes(data))[record_index]
    data[offset + codec.HEADER_BYTES] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(codec.WalCorruption) as info:
        read_snapshot(str(path))
    assert info.value.file_name == "data.snap" and info.value.offset == offset
    assert str(info.value).startswith(f"data.snap: corrupt record at byte {offset}: ")
    assert wal_check.check(str(tmp_path))[0] == wal_check.EXIT_CORRUPT


def test_truncated_snapshot_is_corrupt_not_torn(tmp_path: Path) -> None:
    path = tmp_path / "data.snap"
    write_snapshot(str(path), HEADER, CHUNKS)
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    end_offset = record_offsets(data)[-1]
    with pytest.raises(codec.WalCorruption, match=f"at byte {end_offset}"):
        read_snapshot(str(path))


def test_missing_end_record_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "data.snap"
    write_snapshot(str(path), HEADER, CHUNKS)
    data = path.read_bytes()
    end_offset = record_offsets(data)[-1]
    path.write_bytes(data[:end_offset])  # every remaining record is valid
    with pytest.raises(
        codec.WalCorruption, match=f"data.snap: corrupt record at byte {end_offset}: .*no end record"
    ):
        read_snapshot(str(path))


def test_wrong_end_count_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "data.snap"
    write_snapshot(str(path), HEADER, CHUNKS)
    data = path.read_bytes()
    end_offset = record_offsets(data)[-1]
    path.write_bytes(data[:end_offset] + codec.encode_record([snapshot_file.END, len(CHUNKS) + 1]))
    with pytest.raises(codec.WalCorruption, match="end record counts 11, found 10"):
        read_snapshot(str(path))


def test_header_must_come_first(tmp_path: Path) -> None:
    path = tmp_path / "data.snap"
    path.write_bytes(
        codec.encode_record([snapshot_file.CHUNK, 1]) + codec.encode_record([snapshot_file.END, 1])
    )
    with pytest.raises(codec.WalCorruption, match="byte 0: first record is not a snapshot header"):
        read_snapshot(str(path))


def test_unknown_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.snap"
    path.write_bytes(
        codec.frame(cbor2.dumps({"kind": "data", "version": 99}))
        + codec.encode_record([snapshot_file.END, 0])
    )
    with pytest.raises(codec.WalCorruption, match="unknown snapshot version 99"):
        read_snapshot(str(path))


def test_crash_leftover_tmp_is_removed_at_load(tmp_path: Path) -> None:
    path = tmp_path / "data.snap"
    write_snapshot(str(path), HEADER, CHUNKS)
    leftover = tmp_path / "data.snap.tmp"
    leftover.write_bytes(b"half a snapshot")
    assert wal_check.check(str(tmp_path))[0] == wal_check.EXIT_CLEAN
    assert leftover.exists()  # wal check is read-only
    assert read_snapshot(str(path))[1] == CHUNKS
    assert not leftover.exists()

    other = tmp_path / "raft.snap.tmp"
    other.write_bytes(b"\x00")
    assert snapshot_file.remove_tmp_files(str(tmp_path)) == ["raft.snap.tmp"]
    assert not other.exists() and path.exists()


def test_oversized_chunk_is_refused_and_leaves_old_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "data.snap"
    write_snapshot(str(path), HEADER, CHUNKS, record_bytes_max=4096)
    with pytest.raises(codec.RecordTooLarge):
        write_snapshot(str(path), HEADER, [b"x" * 5000], record_bytes_max=4096)
    assert read_snapshot(str(path))[1] == CHUNKS
