"""A real 3-node cluster: formed by the CLI, surviving leader kills and full restarts, checked by the CLI."""

import socket
from pathlib import Path

from redis.cluster import RedisCluster

from tests.process.harness import NodeProcess, free_port, run_cli, status, wait_for

ELECTION_WAIT_S = 15.0  # several election timeouts (1-2 s each), with room for a slow CI machine


NO_BOOTSTRAP = ["--no-bootstrap"]


def _leader_of(nodes: list[NodeProcess]) -> str | None:
    for node in nodes:
        if node.proc.poll() is None:
            try:
                report = status(node)
            except (AssertionError, ValueError):  # not answering yet, or not JSON
                continue
            if report["leader_id"]:
                return report["leader_id"]
    return None


def _form(node_factory, tmp_path: Path, count: int = 3) -> list[NodeProcess]:
    nodes = [node_factory(f"n{i}", extra=NO_BOOTSTRAP).start() for i in range(count)]
    out = run_cli("cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes], "--replicas", "0", "--yes")
    assert out.returncode == 0, out.stderr + out.stdout
    return nodes


def test_create_serves_every_slot_through_redis_cluster(node_factory, tmp_path: Path) -> None:
    nodes = _form(node_factory, tmp_path)
    for node in nodes:
        slots = node.client().execute_command("CLUSTER", "SLOTS")
        # The planner's split, as redis-cli --cluster create makes it.
        assert sorted((int(r[0]), int(r[1])) for r in slots) == [(0, 5460), (5461, 10922), (10923, 16383)]
    rc = RedisCluster(host="127.0.0.1", port=nodes[0].port, socket_timeout=10)
    try:
        for i in range(300):
            rc.set(f"key:{i}", i)
        assert [rc.get(f"key:{i}") for i in range(300)] == [str(i).encode() for i in range(300)]
    finally:
        rc.close()
    report = status(nodes[1])
    assert report["healthy"] and len(report["shards"]) == 3
    assert sorted(n["raft_role"] for n in report["nodes"]) == ["follower", "follower", "leader"]


def test_leader_kill_elects_a_new_leader_and_the_old_one_rejoins(node_factory, tmp_path: Path) -> None:
    nodes = _form(node_factory, tmp_path)
    leader_id = wait_for(lambda: _leader_of(nodes), "a leader", ELECTION_WAIT_S)
    by_id = {n.client().execute_command("CLUSTER", "MYID").decode(): n for n in nodes}
    old_leader = by_id[leader_id]
    committed = status(old_leader)["commit_index"]
    old_leader.kill9()
    survivors = [n for n in nodes if n is not old_leader]
    new_leader = wait_for(
        lambda: _leader_of(survivors) not in (None, leader_id) and _leader_of(survivors), "a new leader",
        ELECTION_WAIT_S,
    )
    assert new_leader != leader_id
    old_leader.start()
    report = wait_for(
        lambda: (r := status(old_leader))["leader_id"] == new_leader and r, "the old leader to follow the new one",
        ELECTION_WAIT_S,
    )
    assert report["commit_index"] >= committed
    mine = {n["id"]: n["raft_role"] for n in report["nodes"]}
    assert mine[leader_id] == "follower"


def test_restarting_every_node_keeps_the_configuration(node_factory, tmp_path: Path) -> None:
    nodes = _form(node_factory, tmp_path)
    before = status(nodes[0])
    nodes[0].client().execute_command("CLUSTER", "NODES")
    for node in nodes:
        node.kill9()
    for node in nodes:
        node.start()
    wait_for(lambda: _leader_of(nodes), "a leader after the restart", ELECTION_WAIT_S)
    after = status(nodes[2])

    def layout(report: dict) -> list:
        # isr_version moves on restart: each primary fences its ISR before acknowledging.
        return [{k: v for k, v in shard.items() if k != "isr_version"} for shard in report["shards"]]

    assert layout(after) == layout(before) and after["cluster_id"] == before["cluster_id"]


def test_add_node_then_del_node(node_factory, tmp_path: Path) -> None:
    nodes = _form(node_factory, tmp_path)
    extra = node_factory("extra", extra=NO_BOOTSTRAP).start()
    assert not extra.client().info("cluster").get("cluster_id")  # --no-bootstrap: it waits to be added
    out = run_cli("cluster", "add-node", f"127.0.0.1:{extra.port}", f"127.0.0.1:{nodes[0].port}")
    assert out.returncode == 0, out.stderr
    extra_id = extra.client().execute_command("CLUSTER", "MYID").decode()
    assert extra_id in nodes[1].client().execute_command("CLUSTER", "NODES").decode()
    out = run_cli("cluster", "del-node", f"127.0.0.1:{nodes[1].port}", extra_id)
    assert out.returncode == 0, out.stderr
    wait_for(
        lambda: extra_id not in nodes[2].client().execute_command("CLUSTER", "NODES").decode(),
        "every node to forget the removed one", 10,
    )


def test_del_node_of_a_shard_member_is_refused_before_raft_lets_it_go(node_factory, tmp_path: Path) -> None:
    """FORGET asks the cluster state first: a node that still serves a shard stays a Raft voter."""
    nodes = _form(node_factory, tmp_path)
    leader_id = wait_for(lambda: _leader_of(nodes), "a leader", ELECTION_WAIT_S)
    ids = [n.client().execute_command("CLUSTER", "MYID").decode() for n in nodes]
    victim_id = next(i for i in ids if i != leader_id)
    out = run_cli("cluster", "del-node", f"127.0.0.1:{nodes[0].port}", victim_id)
    assert out.returncode != 0 and "node_in_shard" in out.stderr + out.stdout, out.stderr + out.stdout
    roles = {n["id"]: n["raft_role"] for n in status(nodes[0])["nodes"]}
    assert roles[victim_id] in ("follower", "leader"), roles


def test_del_node_of_the_raft_leader_hands_leadership_over_first(node_factory, tmp_path: Path) -> None:
    """DESIGN §4: removing the leader moves leadership to a caught-up voter, then removes the old leader."""
    leader, *others = [node_factory(f"r{i}", extra=NO_BOOTSTRAP).start() for i in range(3)]
    assert leader.client().execute_command("CLUSTER", "BOOTSTRAP") == b"OK"  # a leader that owns no shard
    for node in others:
        out = run_cli("cluster", "add-node", f"127.0.0.1:{node.port}", f"127.0.0.1:{leader.port}")
        assert out.returncode == 0, out.stderr
    leader_id = leader.client().execute_command("CLUSTER", "MYID").decode()
    wait_for(lambda: sorted(n["raft_role"] for n in status(leader)["nodes"]) == ["follower", "follower", "leader"],
             "three voters")
    assert status(leader)["leader_id"] == leader_id
    out = run_cli("cluster", "del-node", f"127.0.0.1:{others[0].port}", leader_id)
    assert out.returncode == 0, out.stderr + out.stdout
    report = status(others[0])
    assert leader_id not in [n["id"] for n in report["nodes"]] and report["leader_id"] not in (None, leader_id)
    assert "handing leadership over" in leader.log()


def test_a_clean_shutdown_of_the_leader_hands_over_and_compacts_the_raft_log(node_factory, tmp_path: Path) -> None:
    nodes = _form(node_factory, tmp_path)
    leader_id = wait_for(lambda: _leader_of(nodes), "a leader", ELECTION_WAIT_S)
    by_id = {n.client().execute_command("CLUSTER", "MYID").decode(): n for n in nodes}
    leader = by_id.pop(leader_id)
    assert leader.terminate() == 0
    assert "handing leadership over" in leader.log() and "raft compaction: snapshot at index" in leader.log()
    survivor = next(iter(by_id.values()))
    new_leader = wait_for(lambda: status(survivor)["leader_id"] not in (None, leader_id) and status(survivor),
                          "another leader", ELECTION_WAIT_S)
    assert new_leader["leader_id"] in by_id


def test_create_and_add_node_take_a_node_that_formed_a_cluster_alone_but_never_one_with_data(node_factory) -> None:
    loner = node_factory("loner").start()  # a plain start forms a one-node cluster
    late = node_factory("late").start()
    written = node_factory("written").start()
    written.client().set("k", "v")
    joiner = node_factory("joiner", extra=NO_BOOTSTRAP).start()
    addr = {node: f"127.0.0.1:{node.port}" for node in (loner, late, written, joiner)}
    written_cluster = written.client().info("cluster")["cluster_id"]

    out = run_cli("cluster", "create", addr[joiner], addr[written], "--yes")
    assert out.returncode != 0 and "cannot leave it" in out.stderr and "holds data" in out.stderr, out.stderr
    assert written.client().info("cluster")["cluster_id"] == written_cluster and written.client().get("k") == b"v"

    loner_id = loner.client().execute_command("CLUSTER", "MYID").decode()
    out = run_cli("cluster", "create", addr[loner], addr[joiner], "--yes")
    assert out.returncode == 0, out.stderr + out.stdout
    assert f"{addr[loner]} left the one-node cluster" in out.stdout
    out = run_cli("cluster", "add-node", addr[late], addr[joiner])
    assert out.returncode == 0, out.stderr + out.stdout
    cluster_id = joiner.client().info("cluster")["cluster_id"]
    assert cluster_id and loner.client().execute_command("CLUSTER", "MYID").decode() == loner_id
    # The reset is durable: after kill -9 the node comes back in the new cluster, not its old one.
    loner.kill9()
    loner.start()
    wait_for(lambda: loner.client().info("cluster")["cluster_id"] == cluster_id, "the loner to rejoin", 10)
    assert len(status(joiner)["nodes"]) == 3


def test_a_killed_node_is_reported_failed_then_online_again(node_factory, tmp_path: Path) -> None:
    conf = tmp_path / "fast.toml"
    conf.write_text("bootstrap = false\nnode_timeout_ms = 1000\n")
    nodes = [node_factory(f"g{i}", extra=["--conf", str(conf)]).start() for i in range(3)]
    out = run_cli("cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes], "--replicas", "0", "--yes")
    assert out.returncode == 0, out.stderr
    victim_id = nodes[2].client().execute_command("CLUSTER", "MYID").decode()
    entry = f"127.0.0.1:{nodes[0].port}"
    wait_for(lambda: run_cli("cluster", "check", entry).returncode == 0, "cluster check to pass")
    nodes[2].kill9()

    def health_of_victim() -> str:
        return next(n["health"] for n in status(nodes[0])["nodes"] if n["id"] == victim_id)

    wait_for(lambda: health_of_victim() == "failed", "the killed node to be failed", ELECTION_WAIT_S)
    assert "fail" in nodes[1].client().execute_command("CLUSTER", "NODES").decode()
    report = status(nodes[0])
    assert not report["healthy"]  # its shard's primary is down
    check = run_cli("cluster", "check", entry)
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"[ERR] node at 127.0.0.1:{nodes[2].port} is unreachable" in check.stdout
    nodes[2].start()
    wait_for(lambda: health_of_victim() == "online", "the node to be seen online again", ELECTION_WAIT_S)
    wait_for(lambda: run_cli("cluster", "check", entry).returncode == 0, "cluster check to pass again")


def test_the_control_plane_replaces_failed_voters_with_learners(node_factory, tmp_path: Path) -> None:
    conf = tmp_path / "fast.toml"
    conf.write_text("bootstrap = false\nnode_timeout_ms = 1000\n")
    nodes = [node_factory(f"v{i}", extra=["--conf", str(conf)]).start() for i in range(7)]
    out = run_cli("cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes], "--replicas", "0", "--yes")
    assert out.returncode == 0, out.stderr

    def roles(node: NodeProcess) -> dict[str, str]:
        return {n["id"]: n["raft_role"] for n in status(node)["nodes"]}

    wait_for(lambda: sorted(roles(nodes[0]).values()).count("learner") == 2, "5 voters, 2 learners", ELECTION_WAIT_S)
    ids = {n.client().execute_command("CLUSTER", "MYID").decode(): n for n in nodes}
    # Kill two voters, one after the other (never the leader); learners take their places.
    for _ in range(2):
        survivors = [n for n in nodes if n.proc.poll() is None]
        current = roles(survivors[0])
        leader = next(i for i, r in current.items() if r == "leader")
        victim_id = next(i for i, r in current.items() if r == "follower" and ids[i].proc.poll() is None)
        ids[victim_id].kill9()
        observer = ids[leader]
        def replaced(observer=observer, victim_id=victim_id) -> bool:
            found = roles(observer)
            return found.get(victim_id) == "learner" and sorted(found.values()).count("learner") <= 2

        wait_for(replaced, "the failed voter to be replaced", ELECTION_WAIT_S)
    final = roles(ids[leader])
    assert sum(1 for i, r in final.items() if r in ("leader", "follower") and ids[i].proc.poll() is None) == 5


def test_a_node_announces_its_bus_announce_port_but_listens_on_its_bus_port(node_factory, tmp_path: Path) -> None:
    # Nothing listens on the announced ports: a proxy in front of the bus would, and the node must not.
    announced_a, announced_b = free_port(), free_port()
    (tmp_path / "a.toml").write_text(f"bus_announce_port = {announced_a}\n")
    (tmp_path / "b.toml").write_text(f"bootstrap = false\nbus_announce_port = {announced_b}\n")
    a = node_factory("a", extra=["--conf", str(tmp_path / "a.toml")]).start()
    b = node_factory("b", extra=["--conf", str(tmp_path / "b.toml")]).start()
    assert a.client().info("cluster")["cluster_bus_port"] == announced_a
    assert b.client().info("cluster")["cluster_bus_port"] == announced_b
    assert f"@{announced_b} myself" in b.client().execute_command("CLUSTER", "NODES").decode()
    with socket.create_connection(("127.0.0.1", a.port + 10000), timeout=5):
        pass  # the real bus port (port + 10000) is where it listens
    # A MEET without a bus port asks the joiner's INFO, so it records the announced port too.
    assert a.client().execute_command("CLUSTER", "MEET", "127.0.0.1", b.port) == b"OK"
    b_id = b.client().execute_command("CLUSTER", "MYID").decode()
    bus_addrs = {n["id"]: n["bus_addr"] for n in status(a)["nodes"]}
    assert sorted(bus_addrs.values()) == sorted([f"127.0.0.1:{announced_a}", f"127.0.0.1:{announced_b}"])
    assert bus_addrs[b_id] == f"127.0.0.1:{announced_b}"
    assert f"@{announced_a} myself" in a.client().execute_command("CLUSTER", "NODES").decode()
