"""Every way an operator can misconfigure a node ends in one named line, never a traceback."""

import socket
from pathlib import Path

import redis

from tests.process.harness import free_port, limit_file_size, run_cli


def _one_line_error(out) -> str:
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def test_unknown_key(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("portt = 7000\n")
    line = _one_line_error(run_cli("start", "--conf", str(conf)))
    assert line == f"trionode: error: unknown configuration key 'portt' in {conf}"


def test_wrong_type(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('clients_max = "many"\n')
    line = _one_line_error(run_cli("start", "--conf", str(conf)))
    assert "'clients_max'" in line and "must be int, got str" in line


def test_port_in_use(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        line = _one_line_error(run_cli("start", "--port", str(port), "--data-dir", str(tmp_path / "d")))
    assert line.startswith(f"trionode: error: cannot listen on 127.0.0.1:{port}")


def test_locked_data_dir(tmp_path: Path, node_factory) -> None:
    node = node_factory().start()
    line = _one_line_error(run_cli("start", "--port", str(free_port()), "--data-dir", str(node.data_dir)))
    assert "is locked by another trionode" in line


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = _one_line_error(run_cli("start", "--port", str(free_port()), "--data-dir", str(blocker / "d")))
    assert "cannot create data directory" in line


def test_a_node_timeout_too_short_to_ride_through_a_raft_election_is_warned_about(tmp_path: Path, node_factory) -> None:
    (tmp_path / "short.toml").write_text("node_timeout_ms = 2000\n")
    short = node_factory("short", extra=["--conf", str(tmp_path / "short.toml")]).start()
    default = node_factory("default").start()
    assert "pause writes on every shard" in short.log()
    assert "pause writes on every shard" not in default.log()


def test_a_failed_wal_write_stops_the_node_with_one_line_and_exit_3(node_factory) -> None:
    # Files may not grow past 6 MB: starting (one preallocated 4 MiB step) fits, the WAL segment
    # that fills up does not. EFBIG is no full disk: it stays fatal.
    node = node_factory(preexec_fn=limit_file_size(6 * 1024 * 1024)).start()
    client = node.client()
    for i in range(100):
        try:
            client.set(f"k{i}", b"v" * 100_000)
        except redis.ConnectionError:
            break  # the write that failed is never acknowledged
    assert node.proc.wait(timeout=20) == 3
    log = node.log()
    assert "Traceback" not in log and "ExceptionGroup" not in log, log[-3000:]
    fatal = [line for line in log.splitlines() if "CRITICAL" in line]
    assert len(fatal) == 1, log[-3000:]
    assert "fatal: cannot write or fsync WAL segment" in fatal[0] and "File too large" in fatal[0]
    assert fatal[0].endswith("(exit 3)")
