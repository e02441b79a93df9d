"""data-history and data-fence: checksummed like every durable file (S6); any damage stops the node, naming the file."""

from pathlib import Path

import cbor2
import pytest

from trionode.core.replication.history import EpochHistory
from trionode.core.wal import codec
from trionode.core.wal.codec import WalCorruption
from trionode.io import wal_check
from trionode.io.history_file import FENCE_NAME, HISTORY_NAME, load_fence, load_history, save_fence, save_history

HISTORY = EpochHistory([(1, 1), (3, 40), (7, 41)])


def test_a_saved_history_loads_back_and_none_saved_is_empty(tmp_path: Path) -> None:
    assert load_history(tmp_path) == EpochHistory()
    save_history(tmp_path, HISTORY)
    assert load_history(tmp_path) == HISTORY
    assert codec.scan((tmp_path / HISTORY_NAME).read_bytes(), file_name=HISTORY_NAME,
                      record_bytes_max=1 << 20).damage is None  # one framed, checksummed record
    assert wal_check.check(str(tmp_path)) == (0, [f"{HISTORY_NAME}: 3 epochs, clean", "exit 0: clean"])


def _damaged(good: bytes) -> dict[str, bytes]:
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    other_kind = codec.encode_record({"kind": "trionode-data", "epochs": HISTORY.to_list()})
    return {
        "a flipped bit": bytes(flipped),
        "cut short": good[:-3],
        "empty": b"",
        "two records": good + good,
        "another file's record": other_kind,
        "not a history": codec.encode_record({"kind": "trionode-data-history", "epochs": [[3, 1], [2, 5]]}),
        "the old unchecksummed format": cbor2.dumps(HISTORY.to_list()),
    }


@pytest.mark.parametrize("damage", list(_damaged(b"x")))
def test_any_damage_is_corruption_naming_the_file(tmp_path: Path, damage: str) -> None:
    save_history(tmp_path, HISTORY)
    path = tmp_path / HISTORY_NAME
    path.write_bytes(_damaged(path.read_bytes())[damage])
    with pytest.raises(WalCorruption, match=f"^{HISTORY_NAME}: corrupt record at byte"):
        load_history(tmp_path)
    code, lines = wal_check.check(str(tmp_path))
    assert code == wal_check.EXIT_CORRUPT and any(line.startswith(HISTORY_NAME) for line in lines), lines


SHARD, OTHER = "1" * 40, "2" * 40


def test_a_saved_fence_loads_back_for_its_shard_only_and_damage_is_corruption(tmp_path: Path) -> None:
    assert load_fence(tmp_path, SHARD) == 0
    save_fence(tmp_path, SHARD, 7)
    assert (load_fence(tmp_path, SHARD), load_fence(tmp_path, OTHER)) == (7, 0)  # another shard starts unfenced
    assert wal_check.check(str(tmp_path)) == (0, [f"{FENCE_NAME}: epoch 7 of shard {SHARD[:12]}, clean",
                                                  "exit 0: clean"])  # fmt: skip
    path = tmp_path / FENCE_NAME
    for damaged in (path.read_bytes()[:-2], codec.encode_record({"kind": "trionode-data-fence", "epoch": -1})):
        path.write_bytes(damaged)
        with pytest.raises(WalCorruption, match=f"^{FENCE_NAME}: corrupt record at byte"):
            load_fence(tmp_path, SHARD)
        assert wal_check.check(str(tmp_path))[0] == wal_check.EXIT_CORRUPT
