"""``trionode sim --data-plane --failover``: a seed range passes with coverage, replays exactly, planted bugs fail.

The range runs in two worker processes (one per core); every nemesis kind and
failover itself must have happened across it. Each planted bug breaks one
rule of the failover protocol and the checker must name the property:
promoting a replica outside the ISR (S5), a primary that serves past its
lease (S2), a failover that does not wait for the old lease to drain (S2).
The last test pins a bug of the real node's grant rule (io/failover.py).
"""

import concurrent.futures
import dataclasses
import multiprocessing

import pytest

from trionode.core.cluster import Shard
from trionode.sim.failover_plane import FailoverCoverage, FailoverFaults, FailoverPlane, SimNode
from trionode.sim.runner import SimConfig, SimResult, Simulation, report, run

CI_SEEDS = range(1, 61)
CI_STEPS = 1000
WORKERS = 2


def _config(seed: int, steps: int = CI_STEPS) -> SimConfig:
    return SimConfig(seed=seed, steps=steps, data_plane=True, failover=True)


def _run_seed(seed: int) -> SimResult:
    return run(_config(seed))


def test_ci_seed_range_passes_with_failover_coverage() -> None:
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
        results = list(pool.map(_run_seed, CI_SEEDS, chunksize=5))
    failed = [line for r in results if not r.ok for line in report(r)]
    assert not failed, "\n".join(failed)
    total = FailoverCoverage()
    for r in results:
        assert isinstance(r.data_coverage, FailoverCoverage)
        total.add(r.data_coverage)
    # A refused failover (a duplicate, a stale epoch) is possible but rare: not required.
    missing = [name for name, value in total.items() if value == 0 and name != "failovers_refused"]
    assert not missing, f"never happened across seeds {CI_SEEDS.start}..{CI_SEEDS.stop - 1}: {missing}"
    assert total.failovers > len(CI_SEEDS) and total.old_primary_rejoined > len(CI_SEEDS) // 2, total


def test_same_seed_same_report_and_the_raft_half_is_undisturbed() -> None:
    first = report(run(_config(21, 700)))
    assert first == report(run(_config(21, 700)))
    assert first[-1] == "ok seed=21 steps=700" and first[-2].startswith("data-plane: writes=")
    assert report(run(_config(22, 700))) != first
    plain = report(run(SimConfig(seed=21, steps=700)))
    assert plain[-2] == first[-3]  # the Raft coverage: the failover plane draws from its own Randoms


def _failures(seeds: range, faults: FailoverFaults | None = None) -> list[str]:
    out = []
    for seed in seeds:
        sim = Simulation(_config(seed))
        if faults is not None:
            sim.data = FailoverPlane(sim.rng_for, sim.recorder, faults)
        result = sim.run()
        if not result.ok:
            out.append(result.failure)
    return out


def test_promoting_a_replica_outside_the_isr_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def lowest(self: FailoverPlane, shard: Shard, wanted: str | None = None) -> str | None:
        others = [n for n in self.nodes if n != shard.primary_id]
        return min(others, key=lambda n: (self.nodes[n].disk.durable, n))

    monkeypatch.setattr(FailoverPlane, "choose", lowest)
    failures = _failures(range(1, 9))
    assert failures and all(f.startswith("S5 promotion") for f in failures), failures


def test_a_primary_that_ignores_its_lease_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lease(self: FailoverPlane, node: SimNode) -> bool:
        return node.up and node.primary is not None

    monkeypatch.setattr(FailoverPlane, "serves", no_lease)
    failures = _failures(range(1, 9))
    assert failures and all(f.startswith("S2 one writer") for f in failures), failures


def test_a_failover_that_does_not_wait_for_the_lease_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FailoverPlane, "lease_drained", lambda self, primary_id: True)
    # Frequent faults: since an idle replica stays in the ISR (issue 12) the runs take other paths.
    failures = _failures(range(5, 10), FailoverFaults(nemesis_probability=0.03))
    assert failures and all(f.startswith("S2 one writer") for f in failures), failures


def test_granting_during_a_failover_lets_two_primaries_hold_leases() -> None:
    """A planted bug that io/failover.py ``_may_grant`` once had: a grant while a failover is in flight.

    Seed 4: the primary B is isolated (step 784), the leader proposes failover to A (841), the
    partition heals (844) and B's lease request arrives: granted, B is still primary in the applied
    configuration. The failover commits (853), A is primary with a lease (854), and B, which has not
    applied the failover yet, holds a fresh lease too: two nodes serve (S2). The real node and the
    simulation's default refuse such a grant.
    """
    # The scenario was found at seed 4; since an idle replica stays in the ISR (issue 12) runs take
    # other paths, and with frequent faults it arises at seed 47.
    hot = FailoverFaults(nemesis_probability=0.03)
    failures = _failures(range(47, 48), dataclasses.replace(hot, grant_during_failover=True))
    assert failures and failures[0].startswith("S2 one writer"), failures
    assert not _failures(range(47, 48), hot)
