"""A primary reinstated at a new epoch while its last write is applied but not yet durable keeps running.

Found by the torn-tail drill (seed 1, 10 s, on a loaded machine): n1 restarted with an
empty data WAL as the primary of epoch 1, applied a client write (offset 1), and was
reinstated at epoch 2 before its fsync. Its new history, ``[[1, 1], [2, 2]]``, started
epoch 2 after the applied record, while the primary's tracker was built from the
durable end (0) and refused it: the node exited with code 4.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.io.test_replication_shell import SHARD, P, _control, _state, _store
from trionode.core.cluster.commands import apply, command
from trionode.core.replication.history import EpochHistory
from trionode.io.history_file import load_history
from trionode.io.replication import Replication

pytestmark = pytest.mark.timeout(30)


def _primary(tmp_path: Path, applied: int, durable: int) -> Replication:
    store = _store(tmp_path, applied_offset=applied)
    store.wal = SimpleNamespace(durable_seq=durable, appended_seq=applied)
    store.backlog = []
    store.abort_waiters = lambda why: None
    acked: list[int] = []
    store.publish_acked = acked.append
    store.acked = acked
    return Replication(P, store, _control(), clock_ms=lambda: 1_000)


def _reinstated() -> object:
    state = _state()
    assert apply(state, 6, command("reinstate", shard_id=SHARD, epoch=1, node_id=P)).ok
    return state


def test_a_primary_reinstated_with_an_undurable_write_starts_its_epoch_after_it(tmp_path: Path) -> None:
    repl = _primary(tmp_path, applied=0, durable=0)
    repl.on_config(_state())
    assert repl.primary is not None and repl.primary.epoch == 1
    repl.store.data.applied_offset = repl.store.wal.appended_seq = 1  # a client write, not yet fsynced
    repl.on_config(_reinstated())  # used to fail the tracker's assertion: (1, 0)
    assert repl.primary.epoch == 2
    assert load_history(tmp_path) == EpochHistory([(1, 1), (2, 2)])  # durable before any record of epoch 2
    assert repl.store.acked == []  # record 1 is durable nowhere: not acknowledged
    # A crash loses record 1: the restarted node drops the epoch that started after it, and comes back.
    again = _primary(tmp_path, applied=0, durable=0)
    again.on_config(_reinstated())
    assert again.primary is not None and again.primary.epoch == 2
    assert load_history(tmp_path) == EpochHistory([(2, 1)])
