"""The failover driver's feed: the fence this node knows of goes out in its gossip, every node's reaches the leader.

The Raft leader here is R, a replica; a predecessor's fencing round may have fenced R or P's other members,
and only the gossip tells this leader (core/failover/fences.py).
"""

import random
from types import SimpleNamespace

from trionode.core.failover import GrantLease
from trionode.core.gossip import Ping
from trionode.io.failover import FailoverDriver
from trionode.io.gossip_driver import GossipDriver

from .test_replication_shell import SHARD, P, R, _state

FENCED = {"fence_shard": SHARD, "fence_epoch": 2}


def _leader(fence_facts: dict) -> FailoverDriver:
    """R leads, and its replication knows ``fence_facts`` (Replication.fence_facts)."""
    state = _state()  # epoch 1, P primary, R its replica
    bus = SimpleNamespace(send=lambda peer, msg: True)
    control = SimpleNamespace(bus_handlers={}, bus=bus, state=state, rawnode=SimpleNamespace(is_leader=True),
                              leader=R, term=3, authority_until_ms=lambda: 10**12)  # fmt: skip
    gossip = GossipDriver(R, 2000, bus, lambda: 0, random.Random(1), incarnation=1)
    gossip.on_config(state, (P, R))
    replication = SimpleNamespace(on_fence_answer=None, fence_facts=lambda: fence_facts)
    runtime = SimpleNamespace(node_id=R, control=control, replication=replication, gossip=gossip,
                              config=SimpleNamespace(node_timeout_ms=2000), cluster_health=lambda: {})  # fmt: skip
    return FailoverDriver(runtime)  # type: ignore[arg-type]


def test_the_fence_this_node_knows_of_goes_out_in_its_gossip_and_the_primary_gets_no_lease() -> None:
    fenced = _leader({"replica": (SHARD, 2)})
    fenced._feed(now_ms=1000)
    assert fenced.runtime.gossip.detector.info(R) == FENCED
    assert fenced.controller.on_lease_request(P, 1, now_ms=1000) == []  # a round must follow, not a renewal
    healthy = _leader({"replica": (SHARD, 1)})
    healthy._feed(now_ms=1000)
    assert healthy.runtime.gossip.detector.info(R) is None
    assert healthy.controller.on_lease_request(P, 1, now_ms=1000) == [GrantLease(P, 1)]


def test_a_fence_a_peer_reports_in_gossip_reaches_the_leader() -> None:
    driver = _leader({})
    driver.runtime.gossip.on_message(P, {"k": "gossip", "m": Ping(P, 1, 1, (), FENCED).to_wire()})  # P was deposed
    driver._feed(now_ms=1000)
    assert driver.controller.on_lease_request(P, 1, now_ms=1000) == []
    forged = {**FENCED, "fence_epoch": "2"}  # refused at the gossip boundary: the old info stands
    driver.runtime.gossip.on_message(P, {"k": "gossip", "m": {**Ping(P, 1, 2, ()).to_wire(), "info": forged}})
    assert driver.runtime.gossip.detector.info(P) == FENCED
