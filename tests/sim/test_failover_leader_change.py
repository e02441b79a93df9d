"""A Raft leader change between a fencing round and its commit, in the failover simulation (core/failover/fences.py).

The CI seed range (test_failover_plane.py) replaces ``L`` in the middle of rounds at random and counts
the rounds a later ``L`` took over on the gossip's word (``fences_resumed``); this test plays the case
step by step and checks that the shard takes writes again.
"""

from collections.abc import Callable

import pytest

from trionode.sim import failover_nemesis
from trionode.sim.clock import derive_rng
from trionode.sim.failover_plane import FailoverFaults, FailoverPlane
from trionode.sim.trace import Recorder

pytestmark = pytest.mark.timeout(240)  # CPU-bound: a loaded machine is several times slower


def test_a_leader_change_between_the_fence_and_the_commit_does_not_leave_the_shard_down(
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # The primary is lost briefly; L fences the ISR and is replaced before its round's failover commits.
    # The primary is back, so the new L saw nothing to do, and the fenced members refused the deposed
    # primary for good: no write was acknowledged again. Only the gossip can tell the new L of the fence.
    monkeypatch.setattr(failover_nemesis, "MID_ROUND_PROBABILITY", 0.0)  # this test changes L itself
    quiet = FailoverFaults(nemesis_probability=0.0, leader_change_probability=0.0, heal_probability=0.0)
    plane = FailoverPlane(lambda name: derive_rng(7, name), Recorder(), quiet)
    ticks = iter(range(1, 20_000))

    def step_until(done: Callable[[], bool], what: str) -> None:
        for tick in ticks:
            plane.step(tick)
            if done():
                return
        raise AssertionError(f"never: {what}")

    step_until(lambda: plane.coverage.hw_advances >= 3, "writes acknowledged")
    shard = plane.config.shard
    members = [plane.nodes[n] for n in shard.replica_ids]
    plane.nemesis._cut(shard.primary_id)
    step_until(lambda: any(n.replica is not None and n.replica.driver.rs.epoch > shard.epoch for n in members),
               "a member fenced")  # fmt: skip
    plane.leader = plane.new_leader()
    plane.nemesis._uncut(shard.primary_id)
    step_until(lambda: plane.config.shard.epoch > shard.epoch, "a failover or reinstatement committed")
    acked = plane.coverage.hw_advances
    step_until(lambda: plane.coverage.hw_advances > acked, "a write acknowledged again")
