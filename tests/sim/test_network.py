"""The simulated network: delay bounds, loss, duplication, reordering, one-way and two-way partitions."""

import random
from dataclasses import dataclass

from trionode.sim.network import NetworkConfig, SimNetwork


@dataclass(frozen=True)
class Msg:
    frm: str
    to: str
    n: int = 0


def _net(seed: int = 1, **config: float) -> SimNetwork[Msg]:
    return SimNetwork(random.Random(seed), NetworkConfig(**config))  # type: ignore[arg-type]


def test_delivery_respects_the_delay_bounds_and_reorders() -> None:
    net = _net(loss_probability=0.0, duplicate_probability=0.0, delay_ticks_min=1, delay_ticks_max=5)
    for n in range(200):
        net.send(Msg("a", "b", n), now_ticks=0)
    assert net.deliver_due(0) == []
    got = [m.n for now in range(1, 6) for m in net.deliver_due(now)]
    assert sorted(got) == list(range(200)) and got != sorted(got)  # all arrive, not in send order
    assert net.in_flight_count() == 0


def test_loss_and_duplication_are_counted() -> None:
    net = _net(loss_probability=0.3, duplicate_probability=0.3)
    for n in range(1000):
        net.send(Msg("a", "b", n), now_ticks=0)
    got = net.deliver_due(10)
    assert net.stats.dropped_loss > 200 and net.stats.duplicated > 150
    assert len(got) == 1000 - net.stats.dropped_loss + net.stats.duplicated
    assert len({m.n for m in got}) < len(got)  # duplicates arrive twice


def test_asymmetric_partition_blocks_one_direction_only() -> None:
    net = _net(loss_probability=0.0, duplicate_probability=0.0)
    net.partition(["a"], ["b"], symmetric=False)
    net.send(Msg("a", "b"), 0)
    net.send(Msg("b", "a"), 0)
    assert net.deliver_due(10) == [Msg("b", "a")]
    assert net.stats.dropped_partition == 1


def test_symmetric_partition_blocks_in_flight_messages_until_healed() -> None:
    net = _net(loss_probability=0.0, duplicate_probability=0.0)
    net.send(Msg("a", "c"), 0)
    net.partition(["a", "b"], ["c"], symmetric=True)
    net.send(Msg("c", "b"), 0)
    net.send(Msg("a", "b"), 0)
    assert net.deliver_due(10) == [Msg("a", "b")]
    net.heal()
    net.send(Msg("c", "a"), 10)
    assert net.deliver_due(20) == [Msg("c", "a")] and net.blocked_links() == []


def test_in_flight_is_bounded() -> None:
    net = _net(loss_probability=0.0, duplicate_probability=0.0, in_flight_max=10)
    for n in range(15):
        net.send(Msg("a", "b", n), 0)
    assert net.in_flight_count() == 10 and net.stats.dropped_full == 5


def test_same_seed_same_schedule() -> None:
    runs = []
    for _ in range(2):
        net = _net(seed=7)
        for n in range(100):
            net.send(Msg("a", "b", n), n // 10)
        runs.append([m.n for now in range(20) for m in net.deliver_due(now)])
    assert runs[0] == runs[1]
