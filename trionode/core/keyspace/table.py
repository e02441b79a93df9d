"""The keyspace command table: what Redis 7's COMMAND INFO says, plus a handler.

Theory of operation
-------------------
``KEYSPACE_COMMANDS`` maps each lower-case command name to its
:class:`CommandSpec`: arity, flags and key positions copied from Redis 7.0's
COMMAND INFO, and ``handler(ks, argv) -> reply``. The dispatcher checks arity
and routing, sets ``ks.now_ms``, calls the handler and drains ``ks.effects``.
:func:`execute` does the lookup and arity check for callers that have no
dispatcher of their own: WAL replay, replication apply and tests.
"""

from typing import Any

from trionode.core.command_spec import CommandSpec
from trionode.core.errors import CommandError, unknown_command, wrong_arity
from trionode.core.keyspace import hashes, keys, lists, sets, strings
from trionode.core.keyspace.store import Keyspace

R, W, F, D = "readonly", "write", "fast", "denyoom"

# name: (arity, flags, first_key, last_key, step, handler)
_TABLE: dict[str, tuple[int, tuple[str, ...], int, int, int, Any]] = {
    # strings
    "get": (2, (R, F), 1, 1, 1, strings.cmd_get),
    "set": (-3, (W, D), 1, 1, 1, strings.cmd_set),
    "setnx": (3, (W, D, F), 1, 1, 1, strings.cmd_setnx),
    "getset": (3, (W, D, F), 1, 1, 1, strings.cmd_getset),
    "getdel": (2, (W, F), 1, 1, 1, strings.cmd_getdel),
    "mget": (-2, (R, F), 1, -1, 1, strings.cmd_mget),
    "mset": (-3, (W, D), 1, -1, 2, strings.cmd_mset),
    "incr": (2, (W, D, F), 1, 1, 1, strings.cmd_incr),
    "incrby": (3, (W, D, F), 1, 1, 1, strings.cmd_incrby),
    "decr": (2, (W, D, F), 1, 1, 1, strings.cmd_decr),
    "decrby": (3, (W, D, F), 1, 1, 1, strings.cmd_decrby),
    "append": (3, (W, D, F), 1, 1, 1, strings.cmd_append),
    "strlen": (2, (R, F), 1, 1, 1, strings.cmd_strlen),
    # keys
    "del": (-2, (W,), 1, -1, 1, keys.cmd_del),
    "unlink": (-2, (W, F), 1, -1, 1, keys.cmd_del),
    "exists": (-2, (R, F), 1, -1, 1, keys.cmd_exists),
    "type": (2, (R, F), 1, 1, 1, keys.cmd_type),
    "expire": (-3, (W, F), 1, 1, 1, keys.cmd_expire),
    "pexpire": (-3, (W, F), 1, 1, 1, keys.cmd_pexpire),
    "expireat": (-3, (W, F), 1, 1, 1, keys.cmd_expireat),
    "pexpireat": (-3, (W, F), 1, 1, 1, keys.cmd_pexpireat),
    "ttl": (2, (R, F), 1, 1, 1, keys.cmd_ttl),
    "pttl": (2, (R, F), 1, 1, 1, keys.cmd_pttl),
    "expiretime": (2, (R, F), 1, 1, 1, keys.cmd_expiretime),
    "pexpiretime": (2, (R, F), 1, 1, 1, keys.cmd_pexpiretime),
    "persist": (2, (W, F), 1, 1, 1, keys.cmd_persist),
    "scan": (-2, (R,), 0, 0, 0, keys.cmd_scan),
    "keys": (2, (R,), 0, 0, 0, keys.cmd_keys),
    "dbsize": (1, (R, F), 0, 0, 0, keys.cmd_dbsize),
    "flushall": (-1, (W,), 0, 0, 0, keys.cmd_flushall),
    # lists
    "lpush": (-3, (W, D, F), 1, 1, 1, lists.cmd_lpush),
    "rpush": (-3, (W, D, F), 1, 1, 1, lists.cmd_rpush),
    "lpop": (-2, (W, F), 1, 1, 1, lists.cmd_lpop),
    "rpop": (-2, (W, F), 1, 1, 1, lists.cmd_rpop),
    "lrange": (4, (R,), 1, 1, 1, lists.cmd_lrange),
    "llen": (2, (R, F), 1, 1, 1, lists.cmd_llen),
    "lindex": (3, (R,), 1, 1, 1, lists.cmd_lindex),
    # hashes
    "hset": (-4, (W, D, F), 1, 1, 1, hashes.cmd_hset),
    "hget": (3, (R, F), 1, 1, 1, hashes.cmd_hget),
    "hdel": (-3, (W, F), 1, 1, 1, hashes.cmd_hdel),
    "hgetall": (2, (R,), 1, 1, 1, hashes.cmd_hgetall),
    "hlen": (2, (R, F), 1, 1, 1, hashes.cmd_hlen),
    "hincrby": (4, (W, D, F), 1, 1, 1, hashes.cmd_hincrby),
    # sets
    "sadd": (-3, (W, D, F), 1, 1, 1, sets.cmd_sadd),
    "srem": (-3, (W, F), 1, 1, 1, sets.cmd_srem),
    "smembers": (2, (R,), 1, 1, 1, sets.cmd_smembers),
    "sismember": (3, (R, F), 1, 1, 1, sets.cmd_sismember),
    "scard": (2, (R, F), 1, 1, 1, sets.cmd_scard),
}

KEYSPACE_COMMANDS: dict[str, CommandSpec] = {
    name: CommandSpec(name, arity, flags, first, last, step, handler)
    for name, (arity, flags, first, last, step, handler) in _TABLE.items()
}


def execute(ks: Keyspace, argv: list[bytes]) -> Any:
    """Look up, arity-check and run one keyspace command (replay, tests)."""
    assert argv, "empty command"
    name = argv[0].decode("utf-8", "replace").lower()
    spec = KEYSPACE_COMMANDS.get(name)
    if spec is None:
        raise CommandError(unknown_command(argv[0].decode("utf-8", "replace"), argv[1:]))
    if not spec.arity_ok(len(argv)):
        raise CommandError(wrong_arity(name))
    return spec.handler(ks, argv)
