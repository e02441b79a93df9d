"""Where a node keeps its cluster's secret: the configuration, or a file in the data directory.

``cluster_secret`` in the configuration wins. Otherwise the secret lives in
``<data_dir>/cluster.secret`` (mode 0600), written when this node forms a
cluster (bootstrap) or is handed one by the node that meets it (CLUSTER
SETSECRET, see ``core/bus_auth.py``). The bus reads it for every handshake.
"""

import logging
import os
from pathlib import Path

from trionode.core.bus_auth import valid_secret
from trionode.io.datadir import DataDirError, write_file_durably

SECRET_FILE = "cluster.secret"
_SECRET_BYTES = 32

log = logging.getLogger("trionode.bus")


class ClusterSecret:
    def __init__(self, data_dir: Path, configured: str) -> None:
        self.path = data_dir / SECRET_FILE
        self.from_config = bool(configured)
        self.value = configured or self._read()

    def _read(self) -> str:
        try:
            value = self.path.read_text().strip()
        except FileNotFoundError:
            return ""
        except OSError as e:
            raise DataDirError(f"cannot read {self.path}: {e.strerror}") from None
        if not valid_secret(value):
            raise DataDirError(f"{self.path} does not hold a valid cluster secret")
        return value

    def key(self) -> bytes | None:
        """The HMAC key for bus handshakes; None while this node has no secret (it then refuses every peer)."""
        return self.value.encode() if self.value else None

    def make(self) -> None:
        """Give a node that forms a new cluster a fresh secret, unless it already has one."""
        if not self.value:
            self.store(os.urandom(_SECRET_BYTES).hex())

    def store(self, value: str) -> None:
        assert valid_secret(value) and not self.from_config
        write_file_durably(self.path, value.encode() + b"\n", mode=0o600)
        self.value = value
