"""The durable copies of a node's epoch history (``data-history``) and fence epoch (``data-fence``).

The replication shell saves the history before any record of a new epoch is
written (DESIGN §5.2) and loads it at startup. It saves the fence epoch (the
epoch below which a replica refuses every stream, core/replication
``SaveFence``) before it answers a failover's fencing round, and builds its
replica driver from it at startup, so a fenced replica that restarts still
refuses the deposed primary. The fence names its shard: a node that later
replicates another shard starts that one unfenced.

Format: each file is exactly one WAL record (``core/wal/codec.py``: length |
xxh3-64 | CBOR) whose payload is ``{"kind": "trionode-data-history",
"epochs": [[epoch, start_offset], ...]}`` or ``{"kind":
"trionode-data-fence", "shard": shard_id, "epoch": epoch}``. A file is
replaced whole and atomically (``write_file_durably``), so no crash can leave
a torn one: any damage, a missing or extra record, or a payload that is not
valid is corruption, reported as :class:`WalCorruption` naming the file (the
node stops with the corruption exit status, DESIGN S6). The unchecksummed
history format of earlier versions (a bare CBOR list) is refused the same
way; there were no deployed data directories to migrate.
"""

from pathlib import Path
from typing import Any

from trionode import limits
from trionode.core.cluster.state import is_id
from trionode.core.replication.history import EpochHistory, HistoryError
from trionode.core.wal import codec
from trionode.core.wal.codec import WalCorruption
from trionode.io.datadir import write_file_durably

HISTORY_NAME = "data-history"
HISTORY_KIND = "trionode-data-history"
FENCE_NAME = "data-fence"
FENCE_KIND = "trionode-data-fence"


def load_history(directory: Path) -> EpochHistory:
    """The saved history, or an empty one if none was ever saved; damage raises WalCorruption."""
    payload = _load(directory, HISTORY_NAME, HISTORY_KIND)
    if payload is None:
        return EpochHistory()
    try:
        return EpochHistory.from_list(payload.get("epochs"))
    except HistoryError as e:
        raise WalCorruption(HISTORY_NAME, 0, f"not a valid epoch history: {e}") from None


def save_history(directory: Path, history: EpochHistory) -> None:
    _save(directory, HISTORY_NAME, {"kind": HISTORY_KIND, "epochs": history.to_list()})


def load_fence(directory: Path, shard_id: str) -> int:
    """The epoch this node was fenced at as a replica of ``shard_id`` (0: never); damage raises WalCorruption."""
    fence = read_fence(directory)
    return fence[1] if fence is not None and fence[0] == shard_id else 0


def read_fence(directory: Path) -> tuple[str, int] | None:
    """The saved ``(shard_id, epoch)`` fence, or None if none was ever saved; damage raises WalCorruption."""
    payload = _load(directory, FENCE_NAME, FENCE_KIND)
    if payload is None:
        return None
    shard, epoch = payload.get("shard"), payload.get("epoch")
    if not (is_id(shard) and isinstance(epoch, int) and not isinstance(epoch, bool) and 0 <= epoch < 2**63):
        raise WalCorruption(FENCE_NAME, 0, "not a valid fence: a shard id and an epoch")
    return shard, epoch


def save_fence(directory: Path, shard_id: str, epoch: int) -> None:
    assert is_id(shard_id) and epoch >= 0, (shard_id, epoch)
    _save(directory, FENCE_NAME, {"kind": FENCE_KIND, "shard": shard_id, "epoch": epoch})


def _save(directory: Path, name: str, payload: dict[str, Any]) -> None:
    write_file_durably(directory / name, codec.encode_record(payload))


def _load(directory: Path, name: str, kind: str) -> dict[str, Any] | None:
    """The payload of the one record in ``name`` (None if the file is missing); anything else is corruption."""
    path = directory / name
    if not path.exists():
        return None
    result = codec.scan(path.read_bytes(), file_name=name, record_bytes_max=limits.wal_record_bytes_max)
    if result.damage is not None:
        raise result.error()  # even a "torn" tail: the file is only ever replaced whole
    if len(result.records) != 1:
        offset = result.records[1][0] if result.records else 0
        raise WalCorruption(name, offset, f"holds {len(result.records)} records, expected 1")
    payload = result.records[0][1]
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        raise WalCorruption(name, 0, f"not a trionode {name} record")
    return payload
