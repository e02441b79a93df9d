"""Tests for the sans-IO RESP core.

Every parser test feeds its input three ways, as h11's tests do: in one piece,
one byte at a time, and followed by a further complete value that must come out
intact after the expected ones (or must not matter, for an error).
"""

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.core import errors, resp
from trionode.core.reply import NULL_ARRAY, ErrorReply, Simple, Verbatim
from trionode.core.resp import (
    NEED_DATA,
    ProtocolError,
    ReplyParser,
    RequestParser,
    encode,
    encode_command,
    encode_into,
    format_double,
    split_inline,
)

pytestmark = pytest.mark.timeout(60)

LIMITS = {"bulk_bytes_max": 1000, "args_max": 100, "inline_bytes_max": 64, "auth_required": False}
REQUEST_TRAILER = (b"*1\r\n$4\r\nPING\r\n", [b"PING"])
REPLY_TRAILER = (b"+OK\r\n", Simple("OK"))
INF = float("inf")
NAN = float("nan")


# --- Helpers: feed three ways --------------------------------------------------


def _drain(next_value: Callable[[], Any]) -> list[Any]:
    out = []
    while (value := next_value()) is not NEED_DATA:
        out.append(value)
    return out


def _feeds(data: bytes, trailer: bytes) -> dict[str, list[bytes]]:
    return {
        "whole": [data],
        "bytewise": [data[i : i + 1] for i in range(len(data))],
        "trailing": [data + trailer],
    }


def _run(parser: Any, next_value: Callable[[], Any], pieces: list[bytes]) -> list[Any]:
    got: list[Any] = []
    for piece in pieces:
        parser.feed(piece)
        got += _drain(next_value)
    return got


def check_requests(data: bytes, expected: list[list[bytes]], **limits: int) -> None:
    """``data`` must parse to exactly ``expected``, however it is fed."""
    trailer, trailer_argv = REQUEST_TRAILER
    for way, pieces in _feeds(data, trailer).items():
        parser = RequestParser(**{**LIMITS, **limits})
        got = _run(parser, parser.next_command, pieces)
        want = [*expected, trailer_argv] if way == "trailing" else expected
        assert got == want, way
        assert parser.buffered_bytes == 0, way
        assert parser.next_command() is NEED_DATA


def check_request_error(data: bytes, message: str, **limits: int) -> None:
    """``data`` must be refused with ``message``, however it is fed; the error sticks."""
    trailer, _ = REQUEST_TRAILER
    for way, pieces in _feeds(data, trailer).items():
        parser = RequestParser(**{**LIMITS, **limits})
        with pytest.raises(ProtocolError) as info:
            _run(parser, parser.next_command, pieces)
        assert str(info.value) == message, way
        parser.feed(trailer)
        with pytest.raises(ProtocolError) as again:
            parser.next_command()
        assert str(again.value) == message, way


def check_replies(data: bytes, expected: list[Any], **limits: int) -> None:
    trailer, trailer_value = REPLY_TRAILER
    for way, pieces in _feeds(data, trailer).items():
        parser = ReplyParser(**limits)
        got = _run(parser, parser.next_reply, pieces)
        want = [*expected, trailer_value] if way == "trailing" else expected
        assert got == want, way
        assert [type(v) for v in got] == [type(v) for v in want], way
        assert parser.buffered_bytes == 0, way


def check_reply_error(data: bytes, message: str, **limits: int) -> None:
    trailer, _ = REPLY_TRAILER
    for way, pieces in _feeds(data, trailer).items():
        parser = ReplyParser(**limits)
        with pytest.raises(ProtocolError) as info:
            _run(parser, parser.next_reply, pieces)
        assert str(info.value) == message, way
        with pytest.raises(ProtocolError) as again:
            parser.next_reply()
        assert str(again.value) == message, way


# --- RequestParser: multibulk --------------------------------------------------


def test_multibulk_single_command():
    check_requests(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n", [[b"SET", b"k", b"value"]])


def test_multibulk_pipeline_in_one_feed():
    data = b"".join(encode_command([b"SET", b"key:%d" % i, b"v" * i]) for i in range(50))
    check_requests(data, [[b"SET", b"key:%d" % i, b"v" * i] for i in range(50)])


def test_multibulk_is_binary_safe():
    payload = b"a\r\nb\r\n\r\n\x00\xff*1\r\n$"
    check_requests(encode_command([b"SET", b"k\r\n", payload, b""]), [[b"SET", b"k\r\n", payload, b""]])


def test_multibulk_multi_digit_lengths():
    args = [b"x" * 10, b"y" * 99, b"z" * 1000]
    check_requests(encode_command(args), [args])


def test_empty_and_negative_multibulk_are_ignored():
    check_requests(b"*0\r\n*-1\r\n*-5\r\n*1\r\n$4\r\nECHO\r\n", [[b"ECHO"]])


def test_bytes_after_a_bulk_are_skipped_unchecked_like_redis():
    check_requests(b"*1\r\n$3\r\nfooXY", [[b"foo"]])


def test_more_than_nine_arguments():
    args = [b"%d" % i for i in range(100)]
    check_requests(encode_command(args), [args])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*x\r\n", errors.PROTO_INVALID_MULTIBULK_LEN),
        (b"*\r\n", errors.PROTO_INVALID_MULTIBULK_LEN),
        (b"*01\r\n", errors.PROTO_INVALID_MULTIBULK_LEN),
        (b"*+1\r\n", errors.PROTO_INVALID_MULTIBULK_LEN),
        (b"*-0\r\n", errors.PROTO_INVALID_MULTIBULK_LEN),
        (b"* 1\r\n", errors.PROTO_INVALID_MULTIBULK_LEN),
        (b"*101\r\n", errors.PROTO_INVALID_MULTIBULK_LEN),  # args_max is 100
        (b"*9" + b"9" * 40 + b"\r\n", errors.PROTO_INVALID_MULTIBULK_LEN),
        (b"*1\r\n$-1\r\n", errors.PROTO_INVALID_BULK_LEN),
        (b"*1\r\n$x\r\n", errors.PROTO_INVALID_BULK_LEN),
        (b"*1\r\n$:\r\n", errors.PROTO_INVALID_BULK_LEN),  # one past "9"
        (b"*1\r\n$/\r\n", errors.PROTO_INVALID_BULK_LEN),  # one before "0"
        (b"*:\r\n", errors.PROTO_INVALID_MULTIBULK_LEN),
        (b"*1\r\n$\r\n", errors.PROTO_INVALID_BULK_LEN),
        (b"*1\r\n$01\r\n", errors.PROTO_INVALID_BULK_LEN),
        (b"*1\r\n$+1\r\n", errors.PROTO_INVALID_BULK_LEN),
        (b"*1\r\n$1001\r\n", errors.PROTO_INVALID_BULK_LEN),  # bulk_bytes_max is 1000
        (b"*1\r\n$9" + b"9" * 40 + b"\r\n", errors.PROTO_INVALID_BULK_LEN),
        (b"*1\r\nfoo\r\n", errors.proto_expected_dollar("f")),
        (b"*2\r\n$1\r\na\r\n:1\r\n", errors.proto_expected_dollar(":")),
        (b"*1\r\n\r\n", errors.proto_expected_dollar(" ")),
    ],
)
def test_multibulk_errors(data, message):
    check_request_error(data, message)


@pytest.mark.parametrize("bulk_bytes_max", [4, 9, 10, 42, 99, 1000])  # the trailer needs 4
def test_short_bulk_lengths_agree_with_the_general_rule(bulk_bytes_max):
    # One- and two-digit lengths take a fast path; it must give the verdict of
    # _strict_int plus the bound, which every longer length goes through.
    alphabet = [b"%c" % c for c in b"/0123456789:-+ x"]
    texts = [a for a in alphabet] + [a + b for a in alphabet for b in alphabet]
    for text in texts:
        n = int(text) if text.isdigit() and (text[:1] != b"0" or len(text) == 1) else None
        data = b"*1\r\n$" + text + b"\r\n" + b"v" * (n or 0) + b"\r\n"
        if n is not None and n <= bulk_bytes_max:
            check_requests(data, [[b"v" * n]], bulk_bytes_max=bulk_bytes_max)
        else:
            check_request_error(data, errors.PROTO_INVALID_BULK_LEN, bulk_bytes_max=bulk_bytes_max)


def test_error_text_matches_redis():
    assert errors.PROTO_INVALID_MULTIBULK_LEN == "ERR Protocol error: invalid multibulk length"
    assert errors.PROTO_INVALID_BULK_LEN == "ERR Protocol error: invalid bulk length"
    assert errors.PROTO_BIG_INLINE == "ERR Protocol error: too big inline request"
    assert errors.PROTO_BIG_MBULK_COUNT == "ERR Protocol error: too big mbulk count string"
    assert errors.PROTO_BIG_BULK_COUNT == "ERR Protocol error: too big bulk count string"
    assert errors.PROTO_UNBALANCED_QUOTES == "ERR Protocol error: unbalanced quotes in request"
    assert errors.proto_expected_dollar("x") == "ERR Protocol error: expected '$', got 'x'"


def test_huge_digit_strings_do_not_hit_int_conversion_limit():
    # Python refuses int() on more than 4300 digits; that must become a protocol error.
    big = 100_000
    check_request_error(b"*1\r\n$" + b"9" * 5000 + b"\r\n", errors.PROTO_INVALID_BULK_LEN, inline_bytes_max=big)
    check_request_error(b"*" + b"9" * 5000 + b"\r\n", errors.PROTO_INVALID_MULTIBULK_LEN, inline_bytes_max=big)


def test_too_long_count_line():
    check_request_error(b"*" + b"1" * 70 + b"\r\n", errors.PROTO_BIG_MBULK_COUNT)
    check_request_error(b"*" + b"1" * 70, errors.PROTO_BIG_MBULK_COUNT)


def test_too_long_bulk_length_line():
    check_request_error(b"*1\r\n$" + b"1" * 70 + b"\r\n", errors.PROTO_BIG_BULK_COUNT)
    check_request_error(b"*1\r\n$" + b"1" * 70, errors.PROTO_BIG_BULK_COUNT)


def test_header_line_limit_is_inclusive():
    # A 64-byte header line is judged on its content; a 65-byte one is too big.
    check_request_error(b"*" + b"x" * 63 + b"\r\n", errors.PROTO_INVALID_MULTIBULK_LEN)
    check_request_error(b"*" + b"x" * 64 + b"\r\n", errors.PROTO_BIG_MBULK_COUNT)
    check_request_error(b"*1\r\n$" + b"x" * 63 + b"\r\n", errors.PROTO_INVALID_BULK_LEN)
    check_request_error(b"*1\r\n$" + b"x" * 64 + b"\r\n", errors.PROTO_BIG_BULK_COUNT)


def test_oversize_bulk_is_refused_on_its_header_before_the_payload():
    parser = RequestParser(**LIMITS)
    parser.feed(b"*2\r\n$3\r\nSET\r\n$1001\r\n")
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        parser.next_command()
    assert parser.buffered_bytes == 0


def test_oversize_count_is_refused_on_its_header():
    parser = RequestParser(**LIMITS)
    parser.feed(b"*101\r\n")
    with pytest.raises(ProtocolError, match="invalid multibulk length"):
        parser.next_command()


def test_unterminated_header_is_refused_once_it_passes_the_limit():
    for prefix, message in [(b"*", errors.PROTO_BIG_MBULK_COUNT), (b"*1\r\n$", errors.PROTO_BIG_BULK_COUNT)]:
        parser = RequestParser(**LIMITS)
        parser.feed(prefix)
        assert parser.next_command() is NEED_DATA
        fed = 0
        with pytest.raises(ProtocolError) as info:
            while True:
                parser.feed(b"1")
                fed += 1
                assert parser.next_command() is NEED_DATA
        assert str(info.value) == message
        assert fed <= LIMITS["inline_bytes_max"] + 2


def test_large_bulk_in_many_reads_is_buffered_within_its_bound():
    payload = bytes(range(256)) * 4  # 1024 bytes, CRLF-free but binary
    limits = {**LIMITS, "bulk_bytes_max": len(payload)}
    parser = RequestParser(**limits)
    data = encode_command([b"SET", b"k", payload]) + REQUEST_TRAILER[0]
    got = []
    for i in range(0, len(data), 7):
        parser.feed(data[i : i + 7])
        assert parser.buffered_bytes <= len(payload) + 2 + 7 + 16
        got += _drain(parser.next_command)
    assert got == [[b"SET", b"k", payload], [b"PING"]]


def test_commands_generator_yields_until_need_data():
    parser = RequestParser(**LIMITS)
    parser.feed(b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI")
    assert list(parser.commands()) == [[b"PING"], [b"PING"]]
    parser.feed(b"NG\r\n")
    assert list(parser.commands()) == [[b"PING"]]


def test_feed_accepts_bytearray_and_memoryview():
    parser = RequestParser(**LIMITS)
    parser.feed(bytearray(b"*1\r\n$4\r\nPI"))
    parser.feed(memoryview(b"NG\r\nECHO x\r\n"))
    assert list(parser.commands()) == [[b"PING"], [b"ECHO", b"x"]]


def test_data_after_an_error_is_dropped():
    parser = RequestParser(**LIMITS)
    parser.feed(b"*x\r\n")
    with pytest.raises(ProtocolError):
        parser.next_command()
    parser.feed(b"y" * 10_000)
    assert parser.buffered_bytes == 0


# --- RequestParser: inline -----------------------------------------------------


def test_inline_commands():
    check_requests(b"SET k v\r\nGET k\nPING\r\n", [[b"SET", b"k", b"v"], [b"GET", b"k"], [b"PING"]])


def test_inline_blank_lines_are_skipped():
    check_requests(b"\r\n\n   \r\n\t\nPING\r\n", [[b"PING"]])


def test_inline_and_multibulk_interleave():
    check_requests(b"PING\r\n*1\r\n$4\r\nECHO\r\nINFO  x\r\n", [[b"PING"], [b"ECHO"], [b"INFO", b"x"]])


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        (b"set \"a b\" 'c d'", [b"set", b"a b", b"c d"]),
        (b'"\\x41\\x4a\\x4g" "\\x4"', [b"AJx4g", b"x4"]),
        (b'"\\n\\r\\t\\b\\a\\"\\\\\\q"', [b'\n\r\t\b\a"\\q']),
        (b"'a\\'b' 'c\\nd'", [b"a'b", b"c\\nd"]),
        (b'set k ""', [b"set", b"k", b""]),
        (b"''", [b""]),
        (b'ab"cd ef" gh', [b"abcd ef", b"gh"]),
        (b"a\x0bb \x0bc", [b"a\x0bb", b"c"]),
        (b"get a\x00b c", [b"get", b"a"]),
        (b"  lead   trail  ", [b"lead", b"trail"]),
        (b"a\rb", [b"a", b"b"]),
        (b"\xc3\xa9t\xc3\xa9 \xff", [b"\xc3\xa9t\xc3\xa9", b"\xff"]),
        (b'"a"\t"b"', [b"a", b"b"]),
        (b"", []),
    ],
)
def test_inline_quoting(line, argv):
    assert split_inline(line) == argv
    check_requests(line + b"\r\n", [argv] if argv else [])


@pytest.mark.parametrize("line", [b'"foo', b"'foo", b'"foo"bar', b"'foo'bar", b'a "b\\"', b'"\\'])
def test_inline_unbalanced_quotes(line):
    assert split_inline(line) is None
    check_request_error(line + b"\r\n", errors.PROTO_UNBALANCED_QUOTES)


def test_inline_too_long():
    check_request_error(b"x" * 65 + b"\r\n", errors.PROTO_BIG_INLINE)
    check_request_error(b"x" * 100, errors.PROTO_BIG_INLINE)


def test_inline_exactly_at_the_limit():
    # The limit counts the line up to its "\n", the "\r" included.
    check_requests(b"x" * 63 + b"\r\n", [[b"x" * 63]])
    check_requests(b"x" * 64 + b"\n", [[b"x" * 64]])
    check_request_error(b"x" * 64 + b"\r\n", errors.PROTO_BIG_INLINE)


def test_inline_too_long_is_refused_early():
    parser = RequestParser(**LIMITS)
    fed = 0
    with pytest.raises(ProtocolError, match="too big inline request"):
        while True:
            parser.feed(b"x")
            fed += 1
            assert parser.next_command() is NEED_DATA
    assert fed <= LIMITS["inline_bytes_max"] + 2


# --- RequestParser: properties -------------------------------------------------


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _quote_inline(arg: bytes) -> bytes:
    return b'"' + b"".join(b"\\x%02x" % byte for byte in arg) + b'"'


_argvs = st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=12), max_size=12)


@settings(deadline=None, max_examples=200)
@given(
    argvs=_argvs,
    inline=st.lists(st.booleans(), min_size=12, max_size=12),
    cuts=st.lists(st.integers(0, 10**6)),
)
def test_request_round_trip(argvs, inline, cuts):
    wire = b"".join(
        b" ".join(_quote_inline(a) for a in argv) + b"\r\n" if as_inline else encode_command(argv)
        for argv, as_inline in zip(argvs, inline, strict=False)
    )
    parser = RequestParser(bulk_bytes_max=100, args_max=20, inline_bytes_max=1024, auth_required=False)
    got = []
    for chunk in _chunked(wire, cuts):
        parser.feed(chunk)
        got += list(parser.commands())
    assert got == argvs
    assert parser.buffered_bytes == 0


# Requests that start with a known head (the fast path), near misses of one, and garbage.
_head_names = st.sampled_from([*resp._HEAD_NAMES, b"set", b"Set", b"SETX", b"SE", b"LRANGE\r", b"PING"])
_head_requests = st.one_of(
    st.tuples(_head_names, st.lists(st.binary(max_size=12), max_size=9)).map(lambda t: encode_command([t[0], *t[1]])),
    st.tuples(
        st.integers(0, 12), st.integers(0, 12), _head_names, st.sampled_from([b"\r\n", b"\n", b"\r", b"", b"x"])
    ).map(lambda t: b"*%d\r\n$%d\r\n%b%b" % t),
    st.binary(max_size=30),
)


def _parse_all(wire: bytes, cuts: list[int]) -> tuple[list[list[bytes]], str | None]:
    parser = RequestParser(bulk_bytes_max=100, args_max=20, inline_bytes_max=1024, auth_required=False)
    got: list[list[bytes]] = []
    try:
        for chunk in _chunked(wire, cuts):
            parser.feed(chunk)
            got += list(parser.commands())
    except ProtocolError as e:
        return got, str(e)
    return got, None


@settings(max_examples=500)
@given(requests=st.lists(_head_requests, min_size=1, max_size=6), cuts=st.lists(st.integers(0, 10**6)))
def test_known_heads_parse_as_the_general_path_does(requests, cuts):
    # The known-head table is a shortcut; without it every request must parse the same,
    # commands, errors and all, however the bytes are cut.
    wire = b"".join(requests)
    fast = _parse_all(wire, cuts)
    saved = resp._HEADS
    resp._HEADS = {}  # type: ignore[misc]
    try:
        slow = _parse_all(wire, cuts)
    finally:
        resp._HEADS = saved  # type: ignore[misc]
    assert fast == slow


def test_known_heads_cover_both_cases_and_one_to_nine_arguments():
    assert resp._HEADS[b"*3\r\n$3\r\nSET\r\n"] == (2, b"SET")
    assert resp._HEADS[b"*1\r\n$4\r\nping\r\n"] == (0, b"ping")
    check_requests(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n", [[b"PING"], [b"set", b"k", b"v"]])


# --- Serializer -----------------------------------------------------------------

ENCODINGS = [
    # value, RESP2, RESP3
    (b"foo", b"$3\r\nfoo\r\n", b"$3\r\nfoo\r\n"),
    (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
    (b"a\r\nb", b"$4\r\na\r\nb\r\n", b"$4\r\na\r\nb\r\n"),
    (Simple("OK"), b"+OK\r\n", b"+OK\r\n"),
    (Simple("hi there"), b"+hi there\r\n", b"+hi there\r\n"),
    (Simple("a\r\nb"), b"+a  b\r\n", b"+a  b\r\n"),
    (ErrorReply("ERR bad"), b"-ERR bad\r\n", b"-ERR bad\r\n"),
    (ErrorReply("ERR x\ny"), b"-ERR x y\r\n", b"-ERR x y\r\n"),
    (Verbatim("a\r\nb"), b"$4\r\na\r\nb\r\n", b"=8\r\ntxt:a\r\nb\r\n"),
    ("h\u00e9", b"$3\r\nh\xc3\xa9\r\n", b"$3\r\nh\xc3\xa9\r\n"),
    (0, b":0\r\n", b":0\r\n"),
    (-5, b":-5\r\n", b":-5\r\n"),
    (2**63 - 1, b":9223372036854775807\r\n", b":9223372036854775807\r\n"),
    (-(2**63), b":-9223372036854775808\r\n", b":-9223372036854775808\r\n"),
    (2**63, b"$19\r\n9223372036854775808\r\n", b"(9223372036854775808\r\n"),
    (True, b":1\r\n", b":1\r\n"),
    (False, b":0\r\n", b":0\r\n"),
    (1.5, b"$3\r\n1.5\r\n", b",1.5\r\n"),
    (3.0, b"$1\r\n3\r\n", b",3\r\n"),
    (INF, b"$3\r\ninf\r\n", b",inf\r\n"),
    (-INF, b"$4\r\n-inf\r\n", b",-inf\r\n"),
    (NAN, b"$3\r\nnan\r\n", b",nan\r\n"),
    (None, b"$-1\r\n", b"_\r\n"),
    (NULL_ARRAY, b"*-1\r\n", b"_\r\n"),
    ([], b"*0\r\n", b"*0\r\n"),
    ([b"a", 1, None], b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n", b"*3\r\n$1\r\na\r\n:1\r\n_\r\n"),
    ((Simple("x"),), b"*1\r\n+x\r\n", b"*1\r\n+x\r\n"),
    ({b"k": b"v"}, b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n", b"%1\r\n$1\r\nk\r\n$1\r\nv\r\n"),
    ({}, b"*0\r\n", b"%0\r\n"),
    (frozenset({b"x"}), b"*1\r\n$1\r\nx\r\n", b"~1\r\n$1\r\nx\r\n"),
    ({7}, b"*1\r\n:7\r\n", b"~1\r\n:7\r\n"),
    (
        [[b"a", {b"k": [1.5]}], NULL_ARRAY],
        b"*2\r\n*2\r\n$1\r\na\r\n*2\r\n$1\r\nk\r\n*1\r\n$3\r\n1.5\r\n*-1\r\n",
        b"*2\r\n*2\r\n$1\r\na\r\n%1\r\n$1\r\nk\r\n*1\r\n,1.5\r\n_\r\n",
    ),
]


@pytest.mark.parametrize(("value", "resp2", "resp3"), ENCODINGS)
def test_encode_exact_bytes(value, resp2, resp3):
    for proto, want in [(2, resp2), (3, resp3)]:
        assert encode(value, proto) == want
        out = bytearray(b"prefix")
        encode_into(out, value, proto)
        assert out == b"prefix" + want


def test_encode_large_bulk():
    payload = b"\r\n" * 5000
    out = bytearray()
    encode_into(out, payload, 2)
    assert out == b"$10000\r\n" + payload + b"\r\n"


def test_encode_into_builds_one_pipeline_buffer():
    out = bytearray()
    for value in [Simple("OK"), b"v", 3, None]:
        encode_into(out, value, 3)
    assert out == b"+OK\r\n$1\r\nv\r\n:3\r\n_\r\n"


@pytest.mark.parametrize("value", [object(), bytearray(b"x"), 1j, [object()]])
def test_encode_refuses_other_types(value):
    with pytest.raises(TypeError):
        encode(value, 3)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, b"0"),
        (-0.0, b"-0"),
        (1.0, b"1"),
        (-42.0, b"-42"),
        (1e16, b"10000000000000000"),
        (2.0**62, b"4611686018427387904"),
        (5e18, b"5e+18"),
        (1e19, b"1e+19"),
        (1.5e20, b"1.5e+20"),
        (1e100, b"1e+100"),
        (1.25e105, b"1.25e+105"),
        (1.5, b"1.5"),
        (-0.1, b"-0.1"),
        (123456.789, b"123456.789"),
        (0.000001, b"0.000001"),
        (1e-7, b"1e-7"),
        (1.5e-7, b"1.5e-7"),
        (1.234e-5, b"1.234e-5"),
        (0.0012345678, b"0.0012345678"),
        (0.00012345678, b"1.2345678e-4"),
        (1e-300, b"1e-300"),
        (3.14159, b"3.14159"),
        (INF, b"inf"),
        (-INF, b"-inf"),
        (NAN, b"nan"),
    ],
)
def test_format_double_like_redis(value, text):
    assert format_double(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_double_round_trips(value):
    text = format_double(value)
    assert float(text) == value
    assert math.copysign(1, float(text)) == math.copysign(1, value)


# --- ReplyParser ----------------------------------------------------------------


def test_reply_parser_resp2_types():
    check_replies(
        b"+OK\r\n-ERR no\r\n:-12\r\n$3\r\na\r\n\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n",
        [Simple("OK"), ErrorReply("ERR no"), -12, b"a\r\n", None, None, [], [1, [b"x"]]],
    )


def test_reply_parser_resp3_types():
    data = (
        b"_\r\n,1.5\r\n,inf\r\n,-inf\r\n#t\r\n#f\r\n(123456789012345678901234567890\r\n"
        b"=8\r\ntxt:a\r\nb\r\n=7\r\nmkd:# x\r\n!5\r\nERR x\r\n"
        b"%2\r\n$1\r\nk\r\n:1\r\n*1\r\n:2\r\n*1\r\n:2\r\n~3\r\n:1\r\n*1\r\n:2\r\n~1\r\n:3\r\n>2\r\n+push\r\n:1\r\n"
    )
    check_replies(
        data,
        [
            None,
            1.5,
            INF,
            -INF,
            True,
            False,
            123456789012345678901234567890,
            Verbatim("a\r\nb"),
            b"# x",
            ErrorReply("ERR x"),
            {b"k": 1, (2,): [2]},
            {1, (2,), frozenset({3})},
            [Simple("push"), 1],
        ],
    )


def test_reply_parser_nan():
    parser = ReplyParser()
    parser.feed(b",nan\r\n")
    assert math.isnan(parser.next_reply())


def test_reply_parser_skips_attributes():
    check_replies(
        b"|1\r\n+key\r\n*1\r\n:1\r\n:42\r\n*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n|0\r\n$1\r\nz\r\n",
        [42, [1, 2], b"z"],
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"?x\r\n", errors.proto_reply_bad_type("?")),
        (b"hello\r\n", errors.proto_reply_bad_type("h")),
        (b":x\r\n", errors.PROTO_REPLY_BAD_LINE),
        (b"#x\r\n", errors.PROTO_REPLY_BAD_LINE),
        (b",x\r\n", errors.PROTO_REPLY_BAD_LINE),
        (b"_x\r\n", errors.PROTO_REPLY_BAD_LINE),
        (b"=3\r\nabc\r\n", errors.PROTO_REPLY_BAD_LINE),
        (b"$x\r\n", errors.PROTO_REPLY_BAD_LENGTH),
        (b"$-2\r\n", errors.PROTO_REPLY_BAD_LENGTH),
        (b"$?\r\n", errors.PROTO_REPLY_BAD_LENGTH),
        (b"$1\r\nabc\r\n", errors.PROTO_REPLY_BAD_LENGTH),
        (b"*1001\r\n", errors.PROTO_REPLY_BAD_LENGTH),
        (b"$1001\r\n", errors.PROTO_REPLY_BAD_LENGTH),
        (b"+" + b"x" * 70 + b"\r\n", errors.PROTO_REPLY_TOO_BIG),
        (b"*1\r\n" * 5 + b":1\r\n", errors.PROTO_REPLY_TOO_DEEP),
    ],
)
def test_reply_parser_errors(data, message):
    check_reply_error(data, message, bulk_bytes_max=1000, aggregate_len_max=1000, line_bytes_max=64, depth_max=4)


def test_reply_parser_nesting_at_the_depth_limit():
    check_replies(b"*1\r\n" * 4 + b":1\r\n", [[[[[1]]]]], depth_max=4)


# --- Reply round trips ----------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_line_text = _text.filter(lambda s: "\r" not in s and "\n" not in s)
_keys = st.one_of(st.binary(max_size=12), st.integers(-(2**63), 2**63 - 1), _line_text.map(Simple))
_scalars = st.one_of(
    _keys,
    st.integers(),
    st.booleans(),
    st.floats(),
    st.none(),
    st.just(NULL_ARRAY),
    _line_text.map(ErrorReply),
    _text.map(Verbatim),
    _text,
)
_replies = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(_keys, inner, max_size=5),
        st.sets(_keys, max_size=5),
        st.frozensets(_keys, max_size=5),
    ),
    max_leaves=25,
)


def assert_decoded(got: Any, sent: Any, proto: int) -> None:
    """``got`` is what a client must see for ``sent`` on a ``proto`` connection."""
    if isinstance(sent, bool):
        assert type(got) is int and got == int(sent)
    elif isinstance(sent, int) and not -(2**63) <= sent < 2**63 and proto == 2:
        assert got == str(sent).encode()
    elif isinstance(sent, float):
        number = float(got) if proto == 2 else got
        assert type(got) is (bytes if proto == 2 else float)
        if math.isnan(sent):
            assert math.isnan(number)
        else:
            assert number == sent and math.copysign(1, number) == math.copysign(1, sent)
    elif type(sent) in (Simple, ErrorReply) or (type(sent) is Verbatim and proto == 3):
        assert type(got) is type(sent) and got == sent
    elif isinstance(sent, str):
        assert got == sent.encode()
    elif sent is None or sent is NULL_ARRAY:
        assert got is None
    elif isinstance(sent, list | tuple):
        assert type(got) is list and len(got) == len(sent)
        for g, s in zip(got, sent, strict=True):
            assert_decoded(g, s, proto)
    elif isinstance(sent, dict) and proto == 3:
        assert type(got) is dict and list(got) == list(sent)
        for key, value in sent.items():
            assert_decoded(got[key], value, proto)
    elif isinstance(sent, dict):
        assert_decoded(got, [x for pair in sent.items() for x in pair], proto)
    elif isinstance(sent, set | frozenset):
        assert got == (set(sent) if proto == 3 else list(sent))
    else:
        assert type(got) is type(sent) and got == sent


@settings(deadline=None, max_examples=300)
@given(
    values=st.lists(_replies, min_size=1, max_size=4),
    proto=st.sampled_from([2, 3]),
    cuts=st.lists(st.integers(0, 10**6)),
)
def test_reply_round_trip(values, proto, cuts):
    out = bytearray()
    for value in values:
        encode_into(out, value, proto)
    assert bytes(out) == b"".join(encode(value, proto) for value in values)
    parser = ReplyParser()
    got = []
    for chunk in _chunked(bytes(out), cuts):
        parser.feed(chunk)
        got += _drain(parser.next_reply)
    assert len(got) == len(values)
    for g, v in zip(got, values, strict=True):
        assert_decoded(g, v, proto)
    assert parser.buffered_bytes == 0
