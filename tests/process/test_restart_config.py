"""A restart configures replication from the re-applied Raft log, never from a stale raft.snap alone.

The data directory is built by hand to hold what a crash can leave: ``raft.snap``
taken while this node was the primary at epoch 1, a committed log tail after it
that fails the shard over to another node and back (epoch 3), and a data
history that already reached epoch 3. Set up from ``raft.snap`` before the tail
was re-applied, the node started a primary tracker at epoch 1 over a history
ending at epoch 3: an assertion, at every start.
"""

from pathlib import Path

import pytest
import trio

from tests.process.harness import free_port, status, wait_for
from trionode.config import Config
from trionode.core.cluster.commands import apply, command
from trionode.core.cluster.snapshot import to_snapshot
from trionode.core.cluster.state import ClusterState
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.raft.messages import ConfState, Entry, HardState, Ready, Snapshot
from trionode.core.replication.history import EpochHistory
from trionode.io.data_store import DataStore
from trionode.io.datadir import DataDir
from trionode.io.history_file import save_history
from trionode.io.raft_store import RaftStore

OTHER = "b" * 40
SHARD = "5" * 40
CLUSTER = "c" * 40


def _shard_commands(me: str, port: int) -> tuple[list[dict], list]:
    """The commands up to raft.snap (this node primary at epoch 1, OTHER in its ISR), then the tail."""
    other_port = free_port()
    head = [
        command("bootstrap", cluster_id=CLUSTER, node_id=me, host="127.0.0.1", port=port, bus_port=port + 10000),
        command("node_join", node_id=OTHER, host="127.0.0.1", port=other_port, bus_port=other_port + 10000),
        command("shard_create", shard_id=SHARD, epoch=1, primary_id=me),
        command("slots_assign", shard_id=SHARD, epoch=1, slots=[(0, 16383)]),
        command("replica_attach", shard_id=SHARD, epoch=1, node_id=OTHER),
        lambda s: command("isr_expand", shard_id=SHARD, epoch=1, isr_version=s.shards[SHARD].isr_version,
                          node_id=OTHER),
    ]
    tail = [
        command("failover", shard_id=SHARD, epoch=1, node_id=OTHER),
        lambda s: command("isr_expand", shard_id=SHARD, epoch=2, isr_version=s.shards[SHARD].isr_version,
                          node_id=me),
        command("failover", shard_id=SHARD, epoch=2, node_id=me),
    ]
    return head, tail


def _apply_all(state: ClusterState, first_index: int, commands: list) -> list[Entry]:
    entries = []
    for index, cmd in enumerate(commands, start=first_index):
        data = cmd(state) if callable(cmd) else cmd
        assert apply(state, index, data).ok, data
        entries.append(Entry(index, 1, data=data))
    return entries


async def _write_raft(path: Path, me: str, port: int) -> None:
    head, tail = _shard_commands(me, port)
    state = ClusterState()
    _apply_all(state, 2, head)
    snap_index = 1 + len(head)
    snapshot = Snapshot(index=snap_index, term=1, conf=ConfState(voters=(me,)), data=to_snapshot(state))
    entries = _apply_all(state, snap_index + 1, tail)
    assert state.shards[SHARD].epoch == 3 and state.shards[SHARD].primary_id == me
    store = RaftStore.recover(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.wal.run)
        await store.initialize(CLUSTER, snapshot)  # raft.snap: primary at epoch 1
        hard = HardState(term=1, vote=me, commit=entries[-1].index)
        seq = store.append_ready(Ready(None, hard, tuple(entries), None, (), (), True))
        await store.wal.wait_durable(seq)  # the committed tail, in the Raft WAL only
        await store.wal.aclose()
        nursery.cancel_scope.cancel()


async def _write_data(path: Path) -> None:
    """Offset 1 written at epoch 1, offset 2 at epoch 3 (the history says so)."""
    store = DataStore.recover(path, Config(data_dir=str(path)))
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for key in (b"a", b"b"):
            store.data.execute(KEYSPACE_COMMANDS["set"], [b"SET", key, key], now_ms=0, primary=True)
        store.log_outbox()
        await store.wal.wait_durable(2)
        await store.close()
        nursery.cancel_scope.cancel()
    save_history(path, EpochHistory([(1, 1), (3, 2)]))


@pytest.mark.timeout(60)
def test_a_node_whose_raft_snap_predates_its_data_history_starts_as_the_primary_of_the_latest_epoch(
    node_factory, tmp_path: Path
) -> None:
    (tmp_path / "join.toml").write_text("bootstrap = false\n")
    node = node_factory("n1", extra=["--conf", str(tmp_path / "join.toml")])
    datadir = DataDir(node.data_dir)
    me = datadir.node_id
    datadir.close()
    trio.run(_write_raft, node.data_dir, me, node.port)
    trio.run(_write_data, node.data_dir)

    node.start()
    shard = wait_for(lambda: (s := status(node)["shards"]) and s[0]["epoch"] == 3 and s[0], "the re-applied tail")
    assert shard["primary_id"] == me
    client = node.client()
    assert client.get("a") == b"a" and client.get("b") == b"b"
    wait_for(lambda: _try_set(client), "the primary to take writes")
    assert client.get("c") == b"c"
    assert "AssertionError" not in node.log()


def _try_set(client) -> bool:
    import redis

    try:
        return bool(client.set("c", "c"))
    except redis.ResponseError:
        return False
