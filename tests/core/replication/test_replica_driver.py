"""ReplicaDriver: the replica side's decisions as ordered actions (issue 10 §1 and §2.3, §2.5; issue 12 §2)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.core.replication import replica_driver
from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import Ack, Records, SnapshotChunk, SyncReply, SyncRequest
from trionode.core.replication.primary_driver import AckUpTo
from trionode.core.replication.replica_driver import (
    AnswerFence,
    Append,
    InstallSnapshot,
    LoadChunk,
    ReplicaDriver,
    SaveFence,
    SaveHistory,
    Send,
    SetLoadingMarker,
    Truncate,
)

from .helpers import R1, SHARD

H1 = EpochHistory([(1, 1)])
H12 = EpochHistory([(1, 1), (2, 4)])
LEADER = "e" * 40


def driver(log_end: int = 0, history: EpochHistory = H1, **kwargs: object) -> ReplicaDriver:
    return ReplicaDriver(SHARD, R1, 1, history, log_end, 0, **kwargs)  # type: ignore[arg-type]


def request(d: ReplicaDriver, now_ms: int = 0) -> SyncRequest:
    (send,) = d.tick(now_ms)
    assert isinstance(send, Send) and isinstance(send.msg, SyncRequest)
    return send.msg


def test_a_full_sync_reports_0_first_and_saves_the_history_only_after_the_snapshot() -> None:
    d = driver(log_end=5)
    req = request(d)
    out = d.on_message(SyncReply(SHARD, 2, "full", 0, H12, 7, req.sync_id), 10)
    fence, ack, mark, discard = out
    assert fence == SaveFence(2)  # the newer epoch it learned is durable before anything else
    assert isinstance(ack, Send) and ack.msg == Ack(SHARD, R1, 2, 0, req.sync_id)
    assert (mark, discard) == (SetLoadingMarker(True), Truncate(0))
    assert d.reported_offset() == 0 and d.health == "loading" and d.read_bound() is None
    first = d.on_message(SnapshotChunk(SHARD, 2, 7, 0, [["a"]], False, req.sync_id), 20)
    assert first == [LoadChunk([["a"]])]
    last = d.on_message(SnapshotChunk(SHARD, 2, 7, 1, [["b"]], True, req.sync_id), 30)
    assert last == [LoadChunk([["b"]]), InstallSnapshot(7), SaveHistory(H12)]
    assert d.on_durable(6, 40) == [Send(Ack(SHARD, R1, 2, 0, req.sync_id))]  # not durable yet: still 0
    assert d.health == "loading"
    cleared, ack = d.on_durable(7, 50)
    assert cleared == SetLoadingMarker(False) and ack == Send(Ack(SHARD, R1, 2, 7, req.sync_id))
    assert d.health == "online" and d.reported_offset() == 7


def test_a_partial_sync_cuts_only_the_divergent_suffix_in_place_without_the_marker() -> None:
    """A crash under the marker wipes the log at restart: an in-sync replica cutting an
    unacknowledged suffix must not risk its acknowledged records on it (sim seed 38)."""
    d = driver(log_end=5)
    req = request(d)
    out = d.on_message(SyncReply(SHARD, 2, "partial", 3, H12, 9, req.sync_id), 10)
    assert out == [SaveFence(2), Truncate(3), SaveHistory(H12)]
    assert d.health == "online" and d.rs.log_end == 3


def test_a_partial_sync_that_keeps_everything_sets_no_marker() -> None:
    """The same for a replica resyncing after a restart, with nothing to cut (sim seed 20)."""
    d = driver(log_end=5)
    req = request(d)
    out = d.on_message(SyncReply(SHARD, 2, "partial", 5, H12, 9, req.sync_id), 10)
    assert out == [SaveFence(2), Truncate(5), SaveHistory(H12)]
    assert d.health == "online" and d.rs.log_end == 5


def test_a_cut_below_the_local_snapshot_sets_the_marker_before_it_discards_and_asks_again_as_loading() -> None:
    """Issue 10: this path discards everything. It is no assert (a node once reached it as an ISR
    member: its cuts in place wrote unacknowledged records into its snapshot): like a full sync it
    sets the marker before it discards (S5), and its new request says it is loading, so that the
    primary takes it out of the ISR at once."""
    d = driver(log_end=5, truncate_floor=4)
    req = request(d)
    assert not req.loading
    out = d.on_message(SyncReply(SHARD, 2, "partial", 3, H12, 9, req.sync_id), 10)
    assert out[:4] == [SaveFence(2), SetLoadingMarker(True), Truncate(0), SaveHistory(EpochHistory())]
    (again,) = out[4:]
    assert isinstance(again, Send) and isinstance(again.msg, SyncRequest)
    assert again.msg.log_end == 0 and again.msg.loading
    assert d.health == "loading" and d.reported_offset() == 0
    d.on_message(SyncReply(SHARD, 2, "partial", 0, H12, 2, again.msg.sync_id), 20)
    assert d.health == "loading"  # synced from empty, not caught up yet
    d.on_message(Records(SHARD, 2, 1, [[b"SET", b"k", b"1"], [b"SET", b"k", b"2"]], 0, again.msg.sync_id), 30)
    cleared, ack = d.on_durable(2, 40)
    assert cleared == SetLoadingMarker(False) and isinstance(ack, Send) and ack.msg.durable_offset == 2


def test_a_compaction_the_shell_reports_raises_the_floor_a_cut_in_place_stops_at() -> None:
    """The floor is an input (the node's compaction reports it), never written by a shell."""
    d = driver(log_end=5)
    d.on_compacted(4)
    d.on_compacted(2)  # a report overtaken by a newer one: the floor never goes down
    assert d.truncate_floor == 4
    out = d.on_message(SyncReply(SHARD, 2, "partial", 3, H12, 9, request(d).sync_id), 10)
    assert out[1:4] == [SetLoadingMarker(True), Truncate(0), SaveHistory(EpochHistory())]


def test_a_replica_discarding_below_its_floor_claims_nothing_in_a_fencing_round() -> None:
    """Once it discarded, a failover must not count it: the fence's answer says 0 and loading."""
    d = driver(log_end=5, truncate_floor=4)
    d.on_message(SyncReply(SHARD, 1, "partial", 5, H1, 5, request(d).sync_id), 0)
    d.on_durable(5, 0)
    _, send, answer = d.on_fence_round(LEADER, 2, 7, 10)
    assert answer == AnswerFence(LEADER, 2, 7, 5, "online") and isinstance(send, Send)
    d.on_message(SyncReply(SHARD, 2, "partial", 3, H12, 9, send.msg.sync_id), 20)
    assert d.on_fence_round(LEADER, 2, 8, 30)[-1] == AnswerFence(LEADER, 2, 8, 0, "loading")
    assert d.read_bound() is None and d.acked_offset == 0
    assert any("below the local snapshot at 4" in line for line in d.take_reports())


def test_a_full_sync_discards_the_local_snapshot_and_its_floor() -> None:
    d = driver(log_end=5, truncate_floor=5)
    d.on_message(SyncReply(SHARD, 1, "full", 0, H1, 9, request(d).sync_id), 0)
    assert d.truncate_floor == 0  # the snapshot went with everything else


def test_a_restart_with_the_marker_is_empty_loading_and_asks_from_zero() -> None:
    d = driver(log_end=5, loading_marker=True)
    assert d.reported_offset() == 0 and d.health == "loading" and d.read_bound() is None
    assert request(d).log_end == 0 and request(d, 10**6).history == EpochHistory() and request(d, 10**7).loading


def test_an_idle_replica_re_acks_its_position_as_a_heartbeat() -> None:
    d = driver(log_end=3)
    req = request(d)
    d.on_message(SyncReply(SHARD, 1, "partial", 3, H1, 3, req.sync_id), 0)
    assert d.on_durable(3, 10) == [Send(Ack(SHARD, R1, 1, 3, req.sync_id))]
    assert d.on_durable(3, 20) == []  # unchanged: no ack ...
    beat = 10 + replica_driver.ack_heartbeat_ms
    assert d.on_durable(3, beat) == [Send(Ack(SHARD, R1, 1, 3, req.sync_id))]  # ... until the heartbeat


def test_records_are_appended_and_a_silent_session_starts_again() -> None:
    d = driver(log_end=0, silence_ms=500)
    req = request(d)
    d.on_message(SyncReply(SHARD, 1, "partial", 0, H1, 1, req.sync_id), 0)
    out = d.on_message(Records(SHARD, 1, 1, [[b"SET", b"k", b"v"]], 0, req.sync_id), 100)
    assert out == [Append([(1, [b"SET", b"k", b"v"])])]
    assert d.tick(600) == []
    (again,) = d.tick(601)
    assert isinstance(again, Send) and isinstance(again.msg, SyncRequest) and again.msg.sync_id == req.sync_id + 1



def test_a_fencing_round_is_durable_before_it_is_answered_and_still_refuses_after_a_restart() -> None:
    # Issue 10 §3 (failover step 1): the fence lived only in memory, so a crash undid it.
    d = driver(log_end=5)
    d.on_message(SyncReply(SHARD, 1, "partial", 5, H1, 5, request(d).sync_id), 0)
    d.on_durable(5, 0)
    out = d.on_fence_round(LEADER, 2, 7, 10)
    assert out[0] == SaveFence(2) and out[-1] == AnswerFence(LEADER, 2, 7, 5, "online")
    (send,) = out[1:-1]  # a new session, which tells the old primary it is deposed
    assert isinstance(send, Send) and isinstance(send.msg, SyncRequest) and send.msg.epoch_seen == 2
    again = d.on_fence_round(LEADER, 2, 8, 20)  # asked again (a later round): answered, nothing to persist
    assert again == [AnswerFence(LEADER, 2, 8, 5, "online")]

    # Restarted before the failover committed: the configuration still names epoch 1.
    restarted = ReplicaDriver(SHARD, R1, 1, H1, 5, 0, fence_epoch=2)
    req = request(restarted)
    assert req.epoch_seen == 2
    assert restarted.on_message(SyncReply(SHARD, 1, "partial", 5, H1, 6, req.sync_id), 30) == []
    assert restarted.on_message(Records(SHARD, 1, 6, [[b"SET", b"k", b"stale"]], 0, req.sync_id), 40) == []
    assert restarted.rs.log_end == 5 and restarted.rs.state == "connecting"


def test_the_configuration_epoch_is_persisted_as_the_fence_before_a_request_names_it() -> None:
    d = ReplicaDriver(SHARD, R1, 3, H1, 5, 0, fence_epoch=0)  # a first start: nothing persisted yet
    fence, send = d.tick(0)
    assert fence == SaveFence(3) and isinstance(send, Send) and send.msg.epoch_seen == 3
    assert d.fence(3, 1) == [] and d.fence(2, 1) == []  # not news
    fence, send = d.fence(4, 2)
    assert fence == SaveFence(4) and isinstance(send, Send) and send.msg.epoch_seen == 4


# --- the acknowledged offset (issue 10 §1: it was computed in io/replication.py) -------------------


def records(d: ReplicaDriver, n: int, hw: int) -> Records:
    first = d.rs.log_end + 1
    return Records(SHARD, 1, first, [[b"SET", b"k", b"%d" % (first + i)] for i in range(n)], hw, d.rs.sync_id)


def test_the_acknowledged_offset_is_the_primarys_bounded_by_what_is_durable_here() -> None:
    d = driver(log_end=0, history=EpochHistory())
    d.on_message(SyncReply(SHARD, 1, "partial", 0, H1, 4, request(d).sync_id), 0)
    assert d.on_message(records(d, 4, hw=3), 10) == [Append([(o, [b"SET", b"k", b"%d" % o]) for o in (1, 2, 3, 4)])]
    assert d.acked_offset == 0  # the primary acknowledged 3, nothing is durable here yet
    assert AckUpTo(2) in d.on_durable(2, 20) and d.read_bound() == 2
    assert d.on_local_durable(4) == [AckUpTo(3)] and d.read_bound() == 3  # no further than the primary's
    assert d.on_message(records(d, 0, hw=1), 30) == []  # an older watermark takes nothing back
    assert d.on_message(records(d, 0, hw=9), 40) == [AckUpTo(4)] and d.acked_offset == 4


def test_nothing_is_acknowledged_under_the_loading_marker_and_a_full_sync_starts_from_zero() -> None:
    d = driver(log_end=0, history=EpochHistory())
    d.on_message(SyncReply(SHARD, 1, "partial", 0, H1, 2, request(d).sync_id), 0)
    d.on_message(records(d, 2, hw=2), 0)
    assert AckUpTo(2) in d.on_durable(2, 0)
    d.on_message(SyncReply(SHARD, 1, "full", 0, H1, 6, request(d, 10**6).sync_id), 10)
    assert d.acked_offset == 0 and d.read_bound() is None
    sync_id = d.rs.sync_id
    d.on_message(SnapshotChunk(SHARD, 1, 6, 0, [], True, sync_id), 20)
    d.on_message(Records(SHARD, 1, 7, [], 6, sync_id), 30)
    assert d.on_local_durable(6) == []  # durable and acknowledged, but the marker is still set
    cleared, ack, published = d.on_durable(6, 40)
    assert cleared == SetLoadingMarker(False) and isinstance(ack, Send) and published == AckUpTo(6)


def test_a_cut_below_the_primarys_watermark_counts_nothing_past_the_cut_before_the_next_primary_says_so() -> None:
    """The watermark streamed before a cut describes records the cut removed: the next primary's records
    at those offsets are not acknowledged by it."""
    d = driver(log_end=0, history=EpochHistory())
    d.on_message(SyncReply(SHARD, 1, "partial", 0, H1, 6, request(d).sync_id), 0)
    d.on_message(records(d, 6, hw=6), 0)
    assert AckUpTo(3) in d.on_durable(3, 0)
    assert Truncate(3) in d.on_message(SyncReply(SHARD, 1, "partial", 3, H1, 6, request(d, 10**6).sync_id), 10)
    assert d.rs.primary_hw == 3
    d.on_message(records(d, 3, hw=3), 20)  # the next primary's 4..6, which it has not acknowledged yet
    assert AckUpTo(6) not in d.on_durable(6, 30) and d.acked_offset == 3 and d.read_bound() == 3
    assert d.on_message(records(d, 0, hw=5), 40) == [AckUpTo(5)]


def test_a_local_log_shorter_than_the_stream_claims_only_what_it_holds_and_syncs_again() -> None:
    """A store cut under the driver (once: a replica side rebuilt during a cut, from the old log end)
    held 3 where the driver counted 5 and acked 5 to a new primary. Now it reports 3 and asks again."""
    d = driver(log_end=5)
    d.on_message(SyncReply(SHARD, 1, "partial", 5, H1, 5, request(d).sync_id), 0)
    assert d.on_message(records(d, 0, hw=5), 0) == [AckUpTo(5)]
    assert d.on_local_end(3) == [Truncate(3)]
    assert (d.rs.log_end, d.reported_offset(), d.acked_offset, d.rs.primary_hw) == (3, 3, 3, 3)
    assert d.read_bound() is None and d.on_durable(5, 10) == []  # no ack outside a session, nor past 3
    assert request(d, 20).log_end == 3


def test_a_restart_starts_from_the_acknowledged_offset_its_data_recorded() -> None:
    d = driver(log_end=5, acked_offset=3)
    assert d.acked_offset == 3 and d.on_local_durable(5) == []  # the primary has said nothing yet
    assert driver(log_end=5, acked_offset=3, loading_marker=True).acked_offset == 0  # junk data


OPS = st.lists(st.tuples(st.sampled_from(["records", "durable", "wal", "resync"]), st.integers(0, 5),
                         st.integers(0, 40)), max_size=60)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_the_acknowledged_offset_never_goes_back_nor_passes_the_durable_or_the_primarys(ops: list) -> None:
    """Against a model of the shell's disk: every ``AckUpTo`` rises, is durable here and was acknowledged
    by the primary; only a cut of the local data lowers the offset, to the cut."""
    d = driver(log_end=0, history=EpochHistory())
    d.on_message(SyncReply(SHARD, 1, "partial", 0, H1, 100, request(d).sync_id), 0)
    disk_end = durable = acked = hw_max = 0
    for i, (op, n, value) in enumerate(ops, start=1):
        now = i * 10**6  # each step long after the last: a tick finds the primary silent
        if op == "records":
            hw_max = max(hw_max, value)
            out = d.on_message(records(d, n, value), now)
        elif op in ("durable", "wal"):
            durable = min(disk_end, durable + n)
            out = d.on_durable(durable, now) if op == "durable" else d.on_local_durable(durable)
        else:
            send = request(d, now)
            keep = min(value, d.rs.log_end)
            out = d.on_message(SyncReply(SHARD, 1, "partial", keep, H1, 100, send.sync_id), now)
        for action in out:
            match action:
                case Append(records=appended):
                    assert appended[0][0] == disk_end + 1
                    disk_end += len(appended)
                case Truncate(offset=keep):
                    disk_end, durable, acked = min(disk_end, keep), min(durable, keep), min(acked, keep)
                case AckUpTo(offset=offset):
                    assert acked < offset <= min(durable, hw_max), (acked, offset, durable, hw_max)
                    acked = offset
        assert d.acked_offset == acked
