"""Keyless commands on real nodes: a replica refuses FLUSHALL, and the acknowledged keys survive a failover.

The scenario of issue 10: a replica that ran FLUSHALL logged it at its own next
offset, died on the primary's next record, resynced keeping its local records and,
once promoted, had lost acknowledged keys.
"""

from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.process.harness import NodeProcess, run_cli, status, wait_for
from trionode.core.slots import key_slot

FAILOVER_WAIT_S = 30.0
KEYS_COUNT = 142


def _shard(node: NodeProcess, shard_id: str) -> dict:
    return next(s for s in status(node)["shards"] if s["id"] == shard_id)


def _keys_in(shard: dict, count: int) -> list[str]:
    keys = (f"k{i}" for i in range(100 * count))
    return [k for k in keys if any(lo <= key_slot(k.encode()) <= hi for lo, hi in shard["slots"])][:count]


def _shard_led_elsewhere(node: NodeProcess) -> dict | None:
    """A shard with a replica whose primary is not the Raft leader (killing it is one failure, not two)."""
    report = status(node)
    shards = [s for s in report["shards"] if s["replica_ids"] and s["primary_id"] != report["leader_id"]]
    return shards[0] if report["leader_id"] and shards else None


def _in_sync_with_traffic(writer: redis.Redis, observer: NodeProcess, shard_id: str, key: str) -> bool:
    # A write each time: an idle replica sends no ACKs and may drop out of the ISR meanwhile.
    writer.set(key, key)
    return len(_shard(observer, shard_id)["isr_ids"]) == 2


@pytest.mark.timeout(150)
def test_a_replica_refuses_flushall_and_acknowledged_keys_survive_its_promotion(node_factory, tmp_path: Path) -> None:
    conf = tmp_path / "join.toml"
    conf.write_text("node_timeout_ms = 1000\n")
    nodes = [node_factory(f"n{i}", extra=["--conf", str(conf), "--no-bootstrap"]).start() for i in range(4)]
    out = run_cli("cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes], "--replicas", "1", "--yes")
    assert out.returncode == 0, out.stderr + out.stdout
    shard = wait_for(lambda: _shard_led_elsewhere(nodes[0]), "a shard with a replica, not led by the Raft leader")
    by_id = {n["id"]: n["addr"] for n in status(nodes[0])["nodes"]}
    by_addr = {f"127.0.0.1:{n.port}": n for n in nodes}
    primary, replica = by_addr[by_id[shard["primary_id"]]], by_addr[by_id[shard["replica_ids"][0]]]
    observer = next(n for n in nodes if n not in (primary, replica))

    writer = primary.client()
    keys = _keys_in(shard, KEYS_COUNT)
    wait_for(lambda: _in_sync_with_traffic(writer, observer, shard["id"], keys[0]), "the replica to join the ISR")
    for key in keys:
        writer.set(key, key)
    assert writer.execute_command("WAIT", 1, 10_000) == 1

    with pytest.raises(redis.exceptions.ReadOnlyError, match="You can't write against a read only replica"):
        replica.client(timeout_s=5, retry=Retry(NoBackoff(), 0)).flushall()
    with pytest.raises(redis.ResponseError, match="send READONLY first"):
        replica.client().dbsize()
    reader = replica.client()
    reader.execute_command("READONLY")
    assert reader.dbsize() == KEYS_COUNT
    assert sorted(k.decode() for k in reader.keys("*")) == sorted(keys)

    # The replica took nothing on itself: it still follows its primary's stream, in the ISR.
    writer.set(keys[0], "after")
    assert writer.execute_command("WAIT", 1, 10_000) == 1
    wait_for(lambda: _in_sync_with_traffic(writer, observer, shard["id"], keys[1]), "the replica in the ISR")
    assert writer.execute_command("WAIT", 1, 10_000) == 1

    primary.kill9()
    wait_for(lambda: _shard(observer, shard["id"])["primary_id"] == shard["replica_ids"][0],
             "the replica to be promoted", FAILOVER_WAIT_S)
    promoted = replica.client()
    wait_for(lambda: _reads(promoted, keys[0]) == b"after", "the promoted replica to serve", FAILOVER_WAIT_S)
    pipe = promoted.pipeline(transaction=False)
    for key in keys[1:]:
        pipe.get(key)
    lost = [k for k, v in zip(keys[1:], pipe.execute(), strict=True) if v != k.encode()]
    assert not lost, f"{len(lost)} of {len(keys)} acknowledged keys lost, e.g. {lost[:3]}"
    assert promoted.dbsize() == KEYS_COUNT


def _reads(client: redis.Redis, key: str) -> bytes | None:
    try:
        return client.get(key)
    except (redis.ResponseError, redis.ConnectionError):
        return None
