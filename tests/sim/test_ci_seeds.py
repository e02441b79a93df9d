"""CI: a fixed range of seeds must pass, and the faults they claim must really have happened.

The seeds run in two worker processes (one per core). The coverage totals are
asserted non-zero, counter by counter, so this test cannot pass vacuously (a
nemesis that stopped crashing nodes, a network that stopped dropping).
"""

import pytest

from tests.sim.seed_range import run_seeds
from trionode.sim.runner import SimConfig, SimResult, report, run
from trionode.sim.trace import Coverage

# The shortest range in which each counter is reached by three seeds or more (the rarest,
# corruptions_detected, by 14, 15 and 28). Longer runs: python -m trionode sim --seeds 1..2000
CI_SEEDS = range(1, 31)
CI_STEPS = 1000


def _run_seed(seed: int) -> SimResult:
    return run(SimConfig(seed=seed, steps=CI_STEPS))


@pytest.mark.timeout(480)  # CPU-bound: the bound catches a hang; a loaded machine is several times slower
def test_ci_seed_range_passes_with_coverage() -> None:
    results = run_seeds(_run_seed, CI_SEEDS)
    total = Coverage()
    for r in results:
        total.add(r.coverage)
    missing = [name for name, value in total.items() if value == 0]
    assert not missing, f"never happened across seeds {CI_SEEDS.start}..{CI_SEEDS.stop - 1}: {missing}"
    assert total.elections > len(CI_SEEDS) and total.crashes > len(CI_SEEDS) and total.partitions > len(CI_SEEDS)


# Seeds that once failed, run whole in both planes. 1378: a joiner that replicated the log from
# index 1 never learned the founding voter, won an election alone and overwrote a committed entry.
REGRESSION_SEEDS = (1378,)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", REGRESSION_SEEDS)
@pytest.mark.parametrize("failover", [False, True])
def test_regression_seeds_pass(seed: int, failover: bool) -> None:
    result = run(SimConfig(seed=seed, steps=CI_STEPS, data_plane=failover, failover=failover))
    assert result.ok, "\n".join(report(result))
