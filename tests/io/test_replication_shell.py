"""The replication shell's reporting: a replica in a full sync claims offset 0 and health "loading" (S5)."""

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
import trio.testing

from trionode.core.cluster.commands import apply, command
from trionode.core.cluster.state import ClusterState
from trionode.core.cluster.view import cluster_view
from trionode.core.cluster_view import cluster_shards
from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import SyncReply
from trionode.core.replication.replica_driver import SaveFence, Send, SetLoadingMarker, Truncate
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


def _store(tmp_path: Path, applied_offset: int) -> SimpleNamespace:
    data = SimpleNamespace(applied_offset=applied_offset)
    return SimpleNamespace(directory=tmp_path, data=data, acked_offset=0, publish_acked=lambda offset: None,
                           loading_marker=False, snapshot_offset=0)


def _control() -> SimpleNamespace:
    return SimpleNamespace(bus_handlers={}, bus=SimpleNamespace(send=lambda peer, msg: True))


def _replica_shell(tmp_path: Path, applied_offset: int) -> Replication:
    repl = Replication(R, _store(tmp_path, applied_offset), _control(), clock_ms=lambda: 1_000)
    repl.on_config(_state())
    return repl


def test_a_replica_in_a_full_sync_reports_offset_0_and_loading(tmp_path: Path) -> None:
    repl = _replica_shell(tmp_path, applied_offset=40)
    side = repl.replica
    assert side is not None and repl.offsets()[R] == 40
    fence, send = side.driver.tick(10**6)
    assert fence == SaveFence(1)  # the configuration's epoch is durable before the request names it
    request = send.msg
    reply = SyncReply(SHARD, 1, "full", 0, side.state.history.copy(), 500, request.sync_id)
    ack, mark, discard = side.driver.on_message(reply, 10**6)
    # Offset 0 is reported, then the marker is durable, and only then is anything discarded (S5).
    assert isinstance(ack, Send) and ack.msg.durable_offset == 0
    assert mark == SetLoadingMarker(True) and discard == Truncate(0)
    assert repl.offsets()[R] == 0 and repl.health() == {R: "loading"}
    assert not repl.serving_reads()
    state = _state()
    view = cluster_view(state, R, health={**{n: "online" for n in state.nodes}, **repl.health()},
                        offsets=repl.offsets(), state_ok=True)
    nodes = cluster_shards(view)[0][b"nodes"]
    mine = next(n for n in nodes if n[b"id"] == R.encode())
    assert mine[b"health"] == b"loading" and mine[b"replication-offset"] == 0


@pytest.mark.timeout(10)
async def test_replication_timers_ignore_wall_clock_steps(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 §2.9: lag and silence timers are monotonic; a wall-clock step moves none of them."""
    repl = Replication(R, _store(tmp_path, 0), _control())
    before = repl.clock_ms()
    wall_ns = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: wall_ns - 3600 * 10**9)  # an hour back
    monkeypatch.setattr(time, "time", lambda: wall_ns / 1e9 + 3600)  # or forward
    await trio.sleep(1)
    assert repl.clock_ms() - before == 1_000


def test_a_promoted_replica_stops_being_a_replica(tmp_path: Path) -> None:
    # ROLE and INFO used to say "slave" after a promotion, and the old replica side stayed in
    # charge of read bounds and sync requests to the old primary (found by the double-failover drill).
    repl = _replica_shell(tmp_path, applied_offset=40)
    repl.store.wal = SimpleNamespace(durable_seq=40, appended_seq=40)
    repl.store.backlog = []
    repl.store.abort_waiters = lambda why: None
    state = _state()
    version = state.shards[SHARD].isr_version
    assert apply(state, 6, command("isr_expand", shard_id=SHARD, epoch=1, isr_version=version, node_id=R)).ok
    assert apply(state, 7, command("failover", shard_id=SHARD, epoch=1, node_id=R)).ok
    repl.on_config(state)
    assert repl.replica is None and repl.primary is not None
    assert repl.info(state)["role"] == "master"


def test_a_replica_promoted_before_it_reached_its_primarys_epoch_start_begins_its_own_epoch(tmp_path: Path) -> None:
    """Issue 10 §1: R adopted the history of X (epoch 2 from offset 45) while it held only 40; X failed too.

    The node appended (3, 41) after (2, 45) and crashed on the history's order (the simulator's
    copy of this rule cut the history first, so it never saw it).
    """
    repl = _replica_shell(tmp_path, applied_offset=40)
    repl.store.wal = SimpleNamespace(durable_seq=40, appended_seq=40)
    repl.store.backlog = []
    repl.store.abort_waiters = lambda why: None
    repl.history = EpochHistory([(1, 1), (2, 45)])  # saved from X's sync reply
    x, state = "c" * 40, _state()
    steps = [lambda v: command("node_join", node_id=x, host="127.0.0.1", port=7003, bus_port=17003),
             lambda v: command("replica_attach", shard_id=SHARD, epoch=1, node_id=x),
             lambda v: command("isr_expand", shard_id=SHARD, epoch=1, isr_version=v, node_id=R),
             lambda v: command("isr_expand", shard_id=SHARD, epoch=1, isr_version=v, node_id=x),
             lambda v: command("failover", shard_id=SHARD, epoch=1, node_id=x),  # X primary at epoch 2
             lambda v: command("failover", shard_id=SHARD, epoch=2, node_id=R)]  # X fails too: R at epoch 3
    for index, step in enumerate(steps, start=6):
        assert apply(state, index, step(state.shards[SHARD].isr_version)).ok
    repl.on_config(state)
    assert repl.primary is not None and repl.history == EpochHistory([(1, 1), (3, 41)])
