"""The command line: the cluster create plan is the planner's (core/cluster/planner.py), cut as redis-cli cuts;
rebalance weights name shards by their primary."""

import json
from typing import Any

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


class _MigratingCluster:
    """Primaries behind ``cli._call`` whose migrations each take a few looks to end; it records which ran at once."""

    def __init__(self, owned: dict[str, list], polls: dict[str, int], fail: str = "") -> None:
        self.owned = owned  # shard id -> slot ranges; the primary of shard s is node "n" + s, at addr s
        self.polls = polls  # source shard id -> how many looks its job takes to end
        self.fail = fail  # the source shard whose job fails
        self.jobs: dict[str, list[dict]] = {shard: [] for shard in owned}
        self.overlaps: set[frozenset[str]] = set()  # pairs of targets whose jobs ran at the same time

    def _running(self) -> list[dict]:
        return [job for jobs in self.jobs.values() for job in jobs if job["state"] not in cli._JOB_ENDS]

    def call(self, addr: str, *args: str | int) -> object:
        op = " ".join(str(a).upper() for a in args[:2])
        if op == "CLUSTER MIGRATESLOTS":
            target = str(args[-1])
            self.jobs[addr].append({"name": f"{len(self.jobs[addr])}".rjust(40, "0"), "operation": "EXPORT",
                                    "slot_ranges": " ".join(map(str, args[3:-2])), "state": "snapshotting",
                                    "keys_copied": 0, "bytes_copied": 0, "lag": 0, "write_pause_ms": 0, "message": "",
                                    "target": target, "looks": 0})  # fmt: skip
            running = [job["target"] for job in self._running()]
            self.overlaps |= {frozenset((a, b)) for a in running for b in running if a != b}
            return b"OK"
        assert op == "CLUSTER STATUS", op
        for job in self.jobs[addr]:
            job["looks"] += 1
            if job["state"] not in cli._JOB_ENDS and job["looks"] > self.polls[addr]:
                job["state"] = "failed" if addr == self.fail else "success"
                job["message"] = "the target's ISR shrank" if addr == self.fail else ""
        shards = [{"id": s, "primary_id": "n" + s, "slots": r} for s, r in self.owned.items()]
        nodes = [{"id": "n" + s, "addr": s} for s in self.owned]
        return json.dumps({"shards": shards, "nodes": nodes, "migrations": [], "migration_jobs": self.jobs[addr]})


def _rebalance(fake: _MigratingCluster, monkeypatch) -> Any:
    from click.testing import CliRunner

    monkeypatch.setattr(cli, "_call", fake.call)
    monkeypatch.setattr(cli, "_POLL_S", 0)
    return CliRunner().invoke(cli.main, ["cluster", "rebalance", "a"])


def test_rebalance_runs_migrations_between_distinct_shards_at_once(monkeypatch) -> None:
    # Two new shards c and d take from a and b: a -> c and b -> d ran one after the other.
    fake = _MigratingCluster({"a": [[0, 8191]], "b": [[8192, 16383]], "c": [], "d": []}, {"a": 3, "b": 6})
    out = _rebalance(fake, monkeypatch)
    assert out.exit_code == 0, out.output
    assert fake.overlaps == {frozenset(("nc", "nd"))}
    lines = out.output.splitlines()
    assert "[2/2 migrations, 0/8192 slots moved]" in "\n".join(lines)  # both started before either ended
    assert lines[-1] == "[2/2 migrations, 8192/8192 slots moved] the cluster is balanced"


def test_rebalance_moves_from_one_source_one_at_a_time(monkeypatch) -> None:
    fake = _MigratingCluster({"a": [[0, 16383]], "c": [], "d": []}, {"a": 2})
    out = _rebalance(fake, monkeypatch)
    assert out.exit_code == 0, out.output
    assert fake.overlaps == set() and [job["target"] for job in fake.jobs["a"]] == ["nc", "nd"]


def test_a_failed_migration_starts_no_other_and_ends_the_rebalance_once_the_running_ones_end(monkeypatch) -> None:
    fake = _MigratingCluster({"a": [[0, 8191]], "b": [[8192, 16383]], "c": [], "d": []}, {"a": 2, "b": 5}, fail="a")
    out = _rebalance(fake, monkeypatch)
    assert out.exit_code == 1, out.output
    assert fake.jobs["b"][0]["state"] == "success"  # followed to its end
    assert ("migration 1/2 (slots 4096-8191) ended failed: the target's ISR shrank; 4096 of 8192 slots were moved"
            in out.output), out.output  # fmt: skip


def test_a_node_lost_during_the_reset_of_its_lone_cluster_ends_create_with_one_line(capsys) -> None:
    # A connection lost during CLUSTER RESET escaped as a traceback (ClosedByServer), not one line.
    import socket
    import threading

    import click

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def close_each_on_its_first_request() -> None:  # the CLI's probe for TLS dials again
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(1024)
            conn.close()

    server = threading.Thread(target=close_each_on_its_first_request, daemon=True)
    server.start()
    try:
        with click.Context(cli.main), pytest.raises(SystemExit) as exit_:
            cli._leave_lone_cluster(f"127.0.0.1:{port}", "c0ffee")
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        listener.close()
        server.join(timeout=10)
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"trionode: error: 127.0.0.1:{port} failed during CLUSTER RESET"), err
    assert len(err.strip().splitlines()) == 1
