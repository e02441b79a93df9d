"""The data directory: one owner at a time, a stable node id, clear refusals."""

import os
import re
from pathlib import Path

import pytest

from trionode.io.datadir import DataDir, DataDirError


def test_node_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = DataDir(tmp_path / "d")
    node_id = first.node_id
    first.close()
    assert re.fullmatch(r"[0-9a-f]{40}", node_id)
    again = DataDir(tmp_path / "d")
    assert again.node_id == node_id
    again.close()


def test_second_owner_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    owner = DataDir(tmp_path)
    with pytest.raises(DataDirError, match=f"locked by another trionode \\(pid {os.getpid()}\\)"):
        DataDir(tmp_path)
    owner.close()
    DataDir(tmp_path).close()


def test_unwritable_directory_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores permission bits; a path under a regular file cannot be created by anyone
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(DataDirError, match="cannot create data directory"):
            DataDir(blocker / "sub")
    else:
        tmp_path.chmod(0o500)
        with pytest.raises(DataDirError, match="not writable"):
            DataDir(tmp_path)


def test_damaged_node_id_is_refused(tmp_path: Path) -> None:
    (tmp_path / "node-id").write_text("not-an-id\n")
    with pytest.raises(DataDirError, match="does not hold a 40-hex-digit node id"):
        DataDir(tmp_path)
