"""A primary and its replica as real processes: ISR acknowledgement, kill -9, rejoin, resync."""

import threading
import time
from pathlib import Path

import pytest
import redis

from tests.process.harness import NodeProcess, form_shard, readonly_get, run_cli, status, wait_for
from trionode import limits


def _isr(node: NodeProcess) -> list[str]:
    return status(node)["shards"][0]["isr_ids"]


def _pair(node_factory, tmp_path: Path) -> tuple[NodeProcess, NodeProcess, str]:
    primary, replica, _, _, replica_id = form_shard(node_factory, tmp_path)
    return primary, replica, replica_id


def test_acknowledged_writes_are_on_the_replica_and_readable_there(node_factory, tmp_path: Path) -> None:
    primary, replica, _ = _pair(node_factory, tmp_path)
    r = primary.client()
    for i in range(200):
        r.set(f"k{i}", f"v{i}")
    assert r.execute_command("WAIT", 1, 5000) == 1
    assert readonly_get(replica, "k199") == b"v199"
    with pytest.raises(redis.exceptions.MovedError):
        replica.client().set("k0", "x")
    info = replica.client().info("replication")
    assert info["role"] == "slave" and info["master_port"] == primary.port and info["master_link_status"] == "up"
    assert info["slave_repl_offset"] >= 200
    role = replica.client().execute_command("ROLE")
    assert role[0] == b"slave" and role[2] == primary.port and role[4] >= 200
    primary_role = primary.client().execute_command("ROLE")
    assert primary_role[0] == b"master" and primary_role[2][0][1] == str(replica.port).encode()
    assert primary.client().info("replication")["slave0"]["isr"] == 1


def test_replica_killed_under_load_leaves_the_isr_then_rejoins_with_everything(node_factory, tmp_path: Path) -> None:
    primary, replica, replica_id = _pair(node_factory, tmp_path)
    acked: dict[str, str] = {}
    stop = threading.Event()

    def writer() -> None:
        client = primary.client(timeout_s=30)
        n = 0
        while not stop.is_set():
            n += 1
            client.set(f"w{n}", str(n))
            acked[f"w{n}"] = str(n)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(0.5)
    replica.kill9()
    # Writes stall while the dead replica is still in the ISR, then go on once a committed entry removed it.
    wait_for(lambda: replica_id not in _isr(primary), "the ISR to shrink")
    before = len(acked)
    wait_for(lambda: len(acked) > before + 50, "writes to continue without the replica")
    replica.start()
    wait_for(lambda: replica_id in _isr(primary), "the replica to rejoin the ISR")
    stop.set()
    thread.join(timeout=30)
    assert primary.client().execute_command("WAIT", 1, 10000) == 1
    reader = replica.client()
    reader.execute_command("READONLY")
    pipe = reader.pipeline(transaction=False)
    for key in acked:
        pipe.get(key)
    values = pipe.execute()
    missing = [k for k, v in zip(acked, values, strict=True) if v != acked[k].encode()]
    assert not missing, f"{len(missing)} acknowledged writes missing on the replica, e.g. {missing[:3]}"


def test_an_idle_shard_keeps_its_caught_up_replica_in_the_isr(node_factory, tmp_path: Path) -> None:
    """Issue 12 §2: with nothing written, a replica at lag 0 stays in the ISR past the lag timeout."""
    primary, _, replica_id = _pair(node_factory, tmp_path)
    r = primary.client()
    r.set("a", "1")
    assert r.execute_command("WAIT", 1, 5000) == 1
    time.sleep(limits.replica_lag_timeout_ms / 1000 + 2)
    assert replica_id in _isr(primary)
    assert "isr_shrink" not in primary.log()


def test_a_replica_behind_the_backlog_gets_a_full_resync(node_factory, tmp_path: Path) -> None:
    primary, replica, replica_id = _pair(node_factory, tmp_path)
    replica.kill9()
    r = primary.client(timeout_s=30)
    r.set("owed", "1")  # the dead replica owes this record: acknowledged once the shrink commits
    assert replica_id not in _isr(primary)
    value = "x" * 1000
    for i in range(300):  # well past a 64 KiB backlog
        r.set(f"big{i}", value)
    primary.terminate()
    primary.start()  # a restart empties the in-memory backlog too
    replica.start()
    wait_for(lambda: replica_id in _isr(primary), "the replica to rejoin after a full resync")
    assert readonly_get(replica, "big299") == value.encode()
    assert "full resync" in primary.log()


def test_min_insync_replicas_refuses_writes_until_a_replica_is_in_sync(node_factory, tmp_path: Path) -> None:
    conf = tmp_path / "strict.toml"
    conf.write_text("min_insync_replicas = 2\n")
    primary = node_factory("strict", extra=["--conf", str(conf)]).start()
    with pytest.raises(redis.ResponseError, match="NOREPLICAS Not enough good replicas to write"):
        primary.client().set("a", "1")
    assert primary.client().get("a") is None  # reads are still served
    join = tmp_path / "join.toml"
    join.write_text("bootstrap = false\n")
    replica = node_factory("r", extra=["--conf", str(join)]).start()
    assert run_cli("cluster", "add-node", f"127.0.0.1:{replica.port}", f"127.0.0.1:{primary.port}").returncode == 0
    primary_id = primary.client().execute_command("CLUSTER", "MYID").decode()
    assert run_cli("cluster", "replicate", f"127.0.0.1:{replica.port}", primary_id).returncode == 0
    wait_for(lambda: len(_isr(primary)) == 2, "the replica to join the ISR")
    assert primary.client().set("a", "1")
    assert readonly_get(replica, "a") == b"1"


def test_replica_set_changes_never_leave_the_isr_without_a_caught_up_member(node_factory, tmp_path: Path) -> None:
    """Seed 000: the last in-sync replica cannot be removed; a replacement starts outside the ISR."""
    primary, replica, witness, _, replica_id = form_shard(node_factory, tmp_path)
    witness_id = witness.client().execute_command("CLUSTER", "MYID").decode()
    out = run_cli("cluster", "detach", f"127.0.0.1:{primary.port}", replica_id)
    assert out.returncode != 0 and "last caught-up replica" in out.stderr
    primary.client().set("before", "1")
    out = run_cli("cluster", "replace", f"127.0.0.1:{primary.port}", replica_id, witness_id)
    assert out.returncode != 0 and "last caught-up replica" in out.stderr  # the old one is the only one in sync
    # Shrink it first (stop it and write: the ISR drops it by a committed entry once it lags), then the
    # replacement is allowed.
    replica.kill9()
    primary.client(timeout_s=30).set("owed", "1")
    assert replica_id not in _isr(primary)
    out = run_cli("cluster", "replace", f"127.0.0.1:{primary.port}", replica_id, witness_id)
    assert out.returncode == 0, out.stderr
    assert status(primary)["shards"][0]["replica_ids"] == [witness_id]
    # (It enters outside the ISR and is admitted once caught up; the apply rule is tested in core/cluster.)
    wait_for(lambda: witness_id in _isr(primary), "the replacement to catch up and join the ISR")
    assert readonly_get(witness, "before") == b"1"
