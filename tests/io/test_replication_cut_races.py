"""Races around a replica's cut in place: what starts while the store is being cut must not see the old data.

A READONLY read that started during the cut was answered with a cut, never-acknowledged value, or
waited on the new WAL for an offset only the old one had (an AssertionError: the node went down). A
primary change during the cut built the new replica side from the data about to go: it claimed
records the store no longer held, so a fence answer or an ack could count them (S1). And a replica
detached from its shard counted its own fsyncs as acknowledged.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from trionode.core.cluster.commands import apply, command
from trionode.core.cluster.state import ClusterState
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import Records, SyncReply
from trionode.io.data_store import AckAborted, DataStore
from trionode.io.replication import Replication, save_history

from .helpers import running_store
from .test_replication_disk import _durable_store, _get, _replication, _write
from .test_replication_shell import SHARD, R, _state

pytestmark = pytest.mark.timeout(30)

Q = "c" * 40


@contextmanager
def _held_cut(store: DataStore) -> Iterator[threading.Event]:
    """Hold the store's cuts in their thread (past the aborts and the writer's stop) until the block ends;
    the event says a cut got there. Use it inside the nursery: a held thread cannot be cancelled."""
    entered, release = threading.Event(), threading.Event()
    cut_and_reload = store._cut_and_reload

    def held(keep: int) -> Any:
        entered.set()
        assert release.wait(60), "the test never released the cut"
        return cut_and_reload(keep)

    store._cut_and_reload = held  # type: ignore[method-assign]
    try:
        yield entered
    finally:
        release.set()


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await trio.sleep(0.01)


async def _read_during_a_cut(tmp_path: Path, new_records: int) -> list[tuple[str, Any]]:
    """A READONLY read of k5 (written at 5, past the acknowledged 3) starts while ``truncate_after(3)``
    runs; then the new primary's records 4.. arrive, durable and acknowledged. What the read got."""
    async with running_store(tmp_path) as store:
        store.on_durable = lambda: None  # a replica: only its driver publishes the watermark
        _write(store, 5, "old")  # offsets 1..5: k1..k5 = old1..old5
        await store.wal.wait_durable(5)
        store.publish_acked(3)  # acknowledged 1..3; 4..5 never were
        outcome: list[tuple[str, Any]] = []

        async def reader() -> None:
            value = _get(store, b"k5")  # computed from the old data
            try:
                await store.wait_acked(5)
                outcome.append(("sent", value))
            except AckAborted:
                outcome.append(("aborted", value))

        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def cut() -> None:
                await store.truncate_after(3)
                done.set()

            with _held_cut(store) as entered:
                nursery.start_soon(cut)
                await _until(entered.is_set)  # the cut aborted the waiters it saw; its thread is held
                nursery.start_soon(reader)
                await _until(store.replies_waiting)
            await done.wait()
            assert store.data.applied_offset == 3
            for i in range(new_records):
                store.data.execute(KEYSPACE_COMMANDS["set"], [b"SET", b"n%d" % i, b"new"], now_ms=0, primary=True)
            store.log_outbox()
            await store.wal.wait_durable(3 + new_records)
            store.publish_acked(3 + new_records)
            with trio.move_on_after(60):
                while not outcome:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        return outcome


async def test_a_read_started_during_a_cut_is_never_sent_once_new_records_reach_its_offset(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    assert await _read_during_a_cut(tmp_path, 3) == [("aborted", b"old5")]


async def test_a_read_started_during_a_cut_does_not_wait_past_the_new_wal_end(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Before: wal.wait_durable(5) on the new writer, whose log ends at 4: an AssertionError.
    assert await _read_during_a_cut(tmp_path, 1) == [("aborted", b"old5")]


def _three_member_state() -> tuple[ClusterState, int]:
    """P primary, R and Q replicas, all in the ISR at epoch 1; and the last Raft index used."""
    state, n = _state(), 100
    for cmd in [command("node_join", node_id=Q, host="127.0.0.1", port=7003, bus_port=17003),
                command("replica_attach", shard_id=SHARD, epoch=1, node_id=Q)]:  # fmt: skip
        n += 1
        assert apply(state, n, cmd).ok
    for node in (R, Q):
        n += 1
        v = state.shards[SHARD].isr_version
        assert apply(state, n, command("isr_expand", shard_id=SHARD, epoch=1, isr_version=v, node_id=node)).ok
    return state, n


async def _config_change_during_a_cut(store: DataStore, failover_to: str) -> tuple[Replication, list]:
    """R holds 1..5; its primary's reply keeps 3; a failover to ``failover_to`` commits during the cut."""
    _write(store, 5)
    await store.wal.wait_durable(5)
    state, n = _three_member_state()
    sent: list = []
    repl = _replication(R, store, sent)
    repl.on_config(state)
    side = repl.replica
    assert side is not None
    request = side.state.sync_request()
    side.inbox.append(SyncReply(SHARD, 1, "partial", 3, EpochHistory([(1, 1)]), 3, request.sync_id))
    async with trio.open_nursery() as nursery:
        with _held_cut(store) as entered:
            nursery.start_soon(side.process)
            await _until(entered.is_set)
            sent.clear()
            assert apply(state, n + 1, command("failover", shard_id=SHARD, epoch=1, node_id=failover_to)).ok
            repl.on_config(state)
    assert store.data.applied_offset == 3
    return repl, sent


async def test_a_primary_change_during_a_cut_builds_the_new_replica_side_from_the_cut_data(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    save_history(tmp_path, EpochHistory([(1, 1)]))
    async with running_store(tmp_path) as store:
        repl, sent = await _config_change_during_a_cut(store, Q)
        new = repl.replica
        assert new is not None and new.primary_id == Q
        # Before: log_end 5, durable and reported 5, with 3 in the store.
        assert (new.driver.rs.log_end, new.driver.reported_offset()) == (3, 3)
        assert sent == [], "the replaced side said nothing more to the old primary"


async def test_a_promotion_during_a_cut_starts_the_primary_from_the_cut_data(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    save_history(tmp_path, EpochHistory([(1, 1)]))
    async with running_store(tmp_path) as store:
        # Before: the primary side was built from the old WAL's durable 5, and an assert took the node down.
        repl, _ = await _config_change_during_a_cut(store, R)
        assert repl.replica is None and repl.primary is not None and repl.primary.epoch == 2
        assert repl.primary.driver.durable == 3


async def test_a_replica_stops_serving_reads_before_its_cut_starts(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with _durable_store(tmp_path, 5) as store:
        repl = _replication(R, store, [])
        serving: list[bool] = []
        repl.on_serving_change = lambda: serving.append(repl.serving_reads())
        side = repl.replica
        assert side is not None
        request = side.state.sync_request()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(repl.run)
            side.inbox.append(SyncReply(SHARD, 1, "partial", 5, EpochHistory([(1, 1)]), 5, request.sync_id))
            repl.wake()
            await _until(lambda: serving == [True])  # caught up: it streams and serves READONLY reads
            # Two local records the stream never gave (issue 10): the next message cuts them.
            store.data.execute(KEYSPACE_COMMANDS["set"], [b"SET", b"x", b"local"], now_ms=0, primary=True)
            store.data.execute(KEYSPACE_COMMANDS["set"], [b"SET", b"y", b"local"], now_ms=0, primary=True)
            store.log_outbox()
            with _held_cut(store) as entered:
                side.inbox.append(Records(SHARD, 1, 6, [], 5, request.sync_id))
                repl.wake()
                await _until(entered.is_set)
                assert serving == [True, False] and not repl.serving_reads(), "reads stop before the data is cut"
            await _until(lambda: serving == [True, False, True])
            assert store.data.applied_offset == 5 and _get(store, b"x") is None
            nursery.cancel_scope.cancel()


async def test_a_detached_replica_acknowledges_nothing_of_its_tail(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Its fsyncs used to count as acknowledged: a compaction's snapshot then held 4..5, which no ISR
    confirmed, as acknowledged, and a READONLY read waiting for 5 was answered."""
    async with running_store(tmp_path) as store:
        _write(store, 5, "old")
        await store.wal.wait_durable(5)
        repl = _replication(R, store, [])
        store.publish_acked(3)  # what the ISR confirmed while R replicated
        outcome: list[str] = []

        async def reader() -> None:
            try:
                await store.wait_acked(5)
                outcome.append("sent")
            except AckAborted:
                outcome.append("aborted")

        state = _state()
        assert apply(state, 100, command("replica_detach", shard_id=SHARD, epoch=1, node_id=R)).ok
        with trio.move_on_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await _until(store.replies_waiting)
                repl.on_config(state)
                assert repl.replica is None and repl.primary is None
        assert outcome == ["aborted"]
        with trio.move_on_after(10) as waited:  # as a compaction waits for its offset to be confirmed
            await store.wait_acked(5)
        assert waited.cancelled_caught and store.acked_offset == 3
