"""The replication shell over a real data directory: truncation in place, the loading marker, full-sync cuts, fences.

Issue 10 §2: a divergent suffix was "truncated" by wiping the whole replica (§2.3); a crash in a
full sync could replay the old WAL over the new snapshot (§2.5); the primary cut a full-sync
snapshot at its applied offset, which a crash could still take back (§2.6).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
import trio.testing

from trionode.config import Config
from trionode.core.cluster.commands import apply, command
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import Ack, Records, SyncReply, SyncRequest, from_wire, to_wire
from trionode.io import snapshot_file, wal_files
from trionode.io.data_store import LOADING_NAME, SNAPSHOT_KIND, SNAPSHOT_NAME, DataStore
from trionode.io.failover import FailoverDriver
from trionode.io.replication import ReplicaSide, Replication, save_history

from .helpers import running_store
from .test_replication_shell import SHARD, P, R, _state

pytestmark = pytest.mark.timeout(30)


@asynccontextmanager
async def _durable_store(tmp_path: Path, records: int) -> AsyncIterator[DataStore]:
    """A running store of epoch 1 holding ``k1..k<records>``, all durable."""
    save_history(tmp_path, EpochHistory([(1, 1)]))
    async with running_store(tmp_path) as store:
        _write(store, records)
        await store.wal.wait_durable(records)
        yield store


def _write(store: DataStore, count: int, tag: str = "v") -> None:
    for i in range(1, count + 1):
        store.data.execute(KEYSPACE_COMMANDS["set"], [b"SET", b"k%d" % i, f"{tag}{i}".encode()], now_ms=0, primary=True)
    store.log_outbox()


def _get(store: DataStore, key: bytes) -> bytes | None:
    return store.data.execute(KEYSPACE_COMMANDS["get"], [b"GET", key], now_ms=0, primary=True)[0]


def _replica(store: DataStore) -> tuple[ReplicaSide, SyncRequest]:
    """R's replication side of the shard at epoch 1, and the sync request it starts with."""
    side = _replication(R, store, []).replica
    assert side is not None
    return side, side.state.sync_request()


def _replication(node_id: str, store: object, sent: list) -> Replication:
    control = SimpleNamespace(bus_handlers={}, bus=SimpleNamespace(send=lambda peer, m: sent.append(m["m"])))
    repl = Replication(node_id, store, control, clock_ms=lambda: int(trio.current_time() * 1000))
    repl.on_config(_state())
    return repl


async def test_a_partial_resync_cuts_only_the_divergent_suffix(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with _durable_store(tmp_path, 5) as store:
        side, request = _replica(store)
        # A failover started epoch 2 at offset 4: our 4..5 were never acknowledged.
        reply = SyncReply(SHARD, 2, "partial", 3, EpochHistory([(1, 1), (2, 4)]), 9, request.sync_id)
        side.inbox.append(reply)
        await side.process()
        assert store.data.applied_offset == 3
        assert [_get(store, b"k%d" % i) for i in (1, 3, 4)] == [b"v1", b"v3", None]
        assert not (tmp_path / LOADING_NAME).exists()
    again = DataStore.recover(tmp_path, Config(data_dir=str(tmp_path)))  # and so it stays after a restart
    assert again.data.applied_offset == 3 and _get(again, b"k3") == b"v3"
    await again.close()


async def test_a_crash_between_the_snapshot_and_the_segments_comes_back_empty_and_loading(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with running_store(tmp_path) as store:
        _write(store, 5, tag="old")
        await store.wal.wait_durable(5)
        (tmp_path / LOADING_NAME).write_bytes(b"")  # a full sync began: the marker is durable
    # The primary's snapshot at 3 was renamed into place; the crash came before the old WAL went.
    header = {"kind": SNAPSHOT_KIND, "offset": 3}
    snapshot_file.write_snapshot(str(tmp_path / SNAPSHOT_NAME), header, [[]])
    again = DataStore.recover(tmp_path, Config(data_dir=str(tmp_path)))
    assert again.data.applied_offset == 0 and _get(again, b"k5") is None
    repl = _replication(R, again, [])
    assert repl.offsets()[R] == 0 and repl.health() == {R: "loading"}
    await again.close()


async def test_a_crash_in_the_middle_of_a_cut_in_place_gives_back_a_prefix_of_the_log_before_the_cut(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No marker around a cut in place (sim seed 38: under the marker, a crash here wiped an
    in-sync replica's acknowledged records). The WAL is cut newest segment first, each step
    durable: a crash between two steps leaves the old log's first records, at least those kept."""
    async with running_store(tmp_path) as store:
        _write(store, 3, tag="old")
        store.wal.rotate()
        for i in range(4, 7):
            store.data.execute(KEYSPACE_COMMANDS["set"], [b"SET", b"k%d" % i, b"old%d" % i], now_ms=0, primary=True)
        store.log_outbox()
        await store.wal.wait_durable(6)
    assert len(wal_files.list_segments(str(tmp_path), "data")) == 2

    def crash(path: str, size_bytes: int) -> None:
        raise KeyboardInterrupt("the process died here")

    monkeypatch.setattr(wal_files, "truncate_file", crash)
    with pytest.raises(KeyboardInterrupt):
        wal_files.cut_after(str(tmp_path), "data", 2)  # the second segment went; the first is not cut yet
    monkeypatch.undo()
    again = DataStore.recover(tmp_path, Config(data_dir=str(tmp_path)))
    assert again.data.applied_offset == 3 and [_get(again, b"k%d" % i) for i in (1, 3, 4)] == [
        b"old1", b"old3", None]  # fmt: skip
    assert not again.loading_marker
    await again.close()


async def test_a_cut_in_place_at_a_segment_boundary_then_new_writes_survive_a_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with running_store(tmp_path) as store:
        _write(store, 3, tag="old")
        store.wal.rotate()
        store.data.execute(KEYSPACE_COMMANDS["set"], [b"SET", b"k4", b"old4"], now_ms=0, primary=True)
        store.log_outbox()
        await store.wal.wait_durable(4)
        await store.truncate_after(3)  # the second segment holds only 4: it goes whole
        assert store.data.applied_offset == 3 and _get(store, b"k4") is None
        store.data.execute(KEYSPACE_COMMANDS["set"], [b"SET", b"k4", b"new4"], now_ms=0, primary=True)
        store.log_outbox()
        await store.wal.wait_durable(4)
    again = DataStore.recover(tmp_path, Config(data_dir=str(tmp_path)))
    assert again.data.applied_offset == 4 and [_get(again, b"k%d" % i) for i in (3, 4)] == [b"old3", b"new4"]
    await again.close()


async def test_a_second_cut_in_place_below_the_first_keeps_the_data_and_the_isr(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Issue 10: a cut in place wrote its kept prefix, unacknowledged records included, as the snapshot.
    A second failover that cut some of those off found the cut below that snapshot, and the replica
    (an ISR member) discarded everything and synced from empty. Now only the WAL is cut."""
    async with _durable_store(tmp_path, 6) as store:
        side, request = _replica(store)
        # Epoch 2 started at 6: our 6 was never acknowledged; nor were 4..5, which we keep for now.
        side.inbox.append(SyncReply(SHARD, 2, "partial", 5, EpochHistory([(1, 1), (2, 6)]), 9, request.sync_id))
        await side.process()
        assert store.data.applied_offset == 5
        # Epoch 2's primary died before 4..5 were acknowledged; epoch 3's started at 4.
        request = side.state.sync_request()
        side.inbox.append(SyncReply(SHARD, 3, "partial", 3, EpochHistory([(1, 1), (3, 4)]), 9, request.sync_id))
        await side.process()
        assert store.data.applied_offset == 3 and [_get(store, b"k%d" % i) for i in (1, 3, 4)] == [
            b"v1", b"v3", None]  # fmt: skip
        assert not (tmp_path / LOADING_NAME).exists() and side.driver.health == "online"
    again = DataStore.recover(tmp_path, Config(data_dir=str(tmp_path)))
    assert again.data.applied_offset == 3 and _get(again, b"k3") == b"v3"
    await again.close()


async def test_a_cut_below_the_local_snapshot_is_loading_before_it_resyncs_from_empty(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The node carries out the driver's order for a cut it cannot make in place (issue 10)."""
    async with _durable_store(tmp_path, 5) as store:
        await store.compact()  # acknowledged here alone (no replication yet): the snapshot is at 5
        assert store.snapshot_offset == 5
        sent: list = []
        repl = _replication(R, store, sent)
        side = repl.replica
        assert side is not None and side.driver.truncate_floor == 5
        request = side.state.sync_request()
        side.inbox.append(SyncReply(SHARD, 1, "partial", 3, EpochHistory([(1, 1)]), 9, request.sync_id))
        await side.process()
        (again,) = (from_wire(m) for m in sent)
        assert isinstance(again, SyncRequest) and again.log_end == 0 and again.history == EpochHistory()
        assert again.loading  # the primary takes it out of the ISR at once
        assert (tmp_path / LOADING_NAME).exists() and store.data.applied_offset == 0 and store.snapshot_offset == 0
        assert repl.offsets()[R] == 0 and repl.health() == {R: "loading"} and not repl.serving_reads()


async def test_a_compaction_on_a_replica_reaches_its_driver_at_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The driver's floor is an input the node reports when it compacts, not a field it writes."""
    async with _durable_store(tmp_path, 5) as store:
        side, _ = _replica(store)
        store.publish_acked(5)  # as the driver would, once the primary's watermark says so
        await store.compact()
        assert store.snapshot_offset == 5 and side.driver.truncate_floor == 5


async def test_a_full_sync_snapshot_is_streamed_only_once_acknowledged_on_the_primary(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with running_store(tmp_path) as store:
        _write(store, 3)
        await store.wal.wait_durable(3)
        sent: list = []
        repl = _replication(P, store, sent)
        store.backlog.clear()  # the backlog no longer reaches back: a replica at 0 needs a full sync
        await store.close()
        real_wal, store.wal = store.wal, SimpleNamespace(durable_seq=3, appended_seq=5)  # 4..5 applied, not yet durable
        _write_applied_only(store, 2)
        primary = repl.primary
        assert primary is not None
        primary.on_sync_request(SyncRequest(SHARD, R, 1, EpochHistory(), 0, 7))
        primary.stream()
        assert [m["type"] for m in sent] == ["repl_sync_reply"] and sent[0]["mode"] == "full"
        store.wal.durable_seq = 5
        primary.stream()
        # Durable, but not acknowledged (this primary has not fenced): a replica could hold a record
        # in its snapshot that a failover then drops, and it cannot cut a snapshot back (sim seed 57).
        assert not [m for m in sent if m["type"] == "repl_snapshot"]
        state = _state()
        version = state.shards[SHARD].isr_version
        assert apply(state, 6, command("isr_fence", shard_id=SHARD, epoch=1, isr_version=version)).ok
        repl.on_config(state)
        primary.stream()
        chunks = [from_wire(m) for m in sent if m["type"] == "repl_snapshot"]
        assert chunks and all(c.offset == 5 for c in chunks)
        store.wal = real_wal


def _write_applied_only(store: DataStore, count: int) -> None:
    for i in range(count):
        store.data.execute(KEYSPACE_COMMANDS["set"], [b"SET", b"late%d" % i, b"x"], now_ms=0, primary=True)
    store.data.take_outbox()


async def test_a_record_written_locally_on_a_replica_is_cut_before_the_stream_continues(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The repro of issue 10: a replica ran FLUSHALL at its own next offset and then met the primary's record."""
    async with running_store(tmp_path) as store:
        side, request = _replica(store)
        side.inbox.append(SyncReply(SHARD, 1, "partial", 0, EpochHistory([(1, 1)]), 2, request.sync_id))
        side.inbox.append(Records(SHARD, 1, 1, [[b"SET", b"k1", b"p1"]], 0, request.sync_id))
        await side.process()
        store.data.execute(KEYSPACE_COMMANDS["flushall"], [b"FLUSHALL"], now_ms=0, primary=True)  # local, at offset 2
        store.log_outbox()
        side.inbox.append(Records(SHARD, 1, 2, [[b"SET", b"k2", b"p2"]], 0, request.sync_id))
        await side.process()
        assert store.data.applied_offset == 2
        assert (_get(store, b"k1"), _get(store, b"k2")) == (b"p1", b"p2")


async def test_the_primary_driver_alone_moves_the_acknowledged_offset(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Issue 10 §1: a write durable here is answered, counted by WAIT and readable only once the ISR holds it."""
    async with running_store(tmp_path) as store:
        sent: list = []
        repl = _replication(P, store, sent)
        state = _state()
        version = state.shards[SHARD].isr_version
        assert apply(state, 6, command("isr_expand", shard_id=SHARD, epoch=1, isr_version=version, node_id=R)).ok
        assert apply(state, 7, command("isr_fence", shard_id=SHARD, epoch=1, isr_version=version + 1)).ok
        repl.on_config(state)
        side = repl.primary
        assert side is not None and side.driver.fenced
        side.on_sync_request(SyncRequest(SHARD, R, 1, EpochHistory(), 0, 7))
        _write(store, 1)
        await store.wal.wait_durable(1)
        answered: list[int] = []

        async def client() -> None:
            await store.wait_acked(1)
            answered.append(repl.wait_count(1))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client)
            await trio.sleep(1)
            side.stream()
            assert answered == [] and store.acked_offset == 0  # durable here, not on R
            assert store.data.visibility.required(b"k1") == 1  # a read of k1 waits
            records = [(m["first_offset"], len(m["effects"])) for m in sent if m["type"] == "repl_records"]
            assert records == [(1, 1)]  # streamed: durable here
            side.on_ack(Ack(SHARD, R, 1, 1, 7))
        assert answered == [1] and store.acked_offset == side.driver.acked_offset == 1


async def test_the_replica_driver_alone_moves_a_replicas_acknowledged_offset(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Issue 10 §1: the replica's acknowledged offset (what its READONLY reads may see) was computed in io."""
    async with running_store(tmp_path) as store:
        side, request = _replica(store)
        side.inbox.append(SyncReply(SHARD, 1, "partial", 0, EpochHistory([(1, 1)]), 3, request.sync_id))
        side.inbox.append(Records(SHARD, 1, 1, [[b"SET", b"k%d" % i, b"p"] for i in (1, 2, 3)], 2, request.sync_id))
        await side.process()  # appended, durable, acked: the primary acknowledged 2 of them
        assert store.wal.durable_seq == 3 and store.acked_offset == side.driver.acked_offset == 2
        answered: list[int] = []

        async def reader() -> None:
            await store.wait_acked(3)
            answered.append(store.acked_offset)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.sleep(1)
            assert answered == []
            side.inbox.append(Records(SHARD, 1, 4, [], 3, request.sync_id))  # a heartbeat with the watermark
            await side.process()
        assert answered == [3] and side.driver.acked_offset == 3


async def test_a_sync_request_that_speaks_for_another_node_is_dropped(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The driver answers the replica a request names: only that replica may send it (it used to go to the sender)."""
    async with running_store(tmp_path) as store:
        sent: list = []
        repl = _replication(P, store, sent)
        request = to_wire(SyncRequest(SHARD, R, 1, EpochHistory(), 0, 7))
        repl._on_bus_message("c" * 40, {"k": "repl", "m": request})
        assert sent == []
        repl._on_bus_message(R, {"k": "repl", "m": request})
        assert [m["type"] for m in sent] == ["repl_sync_reply"]


LEADER = "e" * 40


def _fenceable(store: DataStore, sent: list) -> tuple[Replication, FailoverDriver]:
    """A replica's replication shell and the failover driver that answers the leader's fences."""
    bus = SimpleNamespace(send=lambda peer, payload: sent.append((peer, payload)))
    control = SimpleNamespace(bus_handlers={}, bus=bus, leader=LEADER)
    repl = Replication(R, store, control, clock_ms=lambda: int(trio.current_time() * 1000))
    repl.on_config(_state())  # the shard at epoch 1, P its primary
    runtime = SimpleNamespace(node_id=R, control=control, replication=repl,
                              config=SimpleNamespace(node_timeout_ms=2000))  # fmt: skip
    return repl, FailoverDriver(runtime)  # type: ignore[arg-type]


async def test_a_fenced_replica_still_refuses_the_deposed_primary_after_a_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Issue 10 §3, failover step 1: the fence was kept in memory only, so a restart undid it and
    the replica took the deposed primary's stream again after answering the leader's round."""
    sent: list = []
    async with running_store(tmp_path) as store:
        repl, failover = _fenceable(store, sent)
        assert repl.replica is not None
        failover._on_fence(LEADER, {"k": "fence", "shard": SHARD, "epoch": 2, "term": 5})
        await repl.replica.process()
        assert [p["offset"] for peer, p in sent if peer == LEADER and p["k"] == "fenced" and p["epoch"] == 2] == [0]
    # The node restarts before the failover commits: its configuration still says epoch 1.
    async with running_store(tmp_path) as store:
        sent.clear()
        repl, _ = _fenceable(store, sent)
        side = repl.replica
        assert side is not None
        await side.process()
        (request,) = [from_wire(p["m"]) for peer, p in sent if peer == P and p["k"] == "repl"]
        side.inbox.append(SyncReply(SHARD, 1, "partial", 0, EpochHistory([(1, 1)]), 1, request.sync_id))
        side.inbox.append(Records(SHARD, 1, 1, [[b"SET", b"k1", b"stale"]], 0, request.sync_id))
        await side.process()
        assert store.data.applied_offset == 0 and _get(store, b"k1") is None
        # And it still tells the gossip so, for a Raft leader that never saw the round (core/failover/fences.py).
        assert repl.fence_facts() == {"replica": (SHARD, 2)}
