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


class _LaggingCluster:
    """Six fresh nodes behind ``cli._call``. A node applies a shard made on another node only after one more
    look at it (its applied view lags the leader's commit, as a busy follower's does); REPLICATE is judged
    from the replica's own view, as the node judges it."""

    def __init__(self) -> None:
        self.formed = False
        self.seen: dict[str, dict[str, list]] = {a: {} for a in ADDRS}  # node -> primary -> its slot ranges
        self.pending: dict[str, dict[str, list]] = {a: {} for a in ADDRS}
        self.replicated: list[str] = []

    def call(self, addr: str, *args: str | int) -> object:
        op = " ".join(str(a).upper() for a in args[:2])
        if op == "CLUSTER MYID":
            return IDS[addr].encode()
        if op == "INFO CLUSTER":
            return f"cluster_id:{'c' * 40 if self.formed else ''}\r\ncluster_bus_port:{BUS_PORTS[addr]}\r\n".encode()
        if op == "CLUSTER BOOTSTRAP":
            self.formed = True
        if op == "CLUSTER NODES":
            return "".join(f"{IDS[a]} {a}@{BUS_PORTS[a]} master - 0 0 0 connected\n" for a in ADDRS).encode()
        if op == "CLUSTER ADDSLOTSRANGE":
            ranges = [[int(args[i]), int(args[i + 1])] for i in range(2, len(args), 2)]
            self.seen[addr][addr] = ranges
            for other in ADDRS:
                self.pending[other].setdefault(addr, ranges)
        if op == "CLUSTER SLOTS":
            view = [[a, b] for ranges in self.seen[addr].values() for a, b in ranges]
            self.seen[addr].update(self.pending[addr])
            self.pending[addr] = {}
            return view
        if op == "CLUSTER REPLICATE":
            primary = next(a for a in ADDRS if IDS[a] == args[2])
            if primary not in self.seen[addr]:
                cli._fail(f"{addr} refused CLUSTER REPLICATE: ERR I can only replicate a master, not a replica.")
            self.replicated.append(addr)
        return b"OK"


def test_create_asks_a_replica_to_replicate_only_once_it_sees_its_primarys_shard(monkeypatch) -> None:
    # REPLICATE sent right after the primary's ADDSLOTSRANGE reached a replica whose view did not hold
    # that shard yet, and the node refused it ("I can only replicate a master"): a race under load.
    from click.testing import CliRunner

    fake = _LaggingCluster()
    monkeypatch.setattr(cli, "_call", fake.call)
    out = CliRunner().invoke(cli.main, ["cluster", "create", *ADDRS, "--replicas", "1", "--yes"])
    assert out.exit_code == 0, out.output
    assert fake.replicated == list(ADDRS[3:])
