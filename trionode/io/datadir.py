"""The data directory: its lock, its node id, and durable small-file writes.

One process owns a data directory at a time. The lock is an advisory
``flock`` on ``LOCK`` held for the life of the process, so the kernel drops it
when the process dies, even by ``kill -9``: there is never a stale lock to
clean up by hand. The node id is made once, from the OS's randomness, and
written with the same temp-fsync-rename-fsync dance as every snapshot.
"""

import contextlib
import fcntl
import os
import re
from pathlib import Path

from trionode.io.wal_files import fsync_dir

LOCK_NAME = "LOCK"
NODE_ID_NAME = "node-id"
_NODE_ID_RE = re.compile(r"[0-9a-f]{40}")


class DataDirError(Exception):
    """The data directory cannot be used; the message is one line naming why."""


def write_file_durably(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file.

    ``mode`` applies from the first byte written (a secret is never readable by others, even briefly).
    """
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a leftover from a crash may have other permissions
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(str(path.parent))


class DataDir:
    """An open, locked data directory. Close it (or exit) to release the lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()
        self._lock_fd = -1
        self._prepare()
        self._lock()
        self.node_id = self._load_or_make_node_id()

    def _prepare(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataDirError(f"cannot create data directory {self.path}: {e.strerror}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise DataDirError(f"data directory {self.path} is not writable")

    def _lock(self) -> None:
        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirError(f"data directory {self.path} is locked by another trionode (pid {holder})") from None
        # The pid is informational only; the flock itself is the lock.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _load_or_make_node_id(self) -> str:
        path = self.path / NODE_ID_NAME
        if path.exists():
            node_id = path.read_text().strip()
            if not _NODE_ID_RE.fullmatch(node_id):
                raise DataDirError(f"{path} does not hold a 40-hex-digit node id")
            return node_id
        node_id = os.urandom(20).hex()
        write_file_durably(path, f"{node_id}\n".encode())
        return node_id

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
