"""A 6-node cluster (3 primaries, 3 replicas) formed by the CLI and used through RedisCluster."""

import time
from pathlib import Path

from redis.cluster import RedisCluster

from tests.process.harness import run_cli, status

KEYS = 10_000


def test_six_nodes_serve_10k_keys_and_every_replica_joins_its_isr(node_factory, tmp_path: Path) -> None:
    conf = tmp_path / "join.toml"
    conf.write_text("bootstrap = false\n")
    nodes = [node_factory(f"n{i}", extra=["--conf", str(conf)]).start() for i in range(6)]
    out = run_cli("cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes], "--replicas", "1", "--yes")
    assert out.returncode == 0, out.stderr + out.stdout
    rc = RedisCluster(host="127.0.0.1", port=nodes[0].port, socket_timeout=20)
    try:
        pipe = rc.pipeline()
        for i in range(KEYS):
            pipe.set(f"key:{i}", i)
        assert all(pipe.execute())
        pipe = rc.pipeline()
        for i in range(KEYS):
            pipe.get(f"key:{i}")
        assert pipe.execute() == [str(i).encode() for i in range(KEYS)]
        assert rc.get("{tag}a") is None and rc.mset_nonatomic({"{tag}a": "1", "{tag}b": "2"})
    finally:
        rc.close()
    deadline = time.monotonic() + 30
    while True:
        report = status(nodes[3])
        if all(len(s["isr_ids"]) == 2 for s in report["shards"]) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert [len(s["replica_ids"]) for s in report["shards"]] == [1, 1, 1]
    assert all(len(s["isr_ids"]) == 2 for s in report["shards"]), report["shards"]
    assert report["healthy"]
