"""The dispatcher's fast paths give the answers of its general paths.

Session.execute skips key hashing on a node whose routing serves every slot,
finds commands by exact spelling before lower-casing them, and DataState
returns a write's own offset instead of asking Visibility. Each test here pits
one shortcut against the slow computation it replaces.
"""

import dataclasses
import gc
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode import limits
from trionode.core import errors, routing
from trionode.core.data_state import DataState
from trionode.core.errors import CommandError
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.reply import Action, ErrorReply
from trionode.core.routing import Routing
from trionode.core.server_specs import SERVER_COMMANDS
from trionode.core.session import Node, NodeFacts, Session
from trionode.core.slots import key_slot

NOW_MS = 1_700_000_000_000
TABLE = {name.encode(): spec for name, spec in {**KEYSPACE_COMMANDS, **SERVER_COMMANDS}.items()}


def make_session(routes: Routing) -> Session:
    facts = NodeFacts("n1", "s1", "127.0.0.1", 7000, 17000, 1, 0, "", "0")
    node = Node(DataState(), TABLE, facts, dict, routes, lambda: None, lease_until_ms=1 << 62)
    session = Session(node, 1, "127.0.0.1:1")
    session.now_ms = NOW_MS
    return session


def half_owned(*, am_primary: bool = True, writes_refused: str | None = None, replica_serving: bool = False) -> Routing:
    owners = tuple("s1" if slot % 2 else "s2" for slot in range(limits.slots_count))
    return Routing(
        owners, "s1", am_primary, {"s1": "h:1", "s2": "h:2"},
        replica_serving=replica_serving, writes_refused=writes_refused,
    )  # fmt: skip


ROUTINGS = {
    "everything": routing.serve_everything("s1"),
    "not a member": routing.not_a_member(),
    "half": half_owned(),
    "all but one slot": Routing(("s1",) * (limits.slots_count - 1) + (None,), "s1", True, {"s1": "h:1"}),
    "everything, writes refused": Routing(
        ("s1",) * limits.slots_count, "s1", True, {"s1": "h:1"}, writes_refused=errors.NOREPLICAS
    ),
    "replica": half_owned(am_primary=False, replica_serving=True),
}


def slow_serves_every_slot(routes: Routing) -> bool:
    return all(
        routes.error_for(slot, write, readonly) is None
        for slot in range(limits.slots_count)
        for write in (True, False)
        for readonly in (True, False)
    )


@pytest.mark.parametrize("name", ROUTINGS)
def test_serves_every_slot_matches_asking_every_slot(name):
    session = make_session(ROUTINGS[name])
    assert session.node.serves_every_slot() == slow_serves_every_slot(ROUTINGS[name])


def test_serves_every_slot_follows_a_replaced_routing():
    session = make_session(routing.serve_everything("s1"))
    assert session.node.serves_every_slot()
    session.node.routing = half_owned()
    assert not session.node.serves_every_slot()
    session.node.routing = routing.serve_everything("s1")
    assert session.node.serves_every_slot()


KEYS = [b"a", b"b", b"{a}x", b"key:000000012345", b"\xff"]
COMMANDS = [
    [b"SET", b"K", b"v"],
    [b"GET", b"K"],
    [b"INCR", b"K"],
    [b"DEL", b"K", b"{K}x"],
    [b"DEL", b"K", b"other"],
    [b"MGET", b"K"],
    [b"EXISTS", b"K", b"K"],
]


def general_path_reply(session: Session, argv: list[bytes]) -> object:
    """What the dispatcher must answer: _route's verdict always, then execution."""
    spec = TABLE[argv[0].lower()]
    error = session._route(spec, argv, key_slot(argv[spec.first_key]))
    if error is not None:
        return ErrorReply(error)
    try:
        return session.node.data.execute(spec, argv, NOW_MS, primary=session.node.routing.am_primary)[0]
    except CommandError as e:
        return ErrorReply(str(e))


@pytest.mark.parametrize("name", ROUTINGS)
@pytest.mark.parametrize("readonly", [False, True])
def test_routing_shortcut_answers_as_the_general_path(name, readonly):
    fast, slow = make_session(ROUTINGS[name]), make_session(ROUTINGS[name])
    fast.readonly = slow.readonly = readonly
    for key in KEYS:
        for template in COMMANDS:
            argv = [key if arg == b"K" else arg for arg in template]
            assert fast.execute(argv)[0] == general_path_reply(slow, argv), (name, argv)
    assert fast.node.data.keyspace.data == slow.node.data.keyspace.data


def test_every_spelling_of_a_command_name_finds_its_spec():
    session = make_session(routing.serve_everything("s1"))
    rng = random.Random(7)
    for name, spec in TABLE.items():
        mixed = bytes(c ^ 32 if 97 <= c <= 122 and rng.random() < 0.5 else c for c in name)
        for spelling in (name, name.upper(), mixed):
            found = session.node.lookup.get(spelling) or session.node.table.get(spelling.lower())
            assert found is spec, spelling
    assert session.execute([b"NOSUCH", b"x"])[0].startswith("ERR unknown command 'NOSUCH'")
    assert session.execute([b"sEt", b"k", b"v"]) == ("OK", 1)


# --- DataState: a single-key write's offset is what Visibility would say ---------

data_commands = st.one_of(
    st.tuples(st.just(b"SET"), st.sampled_from(KEYS), st.just(b"v")).map(list),
    st.tuples(st.just(b"GET"), st.sampled_from(KEYS)).map(list),
    st.tuples(st.just(b"INCR"), st.sampled_from(KEYS)).map(list),
    st.tuples(st.just(b"SET"), st.sampled_from(KEYS), st.just(b"1"), st.just(b"NX")).map(list),
    st.tuples(st.just(b"DEL"), st.sampled_from(KEYS), st.sampled_from(KEYS)).map(list),
    st.just([b"FLUSHALL"]),
    st.just([b"ACK"]),  # not a command: acknowledge everything applied so far
)


@settings(max_examples=200, deadline=None)  # a property of the result: no time bound (it flaked under load)
@given(st.lists(data_commands, max_size=40))
def test_required_offset_equals_what_visibility_says(commands):
    data = DataState()
    for argv in commands:
        if argv == [b"ACK"]:
            data.visibility.advance(data.applied_offset)
            continue
        spec = TABLE[argv[0].lower()]
        try:
            _, required = data.execute(spec, argv, NOW_MS, primary=True)
        except CommandError:  # "not an integer" and friends change nothing
            continue
        keys = [argv[i] for i in spec.key_positions(len(argv))]
        want = max((data.visibility.required(key) for key in keys), default=data.applied_offset)
        assert required == want, argv
        data.outbox.clear()


def test_key_slot_is_still_checked_for_crossslot_on_a_node_owning_everything():
    session = make_session(routing.serve_everything("s1"))
    assert key_slot(b"a") != key_slot(b"b")
    assert session.execute([b"DEL", b"a", b"b"])[0] == ErrorReply(errors.CROSSSLOT)


def test_logged_effects_drop_out_of_the_garbage_collectors_view():
    # The shell keeps millions of logged effects; as tuples of bytes the collector
    # stops walking them after one collection (see DataState.outbox).
    data = DataState()
    data.execute(TABLE[b"set"], [b"SET", b"k", b"v"], NOW_MS, primary=True)
    gc.collect()
    gc.collect()  # the (offset, effect) pair goes once its effect has gone
    entry = data.take_outbox()[0]
    assert entry == (1, (b"SET", b"k", b"v"))
    assert not gc.is_tracked(entry[1]) and not gc.is_tracked(entry)


@pytest.mark.parametrize("routes", [routing.serve_everything("s1"), half_owned()], ids=["shortcut", "general"])
def test_a_primary_whose_lease_expired_serves_nothing(routes) -> None:
    session = make_session(routes)
    session.mono_ms = session.node.lease_until_ms = 1_000
    for argv in ([b"SET", b"a", b"1"], [b"GET", b"a"], [b"SET", b"b", b"1"], [b"GET", b"b"]):
        reply = session.execute(argv)[0]
        assert reply.startswith("CLUSTERDOWN this primary's lease has expired") or reply.startswith("MOVED")
    assert session.node.data.keyspace.data == {}


def test_only_replies_that_describe_the_keyspace_wait_for_what_was_applied():
    # A replica applies records before its primary's watermark covers them; if its
    # primary dies, that watermark stalls. PING and CLUSTER SLOTS must still answer
    # (clients refresh the topology with them); INFO's key counts must not run ahead.
    session = make_session(half_owned(am_primary=False, replica_serving=True))
    session.readonly = True  # a replica lists keys only to READONLY connections
    session.node.data.apply_replicated(1, [b"SET", b"k", b"v"])
    applied = session.node.data.applied_offset
    assert applied == 1
    for argv in ([b"PING"], [b"ECHO", b"x"], [b"CLUSTER", b"MYID"], [b"COMMAND", b"COUNT"], [b"ROLE"]):
        assert session.execute(argv)[1] == 0, argv
    keyspace = ([b"INFO"], [b"INFO", b"default"], [b"INFO", b"all"], [b"info", b"replication", b"KEYSPACE"],
                [b"CLUSTER", b"COUNTKEYSINSLOT", b"0"], [b"cluster", b"getkeysinslot", b"0", b"1"])  # fmt: skip
    for argv in keyspace:
        assert session.execute(argv)[1] == applied, argv


def test_info_sections_that_reveal_no_data_answer_at_once():
    """INFO replication sent to a replica hung while its acknowledged offset was below its applied
    one (issue 10): INFO waited for every applied record, though only its keyspace section counts
    keys. A replica whose primary died stalls there until a failover, and ``INFO cluster`` is what
    the cluster tools ask every node."""
    session = make_session(half_owned(am_primary=False, replica_serving=True))
    session.node.data.apply_replicated(1, [b"SET", b"k", b"v"])
    for section in (b"replication", b"cluster", b"server", b"persistence", b"stats", b"clients"):
        reply, required = session.execute([b"INFO", section])
        assert required == 0 and f"# {section.decode().capitalize()}" in str(reply), section
    assert session.execute([b"INFO", b"Replication", b"cluster"])[1] == 0


# --- keyless commands (FLUSHALL, DBSIZE, KEYS, SCAN) obey the keyed rules ---------------

K_SLOT = str(key_slot(b"k")).encode()
# CLUSTER COUNTKEYSINSLOT and GETKEYSINSLOT were answered on any node: a replica served them to a
# connection that never sent READONLY, and while it was loading or catching up (stale counts and keys).
KEYLESS_READS = ([b"DBSIZE"], [b"KEYS", b"*"], [b"SCAN", b"0"], [b"CLUSTER", b"COUNTKEYSINSLOT", K_SLOT],
                 [b"CLUSTER", b"GETKEYSINSLOT", K_SLOT, b"10"])  # fmt: skip
NO_SHARD = Routing(half_owned().owners, None, False, {"s1": "h:1", "s2": "h:2"})


def _with_a_key(routes: Routing, readonly: bool = False) -> Session:
    session = make_session(routes)
    session.readonly = readonly
    session.node.data.apply_replicated(1, [b"SET", b"k", b"v"])
    session.node.data.visibility.advance(1)
    return session


@pytest.mark.parametrize(
    ("routes", "error"),
    [
        (half_owned(am_primary=False, replica_serving=True), errors.READONLY_REPLICA),
        (half_owned(am_primary=False, replica_serving=False), errors.READONLY_REPLICA),
        (routing.not_a_member(), errors.CLUSTERDOWN_NOT_MEMBER),
        (NO_SHARD, errors.NO_SHARD),
        (half_owned(writes_refused=errors.NOREPLICAS), errors.NOREPLICAS),
    ],
    ids=["replica", "replica loading or outside the ISR", "not a member", "no shard", "ISR too small"],
)
@pytest.mark.parametrize("readonly", [False, True])
def test_flushall_runs_only_on_a_primary(routes: Routing, error: str, readonly: bool) -> None:
    session = _with_a_key(routes, readonly)
    assert session.execute([b"FLUSHALL"]) == (ErrorReply(error), 0)
    assert session.node.data.keyspace.data == {b"k": b"v"}
    assert session.node.data.outbox == [(1, (b"SET", b"k", b"v"))]  # nothing logged at this node's offset


def test_the_replica_refusal_is_valkeys_line() -> None:
    assert errors.READONLY_REPLICA == "READONLY You can't write against a read only replica."


@pytest.mark.parametrize("argv", [[b"FLUSHALL"], *KEYLESS_READS])
@pytest.mark.parametrize("routes", [routing.serve_everything("s1"), half_owned()], ids=["all slots", "some slots"])
def test_a_primary_whose_lease_expired_runs_no_keyless_command(routes: Routing, argv: list[bytes]) -> None:
    session = _with_a_key(routes)
    session.mono_ms = session.node.lease_until_ms = 1_000
    assert session.execute(argv) == (ErrorReply(errors.LEASE_EXPIRED), 0)
    assert session.node.data.keyspace.data == {b"k": b"v"}


@pytest.mark.parametrize(
    ("routes", "readonly", "error"),
    [
        (half_owned(), False, None),
        (half_owned(am_primary=False, replica_serving=True), True, None),
        (half_owned(am_primary=False, replica_serving=True), False, errors.REPLICA_NEEDS_READONLY),
        (half_owned(am_primary=False, replica_serving=False), True, errors.MASTERDOWN),
        (routing.not_a_member(), True, errors.CLUSTERDOWN_NOT_MEMBER),
        (NO_SHARD, True, errors.NO_SHARD),
    ],
    ids=["primary", "serving replica, READONLY", "serving replica", "replica loading or outside the ISR",
         "not a member", "no shard"],
)
@pytest.mark.parametrize("argv", KEYLESS_READS)
def test_keyless_reads_follow_the_keyed_read_rules(routes: Routing, readonly: bool, error, argv) -> None:
    session = _with_a_key(routes, readonly)
    key_error = general_path_reply(_with_a_key(routes, readonly), [b"GET", b"k"])
    reply, required = session.execute(argv)
    if error is None:
        assert reply in (1, [b"k"], [b"0", [b"k"]]) and required == 1
        assert key_error == b"v"  # a keyed read of k is served here too
    else:
        assert reply == ErrorReply(error) and required == 0
        assert isinstance(key_error, ErrorReply)  # a keyed read is refused there as well


# --- expiry is the primary's decision (DESIGN §5.1) -----------------------------------


@pytest.mark.parametrize(
    ("argv", "hidden"), [([b"GET", b"k"], None), ([b"EXISTS", b"k"], 0), ([b"TTL", b"k"], -2), ([b"LLEN", b"k"], 0)]
)
def test_a_replica_read_hides_an_expired_key_and_waits_for_the_primarys_delete(argv: list[bytes], hidden) -> None:
    session = make_session(half_owned(am_primary=False, replica_serving=True))
    session.readonly = True
    data = session.node.data
    data.apply_replicated(1, [b"SET", b"k", b"v", b"PXAT", str(NOW_MS - 1).encode()])
    data.visibility.advance(1)
    data.take_outbox()
    assert session.execute(argv)[0] == hidden
    assert b"k" in data.keyspace.data  # still there: only the primary's DEL removes it
    assert data.applied_offset == 1 and data.outbox == []  # nothing logged at the replica's own offset
    data.apply_replicated(2, [b"DEL", b"k"])  # the primary's delete then applies cleanly
    assert b"k" not in data.keyspace.data


def test_a_primary_read_deletes_an_expired_key_and_logs_the_delete() -> None:
    session = make_session(routing.serve_everything("s1"))
    data = session.node.data
    data.execute(TABLE[b"set"], [b"SET", b"k", b"v", b"PXAT", str(NOW_MS - 1).encode()], NOW_MS - 2, primary=True)
    assert session.execute([b"GET", b"k"]) == (None, 2)
    assert b"k" not in data.keyspace.data and data.take_outbox()[-1] == (2, (b"DEL", b"k"))


def test_active_expiry_runs_as_a_primary_after_reads_served_as_a_replica() -> None:
    session = make_session(half_owned(am_primary=False, replica_serving=True))
    session.readonly = True
    data = session.node.data
    data.apply_replicated(1, [b"SET", b"k", b"v", b"PXAT", str(NOW_MS - 1).encode()])
    session.execute([b"GET", b"k"])
    assert data.expire_some(NOW_MS, random.Random(1)) == 1  # promoted: its expiry loop deletes
    assert b"k" not in data.keyspace.data


def test_a_command_on_a_paused_slot_goes_back_to_the_shell_reads_too() -> None:
    paused = dataclasses.replace(routing.serve_everything("s1"), paused=frozenset({key_slot(b"k")}))
    session = make_session(paused)
    assert not session.node.serves_every_slot()
    reply, _ = session.execute([b"SET", b"k", b"v"])
    assert isinstance(reply, Action) and reply.kind == "paused" and reply.args == ([b"SET", b"k", b"v"],)
    # A read too: the commit may have applied and the target taken newer writes (simulation, seed 46).
    reply, _ = session.execute([b"GET", b"k"])
    assert isinstance(reply, Action) and reply.kind == "paused"
    assert session.execute([b"SET", b"other", b"v"])[0] == "OK"
    assert session.execute([b"GET", b"other"])[0] == b"v"


@pytest.mark.parametrize(
    ("routes", "lease_left_ms", "wal_room"),
    [
        (routing.serve_everything("s1"), 0, True),  # deposed or cut off: the lease ran out
        (dataclasses.replace(routing.serve_everything("s1"), disk_full=True), 1_000, True),
        (routing.serve_everything("s1"), 1_000, False),
        (half_owned(am_primary=False, replica_serving=True), 1_000, True),
    ],
    ids=["lease ran out", "disk full", "WAL queue full", "replica"],
)
def test_active_expiry_deletes_only_on_a_primary_that_may_write(routes: Routing, lease_left_ms: int,
                                                                 wal_room: bool) -> None:  # fmt: skip
    session = make_session(routes)
    node, data = session.node, session.node.data
    data.apply_replicated(1, [b"SET", b"k", b"v", b"PXAT", str(NOW_MS - 1).encode()])
    data.take_outbox()
    node.lease_until_ms = 5_000 + lease_left_ms
    assert node.expire_some(NOW_MS, 5_000, random.Random(1), wal_room=wal_room) == 0
    assert b"k" in data.keyspace.data and data.outbox == [] and data.applied_offset == 1
    node.routing, node.lease_until_ms = routing.serve_everything("s1"), 6_000
    assert node.expire_some(NOW_MS, 5_000, random.Random(1), wal_room=True) == 1
    assert data.take_outbox() == [(2, (b"DEL", b"k"))]
