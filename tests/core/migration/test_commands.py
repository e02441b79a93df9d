"""CLUSTER MIGRATESLOTS validation (Valkey 9's errors, all or nothing) and GETSLOTMIGRATIONS rows."""

from types import SimpleNamespace

import pytest

from trionode.core import cluster_commands
from trionode.core.cluster import ClusterState
from trionode.core.errors import CommandError
from trionode.core.migration.commands import ExportRequest, JobRow, migration_rows, parse_migrateslots
from trionode.core.reply import Action

from ..cluster.helpers import M1, S2, S3, N, two_shards


def _argv(*words: object) -> list[bytes]:
    return [b"CLUSTER", b"MIGRATESLOTS", *(str(w).encode() for w in words)]


@pytest.fixture
def state() -> ClusterState:
    """S1 (N0) owns 0-8191, S2 (N1) the rest and exports slot 9000 to S3 (N5, no slots yet)."""
    h = two_shards()
    h.ok("shard_create", shard_id=S3, epoch=3, primary_id=N[5])
    h.migrate_start(M1, S2, S3, [[9000, 9000]])
    return h.state


def test_groups_become_one_request_each(state: ClusterState) -> None:
    argv = _argv("SLOTSRANGE", 0, 10, 20, 29, "NODE", N[1], "slotsrange", 30, 30, "node", N[5])
    assert parse_migrateslots(argv, state, N[0]) == [
        ExportRequest(((0, 10), (20, 29)), N[1], S2),
        ExportRequest(((30, 30),), N[5], S3),
    ]


@pytest.mark.parametrize(
    "words,error",
    [
        (("NODE", "x"), "ERR syntax error"),
        (("SLOTSRANGE", "NODE", "N1"), "ERR No slot ranges specified"),
        (("SLOTSRANGE", 0, 16384, "NODE", "N1"), "ERR Invalid or out of range slot"),
        (("SLOTSRANGE", -1, 3, "NODE", "N1"), "ERR Invalid or out of range slot"),
        (("SLOTSRANGE", 5), "ERR No end slot for final slot range"),
        (("SLOTSRANGE", 9, 5, "NODE", "N1"), "ERR Start slot number 9 is greater than end slot number 5."),
        (("SLOTSRANGE", 8000, 8200, "NODE", "N1"), "ERR Requested slots span multiple shards"),
        (("SLOTSRANGE", 0, 10, 5, 20, "NODE", "N1"), "ERR Slot range 5-20 overlaps with previous range 0-10."),
        (("SLOTSRANGE", 9000, 9001, "NODE", "N1"), "ERR Slots are not served by this node."),
        (("SLOTSRANGE", 0, 10), "ERR syntax error"),
        (("SLOTSRANGE", 0, 10, "NODES", "N1"), "ERR syntax error"),
        (("SLOTSRANGE", 0, 10, "NODE", "abc"), "ERR Invalid node name: abc"),
        (("SLOTSRANGE", 0, 10, "NODE", "9" * 40), f"ERR Unknown node name: {'9' * 40}"),
        (("SLOTSRANGE", 0, 10, "NODE", "N0"), "ERR Target node can not be this node."),
        (("SLOTSRANGE", 0, 10, "NODE", "N2"), "ERR Target node is not a primary"),
        (
            ("SLOTSRANGE", 0, 10, "NODE", "N1", "SLOTSRANGE", 10, 12, "NODE", "N1"),
            "ERR Slot ranges in migrations overlap",
        ),
        (("SLOTSRANGE", 0, 10, "NODE", "N1", "EXTRA"), "ERR syntax error"),
    ],
)
def test_each_refusal_has_valkeys_message(state: ClusterState, words: tuple, error: str) -> None:
    named = [N[int(w[1:])] if isinstance(w, str) and w[:1] == "N" and w[1:].isdigit() else w for w in words]
    with pytest.raises(CommandError) as refused:
        parse_migrateslots(_argv(*named), state, N[0])
    assert str(refused.value) == error


def test_slots_without_an_owner_and_slots_already_migrating(state: ClusterState) -> None:
    with pytest.raises(CommandError, match=r"^ERR I am already migrating slot 5\.$"):
        parse_migrateslots(_argv("SLOTSRANGE", 0, 10, "NODE", N[1]), state, N[0], exporting={5, 6})
    with pytest.raises(CommandError, match=r"^ERR I am already migrating slot 9000\.$"):  # a migration in Raft
        parse_migrateslots(_argv("SLOTSRANGE", 9000, 9000, "NODE", N[5]), state, N[1])
    state.slot_owners[7] = None  # (only the parser reads it here)
    with pytest.raises(CommandError, match=r"^ERR Slot 7 has no node served\.$"):
        parse_migrateslots(_argv("SLOTSRANGE", 0, 10, "NODE", N[1]), state, N[0])


def test_only_a_primary_may_migrate(state: ClusterState) -> None:
    for node in (N[2], N[7]):  # a replica, a node in no shard
        with pytest.raises(CommandError, match=r"^ERR Slot migration can only be used on primary nodes\.$"):
            parse_migrateslots(_argv("SLOTSRANGE", 0, 10, "NODE", N[1]), state, node)


def test_getslotmigrations_rows_have_valkeys_keys_then_the_extras() -> None:
    row = JobRow(name=M1, operation="EXPORT", slots=((0, 10), (20, 20)), source_node=N[0], target_node=N[1],
                 create_ms=1_700_000_000_999, last_update_ms=1_700_000_001_000, last_ack_ms=1_700_000_000_500,
                 state="paused", message="", keys_copied=7, bytes_copied=70, lag=2, write_pause_ms=15)  # fmt: skip
    (reply,) = migration_rows([row])
    valkeys = [b"name", b"operation", b"slot_ranges", b"source_node", b"target_node", b"create_time",
               b"last_update_time", b"last_ack_time", b"state", b"message"]  # fmt: skip
    assert list(reply)[:10] == valkeys
    assert reply[b"slot_ranges"] == b"0-10 20-20" and reply[b"operation"] == b"EXPORT"
    times = (reply[b"create_time"], reply[b"last_update_time"], reply[b"last_ack_time"])
    assert times == (1_700_000_000, 1_700_000_001, 1_700_000_000)  # unix seconds
    assert (reply[b"keys_copied"], reply[b"lag"], reply[b"write_pause_ms"]) == (7, 2, 15)


def test_migrateslots_goes_to_the_shell_and_getslotmigrations_lists_its_rows() -> None:
    argv = _argv("SLOTSRANGE", 0, 10, "NODE", N[1])
    action = cluster_commands.run(None, argv)  # type: ignore[arg-type]  # (handed over before the session is read)
    assert isinstance(action, Action) and action.kind == "migration" and action.args == (argv,)
    cancel = cluster_commands.run(None, [b"CLUSTER", b"CANCELSLOTMIGRATIONS"])  # type: ignore[arg-type]
    assert isinstance(cancel, Action) and cancel.kind == "migration"
    with pytest.raises(CommandError, match="wrong number of arguments"):
        cluster_commands.run(None, [b"CLUSTER", b"CANCELSLOTMIGRATIONS", b"x"])  # type: ignore[arg-type]
    row = JobRow(name="a" * 40, operation="IMPORT", slots=((0, 10),), source_node=N[0], target_node=N[1],
                 create_ms=0, last_update_ms=0, last_ack_ms=0, state="receiving")  # fmt: skip
    session = SimpleNamespace(node=SimpleNamespace(migration_rows=lambda: [row]))
    (reply,) = cluster_commands.run(session, [b"CLUSTER", b"GETSLOTMIGRATIONS"])  # type: ignore[arg-type]
    assert reply[b"operation"] == b"IMPORT" and reply[b"state"] == b"receiving"
