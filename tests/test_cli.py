"""The command line: the cluster create plan is the planner's (core/cluster/planner.py), cut as redis-cli cuts;
rebalance weights name shards by their primary."""

import pytest

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


PRIMARIES = {"ab" * 20: "shard-1", "ac" * 20: "shard-2", "bc" * 20: "shard-3"}  # primary id -> shard id


def test_rebalance_weights_name_shards_by_their_primarys_id_or_a_unique_prefix() -> None:
    assert cli._parse_weights(("ab=0", f"{'bc' * 20}=3"), PRIMARIES) == {"shard-1": 0, "shard-2": 1, "shard-3": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [("a=1", "more than one shard primary"), ("ff=1", "no shard primary"), ("ab", "expected NODE_ID=W"),
     ("ab=-1", "expected NODE_ID=W"), ("=2", "no shard primary")],
)  # fmt: skip
def test_a_bad_rebalance_weight_is_refused_naming_it(text: str, message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli._parse_weights((text,), PRIMARIES)
    assert exited.value.code == 1 and message in capsys.readouterr().err
