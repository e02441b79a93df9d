"""One test per rule of the detector (see the theory of operation in trionode/core/gossip/detector.py)."""

import random

import pytest

from trionode.core.gossip import Detector, GossipConfig, Ping, Pong
from trionode.core.gossip.detector import changes_max

A, B, C, D, E, F = (c * 40 for c in "abcdef")
CFG = GossipConfig(node_timeout_ms=5000, ping_interval_ms=1000, fanout=3)  # report_ttl_ms = 10000


def make(me=A, members=(A, B, C, D, E), voters=None, cfg=CFG, seed=0) -> Detector:
    det = Detector(me, cfg, random.Random(seed))
    det.set_members(members, members if voters is None else voters)
    return det


def ping(frm, seq, suspects=(), info=None, incarnation=0) -> Ping:
    return Ping(frm, incarnation, seq, tuple(sorted(suspects)), info)


def pong(frm, seq, suspects=(), info=None, incarnation=0) -> Pong:
    return Pong(frm, incarnation, seq, tuple(sorted(suspects)), info)


def hear_all(det: Detector, now_ms: int, seq: int, but=()) -> None:
    for peer in (B, C, D, E, F):
        if peer not in but and peer in det.healths(now_ms):
            det.on_pong(peer, pong(peer, seq), now_ms)


# --- rule 3: suspicion and grace ------------------------------------------------------------------


def test_a_new_member_has_grace_from_the_first_clock_then_is_suspected_at_node_timeout() -> None:
    det = make()
    assert det.health(B, 10**9) == "online"  # added, but no clock seen yet: the grace has not started
    det.tick(1000)
    assert det.health(B, 5999) == "online"
    assert det.health(B, 6000) == "suspect"
    det.tick(6000)
    assert f"node {B} suspected" in det.changes()


def test_suspicion_counts_from_the_last_message_heard() -> None:
    det = make()
    det.tick(0)
    det.on_pong(B, pong(B, 1), 3000)
    assert det.health(B, 7999) == "online"
    assert det.health(B, 8000) == "suspect"
    assert det.health(C, 8000) == "suspect"


# --- rule 2: hearing ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ping", "pong"])
def test_any_direct_message_clears_my_suspicion_at_once(kind: str) -> None:
    det = make()
    det.tick(0)
    det.tick(6000)
    assert det.health(B, 6000) == "suspect"
    det.changes()
    if kind == "ping":
        det.on_ping(B, ping(B, 1), 6500)
    else:
        det.on_pong(B, pong(B, 1), 6500)
    assert det.health(B, 6500) == "online"
    assert det.changes() == [f"node {B} recovered"]


def test_my_pong_carries_my_current_suspicion_list_and_my_info() -> None:
    det = make()
    det.set_info({"offset": 17, "role": "replica"})
    det.tick(0)
    hear_all(det, 5500, 1, but=(B, C))
    reply = det.on_ping(D, ping(D, 2), 6000)
    assert reply.sender == A and reply.suspects == (B, C) and reply.info == {"offset": 17, "role": "replica"}
    det.on_pong(B, pong(B, 3), 6100)
    assert det.on_ping(D, ping(D, 4), 6200).suspects == (C,)  # shorter at once: the others converge


def test_every_message_i_send_has_a_growing_key() -> None:
    det = Detector(A, CFG, random.Random(0), incarnation=7)
    det.set_members((A, B, C), (A, B, C))
    keys = [p.key for _, p in det.tick(0)] + [det.on_ping(B, ping(B, 1), 10).key]
    assert keys == sorted(set(keys)) and all(inc == 7 for inc, _ in keys)


# --- rule 1: rounds -------------------------------------------------------------------------------


def test_a_round_pings_every_overdue_peer_plus_fanout_random_others() -> None:
    peers = [c * 40 for c in "123456789"]
    det = make(members=[A, *peers])
    det.tick(0)
    heard = peers[:6]
    for i, peer in enumerate(heard):
        det.on_pong(peer, pong(peer, 1), 1500 + i)
    targets = [peer for peer, _ in det.tick(2000)]
    assert set(peers[6:]) <= set(targets)  # not heard within ping_interval_ms
    assert len(targets) == 3 + 3 and len(set(targets)) == len(targets)
    assert set(targets) - set(peers[6:]) <= set(heard) and A not in targets


def test_rounds_are_at_most_one_per_ping_interval() -> None:
    det = make()
    assert len(det.tick(0)) == 4
    assert det.tick(10) == [] and det.tick(999) == []
    assert len(det.tick(1000)) == 4


def test_fanout_zero_pings_only_the_overdue() -> None:
    det = make(cfg=GossipConfig(fanout=0))
    det.tick(0)
    hear_all(det, 1500, 1, but=(C,))
    assert [peer for peer, _ in det.tick(2000)] == [C]


def test_rounds_are_deterministic_for_a_seed_and_vary_with_it() -> None:
    peers = [c * 40 for c in "123456789"]

    def rounds(seed: int) -> list[list[str]]:
        det = make(members=[A, *peers], seed=seed)
        out = []
        for t in range(0, 10_000, 1000):
            for peer in peers:
                det.on_pong(peer, pong(peer, t + 1), t)
            out.append([peer for peer, _ in det.tick(t)])
        return out

    assert rounds(1) == rounds(1)
    assert rounds(1) != rounds(2)


# --- rule 5: failure ------------------------------------------------------------------------------


def test_failed_needs_a_strict_majority_of_voters() -> None:
    det = make()  # five voters: three make a majority
    det.tick(0)
    hear_all(det, 5500, 1, but=(B,))
    det.tick(6000)
    assert det.health(B, 6000) == "suspect"
    det.on_pong(C, pong(C, 2, [B]), 6100)
    assert det.health(B, 6100) == "suspect" and det.failed(6100) == set()
    det.on_pong(D, pong(D, 2, [B]), 6200)
    assert det.health(B, 6200) == "failed" and det.failed(6200) == {B}
    assert det.changes()[-1] == f"node {B} failed (suspected by {A}, {C}, {D})"


def test_my_own_view_counts_only_if_i_am_a_voter() -> None:
    det = make(voters=(B, C, D))  # I am a member, not a voter
    det.tick(0)
    hear_all(det, 5500, 1, but=(E,))
    det.on_pong(B, pong(B, 2, [E]), 6000)
    assert det.health(E, 6000) == "suspect"  # my suspicion and one voter of three
    det.on_pong(C, pong(C, 2, [E]), 6000)
    assert det.health(E, 6000) == "failed" and det.suspecters(E, 6000) == [B, C]


def test_a_node_others_suspect_is_failed_even_if_i_hear_it() -> None:
    det = make()
    det.tick(0)
    for peer in (C, D, E):
        det.on_pong(peer, pong(peer, 1, [B]), 100)
    det.on_pong(B, pong(B, 1), 100)
    assert det.health(B, 100) == "failed" and det.suspecters(B, 100) == [C, D, E]


def test_reports_from_non_voters_are_not_kept() -> None:
    det = make(voters=(A, B, C))
    det.tick(0)
    det.on_pong(D, pong(D, 1, [B]), 100)
    det.on_pong(E, pong(E, 1, [B]), 100)
    det.on_pong(C, pong(C, 1, [B]), 100)
    assert det.suspecters(B, 100) == [C] and det.health(B, 100) == "online"


def test_reports_expire_after_report_ttl() -> None:
    det = make()
    det.tick(0)
    det.on_pong(C, pong(C, 1, [B]), 6000)
    det.on_pong(D, pong(D, 1, [B]), 6000)
    assert det.health(B, 6000) == "failed"  # with my own suspicion: A, C, D
    assert det.health(B, 15_999) == "failed"
    assert det.health(B, 16_000) == "suspect"


def test_the_next_report_replaces_the_previous_one() -> None:
    det = make()
    det.tick(0)
    det.on_pong(C, pong(C, 1, [B]), 6000)
    det.on_pong(D, pong(D, 1, [B]), 6000)
    det.changes()
    det.on_pong(C, pong(C, 2, []), 6100)
    assert det.health(B, 6100) == "suspect"
    assert det.changes() == [f"node {B} suspected (no longer failed)"]


def test_with_no_voters_nothing_fails() -> None:
    det = make(voters=())
    det.tick(0)
    assert det.health(B, 60_000) == "suspect" and det.failed(60_000) == set()


# --- rule 4: message order ------------------------------------------------------------------------


def test_a_reordered_message_proves_liveness_but_its_report_and_info_are_dropped() -> None:
    det = make()
    det.tick(0)
    det.on_pong(C, pong(C, 5, [], {"v": 5}), 1000)
    det.on_ping(C, ping(C, 4, [B], {"v": 4}), 1100)
    det.on_ping(C, ping(C, 5, [B], {"v": 6}), 1100)  # a duplicate key is no newer
    assert det.suspecters(B, 6000) == [A] and det.info(C) == {"v": 5}
    assert det.health(C, 6050) == "online"  # heard at 1100, not only at 1000
    assert det.statistics(6050).msgs_stale == 2


def test_a_higher_incarnation_is_newer_whatever_its_seq() -> None:
    det = make()
    det.tick(0)
    det.on_pong(C, pong(C, 90, [], incarnation=1), 1000)
    det.on_pong(C, pong(C, 1, [B], incarnation=2), 1100)
    assert C in det.suspecters(B, 6000)


def test_a_restarted_sender_with_the_same_incarnation_is_heeded_again_after_report_ttl() -> None:
    det = make()
    det.tick(0)
    det.on_pong(C, pong(C, 90), 1000)
    det.on_pong(C, pong(C, 1, [B]), 2000)  # restarted: its seq began again
    assert det.suspecters(B, 6000) == [A] and det.health(C, 6000) == "online"
    det.on_pong(C, pong(C, 2, [B]), 11_000)  # report_ttl_ms after the last accepted message
    assert det.suspecters(B, 11_000) == [A, C]


# --- who may speak --------------------------------------------------------------------------------


def test_non_members_and_mislabelled_messages_are_answered_but_not_believed() -> None:
    det = make(members=(A, B, C, D))
    det.tick(0)
    reply = det.on_ping(E, ping(E, 1, [B], {"x": 1}), 6000)
    assert isinstance(reply, Pong) and reply.sender == A
    det.on_pong(C, pong(D, 1, [B]), 6000)  # the bus says C, the message says D
    assert det.info(E) is None and det.suspecters(B, 6000) == [A]
    assert det.health(C, 6000) == det.health(D, 6000) == "suspect"
    assert det.statistics(6000).msgs_ignored == 2


# --- membership -----------------------------------------------------------------------------------


def test_set_members_forgets_removed_nodes_and_a_returning_node_gets_a_new_grace() -> None:
    det = make()
    det.tick(0)
    det.on_pong(B, pong(B, 1, info={"role": "primary"}), 100)
    det.on_pong(C, pong(C, 1, [E]), 6000)
    det.on_pong(D, pong(D, 1, [E]), 6000)
    assert det.health(E, 6000) == "failed"
    det.set_members((A, B, C, D), (A, B, C, D))
    assert E not in det.healths(6000) and det.health(E, 6000) == "online"
    det.set_members((A, C, D, E), (A, C, D, E))
    assert det.info(B) is None
    det.tick(7000)
    assert det.health(E, 7000) == "online" and det.suspecters(E, 7000) == []  # old reports about E were dropped
    assert det.health(E, 11_999) == "online" and det.health(E, 12_000) == "suspect"


def test_a_voter_removed_from_the_voters_loses_its_report() -> None:
    det = make()
    det.tick(0)
    det.on_pong(C, pong(C, 1, [B]), 6000)
    det.on_pong(D, pong(D, 1, [B]), 6000)
    det.set_members((A, B, C, D, E), (A, B, C, E))
    assert det.suspecters(B, 6000) == [A, C] and det.health(B, 6000) == "suspect"  # 2 of 4 is no majority


def test_healths_covers_every_member_and_i_am_always_online() -> None:
    det = make()
    det.tick(0)
    det.on_pong(C, pong(C, 1, [A]), 100)
    det.on_pong(D, pong(D, 1, [A]), 100)
    assert det.healths(5050) == {A: "online", B: "suspect", C: "online", D: "online", E: "suspect"}
    assert make(members=(B, C)).healths(0) == {B: "online", C: "online"}  # not a member: not listed


def test_info_keeps_the_latest_per_node() -> None:
    det = make()
    det.tick(0)
    det.on_pong(B, pong(B, 1, info={"offset": 1}), 100)
    det.on_ping(B, ping(B, 2), 200)  # no info: the last one stands
    assert det.info(B) == {"offset": 1}
    det.on_ping(B, ping(B, 3, info={"offset": 9, "role": "replica"}), 300)
    assert det.info(B) == {"offset": 9, "role": "replica"}
    det.set_info({"offset": 4})
    assert det.info(A) == {"offset": 4} and det.info(C) is None


# --- bounds and programmer errors ------------------------------------------------------------------


def test_the_change_log_is_bounded_and_drained() -> None:
    peers = [f"{i:040x}" for i in range(1, changes_max + 51)]
    det = make(members=[A, *peers], cfg=GossipConfig(fanout=0))
    det.tick(0)
    det.tick(5000)
    lines = det.changes()
    assert len(lines) == changes_max and lines[-1] == f"node {peers[-1]} suspected"
    assert det.statistics(5000).changes_dropped == 50
    assert det.changes() == []


def test_a_round_is_bounded_by_the_members() -> None:
    peers = [f"{i:040x}" for i in range(1, 41)]
    det = make(members=[A, *peers], cfg=GossipConfig(fanout=100))
    targets = [peer for peer, _ in det.tick(0)]
    assert sorted(targets) == sorted(peers)


def test_the_clock_must_not_go_back() -> None:
    det = make()
    det.tick(1000)
    with pytest.raises(AssertionError, match="clock went back"):
        det.tick(999)


@pytest.mark.parametrize(
    "kwargs",
    [{"ping_interval_ms": 0}, {"ping_interval_ms": 5000}, {"fanout": -1}, {"report_ttl_ms": 1000}],
)
def test_bad_configs_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="gossip"):
        GossipConfig(**kwargs)


def test_report_ttl_defaults_to_twice_the_node_timeout() -> None:
    assert GossipConfig(node_timeout_ms=3000, ping_interval_ms=500).report_ttl_ms == 6000


def test_a_nodes_detector_config_runs_five_rounds_per_timeout_at_most_a_second_apart() -> None:
    # io/gossip_driver.py and the failover simulator both derive it from node_timeout_ms.
    assert GossipConfig.for_node_timeout(600).ping_interval_ms == 120
    assert GossipConfig.for_node_timeout(15_000).ping_interval_ms == 1000
    assert GossipConfig.for_node_timeout(15_000).node_timeout_ms == 15_000
