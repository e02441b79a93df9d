"""Generic key commands: DEL, EXISTS, TYPE, deadlines, SCAN, KEYS, DBSIZE, FLUSHALL.

Theory of operation
-------------------
The EXPIRE family (EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT) is one function
parameterised by unit and base time, following Redis's
``expireGenericCommand``: options first, then the number, overflow checks,
then NX/XX/GT/LT against the current deadline. A deadline that is already
due deletes the key (effect ``DEL k``); otherwise the effect is always
``PEXPIREAT k abs``, which replays without a clock. TTL, PTTL, EXPIRETIME and
PEXPIRETIME are likewise one function.

SCAN's cursor is the next slot to visit. A call returns every key of whole
slots, taking consecutive slots until COUNT keys were gathered, so a key
present for the whole iteration is returned at least once, whatever is added
or removed between calls. MATCH and TYPE filter after gathering, as in Redis.
KEYS and SCAN skip expired keys without deleting them (reads stay effect-free).
DBSIZE, KEYS and SCAN skip the keyspace's hidden slots (staged and leftover
keys of a slot migration).
"""

from collections.abc import Callable
from typing import Any

from trionode import limits
from trionode.core.errors import (
    EXPIRE_GT_LT_CONFLICT,
    EXPIRE_NX_CONFLICT,
    INVALID_CURSOR,
    SYNTAX,
    CommandError,
    invalid_expire,
    unsupported_option,
)
from trionode.core.keyspace.pattern import glob_match
from trionode.core.keyspace.store import TYPE_NAMES, Keyspace
from trionode.core.keyspace.values import INT64_MAX, parse_cursor, parse_int
from trionode.core.reply import OK, Simple

Handler = Callable[[Keyspace, list[bytes]], Any]

SCAN_COUNT_DEFAULT = 10
# C integer division truncates toward zero; Python's // floors.
_SECONDS_MIN = -(-(-INT64_MAX - 1) // 1000)


def cmd_del(ks: Keyspace, argv: list[bytes]) -> Any:
    """DEL and UNLINK: counts live keys; one DEL effect for all keys removed."""
    removed: list[bytes] = []
    live = 0
    for key in argv[1:]:
        # An expired key is removed too, but Redis does not count it.
        was_live = ks.is_live(key)
        if ks.delete(key):
            removed.append(key)
            live += was_live
    if removed:
        ks.effects.append([b"DEL", *removed])
    return live


def cmd_exists(ks: Keyspace, argv: list[bytes]) -> Any:
    return sum(1 for key in argv[1:] if ks.lookup(key) is not None)


def cmd_type(ks: Keyspace, argv: list[bytes]) -> Any:
    value = ks.lookup(argv[1])
    return Simple("none" if value is None else TYPE_NAMES[value.__class__])


# --- deadlines -------------------------------------------------------------------


def _parse_expire_flags(options: list[bytes]) -> set[bytes]:
    flags: set[bytes] = set()
    for raw in options:
        opt = raw.lower()
        if opt not in (b"nx", b"xx", b"gt", b"lt"):
            raise CommandError(unsupported_option(raw.decode("utf-8", "replace")))
        flags.add(opt)
    if b"nx" in flags and len(flags) > 1:
        raise CommandError(EXPIRE_NX_CONFLICT)
    if b"gt" in flags and b"lt" in flags:
        raise CommandError(EXPIRE_GT_LT_CONFLICT)
    return flags


def _flags_allow(flags: set[bytes], current: int | None, deadline: int) -> bool:
    """NX/XX/GT/LT against the current deadline; None means no deadline (infinite)."""
    if b"nx" in flags and current is not None:
        return False
    if b"xx" in flags and current is None:
        return False
    if b"gt" in flags and (current is None or deadline <= current):
        return False
    return not (b"lt" in flags and current is not None and deadline >= current)


def _expire(ks: Keyspace, argv: list[bytes], name: str, in_seconds: bool, relative: bool) -> int:
    flags = _parse_expire_flags(argv[3:])
    when = parse_int(argv[2])
    if in_seconds:
        if when > INT64_MAX // 1000 or when < _SECONDS_MIN:
            raise CommandError(invalid_expire(name))
        when *= 1000
    base = ks.clock() if relative else 0
    if when > INT64_MAX - base:
        raise CommandError(invalid_expire(name))
    when += base
    key = argv[1]
    if ks.lookup(key) is None or not _flags_allow(flags, ks.expires.get(key), when):
        return 0
    now = ks.now_ms
    if now is not None and when <= now:
        ks.delete(key)
        ks.effects.append([b"DEL", key])
    else:
        ks.set_deadline(key, when)
        ks.effects.append([b"PEXPIREAT", key, b"%d" % when])
    return 1


def _variant(command: str, impl: Callable[..., Any], **options: Any) -> Handler:
    """``cmd_<command>``: ``impl(ks, argv, **options)``, for commands that differ only in options."""

    def handler(ks: Keyspace, argv: list[bytes]) -> Any:
        return impl(ks, argv, **options)

    handler.__name__ = f"cmd_{command}"
    return handler


cmd_expire = _variant("expire", _expire, name="expire", in_seconds=True, relative=True)
cmd_pexpire = _variant("pexpire", _expire, name="pexpire", in_seconds=False, relative=True)
cmd_expireat = _variant("expireat", _expire, name="expireat", in_seconds=True, relative=False)
cmd_pexpireat = _variant("pexpireat", _expire, name="pexpireat", in_seconds=False, relative=False)


def _ttl(ks: Keyspace, argv: list[bytes], in_ms: bool, absolute: bool) -> int:
    key = argv[1]
    if ks.lookup(key) is None:
        return -2
    deadline = ks.expires.get(key)
    if deadline is None:
        return -1
    left = max(0, deadline if absolute else deadline - ks.clock())
    return left if in_ms else (left + 500) // 1000


cmd_ttl = _variant("ttl", _ttl, in_ms=False, absolute=False)
cmd_pttl = _variant("pttl", _ttl, in_ms=True, absolute=False)
cmd_expiretime = _variant("expiretime", _ttl, in_ms=False, absolute=True)
cmd_pexpiretime = _variant("pexpiretime", _ttl, in_ms=True, absolute=True)


def cmd_persist(ks: Keyspace, argv: list[bytes]) -> Any:
    key = argv[1]
    if ks.lookup(key) is None or not ks.persist(key):
        return 0
    ks.effects.append([b"PERSIST", key])
    return 1


# --- iteration ---------------------------------------------------------------------


def _parse_scan_options(argv: list[bytes]) -> tuple[int, bytes | None, str | None]:
    count, pattern, type_name = SCAN_COUNT_DEFAULT, None, None
    i = 2
    while i < len(argv):
        opt = argv[i].lower()
        if len(argv) - i < 2 or opt not in (b"count", b"match", b"type"):
            raise CommandError(SYNTAX)
        arg = argv[i + 1]
        if opt == b"count":
            count = parse_int(arg)
            if count < 1:
                raise CommandError(SYNTAX)
        elif opt == b"match":
            pattern = None if arg == b"*" else arg
        else:
            type_name = arg.decode("utf-8", "replace").lower()
        i += 2
    return min(count, limits.scan_count_max), pattern, type_name


def cmd_scan(ks: Keyspace, argv: list[bytes]) -> Any:
    slot = parse_cursor(argv[1], INVALID_CURSOR)
    count, pattern, type_name = _parse_scan_options(argv)
    gathered: list[bytes] = []
    hidden = ks.hidden
    while slot < limits.slots_count and len(gathered) < count:
        if slot not in hidden:
            gathered.extend(ks.slot_keys[slot])
        slot += 1
    cursor = slot if slot < limits.slots_count else 0
    keys = [
        key
        for key in gathered
        if ks.is_live(key)
        and (pattern is None or glob_match(pattern, key))
        and (type_name is None or TYPE_NAMES[ks.data[key].__class__] == type_name)
    ]
    return [b"%d" % cursor, keys]


def cmd_keys(ks: Keyspace, argv: list[bytes]) -> Any:
    pattern = argv[1]
    if pattern == b"*":
        return [key for key in ks.visible_keys() if ks.is_live(key)]
    return [key for key in ks.visible_keys() if glob_match(pattern, key) and ks.is_live(key)]


def cmd_dbsize(ks: Keyspace, argv: list[bytes]) -> Any:
    return ks.visible_count()


def cmd_flushall(ks: Keyspace, argv: list[bytes]) -> Any:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() not in (b"sync", b"async")):
        raise CommandError(SYNTAX)
    ks.flush()
    ks.effects.append([b"FLUSHALL"])
    return OK
