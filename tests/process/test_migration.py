"""Slot migration on real processes: a 2-shard cluster moves slots while a client writes to them.

Every write the writer saw acknowledged must read back afterwards through redis-py's
RedisCluster (which follows the MOVED replies), whether the migration committed,
was cancelled, or a member was killed with SIGKILL mid-way: the source primary while
copying, while writes are paused at the handover, right after the commit or while it
cleans up; the target primary or one of its replicas while copying. After a kill the
job ends (committed or aborted) and, once the node is back, ``cluster check`` passes.
Scaling out: ``add-node --primary``, then ``cluster migrate`` or ``cluster rebalance``.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from redis.cluster import RedisCluster
from redis.exceptions import RedisError

from tests.process.harness import NodeProcess, run_cli, status, wait_for
from trionode.core.slots import key_slot

pytestmark = pytest.mark.timeout(180)

MOVING = (0, 99)  # slots of the first shard that move to the second
KEYS_PER_SLOT = 5
COPY_KEYS = 3000  # keys in the moving slots before the migration starts (several copy chunks)
BIG_COPY_KEYS = 60_000  # enough that a test can act while the copy runs


def _tags(slots: range) -> list[str]:
    """One hash tag per slot of ``slots``, so keys can be aimed at those slots."""
    wanted, tags = set(slots), {}
    n = 0
    while len(tags) < len(wanted):
        tag = f"t{n}"
        slot = key_slot(tag.encode())
        if slot in wanted:
            tags.setdefault(slot, tag)
        n += 1
    return [tags[slot] for slot in slots]


TAGS = _tags(range(MOVING[0], MOVING[1] + 1))  # the writer's keys all land in the moving slots


def _two_shards(node_factory, tmp_path: Path) -> tuple[list[NodeProcess], dict]:
    conf = tmp_path / "join.toml"
    conf.write_text("bootstrap = false\n")
    nodes = [node_factory(f"n{i}", extra=["--conf", str(conf)]).start() for i in range(4)]
    out = run_cli("cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes], "--replicas", "1", "--yes")
    assert out.returncode == 0, out.stderr + out.stdout
    report = wait_for(lambda: (r := status(nodes[0])) and all(len(s["isr_ids"]) == 2 for s in r["shards"]) and r,
                      "both replicas to join their ISR")  # fmt: skip
    return nodes, report


def _by_id(nodes: list[NodeProcess]) -> dict[str, NodeProcess]:
    return {n.client().execute_command("CLUSTER", "MYID").decode(): n for n in nodes}


def _loaded(node_factory, tmp_path: Path) -> tuple:
    """A 2-shard cluster whose moving slots hold BIG_COPY_KEYS keys:
    ``(nodes, report, source primary, target primary, target id, the keys and values)``."""
    nodes, report = _two_shards(node_factory, tmp_path)
    source, target, target_id = _primaries(nodes, report)
    return nodes, report, source, target, target_id, _fill(source.port, BIG_COPY_KEYS)


def _replica_of(nodes: list[NodeProcess], report: dict, primary_id: str) -> NodeProcess:
    shard = next(s for s in report["shards"] if s["primary_id"] == primary_id)
    return _by_id(nodes)[shard["replica_ids"][0]]


def _primaries(nodes: list[NodeProcess], report: dict) -> tuple[NodeProcess, NodeProcess, str]:
    """(source primary: owns slot 0, target primary, target's node id)."""
    by_id = _by_id(nodes)
    shards = sorted(report["shards"], key=lambda s: s["slots"][0][0])
    return by_id[shards[0]["primary_id"]], by_id[shards[1]["primary_id"]], shards[1]["primary_id"]


class Writer:
    """Writes increasing values to keys of the moving slots; remembers what was acknowledged."""

    def __init__(self, port: int, tags: list[str] = TAGS) -> None:
        self.rc = RedisCluster(host="127.0.0.1", port=port, socket_timeout=10)
        self.tags = tags
        self.acked: dict[str, int] = {}
        self.uncertain: dict[str, set[int]] = {}  # writes whose outcome is unknown (an error reply or timeout)
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            key = f"{{{self.tags[n % len(self.tags)]}}}w{n % (len(self.tags) * KEYS_PER_SLOT)}"
            try:
                self.rc.set(key, n)
                self.acked[key] = n
            except RedisError as e:
                self.uncertain.setdefault(key, set()).add(n)
                self.errors.append(repr(e))
                time.sleep(0.05)

    def __enter__(self) -> "Writer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def check(self) -> None:
        """Every acknowledged write reads back (or a later one whose outcome was unknown)."""
        assert self.acked, "the writer got nothing acknowledged"
        for key, value in self.acked.items():
            got = self.rc.get(key)
            later = {v for v in self.uncertain.get(key, ()) if v > value}
            assert got is not None and (int(got) == value or int(got) in later), (key, value, got)


def _fill(port: int, count: int = COPY_KEYS, tags: list[str] = TAGS) -> dict[str, bytes]:
    rc = RedisCluster(host="127.0.0.1", port=port, socket_timeout=20)
    keys = {f"{{{tags[i % len(tags)]}}}c{i}": str(i).encode() * 10 for i in range(count)}
    try:
        rc.mset_nonatomic(keys)
    finally:
        rc.close()
    return keys


def _jobs(node: NodeProcess) -> list[dict]:
    rows = node.client().execute_command("CLUSTER", "GETSLOTMIGRATIONS")
    return [{k.decode() if isinstance(k, bytes) else k: v for k, v in _pairs(row)} for row in rows]


def _pairs(row: object) -> list[tuple]:
    if isinstance(row, dict):
        return list(row.items())
    items = list(row)  # RESP2: a flat list of key, value
    return list(zip(items[::2], items[1::2], strict=True))


def _ended(node: NodeProcess) -> dict | None:
    jobs = _jobs(node)
    return jobs[0] if jobs and jobs[0]["state"] in (b"success", b"failed", b"cancelled") else None


def _migrate(source: NodeProcess, target_id: str, slots: tuple[int, int] = MOVING) -> None:
    reply = source.client().execute_command("CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", *slots, "NODE", target_id)
    assert reply in (b"OK", "OK", True)


def _local_keys(node: NodeProcess) -> int:
    """The keys ``node`` holds, hidden ones included (staged, or left over after a commit)."""
    return json.loads(node.client().execute_command("CLUSTER", "STATUS"))["local"]["keys"]


def _whole_again(killed: NodeProcess, survivor: NodeProcess) -> str:
    """The migration ended as the configuration records it; once ``killed`` is back, ``cluster check``
    passes (it comes back as a replica). Returns how the migration ended: committed or aborted."""
    report = wait_for(lambda: (r := status(survivor)) and not r["migrations"] and r["migrations_recent"] and r,
                      "the migration to end", timeout_s=60)  # fmt: skip
    ended = report["migrations_recent"][-1]["state"]
    assert ended in ("committed", "aborted"), report["migrations_recent"]
    killed.start()
    checks = []
    try:
        wait_for(lambda: checks.append(run_cli("cluster", "check", f"127.0.0.1:{survivor.port}"))
                 or checks[-1].returncode == 0, "cluster check to pass", timeout_s=60)  # fmt: skip
    except AssertionError as e:
        raise AssertionError(f"{e}; it said:\n{checks[-1].stdout}{checks[-1].stderr}") from None
    return ended


def test_a_slot_range_moves_under_a_concurrent_writer_and_every_acknowledged_write_reads_back(
    node_factory, tmp_path: Path
) -> None:
    nodes, report = _two_shards(node_factory, tmp_path)
    source, target, target_id = _primaries(nodes, report)
    copied = _fill(source.port)
    with Writer(source.port) as writer:
        time.sleep(0.5)
        _migrate(source, target_id)
        job = wait_for(lambda: _ended(source), "the migration to end", timeout_s=60)
        assert job["state"] == b"success", job
        time.sleep(0.5)  # writes after the commit go to the target
    writer.check()
    # Writes during the handover waited, then followed MOVED: the client saw no error at all.
    assert not writer.errors, writer.errors[:5]
    rc = RedisCluster(host="127.0.0.1", port=target.port, socket_timeout=20)
    try:
        assert rc.mget_nonatomic(list(copied)) == list(copied.values())
    finally:
        rc.close()
    slot_owner = {s["primary_id"]: s for s in status(target)["shards"]}[target_id]
    assert [MOVING[0], MOVING[1]] in slot_owner["slots"]
    # The source's leftovers are deleted (in chunks) and were hidden meanwhile.
    counts = lambda: sum(source.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", s) for s in range(100))  # noqa: E731
    assert counts() == 0
    wait_for(lambda: status(source)["local"]["keys"] == 0, "the source to delete the moved keys")
    target_job = next(j for j in _jobs(target) if j["operation"] == b"IMPORT")
    assert target_job["state"] == b"success"


def _copying(source: NodeProcess, target_id: str) -> None:
    """Start the migration and return once its copy has begun."""
    _migrate(source, target_id)
    wait_for(lambda: (jobs := _jobs(source)) and jobs[0]["keys_copied"] > 0 and jobs[0]["state"] == b"snapshotting",
             "the copy to begin", timeout_s=30)  # fmt: skip


def test_a_cancelled_migration_leaves_every_slot_and_key_with_the_source(node_factory, tmp_path: Path) -> None:
    nodes, report, source, target, target_id, copied = _loaded(node_factory, tmp_path)
    target_replica = _replica_of(nodes, report, target_id)
    with Writer(source.port) as writer:
        _copying(source, target_id)
        # Freeze the source mid-copy (briefly: well within its lease and node_timeout_ms) and look at
        # the target: what it staged is on its replica too (the ISR), and invisible to every read.
        os.kill(source.proc.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: status(target_replica)["local"]["keys"] > 0, "the target's replica to hold staged keys")
            client = target.client()
            assert client.dbsize() == 0 and client.keys("*") == [] and client.scan(0, count=100_000)[1] == []
            assert not any(client.execute_command("CLUSTER", "COUNTKEYSINSLOT", s) for s in range(*MOVING))
            assert status(target)["local"]["keys"] > 0
        finally:
            os.kill(source.proc.pid, signal.SIGCONT)
        assert source.client().execute_command("CLUSTER", "CANCELSLOTMIGRATIONS") in (b"OK", "OK", True)
        job = wait_for(lambda: _ended(source), "the migration to end", timeout_s=30)
        assert job["state"] == b"cancelled", job
        time.sleep(0.5)
    writer.check()
    assert sum(source.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", s) for s in range(100)) >= len(copied)
    # The target dropped what it had staged.
    wait_for(lambda: status(target)["local"]["keys"] == 0, "the target to delete the keys it had staged")
    owner = {s["primary_id"] for s in status(source)["shards"] if [MOVING[0], 8191] in s["slots"]}
    assert owner and target_id not in owner


def _check_with_source(node: NodeProcess, target_id: str, copied: dict[str, bytes]) -> None:
    """The moving slots still belong to the source shard, and a sample of the copied keys reads back."""
    source_shard = next(s for s in status(node)["shards"] if [MOVING[0], 8191] in s["slots"])
    assert source_shard["primary_id"] != target_id
    _check_sample(node, copied)


def _check_sample(node: NodeProcess, copied: dict[str, bytes]) -> None:
    rc = RedisCluster(host="127.0.0.1", port=node.port, socket_timeout=20)
    try:
        sample = list(copied)[::97]
        assert rc.mget_nonatomic(sample) == [copied[k] for k in sample]
    finally:
        rc.close()


def test_killing_the_source_primary_mid_copy_leaves_the_slots_with_the_source_shard(
    node_factory, tmp_path: Path
) -> None:
    nodes, _report, source, target, target_id, copied = _loaded(node_factory, tmp_path)
    survivor = next(n for n in nodes if n not in (source, target))
    with Writer(survivor.port) as writer:
        _copying(source, target_id)
        source.kill9()
        # The promoted replica finds the migration orphaned and aborts it.
        assert _whole_again(source, survivor) == "aborted"
        time.sleep(1.0)
    writer.check()
    _check_with_source(survivor, target_id, copied)
    wait_for(lambda: status(target)["local"]["keys"] == 0, "the target to delete the keys it had staged")


def _grown(node_factory, tmp_path: Path, added: int = 1) -> tuple[NodeProcess, list[NodeProcess], list[str]]:
    """A one-node cluster owning every slot, and ``added`` nodes ``cluster add-node --primary`` made
    primaries of new, empty shards: ``(first, the new nodes, their ids)``."""
    conf = tmp_path / "join.toml"
    conf.write_text("bootstrap = false\n")
    first = node_factory("first").start()
    new = [node_factory(f"new{i}", extra=["--conf", str(conf)]).start() for i in range(added)]
    for node in new:
        out = run_cli("cluster", "add-node", f"127.0.0.1:{node.port}", f"127.0.0.1:{first.port}", "--primary")
        assert out.returncode == 0, out.stderr + out.stdout
    return first, new, [node.client().execute_command("CLUSTER", "MYID").decode() for node in new]


def test_add_node_primary_then_cli_migrate_moves_slots_to_the_new_shard(node_factory, tmp_path: Path) -> None:
    first, [new], [new_id] = _grown(node_factory, tmp_path)
    copied = _fill(first.port)
    out = run_cli("cluster", "migrate", f"127.0.0.1:{first.port}", "--slots", f"{MOVING[0]}-{MOVING[1]}",
                  "--to", new_id, timeout_s=120)  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    assert "success" in out.stdout.splitlines()[-1], out.stdout
    rc = RedisCluster(host="127.0.0.1", port=first.port, socket_timeout=20)
    try:
        assert rc.mget_nonatomic(list(copied)) == list(copied.values())
        assert rc.get_node_from_key(next(iter(copied))).port == new.port
    finally:
        rc.close()
    jobs = status(first)["migration_jobs"]
    assert jobs[0]["state"] == "success" and jobs[0]["keys_copied"] >= len(copied)


SPREAD = _tags(range(0, 16384, 164))  # 100 slots over the whole keyspace: a rebalance moves most of them


def test_add_node_primary_then_rebalance_under_a_concurrent_writer_evens_the_shards(
    node_factory, tmp_path: Path
) -> None:
    first, new, new_ids = _grown(node_factory, tmp_path, added=2)
    entry = f"127.0.0.1:{first.port}"
    dry = run_cli("cluster", "rebalance", entry, "--weight", f"{new_ids[0][:10]}=2", "--weight", f"{new_ids[1]}=0",
                  "--dry-run")  # fmt: skip
    assert dry.returncode == 0 and "10922 slots to move in 1 migrations" in dry.stdout, dry.stdout + dry.stderr
    copied = _fill(first.port, tags=SPREAD)
    with Writer(first.port, SPREAD) as writer:
        out = run_cli("cluster", "rebalance", entry, timeout_s=120)
        time.sleep(0.5)  # writes after the last commit go to the new shard
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.splitlines()[-1].endswith("the cluster is balanced"), out.stdout
    writer.check()
    assert not writer.errors, writer.errors[:5]
    assert "[2/2 migrations, 5461/10922 slots moved]" in out.stdout, out.stdout  # one display for the plan
    shards = status(new[0])["shards"]
    assert sorted(sum(b - a + 1 for a, b in s["slots"]) for s in shards) == [5461, 5461, 5462], shards
    rc = RedisCluster(host="127.0.0.1", port=first.port, socket_timeout=20)
    try:
        assert rc.mget_nonatomic(list(copied)) == list(copied.values())
        assert {rc.get_node_from_key(key).port for key in copied} == {first.port, *(n.port for n in new)}
    finally:
        rc.close()
    again = run_cli("cluster", "rebalance", entry)
    assert again.returncode == 0 and "the cluster is balanced" in again.stdout, again.stdout + again.stderr
    check = run_cli("cluster", "check", entry)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("command", ["migrate", "rebalance"])
def test_cli_migrate_and_rebalance_exit_non_zero_and_say_why_when_a_job_is_cancelled(
    node_factory, tmp_path: Path, command: str
) -> None:
    nodes, report = _two_shards(node_factory, tmp_path)
    source, _, target_id = _primaries(nodes, report)
    source_id = next(iter(_by_id([source])))
    _fill(source.port, BIG_COPY_KEYS)
    # Both move the moving slots first: migrate those alone, rebalance all the source's (it weighs 0).
    how = ["--slots", f"{MOVING[0]}-{MOVING[1]}", "--to", target_id] if command == "migrate" else [
        "--weight", f"{source_id}=0"]  # fmt: skip
    cli = subprocess.Popen([sys.executable, "-m", "trionode", "cluster", command, f"127.0.0.1:{source.port}", *how],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: (jobs := _jobs(source)) and jobs[0]["keys_copied"] > 0, "the copy to begin", timeout_s=30)
        source.client().execute_command("CLUSTER", "CANCELSLOTMIGRATIONS")
        stdout, stderr = cli.communicate(timeout=60)
    finally:
        cli.kill()
    assert cli.returncode == 1, stdout + stderr
    assert "cancelled" in stdout.splitlines()[-1] and "cancelled by the operator" in stdout + stderr, stdout + stderr
    if command == "rebalance":
        assert "ended cancelled: cancelled by the operator; 0 of 8192 slots were moved" in stderr, stderr


def test_killing_the_target_primary_mid_copy_aborts_and_the_source_keeps_everything(
    node_factory, tmp_path: Path
) -> None:
    _nodes, _report, source, target, target_id, copied = _loaded(node_factory, tmp_path)
    # The target shard holds data of its own, so its replica may succeed the killed primary (seed 002).
    _fill(target.port, COPY_KEYS, _tags(range(16000, 16010)))
    with Writer(source.port) as writer:
        _copying(source, target_id)
        target.kill9()
        job = wait_for(lambda: _ended(source), "the migration to abort", timeout_s=60)
        assert job["state"] == b"failed", job
        time.sleep(0.5)
    writer.check()
    _check_with_source(source, target_id, copied)
    assert _whole_again(target, source) == "aborted"


@pytest.mark.parametrize("phase", ["committed", "cleaning"])
def test_killing_the_source_primary_after_the_commit_keeps_the_slots_with_the_target(
    node_factory, tmp_path: Path, phase: str
) -> None:
    nodes, report = _two_shards(node_factory, tmp_path)
    source, target, target_id = _primaries(nodes, report)
    source_replica = _replica_of(nodes, report, _by_id([source]).popitem()[0])
    copied = _fill(source.port, BIG_COPY_KEYS)
    with Writer(target.port) as writer:
        _migrate(source, target_id)
        if phase == "committed":
            wait_for(lambda: (jobs := _jobs(source)) and jobs[0]["state"] in (b"cleaning", b"success"),
                     "the commit", timeout_s=60)  # fmt: skip
        else:  # some of the moved keys deleted here, not all
            cleaning = lambda: _jobs(source)[0]["state"] == b"cleaning" and 0 < _local_keys(source) < len(copied)  # noqa: E731
            wait_for(cleaning, "the cleanup to be under way", timeout_s=60)
        source.kill9()
        # The promoted replica knows the slots are gone and deletes what it still holds of them.
        wait_for(lambda: status(source_replica)["local"]["keys"] == 0, "the new source primary's cleanup",
                 timeout_s=60)  # fmt: skip
    writer.check()
    moved = next(s for s in status(target)["shards"] if s["primary_id"] == target_id)
    assert [MOVING[0], MOVING[1]] in moved["slots"]
    _check_sample(target, copied)
    assert _whole_again(source, target) == "committed"


HANDOVER = (0, 3)  # slots few enough that their whole copy fits in the pause's lag bound (one record a slot)


def test_killing_the_source_primary_while_writes_are_paused_at_handover_loses_no_acknowledged_write(
    node_factory, tmp_path: Path
) -> None:
    nodes, report = _two_shards(node_factory, tmp_path)
    source, target, target_id = _primaries(nodes, report)
    source_replica = _replica_of(nodes, report, _by_id([source]).popitem()[0])
    target_replica = _replica_of(nodes, report, target_id)
    copied = _fill(source.port)
    with Writer(source_replica.port) as writer:
        time.sleep(0.5)
        # The target acknowledges only what its whole ISR holds: with its replica frozen it acknowledges
        # nothing, so the pause begins once the copy is sent (within the lag bound) and cannot end but
        # by migration_pause_ms_max (1 s): the source is killed inside it.
        os.kill(target_replica.proc.pid, signal.SIGSTOP)
        try:
            _migrate(source, target_id, HANDOVER)
            wait_for(lambda: (jobs := _jobs(source)) and jobs[0]["state"] == b"paused", "the write pause",
                     timeout_s=10)  # fmt: skip
            source.kill9()
        finally:
            os.kill(target_replica.proc.pid, signal.SIGCONT)
        # The promoted replica finds the migration orphaned (its shard failed over) and aborts it.
        assert _whole_again(source, source_replica) == "aborted"
        time.sleep(0.5)
    writer.check()
    _check_with_source(source_replica, target_id, copied)
    wait_for(lambda: _local_keys(target) == 0, "the target to delete the keys it had staged")


def test_a_target_replica_dying_mid_copy_loses_no_acknowledged_write(node_factory, tmp_path: Path) -> None:
    nodes, report, source, _target, target_id, copied = _loaded(node_factory, tmp_path)
    target_replica = _replica_of(nodes, report, target_id)
    with Writer(source.port) as writer:
        _copying(source, target_id)
        target_replica.kill9()
        # The target holds its acknowledgements until the dead replica leaves its ISR, then goes on alone.
        wait_for(lambda: _ended(source), "the migration to end", timeout_s=60)
        time.sleep(0.5)
    writer.check()
    _check_sample(source, copied)
    _whole_again(target_replica, source)
