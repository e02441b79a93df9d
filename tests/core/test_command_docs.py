"""COMMAND, COMMAND INFO/COUNT/LIST/GETKEYS/DOCS against Valkey 8 and redis-py's parsers."""

import importlib

import pytest
from redis._parsers.commands import CommandsParser, RequestPolicy
from redis._parsers.helpers import parse_command
from redis.exceptions import ResponseError

from trionode.core import errors
from trionode.core.command_docs import (
    COMMAND_FACTS,
    ReplySet,
    command_count,
    command_docs,
    command_getkeys,
    command_info,
    command_list,
    command_reply,
)
from trionode.core.command_spec import CommandSpec
from trionode.core.errors import CommandError
from trionode.core.reply import Simple
from trionode.core.server_specs import SERVER_COMMANDS, SUBCOMMANDS

# A stand-in for the keyspace table, with Valkey's specs for the commands used here.
KEYSPACE = {
    spec.name: spec
    for spec in (
        CommandSpec("get", 2, ("readonly", "fast"), 1, 1, 1),
        CommandSpec("set", -3, ("write", "denyoom"), 1, 1, 1),
        CommandSpec("mset", -3, ("write", "denyoom"), 1, -1, 2),
        CommandSpec("del", -2, ("write",), 1, -1, 1),
        CommandSpec("keys", 2, ("readonly",)),
    )
}
TABLE = {**KEYSPACE, **SERVER_COMMANDS}

GET_KEY_SPEC = {
    b"flags": ReplySet([Simple("RO"), Simple("access")]),
    b"begin_search": {b"type": b"index", b"spec": {b"index": 1}},
    b"find_keys": {b"type": b"range", b"spec": {b"lastkey": 0, b"keystep": 1, b"limit": 0}},
}

# Captured from a real server (COMMAND INFO get nosuch, after HELLO 3).
GET_INFO_RESP3 = (
    b"*2\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n"
    b"~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n"
    b"$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n"
    b"$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n"
    b"$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n~0\r\n_\r\n"
)
# Captured from a real server (COMMAND INFO mset, RESP2).
MSET_INFO_RESP2 = (
    b"*1\r\n*10\r\n$4\r\nmset\r\n:-3\r\n*2\r\n+write\r\n+denyoom\r\n:1\r\n:-1\r\n:2\r\n"
    b"*3\r\n+@write\r\n+@string\r\n+@slow\r\n*2\r\n$26\r\nrequest_policy:multi_shard\r\n"
    b"$29\r\nresponse_policy:all_succeeded\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+OW\r\n+update\r\n"
    b"$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n"
    b"$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n"
    b"$7\r\nkeystep\r\n:2\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"
)


def resp2(value):
    """What a RESP2 client reads back: maps flatten, sets become arrays, simple strings bytes."""
    if isinstance(value, dict):
        return [item for key, val in value.items() for item in (resp2(key), resp2(val))]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [resp2(item) for item in value]
    if isinstance(value, str):
        return value.encode()
    return value


def ordered(value):
    """Sets as lists, in the order they iterate (the order they go on the wire)."""
    if isinstance(value, dict):
        return {key: ordered(val) for key, val in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [ordered(item) for item in value]
    return value


def test_info_get_matches_valkey():
    (entry,) = command_info(TABLE, [b"GET"])
    assert ordered(entry) == [
        b"get", 2, ["readonly", "fast"], 1, 1, 1, ["@read", "@string", "@fast"], [],
        [ordered(GET_KEY_SPEC)], [],
    ]  # fmt: skip
    assert all(isinstance(flag, Simple) for flag in entry[2] | entry[6])
    assert isinstance(entry[7], frozenset) and isinstance(entry[9], frozenset)  # RESP3 sets


def test_info_mset_tips_and_relative_lastkey():
    (entry,) = command_info(TABLE, ["mset"])
    assert entry[3:6] == [1, -1, 2]
    assert list(entry[6]) == ["@write", "@string", "@slow"]
    assert list(entry[7]) == [b"request_policy:multi_shard", b"response_policy:all_succeeded"]
    (key_spec,) = entry[8]
    assert key_spec[b"find_keys"][b"spec"] == {b"lastkey": -1, b"keystep": 2, b"limit": 0}


def test_info_set_key_spec_has_notes_first():
    (entry,) = command_info(TABLE, ["set"])
    (key_spec,) = entry[8]
    assert list(key_spec) == [b"notes", b"flags", b"begin_search", b"find_keys"]
    assert list(key_spec[b"flags"]) == ["RW", "access", "update", "variable_flags"]


def test_info_unknown_is_nil_and_subcommands_resolve():
    reply = command_info(TABLE, [b"nosuch", b"cluster|SLOTS", b"get|x", b"cluster|nosuch"])
    assert reply[0] is None and reply[2] is None and reply[3] is None
    assert ordered(reply[1]) == [
        b"cluster|slots", 2, ["loading", "stale"], 0, 0, 0, ["@slow"], [b"nondeterministic_output"], [], [],
    ]  # fmt: skip


def test_categories_follow_flags():
    info = {entry[0]: entry for entry in command_reply(TABLE)}
    assert list(info[b"keys"][6]) == ["@keyspace", "@read", "@slow", "@dangerous"]
    assert list(info[b"ping"][6]) == ["@fast", "@connection"]
    assert list(info[b"shutdown"][6]) == ["@admin", "@slow", "@dangerous"]
    assert list(info[b"role"][6]) == ["@admin", "@fast", "@dangerous"]


def test_container_lists_subcommands_as_array():
    (client,) = command_info(TABLE, ["client"])
    assert isinstance(client[9], list)
    assert [sub[0] for sub in client[9]] == [
        b"client|setname",
        b"client|getname",
        b"client|id",
        b"client|setinfo",
    ]
    assert list(client[9][0][7]) == [b"request_policy:all_nodes", b"response_policy:all_succeeded"]


def test_count_and_list():
    assert command_count(TABLE) == len(KEYSPACE) + len(SERVER_COMMANDS)
    names = command_list(TABLE)
    assert names[:2] == [b"get", b"set"]
    assert b"cluster|shards" in names and b"command|getkeys" in names
    assert len(names) == command_count(TABLE) + sum(len(subs) for subs in SUBCOMMANDS.values())
    assert len(command_reply(TABLE)) == command_count(TABLE)


def test_getkeys():
    assert command_getkeys(TABLE, [b"mset", b"a", b"1", b"b", b"2"]) == [b"a", b"b"]
    assert command_getkeys(TABLE, [b"DEL", b"x", b"y", b"z"]) == [b"x", b"y", b"z"]
    assert command_getkeys(TABLE, [b"get", b"k"]) == [b"k"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([b"nosuch", b"k"], "ERR Invalid command specified"),
        ([b"client", b"nosuch"], "ERR Invalid command specified"),
        ([b"ping"], "ERR The command has no key arguments"),
        ([b"cluster", b"slots"], "ERR The command has no key arguments"),
        ([b"get"], "ERR Invalid number of arguments specified for command"),
        ([b"get", b"a", b"b"], "ERR Invalid number of arguments specified for command"),
        ([], "ERR wrong number of arguments for 'command|getkeys' command"),
    ],
)
def test_getkeys_errors(argv, message):
    with pytest.raises(CommandError) as raised:
        command_getkeys(TABLE, argv)
    assert str(raised.value) == message


def test_getkeys_error_constants_spelling():
    assert errors.GETKEYS_INVALID_ARGS == "ERR Invalid arguments specified for command"


def test_docs():
    assert command_docs(TABLE, [b"get", b"nosuch", "CLIENT"]) == {
        b"get": {b"since": b"1.0.0", b"group": b"string"},
        b"client": {
            b"since": b"2.4.0",
            b"group": b"connection",
            b"subcommands": {
                b"client|setname": {b"since": b"2.6.9", b"group": b"connection"},
                b"client|getname": {b"since": b"2.6.9", b"group": b"connection"},
                b"client|id": {b"since": b"5.0.0", b"group": b"connection"},
                b"client|setinfo": {b"since": b"7.2.0", b"group": b"connection"},
            },
        },
    }
    assert command_docs(TABLE, [b"nosuch"]) == {}
    assert set(command_docs(TABLE)) == {name.encode() for name in TABLE}


def test_reply_set_keeps_order_and_set_equality():
    members = [Simple(word) for word in ("write", "readonly", "denyoom", "fast", "loading")]
    assert list(ReplySet(members)) == members
    assert ReplySet(members) == frozenset(reversed(members))
    assert len(ReplySet([b"a", b"a"])) == 1


# --- redis-py compatibility ------------------------------------------------------


def test_parse_command_in_redis_py():
    parsed = parse_command(resp2(command_reply(TABLE)))
    assert parsed["mset"]["flags"] == ["write", "denyoom"]
    mset = parsed["mset"]
    assert (mset["first_key_pos"], mset["last_key_pos"], mset["step_count"]) == (1, -1, 2)
    assert parsed["cluster"]["subcommands"][0][0] == b"cluster|slots"


class FakeNode:
    """Just enough of a redis-py connection for CommandsParser, backed by our COMMAND replies."""

    def command(self):
        return parse_command(resp2(command_reply(TABLE)))

    def execute_command(self, *args):
        assert args[0] == "COMMAND GETKEYS"
        try:
            return command_getkeys(TABLE, [a.encode() if isinstance(a, str) else a for a in args[1:]])
        except CommandError as err:
            raise ResponseError(str(err).removeprefix("ERR ")) from err


def test_commands_parser_finds_keys_and_policies():
    node = FakeNode()
    parser = CommandsParser(node)
    assert parser.get_keys(node, "MSET", "a", "1", "b", "2") == ["a", "b"]
    assert parser.get_keys(node, "GET", "k") == ["k"]
    assert parser.get_keys(node, "CLUSTER", "SLOTS") is None
    policies = parser.get_command_policies()["core"]
    assert policies["keys"].request_policy == RequestPolicy.ALL_SHARDS
    assert policies["mset"].request_policy == RequestPolicy.MULTI_SHARD
    assert policies["get"].request_policy == RequestPolicy.DEFAULT_KEYED
    assert policies["client setname"].request_policy == RequestPolicy.ALL_NODES


# --- the real tables and the real serializer, once they exist ----------------------


def test_every_real_command_has_valkey_facts():
    keyspace = importlib.import_module("trionode.core.keyspace")
    if not hasattr(keyspace, "KEYSPACE_COMMANDS"):
        pytest.skip("KEYSPACE_COMMANDS not written yet")
    table = {**keyspace.KEYSPACE_COMMANDS, **SERVER_COMMANDS}
    names = set(table) | {sub for subs in SUBCOMMANDS.values() for sub in subs}
    assert names - set(COMMAND_FACTS) == set()
    assert len(command_reply(table)) == len(table)


def test_encoded_bytes_match_a_real_server():
    resp = pytest.importorskip("trionode.core.resp")
    assert resp.encode(command_info(TABLE, [b"get", b"nosuch"]), 3) == GET_INFO_RESP3
    assert resp.encode(command_info(TABLE, [b"mset"]), 2) == MSET_INFO_RESP2


@pytest.mark.parametrize("proto", [2, 3])
def test_wire_command_round_trip_in_redis_py(proto):
    from redis._parsers.helpers import parse_command_resp3

    from tests.core.test_cluster_view import through_redis_py

    parse = parse_command if proto == 2 else parse_command_resp3
    parsed = parse(through_redis_py(command_reply(TABLE), proto))
    assert set(parsed) == set(TABLE)
    assert set(parsed["get"]["flags"]) == {"readonly", "fast"}
    (key_spec,) = parsed["get"]["key_specifications"]
    if proto == 3:
        assert key_spec[b"begin_search"] == {b"type": b"index", b"spec": {b"index": 1}}
    else:
        assert key_spec[2:4] == [b"begin_search", [b"type", b"index", b"spec", [b"index", 1]]]
