"""COMMAND and its subcommands, formatted as Valkey 8 formats them.

Theory of operation
-------------------
Every function takes the command table (``dict[str, CommandSpec]``, keyspace plus
server commands) as a parameter and returns reply values; nothing is cached, so
the table can grow without this module knowing. Subcommands come from
:data:`trionode.core.server_specs.SUBCOMMANDS` unless the caller passes others.

A :class:`CommandSpec` holds what the dispatcher needs (arity, flags, key range).
COMMAND also reports facts the dispatcher never reads: ACL categories, command
tips, key-spec flags, the documentation group. Those live in
:data:`COMMAND_FACTS`, keyed by full name; a command missing there still gets a
well-formed entry (group "generic", read or write key-spec flags).

As in Valkey:

- ACL categories are the explicit ones plus those implied by the flags
  (``write`` gives ``@write``, no ``fast`` gives ``@slow``, ...);
- every command with keys has one key spec, derived from its legacy
  first/last/step range (begin_search ``index``, find_keys ``range``);
- flags, categories, tips and key specs are RESP3 *sets*; their members go out in
  Valkey's table order, so :class:`ReplySet` keeps the order it was given.

The shell owns argument parsing of COMMAND itself (which subcommand, HELP).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trionode.core import errors
from trionode.core.command_spec import CommandSpec
from trionode.core.errors import CommandError
from trionode.core.reply import Simple
from trionode.core.server_specs import SUBCOMMANDS

Table = Mapping[str, CommandSpec]
Subcommands = Mapping[str, Mapping[str, CommandSpec]]


class ReplySet(frozenset):
    """A RESP3 set whose members are serialized in the order given (Valkey's table order).

    Equality is still set equality; only iteration is ordered.
    """

    __slots__ = ("_order",)

    def __new__(cls, members: Iterable[Any] = ()) -> "ReplySet":
        ordered = tuple(dict.fromkeys(members))
        self = super().__new__(cls, ordered)
        self._order = ordered
        return self

    def __iter__(self):  # type: ignore[override]
        return iter(self._order)

    def __repr__(self) -> str:
        return f"ReplySet({list(self._order)!r})"


class _SpecMap(dict):
    """A key-spec map: a RESP map that can sit in a RESP3 set, so it must hash."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(_frozen(self))


def _frozen(value: Any) -> Any:
    # Equal maps must hash alike whatever their insertion order.
    if isinstance(value, dict):
        return frozenset((key, _frozen(item)) for key, item in value.items())
    if isinstance(value, frozenset):
        return tuple(sorted(map(repr, value)))
    return value


# Valkey's reply orders. Hidden flags (sentinel, may_replicate, protected,
# touches_arbitrary_keys) are absent on purpose: Valkey never reports them.
FLAG_ORDER = (
    "write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript", "blocking",
    "loading", "stale", "skip_monitor", "skip_slowlog", "asking", "fast", "no_auth",
    "no_mandatory_keys", "no_async_loading", "no_multi", "movablekeys", "allow_busy",
)  # fmt: skip
CATEGORY_ORDER = (
    "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap",
    "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking",
    "dangerous", "connection", "transaction", "scripting",
)  # fmt: skip
KEY_FLAG_ORDER = (
    "RO", "RW", "OW", "RM", "access", "update", "insert", "delete", "not_key",
    "incomplete", "variable_flags",
)  # fmt: skip
# Categories a flag implies, as Valkey's setImplicitACLCategories adds them.
_IMPLIED = {
    "write": ("write",), "readonly": ("read",), "admin": ("admin", "dangerous"),
    "pubsub": ("pubsub",), "fast": ("fast",), "blocking": ("blocking",),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CommandFacts:
    """What COMMAND / COMMAND DOCS report beyond a CommandSpec (space-separated words)."""

    group: str
    since: str
    categories: str = ""  # explicit ACL categories, without "@"; implied ones are added
    tips: str = ""
    key_flags: str = ""  # flags of the command's key spec; default RO or RW
    key_notes: str = ""


def _f(group: str, since: str, categories: str = "", tips: str = "", key_flags: str = "") -> CommandFacts:
    return CommandFacts(group, since, categories, tips, key_flags)


_MULTI_SUM = "request_policy:multi_shard response_policy:agg_sum"
_ALL_SHARDS = "request_policy:all_shards"
_ALL_NODES_OK = "request_policy:all_nodes response_policy:all_succeeded"
_NONDET = "nondeterministic_output"
_NONDET_ORDER = "nondeterministic_output_order"

# Facts from Valkey 8.0's command definitions (src/commands/*.json).
COMMAND_FACTS: dict[str, CommandFacts] = {
    "get": _f("string", "1.0.0", "string", "", "RO access"),
    "set": CommandFacts(
        "string",
        "1.0.0",
        "string",
        "",
        "RW access update variable_flags",
        "RW and ACCESS due to the optional `GET` argument",
    ),
    "setnx": _f("string", "1.0.0", "string", "", "OW insert"),
    "getset": _f("string", "1.0.0", "string", "", "RW access update"),
    "getdel": _f("string", "6.2.0", "string", "", "RW access delete"),
    "mget": _f("string", "1.0.0", "string", "request_policy:multi_shard", "RO access"),
    "mset": _f(
        "string", "1.0.1", "string", "request_policy:multi_shard response_policy:all_succeeded", "OW update"
    ),
    "incr": _f("string", "1.0.0", "string", "", "RW access update"),
    "incrby": _f("string", "1.0.0", "string", "", "RW access update"),
    "decr": _f("string", "1.0.0", "string", "", "RW access update"),
    "decrby": _f("string", "1.0.0", "string", "", "RW access update"),
    "append": _f("string", "2.0.0", "string", "", "RW insert"),
    "strlen": _f("string", "2.2.0", "string", "", "RO"),
    "del": _f("generic", "1.0.0", "keyspace", _MULTI_SUM, "RM delete"),
    "unlink": _f("generic", "4.0.0", "keyspace", _MULTI_SUM, "RM delete"),
    "exists": _f("generic", "1.0.0", "keyspace", _MULTI_SUM, "RO"),
    "type": _f("generic", "1.0.0", "keyspace", "", "RO"),
    "expire": _f("generic", "1.0.0", "keyspace", "", "RW update"),
    "pexpire": _f("generic", "2.6.0", "keyspace", "", "RW update"),
    "ttl": _f("generic", "1.0.0", "keyspace", _NONDET, "RO access"),
    "pttl": _f("generic", "2.6.0", "keyspace", _NONDET, "RO access"),
    "persist": _f("generic", "2.2.0", "keyspace", "", "RW update"),
    "expireat": _f("generic", "1.2.0", "keyspace", "", "RW update"),
    "pexpireat": _f("generic", "2.6.0", "keyspace", "", "RW update"),
    "expiretime": _f("generic", "7.0.0", "keyspace", "", "RO access"),
    "pexpiretime": _f("generic", "7.0.0", "keyspace", "", "RO access"),
    "scan": _f("generic", "2.8.0", "keyspace", f"{_NONDET} request_policy:special response_policy:special"),
    "keys": _f("generic", "1.0.0", "keyspace dangerous", f"{_ALL_SHARDS} {_NONDET_ORDER}"),
    "dbsize": _f("server", "1.0.0", "keyspace", f"{_ALL_SHARDS} response_policy:agg_sum"),
    "flushall": _f("server", "1.0.0", "keyspace dangerous", f"{_ALL_SHARDS} response_policy:all_succeeded"),
    "lpush": _f("list", "1.0.0", "list", "", "RW insert"),
    "rpush": _f("list", "1.0.0", "list", "", "RW insert"),
    "lpop": _f("list", "1.0.0", "list", "", "RW access delete"),
    "rpop": _f("list", "1.0.0", "list", "", "RW access delete"),
    "lrange": _f("list", "1.0.0", "list", "", "RO access"),
    "llen": _f("list", "1.0.0", "list", "", "RO"),
    "lindex": _f("list", "1.0.0", "list", "", "RO access"),
    "hset": _f("hash", "2.0.0", "hash", "", "RW update"),
    "hget": _f("hash", "2.0.0", "hash", "", "RO access"),
    "hdel": _f("hash", "2.0.0", "hash", "", "RW delete"),
    "hgetall": _f("hash", "2.0.0", "hash", _NONDET_ORDER, "RO access"),
    "hlen": _f("hash", "2.0.0", "hash", "", "RO"),
    "hincrby": _f("hash", "2.0.0", "hash", "", "RW access update"),
    "sadd": _f("set", "1.0.0", "set", "", "RW insert"),
    "srem": _f("set", "1.0.0", "set", "", "RW delete"),
    "smembers": _f("set", "1.0.0", "set", _NONDET_ORDER, "RO access"),
    "sismember": _f("set", "1.0.0", "set", "", "RO"),
    "scard": _f("set", "1.0.0", "set", "", "RO"),
    "ping": _f("connection", "1.0.0", "connection", f"{_ALL_SHARDS} response_policy:all_succeeded"),
    "echo": _f("connection", "1.0.0", "connection"),
    "auth": _f("connection", "1.0.0", "connection"),
    "hello": _f("connection", "6.0.0", "connection"),
    "client": _f("connection", "2.4.0"),
    "client|setname": _f("connection", "2.6.9", "connection", _ALL_NODES_OK),
    "client|getname": _f("connection", "2.6.9", "connection"),
    "client|id": _f("connection", "5.0.0", "connection"),
    "client|setinfo": _f("connection", "7.2.0", "connection", _ALL_NODES_OK),
    "command": _f("server", "2.8.13", "connection", _NONDET_ORDER),
    "command|count": _f("server", "2.8.13", "connection"),
    "command|getkeys": _f("server", "2.8.13", "connection"),
    "command|info": _f("server", "2.8.13", "connection", _NONDET_ORDER),
    "command|list": _f("server", "7.0.0", "connection", _NONDET_ORDER),
    "command|docs": _f("server", "7.0.0", "connection", _NONDET_ORDER),
    "info": _f("server", "1.0.0", "dangerous", f"{_NONDET} {_ALL_SHARDS} response_policy:special"),
    "role": _f("server", "2.8.12", "admin dangerous"),
    "wait": _f("generic", "3.0.0", "connection", f"{_ALL_SHARDS} response_policy:agg_min"),
    "shutdown": _f("server", "1.0.0"),
    "select": _f("connection", "1.0.0", "connection"),
    "quit": _f("connection", "1.0.0", "connection"),
    "config": _f("server", "2.0.0"),
    "acl": _f("server", "6.0.0"),
    "acl|whoami": _f("server", "6.0.0"),
    "acl|list": _f("server", "6.0.0"),
    "acl|cat": _f("server", "6.0.0"),
    "acl|setuser": _f("server", "6.0.0"),
    "acl|deluser": _f("server", "6.0.0"),
    "config|get": _f("server", "2.0.0"),
    "readonly": _f("cluster", "3.0.0", "connection"),
    "readwrite": _f("cluster", "3.0.0", "connection"),
    "asking": _f("cluster", "3.0.0", "connection"),
    "cluster": _f("cluster", "3.0.0"),
    "cluster|slots": _f("cluster", "3.0.0", "", _NONDET),
    "cluster|shards": _f("cluster", "7.0.0", "", _NONDET),
    "cluster|nodes": _f("cluster", "3.0.0", "", _NONDET),
    "cluster|info": _f("cluster", "3.0.0", "", _NONDET),
    "cluster|myid": _f("cluster", "3.0.0"),
    "cluster|myshardid": _f("cluster", "7.2.0", "", _NONDET),
    "cluster|keyslot": _f("cluster", "3.0.0"),
    "cluster|countkeysinslot": _f("cluster", "3.0.0"),
    "cluster|getkeysinslot": _f("cluster", "3.0.0", "", _NONDET),
    "cluster|meet": _f("cluster", "3.0.0"),
    "cluster|forget": _f("cluster", "3.0.0"),
    "cluster|addslots": _f("cluster", "3.0.0"),
    "cluster|addslotsrange": _f("cluster", "7.0.0"),
    "cluster|replicate": _f("cluster", "3.0.0"),
    "cluster|failover": _f("cluster", "3.0.0"),
    "cluster|migrateslots": _f("cluster", "9.0.0"),
    "cluster|getslotmigrations": _f("cluster", "9.0.0"),
    "cluster|cancelslotmigrations": _f("cluster", "9.0.0"),
}


def _facts(spec: CommandSpec) -> CommandFacts:
    return COMMAND_FACTS.get(spec.name, CommandFacts("generic", ""))


def _ordered(words: Iterable[str], order: tuple[str, ...], prefix: str = "") -> ReplySet:
    present = set(words)
    assert present <= set(order), f"unknown names {present - set(order)}"
    return ReplySet(Simple(prefix + word) for word in order if word in present)


def acl_categories(spec: CommandSpec) -> frozenset[str]:
    """The ACL categories ``spec`` belongs to (without "@"), as COMMAND reports them and ACL checks them."""
    names = set(_facts(spec).categories.split())
    for flag in spec.flags:
        names.update(_IMPLIED.get(flag, ()))
    if "fast" not in names:
        names.add("slow")  # Valkey: whatever is not @fast is @slow
    return frozenset(names)


def _categories(spec: CommandSpec) -> ReplySet:
    return _ordered(acl_categories(spec), CATEGORY_ORDER, "@")


def _key_specs(spec: CommandSpec) -> ReplySet:
    if spec.first_key <= 0:
        return ReplySet()
    facts = _facts(spec)
    default_flags = "RO" if "readonly" in spec.flags else "RW"
    # find_keys.lastkey is relative to the first key when it is not counted from the end.
    lastkey = spec.last_key - spec.first_key if spec.last_key >= 0 else spec.last_key
    key_spec = _SpecMap({b"notes": facts.key_notes.encode()} if facts.key_notes else {})
    key_spec[b"flags"] = _ordered((facts.key_flags or default_flags).split(), KEY_FLAG_ORDER)
    key_spec[b"begin_search"] = {b"type": b"index", b"spec": {b"index": spec.first_key}}
    key_spec[b"find_keys"] = {
        b"type": b"range",
        b"spec": {b"lastkey": lastkey, b"keystep": spec.step, b"limit": 0},
    }
    return ReplySet([key_spec])


def _info(spec: CommandSpec, subcommands: Subcommands) -> list:
    subs = subcommands.get(spec.name, {})
    return [
        spec.name.encode(),
        spec.arity,
        _ordered(spec.flags, FLAG_ORDER),
        spec.first_key,
        spec.last_key,
        spec.step,
        _categories(spec),
        ReplySet(tip.encode() for tip in _facts(spec).tips.split()),
        _key_specs(spec),
        # Valkey sends an empty *set* for a command without subcommands, an array otherwise.
        [_info(sub, subcommands) for sub in subs.values()] if subs else ReplySet(),
    ]


def _lookup(table: Table, name: str, subcommands: Subcommands) -> CommandSpec | None:
    """Find ``name`` or ``container|sub`` the way COMMAND INFO names commands."""
    parts = name.lower().split("|")
    if len(parts) == 1:
        return table.get(parts[0])
    if len(parts) == 2 and parts[0] in table:
        return subcommands.get(parts[0], {}).get(name.lower())
    return None


def _text(name: bytes | str) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name


def command_reply(table: Table, subcommands: Subcommands = SUBCOMMANDS) -> list:
    """COMMAND (no arguments) and COMMAND INFO without names: every top-level command."""
    return [_info(spec, subcommands) for spec in table.values()]


def command_info(table: Table, names: Iterable[bytes | str], subcommands: Subcommands = SUBCOMMANDS) -> list:
    """COMMAND INFO name...: one entry per name, None (nil) where it is unknown."""
    found = (_lookup(table, _text(name), subcommands) for name in names)
    return [None if spec is None else _info(spec, subcommands) for spec in found]


def command_count(table: Table) -> int:
    """COMMAND COUNT counts top-level commands only, as Valkey does."""
    return len(table)


def command_list(table: Table, subcommands: Subcommands = SUBCOMMANDS) -> list[bytes]:
    """COMMAND LIST: each command, followed by its subcommands' full names."""
    names: list[bytes] = []
    for name in table:
        names.append(name.encode())
        names.extend(sub.encode() for sub in subcommands.get(name, {}))
    return names


def _resolve(table: Table, argv: list[bytes], subcommands: Subcommands) -> CommandSpec | None:
    # As Valkey's lookupCommand: a container with an argument names its subcommand.
    base = table.get(_text(argv[0]).lower())
    if base is None or len(argv) == 1 or base.name not in subcommands:
        return base
    return subcommands[base.name].get(f"{base.name}|{_text(argv[1]).lower()}")


def command_getkeys(table: Table, argv: list[bytes], subcommands: Subcommands = SUBCOMMANDS) -> list[bytes]:
    """COMMAND GETKEYS: ``argv`` is the command to inspect (what follows GETKEYS)."""
    if not argv:
        raise CommandError(errors.wrong_arity("command|getkeys"))
    spec = _resolve(table, argv, subcommands)
    if spec is None:
        raise CommandError(errors.GETKEYS_INVALID_COMMAND)
    if spec.first_key <= 0:
        raise CommandError(errors.GETKEYS_NO_KEYS)
    if not spec.arity_ok(len(argv)):
        raise CommandError(errors.GETKEYS_INVALID_ARGC)
    keys = [argv[i] for i in spec.key_positions(len(argv))]
    if not keys:
        raise CommandError(errors.GETKEYS_INVALID_ARGS)
    return keys


def _docs(spec: CommandSpec, subcommands: Subcommands) -> dict:
    facts = _facts(spec)
    doc: dict = {b"since": facts.since.encode()} if facts.since else {}
    doc[b"group"] = facts.group.encode()
    subs = subcommands.get(spec.name, {})
    if subs:
        doc[b"subcommands"] = {name.encode(): _docs(sub, subcommands) for name, sub in subs.items()}
    return doc


def command_docs(
    table: Table, names: Iterable[bytes | str] = (), subcommands: Subcommands = SUBCOMMANDS
) -> dict:
    """COMMAND DOCS [name...]: a map from name to a minimal doc map; unknown names are skipped."""
    wanted = [_text(name) for name in names]
    if not wanted:
        return {name.encode(): _docs(spec, subcommands) for name, spec in table.items()}
    docs = {}
    for name in wanted:
        spec = _lookup(table, name, subcommands)
        if spec is not None:
            docs[spec.name.encode()] = _docs(spec, subcommands)
    return docs
