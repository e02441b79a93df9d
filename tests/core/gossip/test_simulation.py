"""Deterministic cluster runs of the detector: loss, crashes, partitions, one-way links, flapping.

Every assertion message names the seed; rerun one with ``-k "seed"`` to reproduce it.
"""

import pytest

from tests.core.gossip.sim import Sim, tick_ms
from trionode.core.gossip import GossipConfig

CFG = GossipConfig(node_timeout_ms=5000, ping_interval_ms=1000, fanout=3)
DETECT_MS = CFG.node_timeout_ms + 3 * CFG.ping_interval_ms  # a crash is failed everywhere by then
RECOVER_MS = 2 * CFG.ping_interval_ms  # a returning node is online everywhere by then
SEEDS = [1, 2, 3, 4]


class Watch:
    """Checks run after every simulated step."""

    def __init__(self) -> None:
        self.never_failed: set[str] = set()
        self.problems: list[str] = []

    def __call__(self, sim: Sim) -> None:
        for observer, view in sim.views().items():
            for node, health in view.items():
                if health == "failed" and node in self.never_failed and len(self.problems) < 5:
                    self.problems.append(f"t={sim.now_ms}: {observer[:1]} sees {node[:1]} failed")


def _everyone_sees(sim: Sim, node: str, health: str) -> bool:
    return all(view[node] == health for observer, view in sim.views().items() if observer != node)


def _run_until_everyone_sees(sim: Sim, node: str, health: str, deadline_ms: int, watch: Watch) -> int:
    while not _everyone_sees(sim, node, health):
        assert sim.now_ms < deadline_ms, f"seed {sim.seed}: {node[:1]} not {health} everywhere by t={deadline_ms}"
        sim.run_until(sim.now_ms + tick_ms, watch)
    return sim.now_ms


@pytest.mark.parametrize("seed", SEEDS)
def test_a_crashed_node_is_failed_on_every_live_node_in_time_and_no_live_node_ever_is(seed: int) -> None:
    sim = Sim(5, seed, loss=0.1, config=CFG)
    watch = Watch()
    watch.never_failed = set(sim.ids)
    sim.run_until(20_000, watch)
    victim = sim.ids[3]
    watch.never_failed.discard(victim)
    sim.crash(victim)
    crashed_ms = sim.now_ms
    _run_until_everyone_sees(sim, victim, "failed", crashed_ms + DETECT_MS, watch)
    sim.run_until(40_000, watch)
    assert _everyone_sees(sim, victim, "failed"), f"seed {seed}: a dead node came back to life"
    assert watch.problems == [], f"seed {seed}"
    lines = [line for i in sim.live() for line in sim.nodes[i].changes()]
    assert any(line.startswith(f"node {victim} failed (suspected by ") for line in lines)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_returning_node_is_seen_online_everywhere_within_two_ping_intervals(seed: int) -> None:
    sim = Sim(5, seed, loss=0.1, config=CFG)
    victim = sim.ids[0]
    sim.run_until(10_000)
    sim.crash(victim)
    sim.run_until(10_000 + DETECT_MS + 2000)
    assert _everyone_sees(sim, victim, "failed"), f"seed {seed}"
    sim.start(victim)
    back_ms = sim.now_ms
    _run_until_everyone_sees(sim, victim, "online", back_ms + RECOVER_MS, Watch())
    assert sim.nodes[sim.ids[1]].info(victim) == {"starts": 2}, f"seed {seed}: its new info rode on its pings"


@pytest.mark.parametrize("seed", SEEDS)
def test_an_isolated_node_fails_and_recovers_when_the_partition_heals(seed: int) -> None:
    sim = Sim(7, seed, loss=0.05, config=CFG)
    victim = sim.ids[2]
    watch = Watch()
    watch.never_failed = set(sim.ids) - {victim}
    sim.run_until(10_000, watch)
    sim.isolate(victim)
    _run_until_everyone_sees(sim, victim, "failed", 10_000 + DETECT_MS, watch)
    sim.run_until(25_000, watch)
    assert sim.views()[victim][sim.ids[0]] == "suspect", f"seed {seed}: alone, it cannot fail anyone"
    sim.heal()
    _run_until_everyone_sees(sim, victim, "online", 25_000 + RECOVER_MS, watch)
    assert watch.problems == [], f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_node_connected_to_a_majority_is_never_failed(seed: int) -> None:
    sim = Sim(5, seed, loss=0.1, config=CFG)
    a, _, _, d, e = sim.ids
    watch = Watch()
    watch.never_failed = set(sim.ids)
    sim.run_until(5_000, watch)
    for far in (d, e):  # a still reaches b and c: with itself, three of five
        sim.cut_link(a, far)
        sim.cut_link(far, a)
    sim.run_until(40_000, watch)
    assert watch.problems == [], f"seed {seed}"
    assert sim.views()[d][a] == "suspect" and sim.views()[a][e] == "suspect", f"seed {seed}: the cut had no effect"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_one_way_link_does_not_fail_a_node_the_majority_hears(seed: int) -> None:
    sim = Sim(5, seed, loss=0.1, config=CFG)
    a, b = sim.ids[:2]
    watch = Watch()
    watch.never_failed = set(sim.ids)
    sim.run_until(5_000, watch)
    sim.cut_link(b, a)  # a can send to b but never hears from it
    sim.run_until(40_000, watch)
    assert watch.problems == [], f"seed {seed}"
    assert sim.views()[a][b] == "suspect", f"seed {seed}: a hears nothing from b, so it suspects b"
    assert all(view[b] == "online" for i, view in sim.views().items() if i != a), f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_node_flapping_faster_than_the_timeout_is_never_failed(seed: int) -> None:
    sim = Sim(5, seed, loss=0.1, config=CFG)
    flapper = sim.ids[4]
    watch = Watch()
    watch.never_failed = set(sim.ids)
    sim.run_until(5_000, watch)
    for _ in range(6):
        sim.crash(flapper)
        sim.run_until(sim.now_ms + 2_000, watch)
        sim.start(flapper)
        sim.run_until(sim.now_ms + 3_000, watch)
    assert watch.problems == [], f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_slow_flapper_fails_and_recovers_each_time_and_the_logs_say_so(seed: int) -> None:
    sim = Sim(5, seed, loss=0.1, config=CFG)
    flapper, observer = sim.ids[4], sim.ids[0]
    sim.run_until(5_000)
    sim.nodes[observer].changes()
    for _ in range(3):
        sim.crash(flapper)
        _run_until_everyone_sees(sim, flapper, "failed", sim.now_ms + DETECT_MS, Watch())
        sim.run_until(sim.now_ms + 1_000)
        sim.start(flapper, incarnation=0)  # even without a new incarnation it is heard again
        _run_until_everyone_sees(sim, flapper, "online", sim.now_ms + RECOVER_MS, Watch())
        sim.run_until(sim.now_ms + 3_000)
    about = [line.split(" ", 2)[2] for line in sim.nodes[observer].changes() if flapper in line]
    kinds = [line.split(" ")[0] for line in about]
    assert kinds.count("failed") == 3 and kinds.count("recovered") == 3, f"seed {seed}: {about}"
    assert kinds[-1] == "recovered", f"seed {seed}"


def test_a_run_is_a_function_of_its_seed() -> None:
    def run(seed: int) -> tuple:
        sim = Sim(5, seed, loss=0.2, config=CFG)
        sim.run_until(8_000)
        sim.isolate(sim.ids[1])
        sim.run_until(20_000)
        return tuple(line for i in sim.ids for line in sim.nodes[i].changes()), sim.views()

    assert run(7) == run(7)
    assert run(7) != run(8)
