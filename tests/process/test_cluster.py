"""A real 3-node cluster: formed by the CLI, surviving leader kills and full restarts."""

import json
import time
from pathlib import Path

from redis.cluster import RedisCluster

from tests.process.harness import NodeProcess, run_cli

ELECTION_WAIT_S = 15.0  # several election timeouts (1-2 s each), with room for a slow CI machine


def _conf(tmp_path: Path) -> Path:
    path = tmp_path / "join.toml"
    path.write_text("bootstrap = false\n")
    return path


def _status(node: NodeProcess) -> dict:
    out = run_cli("status", f"127.0.0.1:{node.port}", "--json")
    assert out.stdout, out.stderr
    return json.loads(out.stdout)


def _wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _leader_of(nodes: list[NodeProcess]) -> str | None:
    for node in nodes:
        if node.proc.poll() is None:
            try:
                report = _status(node)
            except (AssertionError, json.JSONDecodeError):
                continue
            if report["leader_id"]:
                return report["leader_id"]
    return None


def _form(node_factory, tmp_path: Path, count: int = 3) -> list[NodeProcess]:
    conf = _conf(tmp_path)
    nodes = [node_factory(f"n{i}", extra=["--conf", str(conf)]).start() for i in range(count)]
    out = run_cli("cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes], "--replicas", "0", "--yes")
    assert out.returncode == 0, out.stderr + out.stdout
    return nodes


def test_create_serves_every_slot_through_redis_cluster(node_factory, tmp_path: Path) -> None:
    nodes = _form(node_factory, tmp_path)
    for node in nodes:
        slots = node.client().execute_command("CLUSTER", "SLOTS")
        assert sum(int(r[1]) - int(r[0]) + 1 for r in slots) == 16384
    rc = RedisCluster(host="127.0.0.1", port=nodes[0].port, socket_timeout=10)
    try:
        for i in range(300):
            rc.set(f"key:{i}", i)
        assert [rc.get(f"key:{i}") for i in range(300)] == [str(i).encode() for i in range(300)]
    finally:
        rc.close()
    report = _status(nodes[1])
    assert report["healthy"] and len(report["shards"]) == 3
    assert sorted(n["raft_role"] for n in report["nodes"]) == ["follower", "follower", "leader"]


def test_leader_kill_elects_a_new_leader_and_the_old_one_rejoins(node_factory, tmp_path: Path) -> None:
    nodes = _form(node_factory, tmp_path)
    leader_id = _wait(lambda: _leader_of(nodes), ELECTION_WAIT_S, "a leader")
    by_id = {n.client().execute_command("CLUSTER", "MYID").decode(): n for n in nodes}
    old_leader = by_id[leader_id]
    committed = _status(old_leader)["commit_index"]
    old_leader.kill9()
    survivors = [n for n in nodes if n is not old_leader]
    new_leader = _wait(lambda: _leader_of(survivors) not in (None, leader_id) and _leader_of(survivors),
                       ELECTION_WAIT_S, "a new leader")
    assert new_leader != leader_id
    old_leader.start()
    report = _wait(lambda: (r := _status(old_leader))["leader_id"] == new_leader and r, ELECTION_WAIT_S,
                   "the old leader to follow the new one")
    assert report["commit_index"] >= committed
    mine = {n["id"]: n["raft_role"] for n in report["nodes"]}
    assert mine[leader_id] == "follower"


def test_restarting_every_node_keeps_the_configuration(node_factory, tmp_path: Path) -> None:
    nodes = _form(node_factory, tmp_path)
    before = _status(nodes[0])
    nodes[0].client().execute_command("CLUSTER", "NODES")
    for node in nodes:
        node.kill9()
    for node in nodes:
        node.start()
    _wait(lambda: _leader_of(nodes), ELECTION_WAIT_S, "a leader after the restart")
    after = _status(nodes[2])

    def layout(report: dict) -> list:
        # isr_version moves on restart: each primary fences its ISR before acknowledging.
        return [{k: v for k, v in shard.items() if k != "isr_version"} for shard in report["shards"]]

    assert layout(after) == layout(before) and after["cluster_id"] == before["cluster_id"]


def test_add_node_then_del_node(node_factory, tmp_path: Path) -> None:
    nodes = _form(node_factory, tmp_path)
    extra = node_factory("extra", extra=["--conf", str(_conf(tmp_path))]).start()
    out = run_cli("cluster", "add-node", f"127.0.0.1:{extra.port}", f"127.0.0.1:{nodes[0].port}")
    assert out.returncode == 0, out.stderr
    extra_id = extra.client().execute_command("CLUSTER", "MYID").decode()
    assert extra_id in nodes[1].client().execute_command("CLUSTER", "NODES").decode()
    out = run_cli("cluster", "del-node", f"127.0.0.1:{nodes[1].port}", extra_id)
    assert out.returncode == 0, out.stderr
    _wait(lambda: extra_id not in nodes[2].client().execute_command("CLUSTER", "NODES").decode(), 10,
          "every node to forget the removed one")


def test_create_refuses_a_node_that_is_already_in_a_cluster(node_factory, tmp_path: Path) -> None:
    loner = node_factory("loner").start()  # the embedded default forms a one-node cluster
    joiner = node_factory("joiner", extra=["--conf", str(_conf(tmp_path))]).start()
    out = run_cli("cluster", "create", f"127.0.0.1:{joiner.port}", f"127.0.0.1:{loner.port}", "--yes")
    assert out.returncode != 0 and "already belongs to cluster" in out.stderr


def test_a_killed_node_is_reported_failed_then_online_again(node_factory, tmp_path: Path) -> None:
    conf = tmp_path / "fast.toml"
    conf.write_text("bootstrap = false\nnode_timeout_ms = 1000\n")
    nodes = [node_factory(f"g{i}", extra=["--conf", str(conf)]).start() for i in range(3)]
    out = run_cli("cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes], "--replicas", "0", "--yes")
    assert out.returncode == 0, out.stderr
    victim_id = nodes[2].client().execute_command("CLUSTER", "MYID").decode()
    nodes[2].kill9()

    def health_of_victim() -> str:
        return next(n["health"] for n in _status(nodes[0])["nodes"] if n["id"] == victim_id)

    _wait(lambda: health_of_victim() == "failed", ELECTION_WAIT_S, "the killed node to be failed")
    assert "fail" in nodes[1].client().execute_command("CLUSTER", "NODES").decode()
    report = _status(nodes[0])
    assert not report["healthy"]  # its shard's primary is down
    nodes[2].start()
    _wait(lambda: health_of_victim() == "online", ELECTION_WAIT_S, "the node to be seen online again")


def test_the_control_plane_replaces_failed_voters_with_learners(node_factory, tmp_path: Path) -> None:
    conf = tmp_path / "fast.toml"
    conf.write_text("bootstrap = false\nnode_timeout_ms = 1000\n")
    nodes = [node_factory(f"v{i}", extra=["--conf", str(conf)]).start() for i in range(7)]
    out = run_cli("cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes], "--replicas", "0", "--yes")
    assert out.returncode == 0, out.stderr

    def roles(node: NodeProcess) -> dict[str, str]:
        return {n["id"]: n["raft_role"] for n in _status(node)["nodes"]}

    _wait(lambda: sorted(roles(nodes[0]).values()).count("learner") == 2, ELECTION_WAIT_S, "5 voters, 2 learners")
    ids = {n.client().execute_command("CLUSTER", "MYID").decode(): n for n in nodes}
    # Kill two voters, one after the other (never the leader); learners take their places.
    for _ in range(2):
        survivors = [n for n in nodes if n.proc.poll() is None]
        current = roles(survivors[0])
        leader = next(i for i, r in current.items() if r == "leader")
        victim_id = next(i for i, r in current.items() if r == "follower" and ids[i].proc.poll() is None)
        ids[victim_id].kill9()
        observer = ids[leader]
        _wait(lambda: roles(observer).get(victim_id) == "learner"  # noqa: B023 - evaluated inside the loop
              and sorted(roles(observer).values()).count("learner") <= 2,  # noqa: B023
              ELECTION_WAIT_S, "the failed voter to be replaced")
    final = roles(ids[leader])
    assert sum(1 for i, r in final.items() if r in ("leader", "follower") and ids[i].proc.poll() is None) == 5
