"""Expiry on real nodes: a replica hides an expired key but never deletes it itself (DESIGN §5.1).

A replica that deleted an expired key on a READONLY read logged the DEL at its
own next offset, where its primary's next record belongs; the read then waited
for an acknowledgement of that offset that never came.
"""

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.process.harness import form_shard, wait_for

TTL_MS = 600


def _offset(client: redis.Redis, field: str = "master_repl_offset") -> int:
    return client.info("replication")[field]


@pytest.mark.timeout(90)
def test_a_replica_hides_an_expired_key_and_waits_for_the_primarys_delete(node_factory, tmp_path: Path) -> None:
    primary, replica, _, _, _ = form_shard(node_factory, tmp_path)
    writer = primary.client()
    writer.set("k", "v", px=TTL_MS)
    assert writer.execute_command("WAIT", 1, 10_000) == 1
    reader = replica.client(timeout_s=3, retry=Retry(NoBackoff(), 0))
    reader.execute_command("READONLY")
    # Acknowledged there too (INFO answers at once, it no longer waits for that): else the GET
    # below waits for the watermark, which the paused primary cannot send.
    wait_for(lambda: _offset(reader, "acked_repl_offset") == _offset(writer), "the replica to hold the write")
    before = _offset(reader)
    # Paused, the primary cannot expire the key: only the replica's own (wrong) decision could.
    os.kill(primary.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(TTL_MS / 1000 + 0.3)
        assert reader.get("k") is None
        assert reader.exists("k") == 0
        assert _offset(reader) == before  # nothing logged at the replica's own offset
    finally:
        os.kill(primary.proc.pid, signal.SIGCONT)
    # The primary's DEL arrives and applies; the replica keeps following the stream.
    wait_for(lambda: _offset(reader) == _offset(writer) > before, "the primary's DEL to reach the replica")
    writer.set("x", "1")
    assert writer.execute_command("WAIT", 1, 10_000) == 1
    assert reader.get("x") == b"1" and reader.get("k") is None
