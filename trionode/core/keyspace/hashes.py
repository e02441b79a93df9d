"""Hash commands on plain dicts: HSET, HGET, HDEL, HGETALL, HLEN, HINCRBY.

Theory of operation
-------------------
A hash is a ``dict[bytes, bytes]``; removing its last field deletes the key.
HGETALL returns a dict so RESP3 clients get a map (RESP2 flattens it).
HSET propagates as itself, HDEL with only the fields it removed, and HINCRBY
as ``HSET k field newval`` so replay needs no arithmetic.
"""

from typing import Any

from trionode.core.errors import HASH_NOT_INTEGER, OVERFLOW, CommandError, wrong_arity
from trionode.core.keyspace.store import Keyspace
from trionode.core.keyspace.values import add_int64, parse_int


def _lookup_hash(ks: Keyspace, key: bytes) -> dict | None:
    return ks.lookup_typed(key, dict)


def _hash_for_write(ks: Keyspace, key: bytes) -> dict:
    fields = _lookup_hash(ks, key)
    if fields is None:
        fields = {}
        ks.add(key, fields)
    return fields


def cmd_hset(ks: Keyspace, argv: list[bytes]) -> Any:
    if len(argv) % 2 == 1:
        raise CommandError(wrong_arity("hset"))
    fields = _hash_for_write(ks, argv[1])
    before = len(fields)
    for i in range(2, len(argv), 2):
        fields[argv[i]] = argv[i + 1]
    ks.effects.append([b"HSET", *argv[1:]])
    return len(fields) - before


def cmd_hget(ks: Keyspace, argv: list[bytes]) -> Any:
    fields = _lookup_hash(ks, argv[1])
    return None if fields is None else fields.get(argv[2])


def cmd_hdel(ks: Keyspace, argv: list[bytes]) -> Any:
    key = argv[1]
    fields = _lookup_hash(ks, key)
    if fields is None:
        return 0
    removed = [name for name in argv[2:] if fields.pop(name, None) is not None]
    ks.shrank(key, fields, [b"HDEL", key, *removed] if removed else None)
    return len(removed)


def cmd_hgetall(ks: Keyspace, argv: list[bytes]) -> Any:
    fields = _lookup_hash(ks, argv[1])
    return {} if fields is None else dict(fields)


def cmd_hlen(ks: Keyspace, argv: list[bytes]) -> Any:
    fields = _lookup_hash(ks, argv[1])
    return 0 if fields is None else len(fields)


def cmd_hincrby(ks: Keyspace, argv: list[bytes]) -> Any:
    key, name = argv[1], argv[2]
    delta = parse_int(argv[3])
    fields = _lookup_hash(ks, key)
    old = None if fields is None else fields.get(name)
    current = 0 if old is None else parse_int(old, HASH_NOT_INTEGER)
    new = add_int64(current, delta, OVERFLOW)
    raw = b"%d" % new
    # Validate everything before creating the hash, so a failure adds no key.
    _hash_for_write(ks, key)[name] = raw
    ks.effects.append([b"HSET", key, name, raw])
    return new
