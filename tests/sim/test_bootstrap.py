"""The founding membership reaches nodes that join by replicating the log from its start."""

import pytest

from trionode.sim.runner import SimConfig, Simulation, node_id

STEPS_MAX = 300


@pytest.mark.timeout(60)
def test_a_joiner_learns_the_founding_voter() -> None:
    # Seed 1378: n2 joins before any compaction, so it gets the log (not a snapshot) from the
    # leader. When the founding voter lived only in a snapshot at index 0, n2 counted itself as
    # the only voter once promoted, and later won an election alone and overwrote index 54.
    sim = Simulation(SimConfig(seed=1378, steps=STEPS_MAX))
    joiner = None
    for step in range(1, STEPS_MAX + 1):
        sim.recorder.step = step
        sim.step()
        joiner = sim.nodes.get(node_id(1))
        if joiner is not None and joiner.up and joiner.id in joiner.raw.conf.learners:
            break
    assert joiner is not None and joiner.up, "n2 never joined: the seed no longer covers this"
    assert joiner.raw.conf.voters == (node_id(0),)
