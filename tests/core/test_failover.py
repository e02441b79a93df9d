"""Leases and the successor rule (DESIGN §5.5, §6; seed 002)."""

from trionode.core.failover import Candidate, LeaseGranter, LeaseHolder, choose_successor

P, A, B, C = "p", "a", "b", "c"


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
    granter.grant(P, now_ms=5000)
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
