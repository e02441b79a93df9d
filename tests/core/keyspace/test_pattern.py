"""Redis glob semantics: fixed cases checked against redis-server 7.0, plus a
Hypothesis comparison with a direct port of Redis's ``stringmatchlen``."""

import fnmatch
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.core.keyspace.pattern import glob_match


def reference_match(p: bytes, s: bytes) -> bool:
    """A line-by-line port of Redis's stringmatchlen (case-sensitive)."""
    pi, si = 0, 0
    while pi < len(p) and si < len(s):
        c = p[pi]
        if c == ord("*"):
            while pi + 1 < len(p) and p[pi + 1] == ord("*"):
                pi += 1
            if pi + 1 == len(p):
                return True
            return any(reference_match(p[pi + 1 :], s[k:]) for k in range(si, len(s)))
        if c == ord("?"):
            si += 1
        elif c == ord("["):
            pi += 1
            negate = pi < len(p) and p[pi] == ord("^")
            if negate:
                pi += 1
            match = False
            while True:
                left = len(p) - pi
                if left >= 2 and p[pi] == ord("\\"):
                    pi += 1
                    match |= p[pi] == s[si]
                elif left > 0 and p[pi] == ord("]"):
                    break
                elif left == 0:
                    pi -= 1
                    break
                elif left >= 3 and p[pi + 1] == ord("-"):
                    lo, hi = sorted((p[pi], p[pi + 2]))
                    pi += 2
                    match |= lo <= s[si] <= hi
                else:
                    match |= p[pi] == s[si]
                pi += 1
            if negate:
                match = not match
            if not match:
                return False
            si += 1
        else:
            if c == ord("\\") and len(p) - pi >= 2:
                pi += 1
            if p[pi] != s[si]:
                return False
            si += 1
        pi += 1
        if si == len(s):
            while pi < len(p) and p[pi] == ord("*"):
                pi += 1
            break
    return pi == len(p) and si == len(s)


KEYS = [b"k", b"a", b"]", b"\\", b"-", b"ab", b"k]x", b"", b"a\nb"]

# (pattern, keys it matches among KEYS), as redis-server 7.0.15 answered KEYS.
REDIS_ANSWERS = [
    (b"\\", {b"\\"}),
    (b"k\\", set()),
    (b"[^a]", {b"-", b"\\", b"]", b"k"}),
    (b"[a-]", {b"]", b"a"}),
    (b"[z-a]", {b"a", b"k"}),
    (b"[]", set()),
    (b"[^]", {b"-", b"\\", b"]", b"a", b"k"}),
    (b"[\\]", {b"]"}),
    (b"[a-]x", {b"]", b"a"}),
    (b"[k]]x", {b"k]x"}),
    (b"*\\", {b"\\"}),
    (b"k[", set()),
    (b"[k", {b"k"}),
    (b"a?b", {b"a\nb"}),
    (b"**", set(KEYS) - {b""}),  # the empty key matches only "" (and KEYS's "*" fast path)
    (b"", {b""}),
]


@pytest.mark.parametrize("pattern,expected", REDIS_ANSWERS)
def test_matches_redis(pattern, expected):
    assert {k for k in KEYS if glob_match(pattern, k)} == expected
    assert {k for k in KEYS if reference_match(pattern, k)} == expected


ALPHABET = st.sampled_from(list(b"ab-^]\\[*?z"))


@settings(max_examples=1000)
@given(st.lists(ALPHABET, max_size=8).map(bytes), st.lists(ALPHABET, max_size=6).map(bytes))
def test_same_as_stringmatchlen(pattern, subject):
    assert glob_match(pattern, subject) == reference_match(pattern, subject)


@settings(max_examples=500)
@given(st.lists(st.sampled_from(list(b"ab*?")), max_size=12).map(bytes),
       st.lists(st.sampled_from(list(b"ab")), min_size=1, max_size=24).map(bytes))
def test_same_as_fnmatch_where_they_agree(pattern, subject):
    # Without classes or escapes, Redis globs and fnmatch mean the same thing.
    expected = fnmatch.fnmatchcase(subject.decode(), pattern.decode())
    assert glob_match(pattern, subject) == expected == reference_match(pattern, subject)


@settings(max_examples=300)
@given(st.lists(ALPHABET, max_size=14).map(bytes), st.lists(ALPHABET, min_size=7, max_size=16).map(bytes))
def test_same_as_stringmatchlen_on_longer_keys(pattern, subject):
    assert glob_match(pattern, subject) == reference_match(pattern, subject)


@pytest.mark.timeout(10)
def test_a_pathological_pattern_is_matched_in_linear_time():
    # A backtracking matcher needs about C(100, 6) steps here (28 s as a regex).
    started = time.perf_counter()
    assert not glob_match(b"*a*a*a*a*a*a*b", b"a" * 100)
    assert not glob_match(b"*a" * 200 + b"*b", b"a" * 20_000)
    assert glob_match(b"*a" * 200 + b"*", b"a" * 20_000)
    assert time.perf_counter() - started < 1.0


def _compiled_sources(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    from trionode.core.keyspace import pattern

    sources: list[bytes] = []
    compile_real = pattern.re.compile
    monkeypatch.setattr(pattern.re, "compile", lambda text, *a: sources.append(text) or compile_real(text, *a))
    return sources


def test_a_long_pattern_against_shorter_keys_compiles_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 12 §3.2: KEYS and SCAN MATCH compiled a 200 KB pattern first (seconds, every other client frozen),
    # though it can match no key shorter than the bytes it fixes.
    sources = _compiled_sources(monkeypatch)
    long = bytes(b"abcdefgh"[i * 7 % 8] for i in range(200_000))
    assert not any(glob_match(long, b"key:%d" % i) for i in range(100))
    assert not glob_match(b"*" + long + b"*", b"a" * 1000)
    assert sources == []


def test_a_run_of_one_token_compiles_to_one_bounded_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    sources = _compiled_sources(monkeypatch)
    n = 100_000
    assert glob_match(b"?" * n, b"x" * n) and not glob_match(b"?" * n, b"x" * (n + 1))
    assert glob_match(b"[ab]" * n + b"*", b"ab" * n) and glob_match(b"\\*" * 3, b"***")
    assert not glob_match(b"a" * n + b"*b", b"a" * n + b"c") and glob_match(b"a" * n + b"*b", b"a" * (n + 3) + b"b")
    assert max(map(len, sources)) < 64
