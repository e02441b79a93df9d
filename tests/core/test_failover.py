"""Leases, the successor rule, the leader authority and the failover controller (DESIGN §5.5, §6; seed 002)."""

from trionode.core.cluster.state import ClusterState, NodeRecord, Shard
from trionode.core.failover import (
    Candidate,
    FailoverConfig,
    FailoverController,
    GrantLease,
    LeaderAuthority,
    LeaseGranter,
    LeaseHolder,
    Propose,
    Report,
    RequestLease,
    SendFence,
    choose_successor,
)
from trionode.core.failover.fences import fence_info
from trionode.core.gossip.messages import valid_info

P, A, B, C = "p" * 40, "a" * 40, "b" * 40, "c" * 40


def test_a_lease_counts_from_when_the_request_was_sent() -> None:
    holder = LeaseHolder(lease_ms=1000)
    request = holder.request(now_ms=100)
    holder.on_grant(request)  # however late the grant arrives
    assert holder.valid(1099) and not holder.valid(1100)
    holder.revoke()
    assert not holder.valid(200)


def test_a_grant_for_an_unknown_or_stale_request_extends_nothing() -> None:
    holder = LeaseHolder(lease_ms=1000)
    holder.on_grant(42)
    assert not holder.valid(0)
    old = holder.request(now_ms=0)
    holder.request(now_ms=5000)  # forgets requests older than a lease
    holder.on_grant(old)
    assert not holder.valid(5001)


def test_the_granter_waits_for_the_last_grant_plus_drift_and_for_its_predecessor() -> None:
    granter = LeaseGranter(lease_ms=1000, drift_ms=200, leader_since_ms=0, handover_ms=2000)
    assert not granter.expired(P, 3199)  # a previous leader may have granted until it stepped down
    assert granter.expired(P, 3200)
    granter.grant(P, now_ms=5000, shard_id="s")
    assert not granter.expired(P, 6199) and granter.expired(P, 6200)


def test_only_an_online_isr_member_with_data_is_promoted_highest_offset_first() -> None:
    candidates = {
        A: Candidate(A, "online", 90), B: Candidate(B, "online", 120), C: Candidate(C, "online", 500),
        P: Candidate(P, "online", 999),
    }
    assert choose_successor(P, (P, A, B), candidates) == B  # C is not in the ISR, P is the failed primary
    assert choose_successor(P, (P, A), {**candidates, A: Candidate(A, "suspect", 90)}) is None


def test_a_loading_or_empty_replica_is_never_promoted_even_alone() -> None:
    # Seed 002: a replica that still needs a full sync reports 0 and must not win.
    assert choose_successor(P, (P, A), {A: Candidate(A, "loading", 0)}) is None
    assert choose_successor(P, (P, A), {A: Candidate(A, "online", 0)}) is None


# --- the controller --------------------------------------------------------------------------------------

ME, SHARD = "l" * 40, "5" * 40  # a shard id is 40 hex digits, as gossip checks
TERM = 2  # the term _leader leads in
CFG = FailoverConfig(ME, lease_ms=1000, drift_ms=200, handover_ms=2000, fence_timeout_ms=500, retry_ms=4000)
DRAINED_MS = CFG.handover_ms + CFG.lease_ms + CFG.drift_ms  # a new leader's wait for its predecessor's grants


def _state(primary: str = P, isr: tuple[str, ...] = (P, A, B), epoch: int = 1) -> ClusterState:
    state = ClusterState()
    replicas = tuple(n for n in (A, B, C) if n != primary)
    for n in (P, A, B, C):
        role = "primary" if n == primary else "replica"
        state.nodes[n] = NodeRecord(n, "h", 1, 2, shard_id=SHARD, role=role)
    state.nodes[ME] = NodeRecord(ME, "h", 1, 2)
    state.shards[SHARD] = Shard(SHARD, epoch, primary, replicas, tuple(sorted(isr)), slots=((0, 16383),))
    return state


def _leader(now_ms: int = 0, health: dict[str, str] | None = None) -> FailoverController:
    c = FailoverController(CFG)
    c.on_config(_state())
    c.on_leadership(term=TERM, leader_id=ME, now_ms=now_ms)
    c.on_health(health or {})
    c.on_authority(10**9)
    return c


def _fences(actions: list) -> list[tuple[str, int]]:
    return [(a.to, a.epoch) for a in actions if isinstance(a, SendFence)]


def _proposed(actions: list) -> list[str]:
    return [a.successor for a in actions if isinstance(a, Propose)]


def test_a_leader_that_lost_and_regained_leadership_between_inputs_trusts_none_of_its_old_grants() -> None:
    # Issue 10, 2.10: leading at term 2 and again at term 4, it never saw term 3's leader, who may have
    # granted P a lease; the granter must start over as for any new leader.
    c = _leader(now_ms=0)
    assert c.on_lease_request(P, req=1, now_ms=0) == [GrantLease(P, 1)]
    c.on_leadership(term=4, leader_id=ME, now_ms=10_000)
    c.on_health({P: "failed"})
    assert c.tick(10_000 + CFG.lease_ms + CFG.drift_ms) == []  # long past term 2's grant, not past term 3's
    assert _fences(c.tick(10_000 + DRAINED_MS)) == [(A, 2), (B, 2)]


def test_the_leader_fences_the_isr_and_promotes_the_highest_durable_offset_among_those_that_answered() -> None:
    c = _leader(health={P: "failed"})
    assert _fences(c.tick(DRAINED_MS)) == [(A, 2), (B, 2)]  # epoch + 1, the ISR but not C
    c.on_fence_reply(C, SHARD, 2, TERM, 900, "online")  # not asked: ignored
    c.on_fence_reply(A, SHARD, 1, TERM, 800, "online")  # another round's epoch: ignored
    c.on_fence_reply(A, SHARD, 2, TERM, 40, "online")
    assert _proposed(c.tick(DRAINED_MS + 1)) == []  # B may still answer
    c.on_fence_reply(B, SHARD, 2, TERM, 70, "online")
    actions = c.tick(DRAINED_MS + 2)
    assert _proposed(actions) == [B]
    (propose,) = [a for a in actions if isinstance(a, Propose)]
    assert propose.command["op"] == "failover" and propose.command["epoch"] == 1


def test_a_member_that_does_not_answer_the_fence_is_not_chosen_and_a_loading_one_never() -> None:
    c = _leader(health={P: "failed"})
    c.tick(DRAINED_MS)
    c.on_fence_reply(A, SHARD, 2, TERM, 0, "loading")
    assert _proposed(c.tick(DRAINED_MS + CFG.fence_timeout_ms - 1)) == []
    actions = c.tick(DRAINED_MS + CFG.fence_timeout_ms)  # B never answered; A may not be promoted
    assert _proposed(actions) == [] and any(isinstance(a, Report) and "down" in a.line for a in actions)
    assert _fences(c.tick(DRAINED_MS + CFG.fence_timeout_ms + 1)) == [(A, 2), (B, 2)]  # the round starts again
    c.on_fence_reply(A, SHARD, 2, TERM, 30, "online")
    assert _proposed(c.tick(DRAINED_MS + 2 * CFG.fence_timeout_ms + 1)) == [A]


def test_no_grant_while_a_failover_drains_fences_or_proposes_and_none_without_authority() -> None:
    c = _leader()
    assert c.on_lease_request(P, 1, now_ms=0) == [GrantLease(P, 1)]
    assert c.on_lease_request(A, 2, now_ms=0) == []  # not a primary
    c.on_authority(5)
    assert c.on_lease_request(P, 3, now_ms=5) == []  # a leader that may have been replaced
    c.on_authority(10**9)
    c.on_health({P: "failed"})
    assert c.on_lease_request(P, 4, now_ms=10) == []
    c.on_health({})
    assert c.request_failover(SHARD, A)
    assert c.on_lease_request(P, 5, now_ms=10) == []  # a manual failover drains its lease
    c.tick(DRAINED_MS)
    c.on_fence_reply(A, SHARD, 2, TERM, 50, "online")
    assert _proposed(c.tick(DRAINED_MS + 1)) == [A]
    assert c.on_lease_request(P, 6, now_ms=DRAINED_MS + 1) == []  # the proposal is in flight
    c.on_proposal_done(SHARD, epoch=1)
    c.on_config(_state(primary=A, isr=(A, B), epoch=2))
    c.tick(DRAINED_MS + 2)
    assert c.on_lease_request(A, 7, now_ms=DRAINED_MS + 2) == [GrantLease(A, 7)] and not c.requested


def test_a_failover_its_predecessor_proposed_waits_for_the_old_primarys_lease_from_this_leader() -> None:
    """Sim seed 1076: the old leader drains P and proposes P -> A, then loses leadership. The new
    leader knows nothing of it and grants P (still primary in its configuration); the failover then
    commits. A must get no lease while P's may still run, or both serve (S2)."""
    c = _leader(now_ms=0)
    c.tick(DRAINED_MS)
    assert c.on_lease_request(P, 1, now_ms=DRAINED_MS) == [GrantLease(P, 1)]
    c.on_config(_state(primary=A, isr=(A, B), epoch=2))
    assert c.on_lease_request(A, 2, now_ms=DRAINED_MS + 1) == []
    until = DRAINED_MS + CFG.lease_ms + CFG.drift_ms
    assert c.on_lease_request(A, 3, now_ms=until - 1) == []
    assert c.on_lease_request(A, 4, now_ms=until) == [GrantLease(A, 4)]


def test_a_manual_failover_to_a_replica_outside_the_isr_is_dropped_and_the_primary_granted_again() -> None:
    c = _leader()
    assert c.request_failover(SHARD, C)
    assert c.tick(DRAINED_MS) == []  # nobody to fence
    actions = c.tick(DRAINED_MS + 1)
    assert any(isinstance(a, Report) and "refused" in a.line for a in actions) and not c.requested
    assert c.on_lease_request(P, 1, now_ms=DRAINED_MS + 1) == [GrantLease(P, 1)]


def test_a_proposal_without_an_outcome_is_retried_and_a_follower_never_fails_over() -> None:
    c = _leader(health={P: "failed"})
    c.tick(DRAINED_MS)
    c.on_fence_reply(A, SHARD, 2, TERM, 5, "online")
    c.on_fence_reply(B, SHARD, 2, TERM, 5, "online")
    assert _proposed(c.tick(DRAINED_MS + 1)) == [B]
    assert c.tick(DRAINED_MS + CFG.retry_ms) == []
    assert _fences(c.tick(DRAINED_MS + 1 + CFG.retry_ms)) == [(A, 2), (B, 2)]
    c.on_leadership(term=3, leader_id=A, now_ms=DRAINED_MS + 2 + CFG.retry_ms)
    assert c.tick(10**8) == [] and not c.request_failover(SHARD, A)


def test_a_primary_renews_every_quarter_lease_through_the_leader_or_by_itself_as_leader() -> None:
    c = FailoverController(CFG)
    c.on_config(_state(primary=ME))
    c.state.nodes[ME] = NodeRecord(ME, "h", 1, 2, shard_id=SHARD, role="primary")
    c.on_leadership(term=2, leader_id=A, now_ms=0)
    (req,) = c.tick(100)
    assert isinstance(req, RequestLease) and req.to == A and c.tick(101) == []
    c.on_lease_granted(req.req)
    assert c.lease_until_ms == 100 + CFG.lease_ms
    assert isinstance(c.tick(100 + CFG.lease_ms // 4)[0], RequestLease)
    c.on_leadership(term=3, leader_id=ME, now_ms=200)
    c.on_authority(10**9)
    assert c.tick(100 + CFG.lease_ms // 2) == [] and c.lease_until_ms == 100 + CFG.lease_ms // 2 + CFG.lease_ms
    c.on_config(_state())  # no longer primary
    c.tick(10_000)
    assert c.lease_until_ms == -1


def test_the_leader_authority_counts_only_echoes_from_a_majority() -> None:
    auth = LeaderAuthority(ME, stickiness_ms=1000)
    assert auth.stamp(A, 10) == {"ts": 10}
    auth.on_message(A, ts=7, echo=None)
    assert auth.stamp(A, 11) == {"ts": 11, "echo": 7}
    voters = (ME, A, B)
    assert auth.until_ms(voters, leading=True, now_ms=50) == -1  # nobody echoed yet
    auth.on_message(A, ts=8, echo=10)
    auth.on_message(A, ts=9, echo=3)  # an old echo never moves it back
    assert auth.until_ms(voters, leading=True, now_ms=50) == 1010
    assert auth.until_ms(voters, leading=False, now_ms=50) == -1
    auth.on_message(B, ts="x", echo=True)  # malformed: ignored
    assert auth.until_ms((ME, A, B, C, "d" * 40), leading=True, now_ms=60) == -1


def test_once_a_member_is_fenced_the_failover_goes_ahead_even_if_the_primary_looks_alive_again() -> None:
    c = _leader(health={P: "failed"})
    c.tick(DRAINED_MS)
    c.on_fence_reply(A, SHARD, 2, TERM, 9, "online")
    c.on_health({})  # P is heard from again, but A refuses its stream now
    assert _proposed(c.tick(DRAINED_MS + CFG.fence_timeout_ms)) == [A]
    other = _leader(health={P: "failed"})
    other.tick(DRAINED_MS)
    other.on_health({})  # nobody answered yet: nobody is fenced, the round is dropped
    assert other.tick(DRAINED_MS + CFG.fence_timeout_ms) == []
    assert other.on_lease_request(P, 1, DRAINED_MS + CFG.fence_timeout_ms) == [GrantLease(P, 1)]


def test_an_answer_to_a_round_of_an_earlier_term_never_counts_in_a_later_one() -> None:
    # The leader fenced A and B in term 2, lost leadership, and leads again in term 4 at the same shard
    # epoch. A's answer to the term-2 round arrives late: it must not choose the successor now.
    c = _leader(health={P: "failed"})
    assert _fences(c.tick(DRAINED_MS)) == [(A, 2), (B, 2)]
    c.on_leadership(term=3, leader_id=B, now_ms=DRAINED_MS + 1)
    c.on_fence_reply(B, SHARD, 2, TERM, 10, "online")  # no round any more
    c.on_leadership(term=4, leader_id=ME, now_ms=DRAINED_MS + 2)
    later = 2 * DRAINED_MS + 2  # the new granter waits out leases its predecessors may have granted
    fences = [a for a in c.tick(later) if isinstance(a, SendFence)]
    assert [(f.to, f.epoch, f.term) for f in fences] == [(A, 2, 4), (B, 2, 4)]
    c.on_fence_reply(A, SHARD, 2, TERM, 90, "online")  # term 2's round: not this one
    c.on_fence_reply(B, SHARD, 2, 4, 30, "online")
    assert _proposed(c.tick(later + 1)) == []  # A has not answered this round yet
    c.on_fence_reply(A, SHARD, 2, 4, 20, "online")
    assert _proposed(c.tick(later + 2)) == [B]  # by what they said now, not A's stale 90


def test_a_round_is_dropped_when_leadership_is_lost_and_regained_between_inputs() -> None:
    c = _leader(health={P: "failed"})
    c.tick(DRAINED_MS)
    c.on_fence_reply(A, SHARD, 2, TERM, 40, "online")
    c.on_leadership(term=5, leader_id=ME, now_ms=DRAINED_MS + 1)  # it never saw terms 3 and 4
    c.on_fence_reply(B, SHARD, 2, TERM, 50, "online")
    assert c.tick(DRAINED_MS + CFG.fence_timeout_ms) == []  # nothing proposed on term 2's answers


def test_with_no_member_eligible_a_primary_that_is_back_is_reinstated_at_the_next_epoch() -> None:
    # Drill kill-random, seed 1: a shard that never took a write lost its primary; its replica,
    # fenced at epoch 2, answered at offset 0 and could not be chosen (seed 002). The primary came
    # back, but the fenced replica refused its stream for good, so the shard stayed down for ever.
    c = _leader(health={P: "failed"})
    assert _fences(c.tick(DRAINED_MS)) == [(A, 2), (B, 2)]
    c.on_fence_reply(A, SHARD, 2, TERM, 0, "online")
    c.on_fence_reply(B, SHARD, 2, TERM, 0, "online")
    actions = c.tick(DRAINED_MS + 1)
    assert _proposed(actions) == [] and any(isinstance(a, Report) and "down" in a.line for a in actions)
    c.on_health({})  # P is back, after its round had ended
    assert _fences(c.tick(DRAINED_MS + 2)) == [(A, 2), (B, 2)]  # the fenced members are asked again
    assert c.on_lease_request(P, 1, DRAINED_MS + 2) == []  # and P serves nothing meanwhile
    c.on_fence_reply(A, SHARD, 2, TERM, 0, "online")
    actions = c.tick(DRAINED_MS + 2 + CFG.fence_timeout_ms)
    (propose,) = [a for a in actions if isinstance(a, Propose)]
    assert propose.successor == P
    assert propose.command == {"op": "reinstate", "shard_id": SHARD, "epoch": 1, "node_id": P}
    c.on_config(_state(epoch=2))
    c.on_proposal_done(SHARD, 1)
    assert c.tick(DRAINED_MS + 3 + CFG.fence_timeout_ms) == []  # past the fence: nothing more to do


def test_a_member_with_data_is_promoted_rather_than_the_primary_reinstated_and_never_a_failed_primary() -> None:
    c = _leader(health={P: "failed"})
    c.tick(DRAINED_MS)
    c.on_fence_reply(A, SHARD, 2, TERM, 0, "online")
    c.on_fence_reply(B, SHARD, 2, TERM, 7, "online")
    c.on_health({})
    assert _proposed(c.tick(DRAINED_MS + 1)) == [B]
    dead = _leader(health={P: "failed"})
    dead.tick(DRAINED_MS)
    dead.on_fence_reply(A, SHARD, 2, TERM, 0, "online")
    dead.on_fence_reply(B, SHARD, 2, TERM, 0, "online")
    assert _proposed(dead.tick(DRAINED_MS + 1)) == []  # P is still failed: the shard stays down


# --- fences that outlive a leadership (fences.py) ----------------------------------------------------------

def _fence_at(epoch: int, shard: str = SHARD) -> dict:
    return {"fence_shard": shard, "fence_epoch": epoch}


def test_a_node_reports_a_fence_above_its_configured_epoch_and_only_then() -> None:
    state = _state()  # epoch 1: P primary, A and B in the ISR, C a replica outside it
    assert fence_info(state, A, replica=(SHARD, 2)) == _fence_at(2)  # fenced by a round
    assert fence_info(state, C, replica=(SHARD, 3)) == _fence_at(3)
    assert fence_info(state, A, replica=(SHARD, 1)) == {}  # refuses nothing the configuration does not
    assert fence_info(state, A, replica=("6" * 40, 5)) == {}  # its side still replicates another shard
    assert fence_info(state, P, deposed=(SHARD, 1)) == _fence_at(2)  # a replica told it of a later epoch
    assert fence_info(state, P) == {} and fence_info(state, P, deposed=(SHARD, 0)) == {}
    assert fence_info(state, ME, replica=(SHARD, 2)) == {}  # no member of any shard
    assert valid_info(fence_info(state, A, replica=(SHARD, 2)))


def test_a_new_leader_reinstates_a_primary_an_earlier_leadership_fenced() -> None:
    # The leader of term 1 fenced A and B at epoch 2 while P was briefly lost, and lost its leadership
    # before it reinstated P. P is online again; A refuses its stream and P, told so, is deposed. This
    # leader never saw the round: only the gossip tells it. It used to grant P and do nothing, and the
    # shard refused every write for ever.
    c = _leader()
    c.on_gossip_info({A: _fence_at(2), P: _fence_at(2), B: {}})
    assert c.on_lease_request(P, 1, 0) == []  # P cannot serve: its lease must run out, not be renewed
    assert c.tick(DRAINED_MS - 1) == []  # a predecessor may have granted P a lease
    assert _fences(c.tick(DRAINED_MS)) == [(A, 2), (B, 2)]
    c.on_fence_reply(A, SHARD, 2, TERM, 0, "online")  # the shard never took a write
    c.on_fence_reply(B, SHARD, 2, TERM, 0, "online")
    actions = c.tick(DRAINED_MS + 1)
    (propose,) = [a for a in actions if isinstance(a, Propose)]
    assert propose.command == {"op": "reinstate", "shard_id": SHARD, "epoch": 1, "node_id": P}
    c.on_config(_state(epoch=2))
    c.on_proposal_done(SHARD, 1)
    assert c.tick(DRAINED_MS + 2) == []  # the reports are not above epoch 2: nothing more to do
    assert c.on_lease_request(P, 2, DRAINED_MS + 2) == [GrantLease(P, 2)]


def test_a_new_leader_promotes_the_member_with_data_when_only_the_deposed_primary_reports_the_fence() -> None:
    c = _leader()
    c.on_gossip_info({P: _fence_at(2)})  # the fenced member's gossip has not reached this leader
    assert _fences(c.tick(DRAINED_MS)) == [(A, 2), (B, 2)]
    c.on_fence_reply(A, SHARD, 2, TERM, 0, "loading")
    c.on_fence_reply(B, SHARD, 2, TERM, 7, "online")
    assert _proposed(c.tick(DRAINED_MS + 1)) == [B]  # the ISR rules as always: never A (seed 002)
    dead = _leader(health={P: "failed"})
    dead.on_gossip_info({A: _fence_at(2)})
    dead.tick(DRAINED_MS)
    dead.on_fence_reply(A, SHARD, 2, TERM, 0, "online")
    assert _proposed(dead.tick(DRAINED_MS + CFG.fence_timeout_ms)) == []  # nobody eligible, P failed: down


def test_a_fence_report_from_a_non_member_of_another_shard_or_not_above_the_epoch_changes_nothing() -> None:
    c = _leader()
    reports = [{ME: _fence_at(2)}, {A: _fence_at(2, "6" * 40)}, {A: _fence_at(1)}, {A: None, B: {"offset": 3}}]
    for infos in reports:
        c.on_gossip_info(infos)
        assert c.tick(DRAINED_MS) == []
    assert c.on_lease_request(P, 1, DRAINED_MS) == [GrantLease(P, 1)]
