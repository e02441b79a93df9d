"""ReplicaState: sessions, truncation, full sync (S5), contiguity, fencing and acks (the read bound: the driver)."""

import pytest

from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import Records, SnapshotChunk, SyncRefused, SyncReply
from trionode.core.replication.replica import ReplicaState, Step

from .helpers import R1, SHARD

LEADER = EpochHistory([(1, 1), (2, 6)])


def replica(log_end: int = 7, hist: EpochHistory | None = None, epoch: int = 1) -> ReplicaState:
    return ReplicaState(SHARD, R1, epoch, hist if hist is not None else EpochHistory([(1, 1)]), log_end)


def records(first: int, n: int, sync_id: int, epoch: int = 2, hw: int = 0) -> Records:
    return Records(SHARD, epoch, first, [[b"SET", b"k", str(first + i).encode()] for i in range(n)], hw, sync_id)


def test_partial_sync_truncates_adopts_the_history_and_streams() -> None:
    r = replica(log_end=7)  # a deposed primary's suffix 6..7 in epoch 1
    req = r.sync_request()
    assert (req.log_end, req.epoch_seen, req.sync_id, req.history.to_list()) == (7, 1, 1, [[1, 1]])
    step = r.on_sync_reply(SyncReply(SHARD, 2, "partial", 5, LEADER, 9, req.sync_id))
    assert (step.truncate_to, step.history_changed, step.start_full_sync) == (5, True, False)
    assert r.history == LEADER and r.log_end == 5 and r.epoch == 2 and r.state == "syncing"
    step = r.on_records(records(6, 4, req.sync_id, hw=8))
    assert [o for o, _ in step.records] == [6, 7, 8, 9] and r.state == "streaming"
    assert r.ack(9).durable_offset == 9 and r.primary_hw == 8


def test_duplicates_are_skipped_and_a_gap_resyncs() -> None:
    r = replica(log_end=0, hist=EpochHistory())
    sid = r.sync_request().sync_id
    r.on_sync_reply(SyncReply(SHARD, 2, "partial", 0, LEADER, 0, sid))
    assert [o for o, _ in r.on_records(records(1, 3, sid)).records] == [1, 2, 3]
    step = r.on_records(records(2, 3, sid))
    assert [(o, e[2]) for o, e in step.records] == [(4, b"4")]
    assert r.on_records(records(1, 2, sid)).records == []
    step = r.on_records(records(6, 1, sid))
    assert step.resync.startswith("gap") and r.state == "connecting"
    assert r.on_records(records(5, 1, sid)).refused  # no session any more
    assert r.log_end == 4


def test_fencing_refuses_older_epochs_and_drops_the_session() -> None:
    r = replica(log_end=5, epoch=2)
    sid = r.sync_request().sync_id
    assert r.on_sync_reply(SyncReply(SHARD, 1, "partial", 5, EpochHistory([(1, 1)]), 5, sid)).refused
    r.on_sync_reply(SyncReply(SHARD, 2, "partial", 5, LEADER, 5, sid))
    assert r.fence(3) and not r.fence(3) and r.state == "connecting"
    assert r.on_records(records(6, 1, sid, epoch=2)).refused.startswith("stale_epoch")
    assert r.ack(5) is None  # no session: nothing to acknowledge to
    sid = r.sync_request().sync_id
    assert r.sync_request().epoch_seen == 3
    assert r.on_sync_reply(SyncReply(SHARD, 3, "partial", 5, EpochHistory([(1, 1), (3, 6)]), 5, sid)).refused


def test_a_newer_epoch_in_the_stream_forces_a_resync() -> None:
    r = replica(log_end=5)
    sid = r.sync_request().sync_id
    r.on_sync_reply(SyncReply(SHARD, 2, "partial", 5, LEADER, 5, sid))
    assert r.on_records(records(6, 1, sid, epoch=3)).resync


def test_replies_to_other_sessions_and_duplicates_are_ignored() -> None:
    r = replica(log_end=5)
    old = r.sync_request().sync_id
    new = r.sync_request().sync_id
    assert r.on_sync_reply(SyncReply(SHARD, 2, "partial", 3, LEADER, 9, old)).refused.startswith("stale_session")
    assert r.on_sync_reply(SyncReply(SHARD, 2, "partial", 5, LEADER, 9, new)).truncate_to == 5
    assert r.on_sync_reply(SyncReply(SHARD, 2, "partial", 1, LEADER, 9, new)).refused.startswith("duplicate")
    assert r.log_end == 5


def test_a_reply_computed_for_a_longer_log_asks_again() -> None:
    r = replica(log_end=5)
    sid = r.sync_request().sync_id
    assert r.on_sync_reply(SyncReply(SHARD, 2, "partial", 7, LEADER, 9, sid)).resync
    assert r.on_sync_reply(SyncRefused(SHARD, 2, "not_replica: x", sid)).resync.endswith("not_replica: x")


def test_full_sync_reports_zero_until_the_snapshot_is_durable() -> None:
    r = replica(log_end=7)
    r.ack(0)  # no session
    sid = r.sync_request().sync_id
    assert r.reported_offset() == 7
    step = r.on_sync_reply(SyncReply(SHARD, 2, "full", 0, LEADER, 12, sid))
    assert step.start_full_sync and r.state == "loading" and r.health == "loading"
    assert r.reported_offset() == 0
    assert r.on_snapshot_chunk(SnapshotChunk(SHARD, 2, 10, 0, [b"a"], False, sid)).snapshot_items == [b"a"]
    assert r.ack(0).durable_offset == 0
    with pytest.raises(AssertionError):
        r.ack(7)  # nothing is received yet: it cannot be durable
    step = r.on_snapshot_chunk(SnapshotChunk(SHARD, 2, 10, 1, [b"b"], True, sid))
    assert (step.snapshot_items, step.snapshot_done, step.history_changed) == ([b"b"], 10, True)
    assert r.history == LEADER and r.log_end == 10
    assert [o for o, _ in r.on_records(records(11, 2, sid)).records] == [11, 12]
    assert r.reported_offset() == 0  # complete, but not yet durable
    ack = r.ack(9)
    assert ack.durable_offset == 0 and r.state == "loading"
    ack = r.ack(12)
    assert ack.durable_offset == 12 and r.state == "streaming" and r.health == "online"


def test_snapshot_chunks_out_of_order_restart_the_sync_from_nothing() -> None:
    r = replica(log_end=7)
    sid = r.sync_request().sync_id
    r.on_sync_reply(SyncReply(SHARD, 2, "full", 0, LEADER, 12, sid))
    assert r.on_records(records(11, 1, sid)).resync  # records before the snapshot is complete
    sid = r.sync_request().sync_id
    assert r.sync_request().log_end == 0  # the old data was discarded
    sid = r.sync_id
    r.on_sync_reply(SyncReply(SHARD, 2, "full", 0, LEADER, 12, sid))
    assert r.on_snapshot_chunk(SnapshotChunk(SHARD, 2, 10, 1, [], True, sid)).resync
    assert r.reported_offset() == 0 and r.log_end == 0


def test_restart_cuts_the_history_back_to_the_recovered_log() -> None:
    r = ReplicaState(SHARD, R1, 2, LEADER, 4, sync_id_base=1000)
    assert r.history.to_list() == [[1, 1]] and LEADER.to_list() == [[1, 1], [2, 6]]
    assert r.sync_request().sync_id == 1001


def test_a_silent_primary_ends_the_session_so_the_replica_asks_again() -> None:
    # A primary that restarts forgets the replica's session and never streams to it again:
    # the replica must notice the silence and start a new session, or it waits forever.
    r = replica(log_end=0, hist=EpochHistory())
    sid = r.sync_request().sync_id
    r.on_sync_reply(SyncReply(SHARD, 2, "partial", 0, LEADER, 3, sid))
    r.on_records(records(1, 3, sid, hw=2))
    assert r.state == "streaming"
    step = r.primary_silent()
    assert step.resync and r.state == "connecting" and r.log_end == 3  # nothing is discarded
    assert r.primary_silent() == Step()  # already asking again: nothing more to do
    assert r.sync_request().sync_id == sid + 1
