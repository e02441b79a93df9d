"""Real trionode processes for tests: loopback only, free ports, always killed.

A test gets a :class:`NodeProcess` from the ``node_factory`` fixture; every
process it started is killed at teardown, whatever the test did.
"""

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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


def limit_file_size(bytes_max: int) -> Callable[[], None]:
    """A preexec_fn: the kernel refuses to grow any file of the node past ``bytes_max`` (RLIMIT_FSIZE,
    EFBIG), a real write failure, as a full disk gives, that works even for root."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (bytes_max, bytes_max))


class NodeProcess:
    def __init__(self, data_dir: Path, port: int | None = None, extra: list[str] | None = None,
                 preexec_fn: Callable[[], None] | None = None, password: str | None = None) -> None:
        self.data_dir = data_dir
        self.password = password  # for client(): the node's requirepass
        self.port = port or free_port()
        self.extra = extra or []
        self.preexec_fn = preexec_fn  # runs in the child before exec (e.g. to lower a resource limit)
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"node-{self.port}.log"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "trionode", "start", "--bind", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir), *self.extra]

    def start(self, wait: bool = True) -> "NodeProcess":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, preexec_fn=self.preexec_fn)
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
            except (redis.ConnectionError, redis.TimeoutError):  # the port is bound before recovery: answers come late
                time.sleep(0.05)
        raise AssertionError(f"node on port {self.port} did not start:\n{self.log()[-4000:]}")

    def client(self, timeout_s: float = 10.0, **kwargs: object) -> redis.Redis:
        kwargs.setdefault("password", self.password)
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


# --- helpers shared by the cluster tests ----------------------------------------------

SETTLE_S = 20.0


def status(node: NodeProcess) -> dict:
    """The cluster as the node sees it: the report ``trionode status --json`` prints (``CLUSTER STATUS``).

    Asked over a client, not by running the CLI: the tests poll it (about 600 times in this
    directory), and a Python process per poll cost a third of a CPU second each, on the cores the
    nodes under test need. The CLI's own output is tested in test_single_node.
    """
    import json

    with node.client() as client:
        return json.loads(client.execute_command("CLUSTER", "STATUS"))


def wait_for(predicate, what: str, timeout_s: float = SETTLE_S):
    """Poll ``predicate`` until it returns something true; return that, or fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def readonly_get(node: NodeProcess, key: str) -> bytes | None:
    client = node.client()
    client.execute_command("READONLY")
    return client.get(key)


def form_shard(node_factory, tmp_path: Path, conf: str = "", *, wait_isr: bool = True) -> tuple:
    """A primary owning every slot, its replica, and a third voter that keeps Raft available.

    Returns ``(primary, replica, witness, primary_id, replica_id)``; ``conf`` is added to every
    node's configuration. With ``wait_isr`` it returns once the replica is in the ISR.
    """
    (tmp_path / "primary.toml").write_text(conf)
    (tmp_path / "join.toml").write_text("bootstrap = false\n" + conf)
    primary = node_factory("primary", extra=["--conf", str(tmp_path / "primary.toml")]).start()
    replica = node_factory("replica", extra=["--conf", str(tmp_path / "join.toml")]).start()
    witness = node_factory("witness", extra=["--conf", str(tmp_path / "join.toml")]).start()
    for node in (replica, witness):
        out = run_cli("cluster", "add-node", f"127.0.0.1:{node.port}", f"127.0.0.1:{primary.port}")
        assert out.returncode == 0, out.stderr
    primary_id = primary.client().execute_command("CLUSTER", "MYID").decode()
    replica_id = replica.client().execute_command("CLUSTER", "MYID").decode()
    assert replica.client().execute_command("CLUSTER", "REPLICATE", primary_id) == b"OK"
    if wait_isr:
        wait_for(lambda: replica_id in status(primary)["shards"][0]["isr_ids"], "the replica to join the ISR")
    return primary, replica, witness, primary_id, replica_id


def bus_dial(node: NodeProcess, claimed: str, secret: bytes | None = None) -> socket.socket:
    """A bus connection to ``node`` made by hand, claiming node id ``claimed``.

    It proves itself with ``secret`` (default: the node's own, from its data directory);
    the caller closes it.
    """
    import cbor2

    from trionode.core import bus_auth

    def frame(obj: dict) -> bytes:
        payload = cbor2.dumps(obj)
        return struct.pack("<I", len(payload)) + payload

    key = secret if secret is not None else (node.data_dir / "cluster.secret").read_text().strip().encode()
    nonce = os.urandom(bus_auth.NONCE_BYTES)
    s = socket.create_connection(("127.0.0.1", node.port + 10000), timeout=10)
    s.sendall(frame({"hello": claimed, "nonce": nonce}))
    (length,) = struct.unpack("<I", s.recv(4, socket.MSG_WAITALL))
    reply = cbor2.loads(s.recv(length, socket.MSG_WAITALL))
    s.sendall(frame({"proof": bus_auth.proof(key, bus_auth.DIALER, claimed, reply["hello"], nonce, reply["nonce"])}))
    return s
