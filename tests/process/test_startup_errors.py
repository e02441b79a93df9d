"""Every way an operator can misconfigure a node ends in one named line, never a traceback."""

import socket
from pathlib import Path

from tests.process.harness import free_port, run_cli


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
