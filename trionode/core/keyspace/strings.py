"""String commands: GET, SET and friends, counters, APPEND, STRLEN.

Theory of operation
-------------------
Every handler is ``handler(ks, argv) -> reply`` with ``argv[0]`` the command
name; arity is already checked. Handlers validate everything before their first
mutation, so an error leaves the keyspace as it was (a lazy-expiry DEL aside).

GET and plain ``SET k v`` are the hot path: they touch the dicts directly and
allocate one effect list at most. SET with options goes through one parser
that mirrors Redis's ``parseExtendedStringArgumentsOrReply`` (a repeated
option is fine, conflicting ones are a syntax error) and its expire checks.

Effects: SET propagates as ``SET k v [PXAT abs] [KEEPTTL]`` (NX/XX/GET are
resolved on the primary); counters as ``SET k n KEEPTTL``; GETSET as SET,
GETDEL as DEL; a deadline already past deletes the key and propagates DEL.
"""

from typing import Any

from trionode.core.errors import (
    DECR_OVERFLOW,
    OVERFLOW,
    STRING_TOO_LONG,
    SYNTAX,
    WRONGTYPE,
    CommandError,
    invalid_expire,
    wrong_arity,
)
from trionode.core.keyspace.store import Keyspace
from trionode.core.keyspace.values import INT64_MAX, INT64_MIN, add_int64, parse_int
from trionode.core.reply import OK
from trionode.limits import resp_bulk_bytes_max


def cmd_get(ks: Keyspace, argv: list[bytes]) -> Any:
    key = argv[1]
    value = ks.data.get(key)
    if value is None or (key in ks.expires and ks.expire_if_due(key)):
        return None
    if value.__class__ is not bytes:
        raise CommandError(WRONGTYPE)
    return value


def cmd_set(ks: Keyspace, argv: list[bytes]) -> Any:
    if len(argv) != 3:
        return _set_with_options(ks, argv)
    key = argv[1]
    value = argv[2]
    data = ks.data
    if key in data:
        # Overwriting needs no lazy expiry: the value and deadline are replaced.
        ks.garbage.discard(data[key])
        data[key] = value
        if key in ks.expires:
            ks.persist(key)
    else:
        ks.add(key, value)
    ks.effects.append([b"SET", key, value])
    return OK


class _SetOptions:
    __slots__ = ("deadline_ms", "get", "keep_ttl", "nx", "xx")

    def __init__(self) -> None:
        self.nx = self.xx = self.get = self.keep_ttl = False
        self.deadline_ms: int | None = None


_EXPIRE_UNITS = {b"ex": (1000, True), b"px": (1, True), b"exat": (1000, False), b"pxat": (1, False)}


def _parse_set_options(ks: Keyspace, argv: list[bytes]) -> _SetOptions:
    opts = _SetOptions()
    expire_kind: bytes | None = None
    expire_arg = b""
    j = 3
    while j < len(argv):
        opt = argv[j].lower()
        has_next = j + 1 < len(argv)
        if opt == b"nx" and not opts.xx:
            opts.nx = True
        elif opt == b"xx" and not opts.nx:
            opts.xx = True
        elif opt == b"get":
            opts.get = True
        elif opt == b"keepttl" and expire_kind is None:
            opts.keep_ttl = True
        elif opt in _EXPIRE_UNITS and not opts.keep_ttl and expire_kind in (None, opt) and has_next:
            # Redis lets the same unit repeat (last wins) but not two units.
            expire_kind, expire_arg = opt, argv[j + 1]
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1
    if expire_kind is not None:
        scale, relative = _EXPIRE_UNITS[expire_kind]
        opts.deadline_ms = _set_deadline_ms(ks, expire_arg, scale, relative)
    return opts


def _set_deadline_ms(ks: Keyspace, raw: bytes, scale: int, relative: bool) -> int:
    """Redis's getExpireMillisecondsOrReply: positive, no overflow in ms."""
    amount = parse_int(raw)
    if amount <= 0 or amount > INT64_MAX // scale:
        raise CommandError(invalid_expire("set"))
    deadline = amount * scale
    if relative:
        deadline += ks.clock()
        if deadline > INT64_MAX:
            raise CommandError(invalid_expire("set"))
    return deadline


def _set_with_options(ks: Keyspace, argv: list[bytes]) -> Any:
    opts = _parse_set_options(ks, argv)
    key, value = argv[1], argv[2]
    old = ks.lookup(key)
    if opts.get and old is not None and old.__class__ is not bytes:
        raise CommandError(WRONGTYPE)
    reply = old if opts.get else OK
    if (opts.nx and old is not None) or (opts.xx and old is None):
        return old if opts.get else None
    deadline = opts.deadline_ms
    now = ks.now_ms
    if deadline is not None and now is not None and deadline <= now:
        # Already past: the primary stores nothing and replicates a delete.
        if ks.delete(key):
            ks.effects.append([b"DEL", key])
        return reply
    ks.put_string(key, value, keep_ttl=opts.keep_ttl)
    effect = [b"SET", key, value]
    if deadline is not None:
        ks.set_deadline(key, deadline)
        effect += [b"PXAT", b"%d" % deadline]
    elif opts.keep_ttl:
        effect.append(b"KEEPTTL")
    ks.effects.append(effect)
    return reply


def _lookup_string(ks: Keyspace, key: bytes) -> bytes | None:
    return ks.lookup_typed(key, bytes)


def cmd_setnx(ks: Keyspace, argv: list[bytes]) -> Any:
    key, value = argv[1], argv[2]
    # SETNX only asks "does it exist": any type blocks it, no WRONGTYPE.
    if ks.lookup(key) is not None:
        return 0
    ks.add(key, value)
    ks.effects.append([b"SET", key, value])
    return 1


def cmd_getset(ks: Keyspace, argv: list[bytes]) -> Any:
    key, value = argv[1], argv[2]
    old = _lookup_string(ks, key)
    ks.put_string(key, value)
    ks.effects.append([b"SET", key, value])
    return old


def cmd_getdel(ks: Keyspace, argv: list[bytes]) -> Any:
    key = argv[1]
    old = _lookup_string(ks, key)
    if old is not None:
        ks.delete(key)
        ks.effects.append([b"DEL", key])
    return old


def cmd_mget(ks: Keyspace, argv: list[bytes]) -> Any:
    replies = []
    for key in argv[1:]:
        value = ks.lookup(key)
        # MGET never errors: a key of another type reads as nil.
        replies.append(value if value.__class__ is bytes else None)
    return replies


def cmd_mset(ks: Keyspace, argv: list[bytes]) -> Any:
    if len(argv) % 2 == 0:
        raise CommandError(wrong_arity("mset"))
    for i in range(1, len(argv), 2):
        ks.put_string(argv[i], argv[i + 1])
    ks.effects.append([b"MSET", *argv[1:]])
    return OK


def _incr_by(ks: Keyspace, key: bytes, delta: int) -> int:
    """The one counter step behind INCR, INCRBY, DECR and DECRBY."""
    old = _lookup_string(ks, key)
    current = 0 if old is None else parse_int(old)
    new = add_int64(current, delta, OVERFLOW)
    raw = b"%d" % new
    ks.put_string(key, raw, keep_ttl=True)
    ks.effects.append([b"SET", key, raw, b"KEEPTTL"])
    return new


def cmd_incr(ks: Keyspace, argv: list[bytes]) -> Any:
    return _incr_by(ks, argv[1], 1)


def cmd_decr(ks: Keyspace, argv: list[bytes]) -> Any:
    return _incr_by(ks, argv[1], -1)


def cmd_incrby(ks: Keyspace, argv: list[bytes]) -> Any:
    return _incr_by(ks, argv[1], parse_int(argv[2]))


def cmd_decrby(ks: Keyspace, argv: list[bytes]) -> Any:
    delta = parse_int(argv[2])
    if delta == INT64_MIN:  # its negation does not fit in int64
        raise CommandError(DECR_OVERFLOW)
    return _incr_by(ks, argv[1], -delta)


def cmd_append(ks: Keyspace, argv: list[bytes]) -> Any:
    key, tail = argv[1], argv[2]
    old = _lookup_string(ks, key)
    if old is None:
        ks.add(key, tail)
        new = tail
    else:
        if len(old) + len(tail) > resp_bulk_bytes_max:
            raise CommandError(STRING_TOO_LONG)
        new = old + tail
        ks.data[key] = new  # APPEND keeps the deadline
    ks.effects.append([b"APPEND", key, tail])
    return len(new)


def cmd_strlen(ks: Keyspace, argv: list[bytes]) -> Any:
    value = _lookup_string(ks, argv[1])
    return 0 if value is None else len(value)
