"""A deposed primary that applies a configuration older than its successor's promotion keeps running.

Found by the migrate drill (seed 5, 60 s): a primary paused past its lease was replaced
at epoch 2; once resumed, its replica's sync request (it had seen epoch 2) deposed it,
and then it applied the entries it had missed in order. The first of them (a slot
migration's abort) still named it primary at epoch 1, and the node died on the
assertion that such a configuration cannot leave it deposed, although the entry that
replaced it was only further down its log.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.io.test_replication_shell import SHARD, P, R, _control, _state, _store
from trionode.core.cluster.commands import apply, command
from trionode.core.failover import fence_info
from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import SyncRequest
from trionode.io.replication import Replication

pytestmark = pytest.mark.timeout(30)


def _primary_shell(tmp_path: Path) -> Replication:
    store = _store(tmp_path, applied_offset=40)
    store.wal = SimpleNamespace(durable_seq=40, appended_seq=40)
    store.backlog = []
    store.abort_waiters = lambda why: None
    acked: list[int] = []
    store.publish_acked = acked.append
    store.acked = acked
    repl = Replication(P, store, _control(), clock_ms=lambda: 1_000)
    repl.on_config(_state())
    return repl


def test_a_stale_configuration_naming_a_deposed_primary_does_not_kill_it(tmp_path: Path) -> None:
    repl = _primary_shell(tmp_path)
    side = repl.primary
    assert side is not None and side.epoch == 1
    history = EpochHistory([(1, 1), (2, 41)])
    side.on_sync_request(SyncRequest(SHARD, R, epoch_seen=2, history=history, log_end=40, sync_id=7))
    assert side.driver.tracker.deposed
    state = _state()  # the entries this node had not applied yet, the failover's still to come
    x = "c" * 40
    assert apply(state, 6, command("node_join", node_id=x, host="127.0.0.1", port=7003, bus_port=17003)).ok
    acked_before = list(repl.store.acked)
    repl.on_config(state)  # still names P primary at epoch 1: it used to fail an assertion here
    assert repl.primary is side and side.driver.tracker.deposed  # deposed stays deposed
    assert repl.store.acked == acked_before  # and acknowledges nothing more
    # It says so in its gossip: a Raft leader that never saw the round fences again (core/failover/fences.py).
    assert fence_info(state, P, **repl.fence_facts()) == {"fence_shard": SHARD, "fence_epoch": 2}
