"""Set commands on Python sets: SADD, SREM, SMEMBERS, SISMEMBER, SCARD.

Theory of operation
-------------------
A set is a ``set[bytes]``; removing its last member deletes the key. SMEMBERS
returns a Python set so RESP3 clients get a set reply. SADD and SREM
propagate only the members they actually added or removed, and nothing at
all when they changed nothing.
"""

from typing import Any

from trionode.core.keyspace.store import Keyspace


def _lookup_set(ks: Keyspace, key: bytes) -> set | None:
    return ks.lookup_typed(key, set)


def cmd_sadd(ks: Keyspace, argv: list[bytes]) -> Any:
    key = argv[1]
    members = _lookup_set(ks, key)
    if members is None:
        members = set()
        ks.add(key, members)
    added: list[bytes] = []
    for member in argv[2:]:
        if member not in members:
            members.add(member)
            added.append(member)
    if added:
        ks.effects.append([b"SADD", key, *added])
    return len(added)


def cmd_srem(ks: Keyspace, argv: list[bytes]) -> Any:
    key = argv[1]
    members = _lookup_set(ks, key)
    if members is None:
        return 0
    removed: list[bytes] = []
    for member in argv[2:]:
        if member in members:
            members.remove(member)
            removed.append(member)
    ks.shrank(key, members, [b"SREM", key, *removed] if removed else None)
    return len(removed)


def cmd_smembers(ks: Keyspace, argv: list[bytes]) -> Any:
    members = _lookup_set(ks, argv[1])
    return set() if members is None else set(members)


def cmd_sismember(ks: Keyspace, argv: list[bytes]) -> Any:
    members = _lookup_set(ks, argv[1])
    return int(members is not None and argv[2] in members)


def cmd_scard(ks: Keyspace, argv: list[bytes]) -> Any:
    members = _lookup_set(ks, argv[1])
    return 0 if members is None else len(members)
