"""The durable copy of a node's epoch history (``data-history``).

The replication shell saves the history before any record of a new epoch is
written (DESIGN §5.2) and loads it at startup.

Format: exactly one WAL record (``core/wal/codec.py``: length | xxh3-64 |
CBOR) whose payload is ``{"kind": "trionode-data-history", "epochs":
[[epoch, start_offset], ...]}``. The file is replaced whole and atomically
(``write_file_durably``), so no crash can leave a torn one: any damage, a
missing or extra record, or a payload that is not a valid history is
corruption, reported as :class:`WalCorruption` naming the file (the node
stops with the corruption exit status, DESIGN S6). The unchecksummed format
of earlier versions (a bare CBOR list) is refused the same way; there were
no deployed data directories to migrate.
"""

from pathlib import Path

from trionode import limits
from trionode.core.replication.history import EpochHistory, HistoryError
from trionode.core.wal import codec
from trionode.core.wal.codec import WalCorruption
from trionode.io.datadir import write_file_durably

HISTORY_NAME = "data-history"
HISTORY_KIND = "trionode-data-history"


def load_history(directory: Path) -> EpochHistory:
    """The saved history, or an empty one if none was ever saved; damage raises WalCorruption."""
    path = directory / HISTORY_NAME
    if not path.exists():
        return EpochHistory()
    return _decode(path.read_bytes())


def save_history(directory: Path, history: EpochHistory) -> None:
    record = codec.encode_record({"kind": HISTORY_KIND, "epochs": history.to_list()})
    write_file_durably(directory / HISTORY_NAME, record)


def _decode(data: bytes) -> EpochHistory:
    """The history a ``data-history`` file holds; anything else raises WalCorruption."""
    result = codec.scan(data, file_name=HISTORY_NAME, record_bytes_max=limits.wal_record_bytes_max)
    if result.damage is not None:
        raise result.error()  # even a "torn" tail: the file is only ever replaced whole
    if len(result.records) != 1:
        offset = result.records[1][0] if result.records else 0
        raise WalCorruption(HISTORY_NAME, offset, f"holds {len(result.records)} records, expected 1")
    payload = result.records[0][1]
    if not isinstance(payload, dict) or payload.get("kind") != HISTORY_KIND:
        raise WalCorruption(HISTORY_NAME, 0, "not a trionode data history record")
    try:
        return EpochHistory.from_list(payload.get("epochs"))
    except HistoryError as e:
        raise WalCorruption(HISTORY_NAME, 0, f"not a valid epoch history: {e}") from None
