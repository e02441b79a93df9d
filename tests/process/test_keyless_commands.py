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


def _shards_in_sync(node: NodeProcess) -> list[dict] | None:
    shards = status(node)["shards"]
    return shards if len(shards) == 2 and all(len(s["isr_ids"]) == 2 for s in shards) else None


def _keys_in(shard: dict, count: int) -> list[str]:
    ranges = shard["slots"]
    keys = (f"k{i}" for i in range(100 * count))
    return [k for k in keys if any(lo <= key_slot(k.encode()) <= hi for lo, hi in ranges)][:count]


@pytest.mark.timeout(120)
def test_a_replica_refuses_flushall_and_acknowledged_keys_survive_its_promotion(node_factory, tmp_path: Path) -> None:
    conf = tmp_path / "join.toml"
    conf.write_text("bootstrap = false\nnode_timeout_ms = 1000\n")
    nodes = [node_factory(f"n{i}", extra=["--conf", str(conf)]).start() for i in range(4)]
    out = run_cli("cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes], "--replicas", "1", "--yes")
    assert out.returncode == 0, out.stderr + out.stdout
    shard = wait_for(lambda: _shards_in_sync(nodes[0]), "both replicas to join their ISR")[0]
    by_id = {n["id"]: n["addr"] for n in status(nodes[0])["nodes"]}
    by_addr = {f"127.0.0.1:{n.port}": n for n in nodes}
    primary, replica = by_addr[by_id[shard["primary_id"]]], by_addr[by_id[shard["replica_ids"][0]]]

    writer = primary.client()
    keys = _keys_in(shard, KEYS_COUNT)
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

    # The replica took nothing on itself: it still follows its primary's stream.
    writer.set(keys[0], "after")
    assert writer.execute_command("WAIT", 1, 10_000) == 1

    primary.kill9()
    observer = next(n for n in nodes if n is not primary)
    replica_id = shard["replica_ids"][0]
    wait_for(lambda: next(s for s in status(observer)["shards"] if s["id"] == shard["id"])["primary_id"] == replica_id,
             "the replica to be promoted", FAILOVER_WAIT_S)
    promoted = replica.client()
    wait_for(lambda: _reads(promoted, keys[0]) == b"after", "the promoted replica to serve", FAILOVER_WAIT_S)
    pipe = promoted.pipeline(transaction=False)
    for key in keys[1:]:
        pipe.get(key)
    values = pipe.execute()
    lost = [k for k, v in zip(keys[1:], values, strict=True) if v != k.encode()]
    assert not lost, f"{len(lost)} of {len(keys)} acknowledged keys lost, e.g. {lost[:3]}"
    assert promoted.dbsize() == KEYS_COUNT


def _reads(client: redis.Redis, key: str) -> bytes | None:
    try:
        return client.get(key)
    except (redis.ResponseError, redis.ConnectionError):
        return None
