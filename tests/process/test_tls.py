"""Clients over TLS: redis-cli --tls and redis-py with ssl=True are served on tls_port; what cannot
finish a handshake (plain text, silence, no client certificate when one is required) loses only its
own connection; cluster replies send cluster clients to TLS ports."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.process.harness import NodeProcess, free_port, run_cli, wait_for

CERTS = Path(__file__).parent.parent / "tls"  # made by tests/tls/make-certs.sh
CA = str(CERTS / "ca.crt")
HANDSHAKE_TIMEOUT_MS = 2000  # long enough for a real client on a loaded machine; a silent one waits it out


def _tls_conf(tmp_path: Path, name: str, tls_port: int, extra: str = "") -> list[str]:
    conf = tmp_path / f"{name}.toml"
    conf.write_text(f'tls_port = {tls_port}\ntls_cert_file = "{CERTS / "server.crt"}"\n'
                    f'tls_key_file = "{CERTS / "server.key"}"\ntls_handshake_timeout_ms = {HANDSHAKE_TIMEOUT_MS}\n'
                    + extra)
    return ["--conf", str(conf)]


def _tls_client(tls_port: int, **kwargs: object) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=tls_port, ssl=True, ssl_ca_certs=CA, socket_timeout=10, **kwargs)


def _redis_cli_has_tls() -> bool:
    cli = shutil.which("redis-cli")
    return cli is not None and "--tls" in subprocess.run([cli, "--help"], capture_output=True, text=True).stdout


def _closed_by_node(s: socket.socket) -> bytes:
    """Everything the node sends on ``s`` until it closes it (a socket timeout fails the test)."""
    s.settimeout(30)
    received = b""
    try:
        while chunk := s.recv(4096):
            received += chunk
    except ConnectionResetError:  # closed with our bytes unread: a close all the same
        pass
    return received


@pytest.fixture
def tls_node(node_factory, tmp_path: Path):
    tls_port = free_port()
    node = node_factory(extra=_tls_conf(tmp_path, "n1", tls_port, 'tls_auth_clients = "no"\n')).start()
    return node, tls_port


@pytest.mark.skipif(not _redis_cli_has_tls(), reason="the installed redis-cli was built without TLS support")
def test_redis_cli_speaks_tls_to_the_tls_port(tls_node) -> None:
    node, tls_port = tls_node

    def cli(*args: str) -> str:
        out = subprocess.run(["redis-cli", "--tls", "--cacert", CA, "-p", str(tls_port), *args],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert [cli("PING"), cli("SET", "k", "over tls"), cli("GET", "k")] == ["PONG", "OK", "over tls"]
    assert node.client().get("k") == b"over tls"  # the same data on the plain port


def test_redis_py_with_ssl_is_served_and_cluster_replies_advertise_the_tls_port(tls_node) -> None:
    node, tls_port = tls_node
    r = _tls_client(tls_port)
    assert r.set("k", "v") and r.get("k") == b"v"
    assert r.execute_command("CLUSTER", "SLOTS")[0][2][:2] == [b"127.0.0.1", tls_port]
    assert f" 127.0.0.1:{tls_port}@".encode() in node.client().execute_command("CLUSTER", "NODES")
    rc = RedisCluster(host="127.0.0.1", port=tls_port, ssl=True, ssl_ca_certs=CA, socket_timeout=10)
    try:
        for i in range(20):
            rc.set(f"key:{i}", i)
        assert [rc.get(f"key:{i}") for i in range(20)] == [str(i).encode() for i in range(20)]
    finally:
        rc.close()


def test_plain_text_and_silence_on_the_tls_port_cost_only_their_own_connection(tls_node) -> None:
    node, tls_port = tls_node
    with socket.create_connection(("127.0.0.1", tls_port)) as plain:
        plain.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert b"PONG" not in _closed_by_node(plain)
    connecting = time.monotonic()  # before connecting: the node's clock for it cannot start earlier
    with socket.create_connection(("127.0.0.1", tls_port)) as silent:
        assert _tls_client(tls_port).ping()  # served while the silent one holds its connection
        assert _closed_by_node(silent) == b""
        assert time.monotonic() - connecting >= HANDSHAKE_TIMEOUT_MS / 1000
    assert _tls_client(tls_port).ping() and node.client().ping()
    assert node.proc.poll() is None


def test_with_tls_auth_clients_only_clients_with_a_certificate_from_the_ca_are_served(node_factory, tmp_path) -> None:
    tls_port = free_port()
    conf = _tls_conf(tmp_path, "n1", tls_port, f'tls_ca_cert_file = "{CA}"\ntls_auth_clients = "yes"\n')
    node = node_factory(extra=conf).start()
    with pytest.raises(redis.ConnectionError):
        _tls_client(tls_port, retry=None).ping()  # once: redis-py would retry a refusal for seconds
    with_cert = _tls_client(tls_port, ssl_certfile=str(CERTS / "client.crt"), ssl_keyfile=str(CERTS / "client.key"))
    assert with_cert.ping()
    assert node.proc.poll() is None


def _members(node: NodeProcess) -> str:
    """CLUSTER NODES once it lists two nodes, else empty."""
    nodes = node.client().execute_command("CLUSTER", "NODES").decode()
    return nodes if len(nodes.splitlines()) == 2 else ""


def test_a_joined_node_is_advertised_at_its_tls_port(node_factory, tmp_path: Path) -> None:
    tls_a, tls_b = free_port(), free_port()
    a = node_factory("a", extra=_tls_conf(tmp_path, "a", tls_a, 'tls_auth_clients = "no"\n')).start()
    b = node_factory("b", extra=_tls_conf(tmp_path, "b", tls_b, 'tls_auth_clients = "no"\nbootstrap = false\n'))
    b.start()
    # The command line and CLUSTER MEET use the plain ports.
    out = run_cli("cluster", "add-node", f"127.0.0.1:{b.port}", f"127.0.0.1:{a.port}")
    assert out.returncode == 0, out.stderr
    for node in (a, b):
        nodes = wait_for(lambda n=node: _members(n), f"node {node.port} to apply the join")
        assert f" 127.0.0.1:{tls_a}@" in nodes and f" 127.0.0.1:{tls_b}@" in nodes, nodes
    rc = RedisCluster(host="127.0.0.1", port=tls_b, ssl=True, ssl_ca_certs=CA, socket_timeout=10)
    try:
        rc.set("k", "v")  # b owns no slot: the client follows the advertised TLS port to a
        assert rc.get("k") == b"v" and a.client().get("k") == b"v"
    finally:
        rc.close()


def test_a_key_that_does_not_match_the_certificate_stops_the_start_with_one_line(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text(f'tls_port = {free_port()}\ntls_cert_file = "{CERTS / "server.crt"}"\n'
                    f'tls_key_file = "{CERTS / "client.key"}"\ntls_auth_clients = "no"\n')
    out = run_cli("start", "--conf", str(conf), "--port", str(free_port()), "--data-dir", str(tmp_path / "d"))
    assert out.returncode == 1
    assert out.stderr.strip().endswith("the key does not match the certificate"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
