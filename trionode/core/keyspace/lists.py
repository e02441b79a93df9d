"""List commands on ``collections.deque``: pushes, pops, LRANGE, LLEN, LINDEX.

Theory of operation
-------------------
LPUSH/RPUSH share one push and LPOP/RPOP one pop, parameterised by end. A pop
that empties a list deletes the key (Redis never keeps an empty aggregate).
Pushes propagate as themselves; pops propagate as ``LPOP k n`` with the number
actually popped (plain ``LPOP k`` for the single form), which replays exactly.
Argument errors come before the key lookup where Redis orders them so (pop
count, LRANGE bounds) and after it where Redis does (LINDEX index).
"""

from collections import deque
from itertools import islice
from typing import Any

from trionode.core.errors import NOT_POSITIVE, CommandError, wrong_arity
from trionode.core.keyspace.store import Keyspace
from trionode.core.keyspace.values import parse_int
from trionode.core.reply import NULL_ARRAY


def _lookup_list(ks: Keyspace, key: bytes) -> deque | None:
    return ks.lookup_typed(key, deque)


def _push(ks: Keyspace, argv: list[bytes], left: bool) -> int:
    key = argv[1]
    items = _lookup_list(ks, key)
    if items is None:
        items = deque()
        ks.add(key, items)
    if left:
        items.extendleft(argv[2:])
    else:
        items.extend(argv[2:])
    ks.effects.append([b"LPUSH" if left else b"RPUSH", *argv[1:]])
    return len(items)


def cmd_lpush(ks: Keyspace, argv: list[bytes]) -> Any:
    return _push(ks, argv, left=True)


def cmd_rpush(ks: Keyspace, argv: list[bytes]) -> Any:
    return _push(ks, argv, left=False)


def _pop(ks: Keyspace, argv: list[bytes], left: bool) -> Any:
    name = b"LPOP" if left else b"RPOP"
    if len(argv) > 3:
        raise CommandError(wrong_arity(name.decode().lower()))
    has_count = len(argv) == 3
    count = parse_int(argv[2], NOT_POSITIVE) if has_count else 1
    if count < 0:
        raise CommandError(NOT_POSITIVE)
    key = argv[1]
    items = _lookup_list(ks, key)
    if items is None:
        return NULL_ARRAY if has_count else None
    if count == 0:
        return []
    take = min(count, len(items))
    popleft_or_pop = items.popleft if left else items.pop
    popped = [popleft_or_pop() for _ in range(take)]
    ks.shrank(key, items, [name, key, b"%d" % take] if has_count else [name, key])
    return popped if has_count else popped[0]


def cmd_lpop(ks: Keyspace, argv: list[bytes]) -> Any:
    return _pop(ks, argv, left=True)


def cmd_rpop(ks: Keyspace, argv: list[bytes]) -> Any:
    return _pop(ks, argv, left=False)


def cmd_lrange(ks: Keyspace, argv: list[bytes]) -> Any:
    start, stop = parse_int(argv[2]), parse_int(argv[3])
    items = _lookup_list(ks, argv[1])
    if items is None:
        return []
    size = len(items)
    start = max(start + size if start < 0 else start, 0)
    stop = stop + size if stop < 0 else stop
    if start > stop or start >= size:
        return []
    stop = min(stop, size - 1)
    return list(islice(items, start, stop + 1))


def cmd_llen(ks: Keyspace, argv: list[bytes]) -> Any:
    items = _lookup_list(ks, argv[1])
    return 0 if items is None else len(items)


def cmd_lindex(ks: Keyspace, argv: list[bytes]) -> Any:
    items = _lookup_list(ks, argv[1])
    if items is None:
        return None
    index = parse_int(argv[2])
    if index < 0:
        index += len(items)
    if index < 0 or index >= len(items):
        return None
    return items[index]
