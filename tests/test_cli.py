"""The command line's cluster create plan is the planner's (core/cluster/planner.py), cut as redis-cli cuts."""

from trionode import cli

ADDRS = tuple(f"127.0.0.1:{7001 + i}" for i in range(6))
IDS = {addr: f"{i:040x}" for i, addr in enumerate(ADDRS)}
BUS_PORTS = {addr: 17001 + i for i, addr in enumerate(ADDRS)}


def test_three_primaries_get_the_planners_slot_ranges() -> None:
    slots, attach = cli._create_plan(ADDRS[:3], IDS, BUS_PORTS, replicas=0)
    assert slots == [(ADDRS[0], [[0, 5460]]), (ADDRS[1], [[5461, 10922]]), (ADDRS[2], [[10923, 16383]])]
    assert attach == []


def test_replicas_are_spread_over_the_primaries() -> None:
    slots, attach = cli._create_plan(ADDRS, IDS, BUS_PORTS, replicas=1)
    assert [primary for primary, _ in slots] == list(ADDRS[:3])
    assert attach == [(ADDRS[3], ADDRS[0]), (ADDRS[4], ADDRS[1]), (ADDRS[5], ADDRS[2])]
