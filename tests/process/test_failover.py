"""kill -9 of a primary: an in-sync replica takes over, nothing acknowledged is lost, the old primary rejoins."""

import contextlib
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.process.harness import NodeProcess, form_shard, readonly_get, run_cli, status, wait_for
from trionode import limits
from trionode.io.history_file import save_fence

FAILOVER_WAIT_S = 30.0
FAST = "node_timeout_ms = 1000\n"  # failures are noticed in about a second


def _shard(node: NodeProcess) -> dict:
    return status(node)["shards"][0]


def test_killing_the_primary_promotes_its_replica_and_loses_nothing(node_factory, tmp_path: Path) -> None:
    primary, replica, witness, primary_id, replica_id = form_shard(node_factory, tmp_path, FAST)

    acked: dict[str, str] = {}
    stop = threading.Event()

    def writer() -> None:
        client = primary.client(timeout_s=5)
        n = 0
        while not stop.is_set():
            n += 1
            try:
                client.set(f"f{n}", str(n))
            except (redis.ConnectionError, redis.TimeoutError):
                return  # the primary died: this write's outcome is unknown
            acked[f"f{n}"] = str(n)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(1.0)
    killed_at = time.monotonic()
    primary.kill9()
    thread.join(timeout=10)
    shard = wait_for(lambda: (s := _shard(witness))["primary_id"] == replica_id and s, "the replica to be promoted",
                  FAILOVER_WAIT_S)
    assert shard["epoch"] == 2 and primary_id not in shard["isr_ids"]
    # The new primary serves writes once its lease is granted.
    wait_for(lambda: _try_set(replica), "the new primary to accept writes", FAILOVER_WAIT_S)
    failover_s = time.monotonic() - killed_at
    assert failover_s < FAILOVER_WAIT_S
    client = replica.client()
    pipe = client.pipeline(transaction=False)
    for key in acked:
        pipe.get(key)
    values = pipe.execute()
    missing = [k for k, v in zip(acked, values, strict=True) if v != acked[k].encode()]
    assert len(acked) > 20 and not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost"

    primary.start()  # the old primary comes back as a replica outside the ISR and resyncs
    wait_for(lambda: primary_id in _shard(witness)["isr_ids"], "the old primary to rejoin the ISR", FAILOVER_WAIT_S)
    assert _shard(witness)["primary_id"] == replica_id
    last = next(reversed(acked))
    assert readonly_get(primary, last) == acked[last].encode()
    try:
        primary.client().set("x", "1")
        raise AssertionError("the old primary accepted a write")
    except redis.exceptions.MovedError:
        pass


def _try_set(node: NodeProcess) -> bool:
    try:
        return bool(node.client(timeout_s=2).set("after-failover", "1"))
    except (redis.ResponseError, redis.ConnectionError, redis.TimeoutError):
        return False


def test_manual_failover_swaps_roles_without_losing_writes(node_factory, tmp_path: Path) -> None:
    primary, replica, witness, primary_id, replica_id = form_shard(node_factory, tmp_path)
    for i in range(100):
        primary.client().set(f"m{i}", i)
    with_primary_refusal = witness.client()
    try:
        with_primary_refusal.execute_command("CLUSTER", "FAILOVER")
        raise AssertionError("a node that is not a replica accepted CLUSTER FAILOVER")
    except redis.ResponseError as e:
        assert "send CLUSTER FAILOVER to a replica" in str(e)
    out = run_cli("cluster", "failover", f"127.0.0.1:{replica.port}")
    assert out.returncode == 0, out.stderr
    shard = _shard(witness)
    assert shard["primary_id"] == replica_id and shard["epoch"] == 2
    wait_for(lambda: _try_set(replica), "the new primary to accept writes", FAILOVER_WAIT_S)
    assert replica.client().get("m99") == b"99"
    wait_for(lambda: primary_id in _shard(witness)["isr_ids"], "the old primary to follow as a replica",
             FAILOVER_WAIT_S)


def test_a_paused_primary_stops_serving_once_its_lease_is_gone(node_factory, tmp_path: Path) -> None:
    import os
    import signal

    primary, replica, witness, _, replica_id = form_shard(node_factory, tmp_path, FAST)
    primary.client().set("k", "old")
    os.kill(primary.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: _shard(witness)["primary_id"] == replica_id, "the failover", FAILOVER_WAIT_S)
        wait_for(lambda: _try_set(replica), "the new primary to accept writes", FAILOVER_WAIT_S)
        replica.client().set("k", "new")
    finally:
        os.kill(primary.proc.pid, signal.SIGCONT)
    # Woken up, the old primary must neither acknowledge nor serve: its lease ran out while it slept.
    old = primary.client(timeout_s=10)
    for _ in range(20):
        try:
            value = old.get("k")
        except redis.exceptions.MovedError:
            pass  # it learned the new configuration
        except redis.ResponseError as e:
            assert "lease has expired" in str(e), e
        else:
            raise AssertionError(f"the deposed primary served a read: {value!r}")
        try:
            old.set("k", "stale")
            raise AssertionError("the deposed primary acknowledged a write")
        except (redis.exceptions.MovedError, redis.ResponseError):
            pass
        time.sleep(0.05)
    assert replica.client().get("k") == b"new"


def test_a_replica_still_syncing_is_never_promoted_the_shard_stays_down(node_factory, tmp_path: Path) -> None:
    """Seed 002: a freshly attached replica outside the ISR must not win, even as the only one alive."""
    fast = "node_timeout_ms = 1000\n"
    (tmp_path / "p.toml").write_text(fast)
    (tmp_path / "j.toml").write_text("bootstrap = false\n" + fast)
    primary = node_factory("p", extra=["--conf", str(tmp_path / "p.toml")]).start()
    pipe = primary.client().pipeline(transaction=False)
    for i in range(20_000):
        pipe.set(f"big{i}", "x" * 100)
    pipe.execute()
    replica = node_factory("r", extra=["--conf", str(tmp_path / "j.toml")]).start()
    witness = node_factory("w", extra=["--conf", str(tmp_path / "j.toml")]).start()
    for node in (replica, witness):
        assert run_cli("cluster", "add-node", f"127.0.0.1:{node.port}", f"127.0.0.1:{primary.port}").returncode == 0
    primary_id = primary.client().execute_command("CLUSTER", "MYID").decode()
    replica_id = replica.client().execute_command("CLUSTER", "MYID").decode()
    wait_for(lambda: primary_id.encode() in replica.client().execute_command("CLUSTER", "NODES"),
             "the replica to learn the membership")
    # All three must be voters, or losing the primary would also stop the control plane.
    wait_for(lambda: all(n["raft_role"] != "learner" for n in status(witness)["nodes"]), "three voters")
    assert replica.client().execute_command("CLUSTER", "REPLICATE", primary_id) == b"OK"
    primary.kill9()  # at once: the replica is attached but not yet in the ISR
    shard = _shard(witness)
    assert replica_id in shard["replica_ids"]
    if replica_id in shard["isr_ids"]:
        pytest.skip("the replica caught up before the kill; the scenario did not arise")
    report = wait_for(lambda: (r := status(witness))["problems"] and any("failed" in p for p in r["problems"]) and r,
                      "the dead primary to be reported failed")
    time.sleep(3.0)  # lease + drift and more: a failover would have happened by now
    shard = _shard(witness)
    assert shard["primary_id"] == primary_id and shard["epoch"] == 1, "an out-of-sync replica was promoted"
    assert not status(witness)["healthy"] and not report["healthy"]


def _offset(node: NodeProcess, node_id: str) -> int:
    return next(n["offset"] for n in status(node)["nodes"] if n["id"] == node_id)


@pytest.mark.timeout(150)
def test_a_replica_fenced_before_a_crash_still_refuses_the_old_primary_and_a_failover_follows(
        node_factory, tmp_path: Path) -> None:  # fmt: skip
    # Issue 10 §3, failover step 1: a replica answers the leader's fence and is killed before the
    # failover commits. The fence lived in memory only, so it came back following the old primary.
    # Then, with the round forgotten (here no round ever ran; a Raft leader change forgets one), the
    # shard stayed down for good: the fenced replica refused the old primary, no leader knew why.
    primary, replica, witness, _, replica_id = form_shard(node_factory, tmp_path)
    assert primary.client().set("before", "1") and primary.client().wait(1, 5000) == 1
    shard = _shard(witness)
    offset = _offset(replica, replica_id)
    replica.kill9()
    # What a fencing round left on its disk (the driver persists it before it answers).
    save_fence(replica.data_dir, shard["id"], shard["epoch"] + 1)
    replica.start()
    with contextlib.suppress(redis.ResponseError, redis.TimeoutError):
        primary.client(timeout_s=3).set("after", "1")  # the fenced replica never takes it
    # It tells the old primary that it has seen the next epoch, and takes nothing from it.
    wait_for(lambda: f"has seen epoch {shard['epoch'] + 1}" in primary.log(), "the old primary to learn it")
    assert _offset(replica, replica_id) == offset
    # The replica says in gossip that it is fenced, and the leader acts on it (core/failover/fences.py):
    # it promotes the replica, which holds every acknowledged write, at the next epoch (or reinstates
    # the old primary there, had the replica's answer to its round come too late).
    wait_for(lambda: _shard(witness)["epoch"] > shard["epoch"], "a failover past the fence", FAILOVER_WAIT_S)
    new = replica if _shard(witness)["primary_id"] == replica_id else primary
    wait_for(lambda: _try_set(new), "the shard to accept writes again", FAILOVER_WAIT_S)
    assert new.client().get("before") == b"1"


@pytest.mark.timeout(100)
def test_a_shard_that_never_took_a_write_gets_its_primary_back_after_a_kill(node_factory, tmp_path: Path) -> None:
    # Drill kill-random, seed 1: the primary of a shard that had taken no write was killed. Its
    # replica, fenced at epoch 2, answered at offset 0 and may not be promoted (seed 002), so the
    # shard was down; the primary came back, was told of epoch 2 by the fenced replica, and died
    # on a broken invariant at the next configuration (exit 4), or else stayed down for ever.
    primary, replica, witness, primary_id, _ = form_shard(node_factory, tmp_path, FAST)
    primary.kill9()
    wait_for(lambda: "no ISR member is eligible" in witness.log() + replica.log(), "the shard to be reported down",
             FAILOVER_WAIT_S)
    primary.start()
    wait_for(lambda: _try_set(primary), "the primary to take writes again", FAILOVER_WAIT_S)
    assert primary.client().wait(1, 5000) == 1  # the fenced replica follows it at the next epoch
    shard = _shard(witness)
    assert (shard["primary_id"], shard["epoch"]) == (primary_id, 2)
    assert readonly_get(replica, "after-failover") == b"1"
    time.sleep(1.0)
    assert primary.proc is not None and primary.proc.poll() is None, primary.log()[-3000:]


def test_a_primary_killed_after_a_quiet_spell_is_failed_over(node_factory, tmp_path: Path) -> None:
    # Issue 12 §2: an idle replica left the ISR after replica_lag_timeout_ms, so a primary killed
    # after a pause in writes had no eligible successor and its shard stayed down.
    primary, replica, witness, _, replica_id = form_shard(node_factory, tmp_path, FAST)
    client = primary.client()
    client.set("before-the-pause", "1")
    assert client.wait(1, 5000) == 1
    time.sleep(limits.replica_lag_timeout_ms / 1000 + 1.0)
    assert replica_id in _shard(witness)["isr_ids"]
    primary.kill9()
    wait_for(lambda: _shard(witness)["primary_id"] == replica_id, "the replica to be promoted", FAILOVER_WAIT_S)
    wait_for(lambda: _try_set(replica), "the new primary to accept writes", FAILOVER_WAIT_S)
    assert replica.client().get("before-the-pause") == b"1"
    assert "no ISR member is eligible" not in witness.log() + replica.log()
