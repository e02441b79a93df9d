"""PrimaryDriver: the primary side as actions, and the one owner of the acknowledged offset (issue 10 §1)."""

import random

import pytest

from trionode.core.cluster.commands import command
from trionode.core.replication.history import EpochHistory
from trionode.core.replication.messages import Ack, SyncReply, SyncRequest
from trionode.core.replication.primary import PrimaryTracker
from trionode.core.replication.primary_driver import (
    ACCEPTED,
    REFUSED,
    UNKNOWN,
    Acked,
    AckUpTo,
    CutSnapshot,
    PrimaryAction,
    PrimaryDriver,
    Propose,
    Send,
    SendSnapshotChunk,
    StreamRecords,
    promotion_history,
)

from .helpers import R1, R2, SHARD, Config, P

H1 = EpochHistory([(1, 1)])


def driver(cfg: Config, log_start: int = 1, durable: int = 0, **kwargs: int) -> PrimaryDriver:
    d = PrimaryDriver(SHARD, P, 1, H1.copy(), log_start, durable, appended=durable, records_per_msg_max=4,
                      fence_retry_ms=300, lag_timeout_ms=200, **kwargs)  # fmt: skip
    d.on_config(**cfg.config_args())
    return d


def fence(d: PrimaryDriver, cfg: Config, now_ms: int = 0) -> list[PrimaryAction]:
    (propose,) = d.tick(now_ms)
    assert isinstance(propose, Propose) and propose.command["op"] == "isr_fence"
    assert cfg.commit(propose.command).ok
    return d.on_config(**cfg.config_args())


def sync(d: PrimaryDriver, replica: str, sync_id: int, log_end: int = 0, now_ms: int = 0) -> list[PrimaryAction]:
    history = H1.copy() if log_end else EpochHistory()
    return d.on_sync_request(SyncRequest(SHARD, replica, 1, history, log_end, sync_id), now_ms)


def stream(d: PrimaryDriver, heartbeat: bool, msgs_max: int = 2) -> list[PrimaryAction]:
    return d.stream_to(R1, heartbeat, batches_max=msgs_max, chunks_max=msgs_max)


def ack(d: PrimaryDriver, replica: str, offset: int, sync_id: int, now_ms: int = 0) -> list[PrimaryAction]:
    return d.on_ack(Ack(SHARD, replica, 1, offset, sync_id), now_ms)


def test_nothing_is_acknowledged_until_the_fence_is_applied_and_the_fence_is_retried() -> None:
    cfg = Config(isr=())
    d = driver(cfg)
    assert d.on_log(1, 5, 5, 10) == []  # durable here, ISR [P], but not fenced yet
    (propose,) = d.tick(10)
    assert isinstance(propose, Propose) and propose.command["op"] == "isr_fence"
    assert d.tick(200) == []  # in flight
    assert d.tick(310) == [propose]  # lost? proposed again
    assert d.on_proposal_result(propose.command, UNKNOWN) == []
    assert d.tick(320) == [propose]  # an outcome that did not fence it: again at once
    assert cfg.commit(propose.command).ok
    assert d.on_config(**cfg.config_args()) == [AckUpTo(5)]
    assert d.fenced and d.acked_offset == 5


def test_a_full_sync_cuts_at_the_applied_end_and_sends_the_snapshot_only_once_durable() -> None:
    cfg = Config(isr=())
    d = driver(cfg, log_start=1, durable=0)
    fence(d, cfg)
    d.on_log(4, 12, 10, 0)  # the log starts at 4: a replica at 0 needs a full sync
    reply, cut = sync(d, R1, 7)
    assert isinstance(reply, Send) and isinstance(reply.msg, SyncReply) and reply.msg.mode == "full"
    assert cut == CutSnapshot(R1, 7, 12)  # the applied end, not yet durable here
    d.on_snapshot_cut(R1, 7, chunks=3)
    assert stream(d, True, 8) == []  # 11..12 are not durable: no snapshot, no heartbeat
    d.on_log(4, 14, 14, 0)
    out = stream(d, True)
    assert out == [SendSnapshotChunk(R1, 7, 12, 0, False), SendSnapshotChunk(R1, 7, 12, 1, False)]
    out = stream(d, True)
    assert out == [SendSnapshotChunk(R1, 7, 12, 2, True), StreamRecords(R1, 7, 13, 14, 14)]


def test_a_partial_sync_streams_only_durable_records_in_bounded_batches_then_heartbeats() -> None:
    cfg = Config(isr=())
    d = driver(cfg)
    fence(d, cfg)
    d.on_log(1, 20, 10, 0)
    (reply,) = sync(d, R1, 3, log_end=1)
    assert isinstance(reply.msg, SyncReply) and reply.msg.mode == "partial" and reply.msg.keep_offset == 1
    hw = d.acked_offset  # the ISR is [P]: what is durable here
    assert hw == 10
    assert stream(d, False) == [StreamRecords(R1, 3, 2, 5, hw), StreamRecords(R1, 3, 6, 9, hw)]
    assert stream(d, False) == [StreamRecords(R1, 3, 10, 10, hw)]  # 11..20: not durable
    assert stream(d, False) == []
    assert stream(d, True) == [StreamRecords(R1, 3, 11, 10, hw)]  # empty: a heartbeat


def test_a_session_whose_next_record_is_gone_is_dropped() -> None:
    cfg = Config(isr=())
    d = driver(cfg)
    fence(d, cfg)
    d.on_log(1, 10, 10, 0)
    sync(d, R1, 3, log_end=2)
    d.on_log(6, 10, 10, 0)  # compacted past 3
    assert stream(d, True) == []
    assert any("fell out of the log at 3" in line for line in d.take_reports())
    assert stream(d, True) == []  # no session until it syncs again


def test_acks_move_the_acknowledged_offset_and_wake_wait() -> None:
    cfg = Config()  # ISR [P, R1, R2]
    d = driver(cfg)
    fence(d, cfg)
    d.on_log(1, 10, 10, 0)
    sync(d, R1, 1)
    sync(d, R2, 2)
    assert ack(d, R1, 6, 1) == [Acked(R1, 6)]  # R2 holds nothing yet
    assert ack(d, R2, 8, 2) == [Acked(R2, 8), AckUpTo(6)]
    assert d.wait_count(7) == 1 and d.wait_count(6) == 2
    assert ack(d, R1, 6, sync_id=99) == []  # another session's ack


def test_a_member_whose_request_says_it_is_loading_leaves_the_isr_at_once() -> None:
    """A member that discarded everything (a cut below its snapshot) reports 0 until it has caught up
    from empty. As a partial sync at 0 it stayed in the ISR and every write waited for it until the
    lag timeout; like a full sync it is loading, so it is shrunk at once and holds up nothing."""
    cfg = Config(isr=(R1,))
    d = driver(cfg)  # a lag timeout of 200 ms
    fence(d, cfg)
    d.on_sync_request(SyncRequest(SHARD, R1, 1, EpochHistory(), 0, 1, loading=True), 0)
    assert d.tracker.replica_status()[R1]["state"] == "syncing"  # an empty log: nothing to load, no shrink
    d.on_log(1, 10, 10, 0)
    sync(d, R1, 1)
    assert ack(d, R1, 10, 1) == [Acked(R1, 10), AckUpTo(10)]
    assert d.tick(1_000) == []  # in sync, nothing to propose
    request = SyncRequest(SHARD, R1, 1, EpochHistory(), 0, 2, loading=True)
    (reply,) = d.on_sync_request(request, 1_010)
    assert isinstance(reply.msg, SyncReply) and (reply.msg.mode, reply.msg.keep_offset) == ("partial", 0)
    assert d.tracker.replica_status()[R1]["state"] == "loading"
    (propose,) = d.tick(1_020)  # at once: 20 ms since the tracker started watching, not the lag timeout
    assert propose.command == command("isr_shrink", shard_id=SHARD, epoch=1, isr_version=cfg.shard.isr_version,
                                      node_id=R1)  # fmt: skip
    assert ack(d, R1, 0, 2) == [Acked(R1, 0)] and d.wait_count(1) == 0  # alive, still loading
    assert cfg.commit(propose.command).ok
    d.on_config(**cfg.config_args())
    d.on_log(1, 12, 12, 1_030)
    assert d.acked_offset == 12  # writes go on without it
    assert ack(d, R1, 12, 2, 1_040) == [Acked(R1, 12)]  # caught up and whole: streaming, to be expanded
    assert d.tracker.replica_status()[R1]["state"] == "streaming"


def test_a_refused_duplicate_does_not_end_a_newer_proposal() -> None:
    cfg = Config(isr=(R1,))
    d = driver(cfg)
    fence(d, cfg)
    d.on_log(1, 10, 10, 0)
    sync(d, R1, 1)
    assert d.tick(1_000) == []  # starts watching R1
    (propose,) = d.tick(1_300)  # silent with 10 records owed: lag past 200 ms
    assert propose.command["op"] == "isr_shrink"
    stale = {**propose.command, "isr_version": propose.command["isr_version"] - 1}
    d.on_proposal_result(stale, REFUSED)
    assert d.tracker.statistics()["pending_proposal"] == R1
    d.on_proposal_result(propose.command, REFUSED)
    assert d.tracker.statistics()["pending_proposal"] is None
    assert d.on_proposal_result(propose.command, ACCEPTED) == []


# --- the acknowledged offset's invariants, over random histories --------------------------------


class _World:
    """A primary driver, two honest replicas and a Raft that commits ISR commands late, or never."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.cfg = Config()
        self.d = driver(self.cfg)
        self.now = 0
        self.appended = self.durable = 0
        self.replicas = {r: {"log": 0, "durable": 0, "sync": 0, "synced": False} for r in (R1, R2)}
        self.inflight: list[dict] = []
        self.isr = set(self.cfg.shard.isr_ids)  # the ISR the driver adopted last
        self.acked = 0

    def check(self, actions: list[PrimaryAction]) -> None:
        """Every AckUpTo rises, and no ISR member lacks what it acknowledges (DESIGN S1)."""
        for a in actions:
            if isinstance(a, AckUpTo):
                assert a.offset > self.acked, f"the acknowledged offset went back: {self.acked} -> {a.offset}"
                held = {P: self.durable} | {r: self.replicas[r]["durable"] for r in (R1, R2)}
                short = {n: held[n] for n in self.isr if held[n] < a.offset}
                assert not short, f"offset {a.offset} acknowledged, but ISR members hold only {short}"
                self.acked = a.offset
            elif isinstance(a, Propose):
                self.inflight.append(a.command)
            elif isinstance(a, StreamRecords):
                rep = self.replicas[a.to]
                if a.sync_id == rep["sync"] and rep["synced"] and a.first_offset <= rep["log"] + 1:
                    rep["log"] = max(rep["log"], a.last_offset)
        assert self.d.acked_offset == self.acked

    def step(self) -> None:
        rng, d = self.rng, self.d
        self.now += 10
        roll = rng.random()
        if roll < 0.3:
            self.appended += rng.randint(1, 3)
        elif roll < 0.5:
            self.durable = self.appended
        elif roll < 0.6 and self.inflight:
            cmd = self.inflight.pop(rng.randrange(len(self.inflight)))
            if rng.random() < 0.8:
                ok = self.cfg.commit(cmd).ok
                self.isr = set(self.cfg.shard.isr_ids)
                self.check(d.on_config(**self.cfg.config_args()))
                self.check(d.on_proposal_result(cmd, ACCEPTED if ok else REFUSED))
        elif roll < 0.7:
            self.resync(rng.choice((R1, R2)))
        else:
            rep = self.replicas[rng.choice((R1, R2))]
            rep["durable"] = rep["log"] if rng.random() < 0.5 else rep["durable"]
        self.check(d.on_log(1, self.appended, self.durable, self.now))
        for r, rep in self.replicas.items():
            if rep["synced"] and rng.random() < 0.5:
                self.check(d.on_ack(Ack(SHARD, r, 1, rep["durable"], rep["sync"]), self.now))
        self.check(d.stream(True, batches_max=2, chunks_max=2))
        self.check(d.tick(self.now))

    def resync(self, r: str) -> None:
        """A replica reconnects, keeping its durable prefix (what a crash leaves)."""
        rep = self.replicas[r]
        rep["sync"] += 1
        rep["log"] = rep["durable"]
        history = H1.copy() if rep["log"] else EpochHistory()
        actions = self.d.on_sync_request(SyncRequest(SHARD, r, 1, history, rep["log"], rep["sync"]), self.now)
        reply = actions[0]
        assert isinstance(reply, Send) and isinstance(reply.msg, SyncReply) and reply.msg.mode == "partial"
        rep["log"] = rep["durable"] = min(rep["durable"], reply.msg.keep_offset)
        rep["synced"] = True
        self.check(actions)


def _run(seed: int, steps: int = 400) -> None:
    world = _World(random.Random(seed))
    for r in (R1, R2):
        world.resync(r)
    for _ in range(steps):
        world.step()
    assert world.acked > 0


@pytest.mark.parametrize("seed", range(20))
def test_the_acknowledged_offset_never_goes_back_nor_past_an_isr_members_durable_offset(seed: int) -> None:
    _run(seed)


def test_the_invariant_check_catches_a_watermark_that_ignores_the_isr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PrimaryTracker, "high_watermark", lambda self, local_durable: local_durable)
    with pytest.raises(AssertionError, match="ISR members hold only"):
        for seed in range(20):
            _run(seed)


def test_the_invariant_check_catches_a_watermark_that_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_floor(self: PrimaryTracker, local_durable: int) -> int:
        return min([local_durable, *(self._followers[n].offset for n in self.isr_ids if n != self.my_id)])

    monkeypatch.setattr(PrimaryTracker, "high_watermark", no_floor)
    with pytest.raises(AssertionError, match=r"went back|\(\d+, \d+\)"):
        for seed in range(20):
            _run(seed)


def test_a_promotion_cuts_the_epochs_past_the_log_end_then_starts_its_own() -> None:
    # A replica at 95 adopted its primary's history, whose epoch 2 starts at 100 (issue 10 §1).
    assert promotion_history(EpochHistory([(1, 1), (2, 100)]), 3, 95) == EpochHistory([(1, 1), (3, 96)])
    assert promotion_history(EpochHistory([(1, 1), (3, 96)]), 3, 120) is None  # a restart: it holds it
    assert promotion_history(EpochHistory([(1, 1), (3, 96)]), 3, 90) == EpochHistory([(1, 1), (3, 91)])  # crash


def test_a_primary_promoted_with_an_undurable_tail_starts_its_epoch_after_it_and_streams_it_once_durable() -> None:
    # A primary of epoch 1 applied record 1 and was reinstated at epoch 2 before its fsync: the
    # history says epoch 2 starts at 2, the WAL is durable up to 0 (drill torn-tail, seed 1: the
    # tracker refused this and the node exited with code 4).
    cfg = Config(isr=())
    assert cfg.commit(command("reinstate", shard_id=SHARD, epoch=1, node_id=P)).ok
    history = promotion_history(H1, 2, 1)
    assert history == EpochHistory([(1, 1), (2, 2)])
    d = PrimaryDriver(SHARD, P, 2, history, 1, 0, appended=1, records_per_msg_max=4, fence_retry_ms=300)
    d.on_config(**cfg.config_args())
    fence(d, cfg)
    assert d.acked_offset == 0  # record 1 is not durable: not acknowledged
    (reply,) = sync(d, R1, 5)
    assert isinstance(reply.msg, SyncReply) and reply.msg.history == history and reply.msg.log_end == 0
    assert stream(d, False) == []  # nothing durable to stream yet
    assert d.on_log(1, 1, 1, 10) == [AckUpTo(1)]
    assert stream(d, False) == [StreamRecords(R1, 5, 1, 1, 1)]
