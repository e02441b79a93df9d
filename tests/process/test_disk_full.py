"""A full disk: writes are refused with MISCONF, reads go on, and writes resume by themselves.

Runs a node on a small tmpfs (so it needs root to mount one, and is skipped otherwise).
"""

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.process.harness import NodeProcess, status, wait_for
from trionode import limits
from trionode.io import wal_files

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    with path.open("wb") as f:
        try:
            while True:
                f.write(bytes(1 << 20))
                f.flush()
        except OSError:
            pass


@contextmanager
def _node_on_a_full_disk(small_disk: Path, tmp_path: Path) -> Iterator[tuple[NodeProcess, redis.Redis, Path]]:
    """A node on the small disk that wrote ``before`` = 1, then the disk filled by ``filler``; killed at the end."""
    node = NodeProcess(small_disk / "n1")
    node.log_path = tmp_path / "node.log"  # not on the small disk
    try:
        node.start()
        r = node.client()
        r.set("before", "1")
        filler = small_disk / "filler"
        _fill(filler)
        yield node, r, filler
    finally:
        node.kill9()


def test_a_full_disk_refuses_writes_serves_reads_and_recovers(small_disk: Path, tmp_path: Path) -> None:
    with _node_on_a_full_disk(small_disk, tmp_path) as (node, r, filler):
        value = b"v" * 100_000
        stuck = node.client(timeout_s=2)
        written = []
        with pytest.raises((redis.ResponseError, redis.TimeoutError)):
            for i in range(200):  # past the preallocated part of the segment
                stuck.set(f"k{i}", value)
                written.append(f"k{i}")
        with pytest.raises(redis.ResponseError, match="MISCONF"):
            r.set("during", "1")
        with pytest.raises(redis.ResponseError, match="MISCONF"):
            r.flushall()
        # Reads go on (a key whose write is still waiting for space waits with it, as any unacknowledged write).
        assert r.get("before") == b"1"
        assert node.log().count("the disk is full") == 1
        assert node.proc.poll() is None

        filler.unlink()
        wait_for(lambda: _writes_work(r), "writes to resume once space is free")
        assert "writes resume" in node.log()
        node.kill9()
        node.start()
        r = node.client()
        assert r.get("before") == b"1" and r.get("after") == b"1"
        assert all(r.get(key) == value for key in written)


def _writes_work(r: redis.Redis) -> bool:
    try:
        return bool(r.set("after", "1"))
    except redis.ResponseError:
        time.sleep(0.2)
        return False


def test_a_node_restarted_on_the_still_full_disk_serves_reads_and_refuses_writes(
    small_disk: Path, tmp_path: Path
) -> None:
    # Issue 12 §3.5: restarted on the still-full disk, the node died at start (DiskFull from the WAL, exit 4).
    with _node_on_a_full_disk(small_disk, tmp_path) as (node, r, filler):
        node.kill9()
        node.start()
        r = node.client()
        assert r.get("before") == b"1"
        for _ in range(3):
            with pytest.raises(redis.ResponseError, match="MISCONF"):
                r.set("during", "1")
        assert r.get("before") == b"1" and node.proc.poll() is None
        assert "data WAL: the disk is full" in node.log()
        filler.unlink()
        wait_for(lambda: _writes_work(r), "writes to resume once space is free")
        assert node.proc.poll() is None and r.get("after") == b"1"
        assert "writes resume" in node.log() and "Traceback" not in node.log()


def test_a_node_restarted_with_no_room_for_its_raft_wal_serves_and_says_why_raft_waits(
    small_disk: Path, tmp_path: Path
) -> None:
    # Issue 12 §3.5: with no room to preallocate the Raft WAL at start, the node hung before serving
    # anything: PING, GET and CLUSTER INFO waited for the Raft fsync of its first campaign.
    with _node_on_a_full_disk(small_disk, tmp_path) as (node, r, filler):
        node.kill9()
        filler.unlink()
        for prefix in ("data", "raft"):  # cut the preallocated tails as the restart would, then fill the disk
            wal_files.load(str(node.data_dir), prefix, repair=True)
        _fill(filler)
        _fill(small_disk / "filler-last-pages")
        node.start()
        r = node.client(timeout_s=5)
        assert r.ping()
        with pytest.raises(redis.ResponseError, match=r"CLUSTERDOWN|MISCONF"):
            r.set("during", "1")
        assert "raft WAL: the disk is full" in node.log() and "takes no part in Raft" in node.log()
        assert "disk is full" in " ".join(status(node)["problems"])
        filler.unlink()
        wait_for(lambda: _writes_work(r), "writes to resume once space is free")
        assert r.get("before") == b"1" and node.proc.poll() is None
        assert "raft WAL: disk space is available again" in node.log()


def test_a_raft_compaction_on_a_full_disk_is_skipped_not_fatal(small_disk: Path, tmp_path: Path) -> None:
    # Issue 12 §3.5: raft.snap finding no space stopped the node (exit 3), and again at every restart.
    with _node_on_a_full_disk(small_disk, tmp_path) as (node, r, _filler):
        pipe = r.pipeline(transaction=False)
        for i in range(limits.raft_compact_entries_min + 50):  # each one a committed Raft entry
            pipe.execute_command("ACL", "SETUSER", f"u{i % 5}", "on", f">pw{i}")
        assert all(reply == b"OK" for reply in pipe.execute())
        assert "raft compaction: no space for raft.snap" in node.log()
        assert r.get("before") == b"1" and node.proc.poll() is None
        assert node.terminate() == 0
        assert "CRITICAL" not in node.log()
