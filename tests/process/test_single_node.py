"""A real node process, driven through redis-py: the commands, restarts and clean shutdown."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.process.harness import NodeProcess, run_cli


def test_each_command_group_works_through_redis_py(node_factory) -> None:
    node = node_factory().start()
    r = node.client()
    assert r.set("s", "v") is True and r.get("s") == b"v"
    assert r.set("s", "w", nx=True) is None
    assert r.incrby("n", 5) == 5 and r.decr("n") == 4
    assert r.append("s", "x") == 2 and r.strlen("s") == 2
    assert r.mset({"{t}a": "1", "{t}b": "2"}) and r.mget("{t}a", "{t}b", "{t}c") == [b"1", b"2", None]
    assert r.rpush("l", "a", "b") == 2 and r.lpush("l", "z") == 3
    assert r.lrange("l", 0, -1) == [b"z", b"a", b"b"] and r.lindex("l", 1) == b"a" and r.llen("l") == 3
    assert r.lpop("l") == b"z" and r.rpop("l") == b"b"
    assert r.hset("h", mapping={"f": "1", "g": "2"}) == 2 and r.hincrby("h", "f", 2) == 3
    assert r.hgetall("h") == {b"f": b"3", b"g": b"2"} and r.hdel("h", "g") == 1 and r.hlen("h") == 1
    assert r.sadd("set", "a", "b") == 2 and r.sismember("set", "a") and r.scard("set") == 2
    assert r.smembers("set") == {b"a", b"b"} and r.srem("set", "a") == 1
    assert r.expire("s", 100) and 0 < r.ttl("s") <= 100 and r.persist("s") and r.ttl("s") == -1
    assert r.type("h") == b"hash" and r.exists("h", "h") == 2 and r.exists("nope") == 0
    assert sorted(r.scan_iter(match="{t}*")) == [b"{t}a", b"{t}b"]
    assert r.dbsize() == 7
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.lpush("s", "x")
    with pytest.raises(redis.exceptions.ClusterCrossSlotError):
        r.mset({"a": "1", "b": "2"})
    assert r.delete("s") == 1 and r.delete("n", "n") == 1 and r.flushall() and r.dbsize() == 0


def test_resp3_and_pipelining(node_factory) -> None:
    node = node_factory().start()
    r = node.client(protocol=3)
    assert r.hset("h", "f", "v") == 1 and r.hgetall("h") == {b"f": b"v"}
    pipe = node.client().pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"k{i}", i)
    assert all(pipe.execute())
    assert node.client().get("k499") == b"499"


def test_redis_cluster_client_works_against_one_node(node_factory) -> None:
    node = node_factory().start()
    rc = RedisCluster(host="127.0.0.1", port=node.port, socket_timeout=10)
    try:
        for i in range(200):
            rc.set(f"key:{i}", i)
        assert [rc.get(f"key:{i}") for i in range(200)] == [str(i).encode() for i in range(200)]
        assert rc.cluster_keyslot("foo") == 12182
    finally:
        rc.close()


def test_data_survives_clean_shutdown_and_restart(node_factory) -> None:
    node = node_factory().start()
    r = node.client()
    for i in range(300):
        r.set(f"k{i}", f"v{i}")
    r.rpush("list", *range(10))
    assert node.terminate() == 0
    assert list(node.data_dir.glob("*.snap")), "a clean shutdown compacts into a snapshot"
    node.start()
    r = node.client()
    assert r.dbsize() == 301 and r.get("k299") == b"v299" and r.lrange("list", 0, -1)[-1] == b"9"


def test_shutdown_command_stops_the_node_cleanly(node_factory) -> None:
    node = node_factory().start()
    node.client().set("a", "1")
    node.client().shutdown()  # redis-py treats the closed connection as success
    assert node.proc.wait(timeout=30) == 0
    node.start()
    assert node.client().get("a") == b"1"


def test_status_reports_the_node(node_factory) -> None:
    node = node_factory().start()
    node.client().set("a", "1")
    out = run_cli("status", f"127.0.0.1:{node.port}", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    me = report["nodes"][0]
    assert report["healthy"] is True and me["slots"] == [[0, 16383]] and me["raft_role"] == "leader"
    my_id = node.client().execute_command("CLUSTER", "MYID").decode()
    assert me["id"] == report["node_id"] == report["leader_id"] == my_id
    assert report["local"]["keys"] == 1 and report["local"]["wal_bytes"] > 0


def test_default_start_uses_port_7000_and_local_data_dir(tmp_path: Path) -> None:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 7000)) == 0:
            pytest.skip("port 7000 is taken on this machine")
    proc = subprocess.Popen([sys.executable, "-m", "trionode", "start"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    try:
        probe = NodeProcess(tmp_path / "trionode-data", port=7000)
        probe.proc = proc
        probe.wait_ready()
        assert probe.client().set("x", "1")
        assert (tmp_path / "trionode-data" / "node-id").exists()
    finally:
        proc.kill()
        proc.wait()
