"""RESP2/RESP3 wire protocol: request parser, reply serializer, reply parser.

Theory of operation
-------------------
Bytes go in through ``feed``; complete values come out of ``next_command`` /
``next_reply``, or the sentinel ``NEED_DATA`` when the buffered bytes end in the
middle of one. Nothing here blocks, reads a clock or touches a socket: the trio
shell reads, feeds, drains until ``NEED_DATA``, executes, and writes what
``encode_into`` appended to its output buffer.

Buffering. The unparsed input is one ``bytes`` object plus a read position,
because slicing ``bytes`` hands out arguments with a single copy (half the cost
of slicing a bytearray and converting). A feed that arrives when everything
was consumed is adopted without copying. While the parser knows it cannot make
progress (a bulk whose payload is still short, or a header line with no
terminator yet) new data is parked in a chunk list and joined once, so a large
value arriving in many reads costs linear, not quadratic, copying.

Invariants:
- Provided the shell feeds only after ``NEED_DATA`` (as it must, to act on
  every command), the buffer holds at most one read beyond the bound of what is
  pending: ``bulk_bytes_max + 2`` for a bulk, ``inline_bytes_max + 1`` for a
  line. Oversized lengths are refused when their header arrives.
- Line-length rules are measured on the whole line up to its terminator, so a
  request gets the same verdict however the bytes are split across reads.
  (Redis checks only unterminated lines; we are stricter, never looser.)
- A ``ProtocolError`` is sticky: every later call raises it again. ``str(err)``
  is the exact Redis error line; the shell sends it and closes the connection.

Leniencies copied from Redis on purpose: ``*0`` and ``*-N`` requests are
ignored, the two bytes after a bulk payload are skipped unchecked, inline lines
stop at a NUL byte, and blank inline lines are skipped.

The serializer handles exactly the reply types of ``trionode.core.reply``.
"""

import math
import re
from collections.abc import Iterator, Sequence
from typing import Any, Final

from trionode import limits
from trionode.core import errors
from trionode.core.reply import NULL_ARRAY, ErrorReply, Simple, Verbatim


class NeedDataType:
    """Type of ``NEED_DATA``; a sentinel, because running dry is not an error."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedDataType()


class ProtocolError(Exception):
    """The peer broke the protocol. ``str(err)`` is the Redis error line (no ``-``, no CRLF)."""


_CRLF: Final = b"\r\n"
_STAR: Final = 42  # b"*"
_DOLLAR: Final = 36  # b"$"
# Longest decimal that can be a valid signed 64-bit length; also keeps int()
# away from Python's 4300-digit conversion limit.
_LEN_DIGITS_MAX: Final = 19


class _Buffer:
    """Unparsed input: ``bytes`` + position, with reads parked while parsing is blocked."""

    __slots__ = ("_blocked", "_buf", "_chunks", "_chunks_bytes", "_error", "_line_max", "_pos", "_wait_bytes")

    def __init__(self, line_max: int) -> None:
        self._buf = b""
        self._pos = 0
        self._chunks: list[bytes] = []
        self._chunks_bytes = 0
        # Invariant: _blocked is True iff the parser failed for good (_error),
        # or proved it cannot progress until _wait_bytes unconsumed bytes
        # (0: a line terminator) are buffered.
        self._blocked = False
        self._wait_bytes = 0
        self._line_max = line_max
        self._error: ProtocolError | None = None

    def feed(self, data: bytes) -> None:
        """Buffer bytes received from the peer."""
        if self._error is not None or not data:
            return  # after an error the connection is closing; keep nothing
        if type(data) is not bytes:
            data = bytes(data)
        if self._blocked:
            self._feed_parked(data)
        elif self._pos >= len(self._buf):
            self._buf = data
            self._pos = 0
        else:
            self._buf = self._buf[self._pos :] + data
            self._pos = 0

    def _feed_parked(self, data: bytes) -> None:
        self._chunks.append(data)
        self._chunks_bytes += len(data)
        pending = len(self._buf) - self._pos + self._chunks_bytes
        if self._wait_bytes:
            if pending < self._wait_bytes:
                return
        elif b"\n" not in data and pending <= self._line_max + 1:
            return  # still no terminator, and not yet too long to refuse
        self._buf = b"".join([self._buf[self._pos :], *self._chunks])
        self._pos = 0
        self._chunks.clear()
        self._chunks_bytes = 0
        self._blocked = False
        self._wait_bytes = 0

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not yet consumed by a complete value."""
        return len(self._buf) - self._pos + self._chunks_bytes

    def _block(self, wait_bytes: int) -> NeedDataType:
        self._blocked = True
        self._wait_bytes = wait_bytes
        return NEED_DATA

    def _fail(self, message: str) -> ProtocolError:
        self._error = ProtocolError(message)
        self._blocked = True
        self._buf = b""
        self._pos = 0
        self._chunks.clear()
        self._chunks_bytes = 0
        return self._error


# --- Server side: requests ------------------------------------------------------


# Request heads of the commands clients send most: "*3\r\n$3\r\nSET\r\n" ->
# (2 bulks still to read, b"SET"), in both cases and for 1-9 arguments. A
# request starting with one skips parsing its count and its first bulk (one
# slice and one lookup instead), which is a fifth of the parsing of a SET.
# Anything else takes the general path, which gives the same result.
_HEAD_NAMES: Final = (
    b"GET", b"SET", b"DEL", b"INCR", b"DECR", b"MGET", b"MSET", b"EXISTS", b"EXPIRE", b"TTL", b"LPUSH",
    b"RPUSH", b"LPOP", b"RPOP", b"LRANGE", b"HSET", b"HGET", b"SADD", b"SREM", b"PING", b"ECHO",
)  # fmt: skip
_HEADS: Final = {
    b"*%d\r\n$%d\r\n%b\r\n" % (argc, len(name), spelling): (argc - 1, spelling)
    for name in _HEAD_NAMES
    for spelling in (name, name.lower())
    for argc in range(1, 10)
}
assert all(len(name) <= 9 for name in _HEAD_NAMES), "the head's length digit is read at a fixed place"
# The fast paths skip the unauthenticated bounds: "*1".."*9" and bulks of one or two digits.
assert limits.resp_unauthenticated_args_max >= 9 and limits.resp_unauthenticated_bulk_bytes_max >= 99


class RequestParser(_Buffer):
    """Parses client requests (multibulk or inline) into argument lists.

    While ``auth_required`` is set, a multibulk request is held to
    Valkey's bounds for a client that has not authenticated (10 elements of
    16 KiB), so whoever can connect cannot make the node buffer the 512 MiB an
    authenticated client may send. The fast paths below (at most 9 elements,
    bulks of two digits) never exceed those bounds, so only the general paths check.
    """

    __slots__ = ("_args", "_args_max", "_bulk_bytes_max", "_bulk_len", "_remaining", "auth_required")

    def __init__(self, *, bulk_bytes_max: int, args_max: int, inline_bytes_max: int, auth_required: bool) -> None:
        # A bulk header "$NN" is 3 bytes; the fast paths rely on it fitting.
        assert inline_bytes_max >= 3 and bulk_bytes_max >= 0 and args_max >= 1
        super().__init__(inline_bytes_max)
        self._bulk_bytes_max = bulk_bytes_max
        self._args_max = args_max
        # The shell keeps it current: set before each request is parsed, it bounds that request.
        self.auth_required = auth_required
        # A multibulk request in progress. Invariant: _args is None between
        # requests; otherwise _remaining bulks are missing and _bulk_len >= 0
        # iff the next bulk's header has been consumed.
        self._args: list[bytes] | None = None
        self._remaining = 0
        self._bulk_len = -1

    def commands(self) -> Iterator[list[bytes]]:
        """Yield every complete request buffered; stops at ``NEED_DATA``."""
        while True:
            argv = self.next_command()
            if argv is NEED_DATA:
                return
            yield argv  # type: ignore[misc]

    def next_command(self) -> list[bytes] | NeedDataType:
        """Return the next request's arguments, or ``NEED_DATA``. Raises ``ProtocolError``."""
        if self._blocked:  # also set by an error, to keep one test on the hot path
            if self._error is not None:
                raise self._error.with_traceback(None)  # sticky; drop the old traceback
            return NEED_DATA
        # The hot path: locals only, attributes written back when it stops.
        buf = self._buf
        pos = self._pos
        find = buf.find
        args = self._args
        if args is None:
            # A head is "*N\r\n$L\r\n" + L name bytes + "\r\n": buf[pos + 5] is L's
            # digit if a known head starts here; if it is anything else, the slice
            # just matches no head.
            head = _HEADS.get(buf[pos : pos + 10 + buf[pos + 5] - 48]) if pos + 5 < len(buf) else None
            if head is not None:
                remaining, name = head
                args = [name]
                pos += len(name) + 10
            else:
                e = find(b"\r\n", pos)
                if e - pos == 2 and buf[pos] == 42 and 48 < buf[pos + 1] <= 57:
                    remaining = buf[pos + 1] - 48  # "*1".."*9": most requests (42 is "*")
                    pos = e + 2
                else:
                    start = self._start_request()
                    if type(start) is not int:
                        return start  # an inline request, or NEED_DATA
                    remaining = start
                    pos = self._pos
                args = []
            n = -1
        else:
            remaining = self._remaining
            n = self._bulk_len
        end = len(buf)
        bulk_max = self._bulk_bytes_max
        # Literals rather than named constants in this method: a global lookup
        # per argument is measurable. 36 is "$", 48 is "0".
        while remaining:
            if n < 0:  # else resuming inside a bulk whose header was consumed
                e = find(b"\r\n", pos)
                if e < 0 or buf[pos] != 36:
                    return self._bad_bulk_header(args, remaining, pos, e)
                # One and two digits spelled out: every short key and value (the
                # common case) skips the slice and int() of the general path.
                if e - pos == 2:
                    n = buf[pos + 1] - 48
                    if n < 0 or n > 9 or n > bulk_max:
                        raise self._fail(errors.PROTO_INVALID_BULK_LEN)
                elif e - pos == 3 and 48 < buf[pos + 1] <= 57 and 48 <= buf[pos + 2] <= 57:
                    n = buf[pos + 1] * 10 + buf[pos + 2] - 528  # 528 is 48 * 11
                    if n > bulk_max:
                        raise self._fail(errors.PROTO_INVALID_BULK_LEN)
                else:
                    n = self._bulk_length(buf[pos + 1 : e])
                pos = e + 2
            stop = pos + n
            if stop + 2 > end:
                return self._suspend(args, remaining, n, pos)
            args.append(buf[pos:stop])
            pos = stop + 2
            remaining -= 1
            n = -1
        self._pos = pos
        self._args = None
        return args

    def _start_request(self) -> int | list[bytes] | NeedDataType:
        """Consume a request's first line: a bulk count (int > 0) or a whole inline request."""
        while True:
            buf = self._buf
            pos = self._pos
            if pos >= len(buf):
                return NEED_DATA
            if buf[pos] != _STAR:
                argv = self._inline()
                if argv is NEED_DATA or argv:
                    return argv
                continue  # a blank line: Redis skips it
            e = buf.find(_CRLF, pos)
            if e < 0:
                if len(buf) - pos > self._line_max + 1:
                    raise self._fail(errors.PROTO_BIG_MBULK_COUNT)
                return self._block(0)
            if e - pos == 2 and 48 < buf[pos + 1] <= 57:
                count = buf[pos + 1] - 48
            else:
                count = self._bulk_count(buf[pos + 1 : e], e - pos)
            self._pos = e + 2
            if count > 0:
                return count
            # "*0" and "*-1" are no-ops in Redis; read on.

    def _bulk_count(self, text: bytes, line_bytes: int) -> int:
        if line_bytes > self._line_max:
            raise self._fail(errors.PROTO_BIG_MBULK_COUNT)
        count = _strict_int(text)
        if count is None or count > self._args_max:
            raise self._fail(errors.PROTO_INVALID_MULTIBULK_LEN)
        if count > limits.resp_unauthenticated_args_max and self.auth_required:
            raise self._fail(errors.PROTO_UNAUTH_MULTIBULK_LEN)
        return count

    def _bulk_length(self, text: bytes) -> int:
        if len(text) + 1 > self._line_max:
            raise self._fail(errors.PROTO_BIG_BULK_COUNT)
        n = _strict_int(text)
        if n is None or n < 0 or n > self._bulk_bytes_max:
            raise self._fail(errors.PROTO_INVALID_BULK_LEN)
        if n > limits.resp_unauthenticated_bulk_bytes_max and self.auth_required:
            raise self._fail(errors.PROTO_UNAUTH_BULK_LEN)
        return n

    def _suspend(self, args: list[bytes], remaining: int, n: int, pos: int) -> NeedDataType:
        """Save the hot loop's state when the buffer ends inside a request."""
        self._args = args
        self._remaining = remaining
        self._bulk_len = n
        self._pos = pos
        return self._block(n + 2 if n >= 0 else 0)

    def _bad_bulk_header(self, args: list[bytes], remaining: int, pos: int, e: int) -> NeedDataType:
        """The next bulk header is unterminated (wait, or refuse if too long) or not a '$'."""
        buf = self._buf
        if pos < len(buf) and buf[pos] != 36:
            # Refused before the line is complete too, so the verdict is the
            # same whether the line came in one read or many.
            raise self._fail(errors.proto_expected_dollar(_shown(buf[pos])))
        assert e < 0
        if len(buf) - pos > self._line_max + 1:
            raise self._fail(errors.PROTO_BIG_BULK_COUNT)
        return self._suspend(args, remaining, -1, pos)

    def _inline(self) -> list[bytes] | NeedDataType:
        buf = self._buf
        pos = self._pos
        limit = self._line_max
        nl = buf.find(b"\n", pos, pos + limit + 1)
        if nl < 0:
            if len(buf) - pos > limit:
                raise self._fail(errors.PROTO_BIG_INLINE)
            return self._block(0)
        self._pos = nl + 1
        if nl > pos and buf[nl - 1] == 13:  # "\r\n" and plain "\n" both end a line
            nl -= 1
        argv = split_inline(buf[pos:nl])
        if argv is None:
            raise self._fail(errors.PROTO_UNBALANCED_QUOTES)
        return argv


def _strict_int(text: bytes) -> int | None:
    """Parse a decimal as Redis's string2ll does: no sign '+', spaces or leading zeros."""
    negative = text[:1] == b"-"
    digits = text[1:] if negative else text
    if not digits.isdigit() or len(digits) > _LEN_DIGITS_MAX:
        return None
    if digits[0] == 48 and (negative or len(digits) > 1):
        return None  # "01" and "-0" are refused by Redis too
    return int(text)


def _shown(byte: int) -> str:
    # Redis turns CR/LF into spaces so the error line stays one line.
    return " " if byte in (10, 13) else chr(byte)


_INLINE_SPECIAL: Final = re.compile(rb"[\"'\x0b\x0c]")
_SPACE_BYTES: Final = frozenset(b" \t\n\r\x0b\x0c")  # C isspace()
_TOKEN_END: Final = frozenset(b" \t\n\r")
_ESCAPES: Final = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")


def split_inline(line: bytes) -> list[bytes] | None:
    """Split an inline request as Redis's sdssplitargs does; None on unbalanced quotes."""
    nul = line.find(b"\0")
    if nul >= 0:
        line = line[:nul]  # Redis treats the line as a C string
    if _INLINE_SPECIAL.search(line) is None:
        # bytes.split() splits on exactly C isspace(); without quotes, \v or \f
        # (which only separate tokens at their start in Redis) it agrees.
        return line.split()
    argv: list[bytes] = []
    i = 0
    n = len(line)
    while True:
        while i < n and line[i] in _SPACE_BYTES:
            i += 1
        if i >= n:
            return argv
        token = _inline_token(line, i)
        if token is None:
            return None
        arg, i = token
        argv.append(arg)


def _inline_token(line: bytes, i: int) -> tuple[bytes, int] | None:
    """Read one token starting at line[i]; return it and the index after it."""
    n = len(line)
    out = bytearray()
    quote = 0  # the open quote character, or 0 outside quotes
    while True:
        c = line[i] if i < n else -1
        if quote == 34:  # "double quotes"
            if c == 92 and line[i + 1 : i + 2] == b"x" and _is_hex2(line[i + 2 : i + 4]):
                out.append(int(line[i + 2 : i + 4], 16))
                i += 3
            elif c == 92 and i + 1 < n:
                i += 1
                out.append(_ESCAPES.get(line[i], line[i]))
            elif c == 34:
                if i + 1 < n and line[i + 1] not in _SPACE_BYTES:
                    return None  # a closing quote must end the token
                return bytes(out), i + 1
            elif c < 0:
                return None
            else:
                out.append(c)
        elif quote == 39:  # 'single quotes': only \' is an escape
            if c == 92 and line[i + 1 : i + 2] == b"'":
                i += 1
                out.append(39)
            elif c == 39:
                if i + 1 < n and line[i + 1] not in _SPACE_BYTES:
                    return None
                return bytes(out), i + 1
            elif c < 0:
                return None
            else:
                out.append(c)
        elif c < 0 or c in _TOKEN_END:
            return bytes(out), i + 1
        elif c in (34, 39):
            quote = c  # a quote may open mid-token, as in Redis: ab"cd" is abcd
        else:
            out.append(c)
        i += 1


def _is_hex2(pair: bytes) -> bool:
    return len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX


def encode_command(argv: Sequence[bytes | str | int]) -> bytes:
    """Encode a request as a multibulk, as a client sends it."""
    out = bytearray(b"*%d\r\n" % len(argv))
    for arg in argv:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        out += b"$%d\r\n%b\r\n" % (len(arg), arg)
    return bytes(out)


# --- Server side: replies -------------------------------------------------------

_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1
# Above this a payload is appended in place rather than copied through a format.
_BULK_FORMAT_BYTES_MAX: Final = 4096
_SIMPLE_CACHE: Final = {s: b"+%s\r\n" % s.encode() for s in ("OK", "PONG", "QUEUED")}
_NULL: Final = {2: b"$-1\r\n", 3: b"_\r\n"}
_NULL_ARRAY: Final = {2: b"*-1\r\n", 3: b"_\r\n"}


def encode(value: Any, proto: int) -> bytes:
    """Serialize one reply value for a RESP2 (``proto=2``) or RESP3 connection."""
    kind = type(value)
    if kind is bytes:
        return b"$%d\r\n%b\r\n" % (len(value), value)
    if kind is Simple:
        return _SIMPLE_CACHE.get(value) or _line(b"+", value)
    if kind is int and _I64_MIN <= value <= _I64_MAX:
        return b":%d\r\n" % value
    if value is None:
        return _NULL[proto]
    out = bytearray()
    _encode_other(out, value, proto)
    return bytes(out)


def encode_into(out: bytearray, value: Any, proto: int) -> None:
    """Append one serialized reply to ``out`` (a whole pipeline shares one buffer)."""
    kind = type(value)
    if kind is bytes:
        if len(value) <= _BULK_FORMAT_BYTES_MAX:
            out += b"$%d\r\n%b\r\n" % (len(value), value)
        else:
            out += b"$%d\r\n" % len(value)
            out += value
            out += _CRLF
    elif kind is Simple:
        out += _SIMPLE_CACHE.get(value) or _line(b"+", value)
    elif kind is int and _I64_MIN <= value <= _I64_MAX:
        out += b":%d\r\n" % value
    elif value is None:
        out += _NULL[proto]
    else:
        _encode_other(out, value, proto)


def _encode_other(out: bytearray, value: Any, proto: int) -> None:
    assert proto in (2, 3), proto
    if isinstance(value, ErrorReply):
        out += _line(b"-", value)
    elif isinstance(value, Verbatim):
        text = value.encode()
        if proto == 3:
            out += b"=%d\r\ntxt:%b\r\n" % (len(text) + 4, text)
        else:
            out += b"$%d\r\n%b\r\n" % (len(text), text)
    elif isinstance(value, Simple):
        out += _line(b"+", value)
    elif isinstance(value, str):
        text = value.encode()
        out += b"$%d\r\n%b\r\n" % (len(text), text)
    elif isinstance(value, bytes):
        out += b"$%d\r\n%b\r\n" % (len(value), value)
    elif isinstance(value, int):  # bool included: Redis replies :1 / :0
        _encode_int(out, int(value), proto)
    elif isinstance(value, float):
        text = format_double(value)
        out += b",%b\r\n" % text if proto == 3 else b"$%d\r\n%b\r\n" % (len(text), text)
    else:
        _encode_aggregate(out, value, proto)


def _encode_int(out: bytearray, value: int, proto: int) -> None:
    if _I64_MIN <= value <= _I64_MAX:
        out += b":%d\r\n" % value
    else:  # beyond 64 bits: a RESP3 big number, a string in RESP2 (as Redis)
        text = str(value).encode()
        out += b"(%b\r\n" % text if proto == 3 else b"$%d\r\n%b\r\n" % (len(text), text)


def _encode_aggregate(out: bytearray, value: Any, proto: int) -> None:
    if isinstance(value, list | tuple):
        out += b"*%d\r\n" % len(value)
        for item in value:
            encode_into(out, item, proto)
    elif isinstance(value, dict):
        out += b"%%%d\r\n" % len(value) if proto == 3 else b"*%d\r\n" % (2 * len(value))
        for key, item in value.items():
            encode_into(out, key, proto)
            encode_into(out, item, proto)
    elif isinstance(value, set | frozenset):
        out += b"~%d\r\n" % len(value) if proto == 3 else b"*%d\r\n" % len(value)
        for item in value:
            encode_into(out, item, proto)
    elif value is NULL_ARRAY:
        out += _NULL_ARRAY[proto]
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as a RESP reply: {value!r}")


def _line(prefix: bytes, text: str) -> bytes:
    data = text.encode()
    if b"\r" in data or b"\n" in data:
        # A line break would end the reply early and desynchronise the client;
        # Redis maps them to spaces for the same reason.
        data = data.replace(b"\r", b" ").replace(b"\n", b" ")
    return prefix + data + _CRLF


def format_double(value: float) -> bytes:
    """Spell a double as Redis does (d2string): integers plainly, else shortest digits."""
    if math.isnan(value):
        return b"nan"
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    if value == 0:
        return b"-0" if math.copysign(1.0, value) < 0 else b"0"
    if -(2.0**62) <= value <= 2.0**62 and value == int(value):
        return b"%d" % int(value)
    # repr() gives the shortest round-tripping digits; re-lay them out with
    # fpconv's rules for when to use plain or scientific notation.
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    k = (int(exponent) if exponent else 0) - len(fraction)
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)
    digits = stripped
    sign = "-" if value < 0 else ""
    return (sign + _layout_digits(digits, k)).encode()


def _layout_digits(digits: str, k: int) -> str:
    """Place ``digits * 10**k`` as fpconv_dtoa's emit_digits does."""
    count = len(digits)
    exp = abs(k + count - 1)
    if k >= 0 and exp < count + 7:
        return digits + "0" * k
    if k < 0 and (k > -7 or exp < 4):
        point = count + k
        if point <= 0:
            return "0." + "0" * -point + digits
        return digits[:point] + "." + digits[point:]
    head = digits[0] + ("." + digits[1:] if count > 1 else "")
    return f"{head}e{'-' if k + count - 1 < 0 else '+'}{exp}"


# --- Client side: replies -------------------------------------------------------

reply_depth_max: Final = 64  # nesting accepted from a server; Redis replies nest a few levels

_AGGREGATES: Final = frozenset(b"*%~>|")
_BULKS: Final = frozenset(b"$=!")


class _Frame:
    """An aggregate reply being assembled."""

    __slots__ = ("items", "kind", "need")

    def __init__(self, kind: int, need: int) -> None:
        self.kind = kind
        self.need = need
        self.items: list[Any] = []


_SKIP: Final = object()  # an attribute, which annotates the next value and is dropped


class ReplyParser(_Buffer):
    """Parses server replies (RESP2 or RESP3) into Python values, for our CLI and tests."""

    __slots__ = ("_aggregate_len_max", "_bulk_bytes_max", "_depth_max", "_stack")

    def __init__(
        self,
        *,
        bulk_bytes_max: int = limits.resp_bulk_bytes_max,
        aggregate_len_max: int = limits.resp_args_max,
        line_bytes_max: int = limits.resp_inline_bytes_max,
        depth_max: int = reply_depth_max,
    ) -> None:
        assert line_bytes_max >= 2 and depth_max >= 1
        super().__init__(line_bytes_max)
        self._bulk_bytes_max = bulk_bytes_max
        self._aggregate_len_max = aggregate_len_max
        self._depth_max = depth_max
        # Invariant: every frame still needs at least one item.
        self._stack: list[_Frame] = []

    def next_reply(self) -> Any:
        """Return the next complete reply, or ``NEED_DATA``. Raises ``ProtocolError``."""
        if self._error is not None:
            raise self._error.with_traceback(None)
        stack = self._stack
        while not self._blocked:
            value = self._read_item()
            if value is NEED_DATA:
                break
            if type(value) is _Frame:
                if len(stack) >= self._depth_max:
                    raise self._fail(errors.PROTO_REPLY_TOO_DEEP)
                stack.append(value)
                continue
            while value is not _SKIP:
                if not stack:
                    return value
                frame = stack[-1]
                frame.items.append(value)
                if len(frame.items) < frame.need:
                    break
                stack.pop()
                value = _build(frame)
        return NEED_DATA

    def _read_item(self) -> Any:
        """Consume one scalar (its value) or aggregate header (a _Frame, or its value if empty)."""
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            return NEED_DATA
        e = buf.find(_CRLF, pos)
        if e < 0 or e - pos > self._line_max:
            if e >= 0 or len(buf) - pos > self._line_max + 1:
                raise self._fail(errors.PROTO_REPLY_TOO_BIG)
            return self._block(0)
        kind = buf[pos]
        text = buf[pos + 1 : e]
        if kind in _BULKS:
            return self._read_bulk(kind, text, e + 2)
        self._pos = e + 2
        if kind in _AGGREGATES:
            n = self._length(text, self._aggregate_len_max)
            if n < 0:
                return None
            frame = _Frame(kind, 2 * n if kind in b"%|" else n)
            return frame if n else _build(frame)
        return self._scalar(kind, text)

    def _read_bulk(self, kind: int, text: bytes, start: int) -> Any:
        n = self._length(text, self._bulk_bytes_max)
        if n < 0:
            self._pos = start
            return None
        stop = start + n
        if stop + 2 > len(self._buf):
            return self._block(stop + 2 - self._pos)  # the header is re-read then
        if self._buf[stop : stop + 2] != _CRLF:
            raise self._fail(errors.PROTO_REPLY_BAD_LENGTH)
        payload = self._buf[start:stop]
        self._pos = stop + 2
        if kind == _DOLLAR:
            return payload
        if kind == 33:  # "!" blob error
            return ErrorReply(payload.decode("utf-8", "replace"))
        if payload[3:4] != b":":  # "=" verbatim: a 3-letter format, ':', the text
            raise self._fail(errors.PROTO_REPLY_BAD_LINE)
        if payload[:3] == b"txt":
            return Verbatim(payload[4:].decode("utf-8", "replace"))
        return payload[4:]

    def _length(self, text: bytes, length_max: int) -> int:
        n = _strict_int(text)
        if n is None or n < -1 or n > length_max:
            raise self._fail(errors.PROTO_REPLY_BAD_LENGTH)
        return n

    def _scalar(self, kind: int, text: bytes) -> Any:
        try:
            if kind == 43:  # "+"
                return Simple(text.decode("utf-8", "replace"))
            if kind == 45:  # "-"
                return ErrorReply(text.decode("utf-8", "replace"))
            if kind in b":(":
                return int(text)
            if kind == 95 and not text:  # "_"
                return None
            if kind == 44:  # ","
                return float(text)
            if kind == 35 and text in (b"t", b"f"):  # "#"
                return text == b"t"
        except ValueError:
            raise self._fail(errors.PROTO_REPLY_BAD_LINE) from None
        if kind in b":(_,#":
            raise self._fail(errors.PROTO_REPLY_BAD_LINE)
        raise self._fail(errors.proto_reply_bad_type(_shown(kind)))


def _build(frame: _Frame) -> Any:
    items = frame.items
    kind = frame.kind
    if kind in b"*>":
        return items
    if kind == 126:  # "~"
        return {_hashable(item) for item in items}
    if kind == 37:  # "%"
        return {_hashable(items[i]): items[i + 1] for i in range(0, len(items), 2)}
    assert kind == 124, kind  # "|"
    return _SKIP


def _hashable(value: Any) -> Any:
    """Make a value usable in a set or as a map key: lists become tuples, sets frozensets."""
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, set):
        return frozenset(value)
    if isinstance(value, dict):
        return tuple((key, _hashable(item)) for key, item in value.items())
    return value
