"""The replication shell's reporting: a replica in a full sync claims offset 0 and health "loading" (S5)."""

from pathlib import Path
from types import SimpleNamespace

from trionode.core.cluster.commands import apply, command
from trionode.core.cluster.state import ClusterState
from trionode.core.cluster.view import cluster_view
from trionode.core.cluster_view import cluster_shards
from trionode.core.replication.messages import SyncReply
from trionode.io.replication import Replication

P, R = "a" * 40, "b" * 40
SHARD = "1" * 40


def _state() -> ClusterState:
    state = ClusterState()
    cmds = [
        command("bootstrap", cluster_id="f" * 40, node_id=P, host="127.0.0.1", port=7001, bus_port=17001),
        command("node_join", node_id=R, host="127.0.0.1", port=7002, bus_port=17002),
        command("shard_create", shard_id=SHARD, epoch=1, primary_id=P),
        command("slots_assign", shard_id=SHARD, epoch=1, slots=[(0, 16383)]),
        command("replica_attach", shard_id=SHARD, epoch=1, node_id=R),
    ]
    for index, cmd in enumerate(cmds, start=1):
        assert apply(state, index, cmd).ok
    return state


def _replica_shell(tmp_path: Path, applied_offset: int) -> Replication:
    data = SimpleNamespace(applied_offset=applied_offset)
    store = SimpleNamespace(directory=tmp_path, data=data, acked_offset=0, high_watermark=None,
                            update_acked=lambda: None)
    control = SimpleNamespace(bus_handlers={}, bus=SimpleNamespace(send=lambda peer, msg: True))
    repl = Replication(R, store, control, clock_ms=lambda: 1_000)
    repl.on_config(_state())
    return repl


def test_a_replica_in_a_full_sync_reports_offset_0_and_loading(tmp_path: Path) -> None:
    repl = _replica_shell(tmp_path, applied_offset=40)
    side = repl.replica
    assert side is not None and repl.offsets()[R] == 40
    request = side.state.sync_request()
    reply = SyncReply(SHARD, 1, "full", 0, side.state.history.copy(), 500, request.sync_id)
    step = side.state.on_sync_reply(reply)
    assert step.start_full_sync
    assert repl.offsets()[R] == 0 and repl.health() == {R: "loading"}
    assert not repl.serving_reads()
    state = _state()
    view = cluster_view(state, R, health={**{n: "online" for n in state.nodes}, **repl.health()},
                        offsets=repl.offsets(), state_ok=True)
    nodes = cluster_shards(view)[0][b"nodes"]
    mine = next(n for n in nodes if n[b"id"] == R.encode())
    assert mine[b"health"] == b"loading" and mine[b"replication-offset"] == 0
