"""Real trionode processes for tests: loopback only, free ports, always killed.

A test gets a :class:`NodeProcess` from the ``node_factory`` fixture; every
process it started is killed at teardown, whatever the test did.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

STARTUP_TIMEOUT_S = 20.0


def free_port() -> int:
    """A port that is free for both the client port and its bus port (port + 10000)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 < 65536 and _is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair found")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class NodeProcess:
    def __init__(self, data_dir: Path, port: int | None = None, extra: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"node-{self.port}.log"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "trionode", "start", "--bind", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir), *self.extra]

    def start(self, wait: bool = True) -> "NodeProcess":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"node exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                if self.client(timeout_s=1).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"node on port {self.port} did not start:\n{self.log()[-4000:]}")

    def client(self, timeout_s: float = 10.0, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout_s, **kwargs)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def terminate(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def log(self) -> str:
        """Everything this node logged in this test (all its lives)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator:
    started: list[NodeProcess] = []

    def make(name: str = "n1", **kwargs: object) -> NodeProcess:
        node = NodeProcess(tmp_path / name, **kwargs)
        started.append(node)
        return node

    yield make
    for node in started:
        node.kill9()


def run_cli(*args: str, timeout_s: float = 30.0, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trionode", *args], capture_output=True, text=True, timeout=timeout_s,
        cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
