"""PrimaryTracker: sync answers, acks, the high watermark, WAIT, and ISR proposals."""

from trionode.core.replication import primary
from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import Ack, SyncRefused, SyncReply, SyncRequest
from trionode.core.replication.primary import PrimaryTracker

from .helpers import R1, R2, R3, SHARD, Config, P

LAG_MS = 1_000


def tracker(cfg: Config, log_start: int = 1, log_end: int = 0) -> PrimaryTracker:
    s = cfg.shard
    hist = EpochHistory([(s.epoch, 1)])
    return PrimaryTracker(SHARD, P, s.epoch, hist, log_start, log_end, s.replica_ids, s.isr_ids, s.isr_version,
                          lag_timeout_ms=LAG_MS)  # fmt: skip


def sync(t: PrimaryTracker, node: str, sync_id: int, log_end: int = 0, hist: EpochHistory | None = None,
         epoch: int = 1, log_start: int = 1) -> SyncReply | SyncRefused:  # fmt: skip
    req = SyncRequest(SHARD, node, epoch, hist if hist is not None else t.history.copy(), log_end, sync_id)
    if hist is None:
        req.history.truncate_after(log_end)
    return t.on_sync_request(req, log_start, t.log_end)


def ack(t: PrimaryTracker, node: str, offset: int, now: int, sync_id: int = 1, epoch: int = 1) -> bool:
    return t.on_ack(Ack(SHARD, node, epoch, offset, sync_id), now)


def test_partial_and_full_sync_decisions() -> None:
    cfg = Config()
    t = tracker(cfg, log_start=1, log_end=10)
    reply = sync(t, R1, 1, log_end=4)
    assert isinstance(reply, SyncReply) and (reply.mode, reply.keep_offset, reply.log_end) == ("partial", 4, 10)
    assert reply.sync_id == 1 and reply.history == t.history
    # The WAL now starts at 6: a replica at 4 needs 5, which is gone.
    reply = sync(t, R2, 1, log_end=4, log_start=6)
    assert isinstance(reply, SyncReply) and (reply.mode, reply.keep_offset) == ("full", 0)
    assert t.replica_status()[R2] == {"offset": 0, "lag": 10, "in_isr": True, "state": "loading"}
    reply = sync(t, R1, 2, log_end=5, log_start=6)  # exactly at the edge: 6 is next
    assert isinstance(reply, SyncReply) and reply.mode == "partial"


def test_refusals_name_their_reason() -> None:
    cfg = Config()
    t = tracker(cfg, log_end=3)
    reply = sync(t, R3, 1)
    assert isinstance(reply, SyncRefused) and reply.reason.startswith("not_replica")
    reply = t.on_sync_request(SyncRequest("b2" * 20, R1, 1, EpochHistory(), 0, 1), 1, 3)
    assert isinstance(reply, SyncRefused) and reply.reason.startswith("wrong_shard")
    reply = sync(t, R1, 1, epoch=2)  # the replica knows a newer epoch: we are deposed
    assert isinstance(reply, SyncRefused) and reply.reason.startswith("not_primary")
    assert t.deposed and any("deposed" in line for line in t.take_reports())


def test_a_replica_from_an_older_epoch_is_answered() -> None:
    # The deposed primary rejoins: it has only seen epoch 1 and wrote 4..6 there; we started epoch 2 at 4.
    cfg = Config()
    t = PrimaryTracker(SHARD, P, 1, EpochHistory([(1, 1)]), 1, 3, (R1, R2), (P, R1, R2), cfg.shard.isr_version)
    assert isinstance(sync(t, R1, 1, log_end=3), SyncReply)


def test_acks_move_forward_only_and_only_in_the_current_session_and_epoch() -> None:
    cfg = Config()
    t = tracker(cfg, log_end=10)
    sync(t, R1, 1, log_end=0)
    assert ack(t, R1, 5, 0)
    assert ack(t, R1, 3, 1)  # late and lower: ignored for the offset
    assert t.replica_status()[R1]["offset"] == 5
    assert not ack(t, R1, 8, 2, sync_id=0)  # another session
    assert not ack(t, R1, 8, 2, epoch=0)  # an older epoch
    assert not ack(t, R1, 11, 2)  # past the log end: a protocol violation
    assert any("past log end" in line for line in t.take_reports())
    assert not ack(t, R3, 8, 2)  # not a replica
    assert t.replica_status()[R1]["offset"] == 5
    assert ack(t, R1, 9, 3, epoch=2) is False and t.deposed  # a newer epoch exists
    assert t.high_watermark(10) == 0  # deposed: it never acknowledges again


def test_high_watermark_is_min_over_isr_and_never_decreases() -> None:
    cfg = Config(isr=(R1,))  # R2 is outside the ISR
    t = tracker(cfg, log_end=10)
    sync(t, R1, 1)
    sync(t, R2, 1)
    assert t.high_watermark(10) == 0
    ack(t, R1, 6, 0)
    ack(t, R2, 2, 0)  # not in the ISR: does not hold the watermark
    assert t.high_watermark(10) == 6
    assert t.high_watermark(4) == 6  # cannot happen (local durable going back), but the watermark holds
    ack(t, R1, 10, 1)
    assert t.high_watermark(8) == 8  # the primary's own durability counts


def test_wait_counts_replicas_that_hold_the_offset() -> None:
    cfg = Config()
    t = tracker(cfg, log_end=10)
    sync(t, R1, 1)
    sync(t, R2, 1)
    ack(t, R1, 7, 0)
    ack(t, R2, 4, 0)
    assert [t.wait_count(o) for o in (0, 4, 5, 7, 8)] == [2, 2, 1, 1, 0]
    sync(t, R2, 2, log_end=4, log_start=6)  # R2 goes into a full sync: it holds nothing now
    assert t.wait_count(1) == 1


def test_a_lagging_isr_member_holds_the_watermark_until_the_shrink_commits() -> None:
    cfg = Config()
    t = tracker(cfg, log_end=0)
    sync(t, R1, 1)
    sync(t, R2, 1)
    assert t.isr_changes(0) == []
    for now, end in ((100, 5), (200, 10), (300, 20)):
        t.set_log_end(end)
        ack(t, R1, end, now)
    ack(t, R2, 5, 100)  # and then R2 goes silent at 5
    assert t.high_watermark(20) == 5
    assert t.isr_changes(LAG_MS) == []  # not yet
    proposals = t.isr_changes(1_101)  # R2 has been behind since 100 (caught up then) for > LAG_MS
    assert proposals == [{"op": "isr_shrink", "shard_id": SHARD, "epoch": 1, "isr_version": cfg.shard.isr_version,
                          "node_id": R2}]  # fmt: skip
    assert t.isr_changes(1_200) == []  # one proposal at a time
    # Proposed is not committed: the watermark still waits for R2.
    ack(t, R1, 20, 1_200)
    assert t.high_watermark(20) == 5
    assert cfg.commit(proposals[0]).ok
    assert t.set_config(**cfg.config_args())
    assert t.high_watermark(20) == 20
    assert t.replica_status()[R2]["in_isr"] is False


def test_no_shrink_while_a_replica_keeps_pace_one_round_behind() -> None:
    cfg = Config()
    t = tracker(cfg)
    sync(t, R1, 1)
    sync(t, R2, 1)
    for step in range(1, 50):
        t.set_log_end(step * 10)  # always ahead of what the replicas have
        ack(t, R1, (step - 1) * 10, step * 100)  # exactly the end of the previous round
        ack(t, R2, (step - 1) * 10, step * 100)
        assert t.isr_changes(step * 100) == []
        assert t.replica_status()[R1]["lag"] == 10


def test_a_caught_up_replica_stays_in_the_isr_however_long_nothing_is_written() -> None:
    """Issue 12: an idle shard kept losing its replica 5 s after the last write, lag 0."""
    cfg = Config()
    t = tracker(cfg, log_end=5)
    sync(t, R1, 1, log_end=5)
    sync(t, R2, 1, log_end=5)
    assert t.isr_changes(0) == []
    ack(t, R1, 5, 10)
    ack(t, R2, 5, 10)
    assert t.isr_changes(100 * LAG_MS) == []  # silent ever since, but nothing was written
    # The lag runs from the first record a replica has not acknowledged.
    t.set_log_end(6, now_ms=100 * LAG_MS + 50)
    ack(t, R1, 6, 100 * LAG_MS + 60)
    assert t.isr_changes(101 * LAG_MS + 50) == []  # R2 owes record 6 for exactly LAG_MS
    (shrink,) = t.isr_changes(101 * LAG_MS + 51)
    assert (shrink["op"], shrink["node_id"]) == ("isr_shrink", R2)


def test_a_replica_that_never_acks_a_record_older_than_the_tracker_is_shrunk() -> None:
    cfg = Config()
    t = tracker(cfg, log_end=3)  # records 1..3 were written by an earlier process
    sync(t, R1, 1)
    assert t.isr_changes(0) == []
    ack(t, R1, 3, 500)
    assert t.isr_changes(LAG_MS) == []
    (shrink,) = t.isr_changes(LAG_MS + 1)  # R2 never synced: due since this tracker watched it
    assert (shrink["op"], shrink["node_id"]) == ("isr_shrink", R2)


def test_a_loading_isr_member_is_shrunk_at_once_and_never_counted() -> None:
    cfg = Config()
    t = tracker(cfg, log_start=8, log_end=10)
    assert isinstance(sync(t, R1, 1, log_end=10), SyncReply)
    reply = sync(t, R2, 1, log_end=0, log_start=8)
    assert isinstance(reply, SyncReply) and reply.mode == "full"
    ack(t, R1, 10, 0)
    ack(t, R2, 0, 0)  # alive, loading
    assert t.wait_count(1) == 1 and t.high_watermark(10) == 0
    (shrink,) = t.isr_changes(1)
    assert (shrink["op"], shrink["node_id"]) == ("isr_shrink", R2)


def test_expand_only_after_catching_up_and_not_while_loading() -> None:
    cfg = Config(isr=())
    t = tracker(cfg, log_start=5, log_end=10)
    assert t.isr_changes(0) == []
    reply = sync(t, R1, 1, log_end=0, log_start=5)
    assert isinstance(reply, SyncReply) and reply.mode == "full"
    ack(t, R1, 0, 10)
    assert t.isr_changes(20) == []  # loading
    ack(t, R1, 6, 30)  # the snapshot (at 6) is durable
    assert t.isr_changes(40) == []  # behind: 6 < 10
    t.set_log_end(12)
    ack(t, R1, 9, 50)
    assert t.replica_status()[R1]["state"] == "syncing"  # not yet at the end it was told at the sync (10)
    assert t.isr_changes(55) == []
    t.set_log_end(15)
    ack(t, R1, 12, 60)  # reached the log end of its previous ack (12, at 50): caught up as of 50
    assert t.replica_status()[R1]["state"] == "streaming"
    (expand,) = t.isr_changes(70)
    assert expand == {"op": "isr_expand", "shard_id": SHARD, "epoch": 1, "isr_version": cfg.shard.isr_version,
                      "node_id": R1}  # fmt: skip
    assert t.isr_changes(80) == []  # in flight
    t.proposal_done(R1)  # say it was lost: may be proposed again
    assert t.isr_changes(90) == [expand]
    assert cfg.commit(expand).ok
    t.set_config(**cfg.config_args())
    assert t.isr_changes(100) == []
    assert t.high_watermark(15) == 12
    ack(t, R1, 15, 110)
    assert t.high_watermark(15) == 15


def test_a_replica_that_stopped_acking_is_not_expanded() -> None:
    cfg = Config(isr=())
    t = tracker(cfg, log_end=4)
    sync(t, R1, 1, log_end=4)
    ack(t, R1, 4, 0)
    assert t.isr_changes(LAG_MS + 1) == []


def test_a_stale_proposal_is_forgotten_when_the_isr_version_moves_or_after_the_retry_time() -> None:
    cfg = Config()
    t = tracker(cfg, log_end=5)
    sync(t, R1, 1)
    sync(t, R2, 1)
    assert t.isr_changes(0) == []
    ack(t, R1, 5, LAG_MS)
    (shrink,) = t.isr_changes(LAG_MS + 1)
    assert shrink["node_id"] == R2
    assert t.isr_changes(LAG_MS + 2) == []
    later = LAG_MS + 1 + primary.proposal_retry_ms
    ack(t, R1, 5, later)
    assert t.isr_changes(later) == [shrink]
    # Someone else changed the ISR meanwhile: the version moved and the proposal is recomputed.
    assert cfg.commit(dict(shrink, node_id=R1)).ok
    t.set_config(**cfg.config_args())
    (again,) = t.isr_changes(later + 1)
    assert again["node_id"] == R2 and again["isr_version"] == cfg.shard.isr_version


def test_set_config_deposes_when_another_node_is_primary() -> None:
    cfg = Config()
    t = tracker(cfg, log_end=5)
    assert cfg.commit({"op": "failover", "shard_id": SHARD, "epoch": 1, "node_id": R1}).ok
    assert t.set_config(**cfg.config_args()) is False
    assert t.deposed and t.isr_changes(10**6) == []
    assert isinstance(sync(t, R2, 1), SyncRefused)


def test_a_replica_one_round_behind_under_steady_writes_still_joins_the_isr() -> None:
    """The watermark holds for a caught-up joiner, so it reaches it and qualifies (S8 needs offset >= hw)."""
    cfg = Config(isr=())
    t = tracker(cfg)
    sync(t, R1, 1)
    proposals: list[dict] = []
    local = 0
    for step in range(1, 40):
        local = step * 10
        t.set_log_end(local)
        ack(t, R1, (step - 1) * 10, step * 100)  # always one round behind the primary's fsync
        hw = t.high_watermark(local)
        assert hw <= local
        proposals += t.isr_changes(step * 100)
        if proposals:
            break
    assert [p["op"] for p in proposals] == ["isr_expand"] and proposals[0]["node_id"] == R1
    # It qualified with an offset at the watermark: nothing acknowledged is missing on it.
    assert t.replica_status()[R1]["offset"] >= t.high_watermark(local)


def test_the_hold_lets_go_of_a_replica_that_stops_acking() -> None:
    cfg = Config(isr=())
    t = tracker(cfg)
    sync(t, R1, 1)
    t.set_log_end(10)
    ack(t, R1, 10, 100)
    t.set_log_end(50)
    assert t.high_watermark(50) == 10  # held for R1, which is caught up and acking
    assert t.isr_changes(100 + LAG_MS + 1) == []  # R1 has been silent for longer than the lag timeout
    assert t.high_watermark(50) == 50
