"""requirepass through redis-py: what a client with and without the password sees."""

import re
import socket
import struct
from pathlib import Path

import cbor2
import pytest
import redis
from redis.cluster import RedisCluster

from tests.process.harness import bus_dial, run_cli, wait_for

PASSWORD = "s3cret-Pa55"


def _conf(tmp_path: Path, name: str, text: str) -> list[str]:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return ["--conf", str(path)]


def test_requirepass_gates_every_client(node_factory, tmp_path: Path) -> None:
    node = node_factory(extra=_conf(tmp_path, "n1", f'requirepass = "{PASSWORD}"\n'), password=PASSWORD).start()
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as raw:
        raw.sendall(b"GET k\r\nQUIT\r\n")
        assert raw.makefile("rb").read() == b"-NOAUTH Authentication required.\r\n+OK\r\n"
    # Newer redis-py says HELLO first (refused too, with HELLO's line), older ones send the command.
    with pytest.raises(redis.AuthenticationError, match=r"HELLO must be called with the client already authenticated"
                       r"|^Authentication required"):
        node.client(password=None).set("k", "v")
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
        node.client(password="wrong").ping()
    assert node.client().set("k", "v") is True
    assert node.client(username="default").get("k") == b"v"
    assert node.client(protocol=3).get("k") == b"v"  # HELLO 3 AUTH default <password>
    out = run_cli("status", f"127.0.0.1:{node.port}", "--json")
    assert out.returncode != 0 and "Authentication required" in out.stderr


def test_the_cli_logs_in_as_an_acl_user(node_factory, tmp_path: Path, monkeypatch) -> None:
    # With the default user off (admins get users of their own), the CLI could only say AUTH <password>
    # as default, so no command of it worked any more.
    node = node_factory(extra=_conf(tmp_path, "n1", f'requirepass = "{PASSWORD}"\n'), password=PASSWORD).start()
    admin = node.client()
    assert admin.execute_command("ACL", "SETUSER", "ops", "on", ">ops-pw", "allkeys", "+@all") == b"OK"
    assert admin.execute_command("ACL", "SETUSER", "default", "off") == b"OK"
    monkeypatch.setenv("TRIONODE_USER", "ops")
    monkeypatch.setenv("TRIONODE_PASSWORD", "ops-pw")
    out = run_cli("status", f"127.0.0.1:{node.port}", "--json")
    assert out.returncode == 0, out.stderr


def test_a_cluster_with_requirepass_forms_and_serves_redis_cluster(node_factory, tmp_path: Path, monkeypatch) -> None:
    conf = f'requirepass = "{PASSWORD}"\n'
    seed = node_factory("seed", extra=_conf(tmp_path, "seed", conf), password=PASSWORD).start()
    joiner = node_factory("join", extra=_conf(tmp_path, "join", "bootstrap = false\n" + conf), password=PASSWORD)
    joiner.start()
    monkeypatch.setenv("TRIONODE_PASSWORD", PASSWORD)
    out = run_cli("cluster", "add-node", f"127.0.0.1:{joiner.port}", f"127.0.0.1:{seed.port}")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: len(joiner.client().execute_command("CLUSTER", "NODES").splitlines()) == 2, "the join")
    rc = RedisCluster(host="127.0.0.1", port=joiner.port, password=PASSWORD, socket_timeout=10)
    try:
        for i in range(50):
            rc.set(f"key:{i}", i)
        assert [rc.get(f"key:{i}") for i in range(50)] == [str(i).encode() for i in range(50)]
    finally:
        rc.close()


def test_cluster_replies_advertise_announce_ip_and_port(node_factory, tmp_path: Path) -> None:
    # 127.0.0.2 stands in for a public address: the node binds 127.0.0.1 only, as process tests must.
    node = node_factory(extra=_conf(tmp_path, "n1", 'announce_ip = "127.0.0.2"\nannounce_port = 6390\n')).start()
    r = node.client()
    assert r.execute_command("CLUSTER", "SLOTS")[0][2][:2] == [b"127.0.0.2", 6390]
    assert b" 127.0.0.2:6390@" in r.execute_command("CLUSTER", "NODES")
    shards = repr(r.execute_command("CLUSTER", "SHARDS"))
    assert "127.0.0.2" in shards and "127.0.0.1" not in shards


def _kept(s: socket.socket) -> bool:
    """Send a message on a hand-made bus connection; True if the node keeps the connection open."""
    with s:
        payload = cbor2.dumps({"k": "lease", "req": 7})  # a well-formed message
        s.sendall(struct.pack("<I", len(payload)) + payload)
        s.settimeout(1.0)
        try:
            return s.recv(1) != b""
        except TimeoutError:
            return True


def test_a_process_without_the_cluster_secret_cannot_join_the_bus(node_factory) -> None:
    node = node_factory().start()
    secret_file = node.data_dir / "cluster.secret"
    assert secret_file.stat().st_mode & 0o077 == 0  # made at bootstrap, readable by the node's user only
    assert not _kept(bus_dial(node, "f" * 40, secret=b"not the secret"))
    assert _kept(bus_dial(node, "f" * 40))  # the control: the same dialer with the secret
    assert node.client().ping()


def test_acl_users_exist_on_every_node_of_the_cluster(node_factory, tmp_path: Path) -> None:
    seed = node_factory("seed").start()
    joiner = node_factory("join", extra=_conf(tmp_path, "join", "bootstrap = false\n")).start()
    out = run_cli("cluster", "add-node", f"127.0.0.1:{joiner.port}", f"127.0.0.1:{seed.port}")
    assert out.returncode == 0, out.stderr
    # Set on the node that is not the Raft leader: forwarded, and OK only once applied there.
    assert joiner.client().execute_command("ACL", "SETUSER", "app", "on", ">app-pw", "~app:*", "+@all",
                                           "-@dangerous") == b"OK"
    listed = joiner.client().execute_command("ACL", "LIST")
    assert any(line.startswith(b"user app on #") for line in listed) and not any(b"app-pw" in x for x in listed)

    def app_works_on_seed() -> bool:
        try:
            return seed.client(username="app", password="app-pw").set("app:1", "v") is True
        except redis.AuthenticationError:
            return False

    wait_for(app_works_on_seed, "the user to reach the other node")
    app = seed.client(username="app", password="app-pw")
    assert app.execute_command("ACL", "WHOAMI") == b"app"
    with pytest.raises(redis.exceptions.NoPermissionError, match="No permissions to access a key"):
        app.get("other")
    with pytest.raises(redis.exceptions.NoPermissionError, match=re.escape("'cluster|meet' command")):
        app.execute_command("CLUSTER", "MEET", "127.0.0.1", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.shutdown()
    logged_in = joiner.client(username="app", password="app-pw", single_connection_client=True)
    assert logged_in.execute_command("ACL", "WHOAMI") == b"app"
    assert seed.client().execute_command("ACL", "DELUSER", "app", "nobody") == 1
    wait_for(lambda: b"app" not in b" ".join(joiner.client().execute_command("ACL", "LIST")), "the deletion")
    with pytest.raises(redis.AuthenticationError):
        joiner.client(username="app", password="app-pw").ping()
    # A new user of the same name: the connection that logged in as the old one does not become it.
    assert seed.client().execute_command("ACL", "SETUSER", "app", "on", ">new-pw", "allkeys", "+@all") == b"OK"
    wait_for(lambda: _authenticates(joiner, "app", "new-pw"), "the new user to reach the other node")
    with pytest.raises(redis.AuthenticationError):
        logged_in.execute_command("ACL", "WHOAMI")


def _authenticates(node, username: str, password: str) -> bool:
    try:
        return node.client(username=username, password=password).ping()
    except redis.AuthenticationError:
        return False
