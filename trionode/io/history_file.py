"""The durable copy of a node's epoch history (``data-history``).

The replication shell saves the history before any record of a new epoch is
written (DESIGN §5.2) and loads it at startup.
"""

from pathlib import Path

import cbor2

from trionode.core.replication.history import EpochHistory
from trionode.io.datadir import write_file_durably

HISTORY_NAME = "data-history"


def load_history(directory: Path) -> EpochHistory:
    path = directory / HISTORY_NAME
    if not path.exists():
        return EpochHistory()
    return EpochHistory.from_list(cbor2.loads(path.read_bytes()))


def save_history(directory: Path, history: EpochHistory) -> None:
    write_file_durably(directory / HISTORY_NAME, cbor2.dumps(history.to_list()))
