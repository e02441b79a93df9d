"""Redis glob patterns (KEYS, SCAN MATCH), matched without backtracking.

Theory of operation
-------------------
Redis matches with ``stringmatchlen``; ``fnmatch`` differs from it in many
corners, so this module re-reads a pattern exactly the way that C function
consumes it:

* ``*`` any run of bytes, ``?`` any one byte, ``\\x`` the byte ``x`` (a lone
  trailing backslash is itself).
* ``[...]`` a class: ``^`` first negates, ``\\x`` escapes, ``a-z`` is a range
  (reversed ends are swapped), ``]`` closes. A class that never closes takes
  the rest of the pattern; ``[]`` matches nothing and ``[^]`` any byte.
  ``a-`` followed by any byte is a range too (``[a-]`` is the range a..]).

Every token but ``*`` matches exactly one byte, so the stars cut a pattern
into fixed-length *segments*. A pattern compiles to one small regex per
segment, each a plain sequence of one-byte classes (no quantifier, no
alternation, so the regex engine cannot backtrack inside it). Matching is
then the classic greedy algorithm: the first segment is anchored at the start,
the last at the end, and each one between takes its leftmost occurrence after
the previous one. Leftmost is always safe, because it leaves the most room to
the rest. The work per call is at most (key length) x (pattern length) byte
comparisons; a regex translation with ``.*`` for every star took 28 s on
``*a*a*a*a*a*a*b`` against a key of 100 ``a``s.

One quirk sits outside the segments: ``stringmatchlen`` stops when the subject
is empty, so the empty key matches only the empty pattern (KEYS and SCAN
special-case a lone ``*`` before matching). Compiled patterns live in a small
bounded cache.
"""

import re
from dataclasses import dataclass

_CACHE_ENTRIES_MAX = 256


@dataclass(frozen=True, slots=True)
class _Segment:
    regex: re.Pattern[bytes]  # a sequence of one-byte classes
    length: int               # bytes it matches


@dataclass(frozen=True, slots=True)
class _Glob:
    segments: tuple[_Segment, ...]  # the pattern cut at its stars; one segment if it has none


_cache: dict[bytes, _Glob] = {}


def glob_match(pattern: bytes, subject: bytes) -> bool:
    """True if ``subject`` matches the Redis glob ``pattern``."""
    if not subject:
        return not pattern
    glob = _cache.get(pattern)
    if glob is None:
        if len(_cache) >= _CACHE_ENTRIES_MAX:
            _cache.clear()  # crude but bounded; patterns repeat in practice
        glob = _cache[pattern] = _compile(pattern)
    head, *rest = glob.segments
    if not rest:
        return head.length == len(subject) and head.regex.match(subject) is not None
    *middle, tail = rest
    position, end = head.length, len(subject) - tail.length
    if position > end or head.regex.match(subject) is None:
        return False
    for segment in middle:
        if not segment.length:
            continue  # between two adjacent stars
        found = segment.regex.search(subject, position, end)
        if found is None:
            return False
        position = found.end()
    return tail.regex.match(subject, end) is not None


def _compile(pattern: bytes) -> _Glob:
    return _Glob(tuple(
        _Segment(re.compile(b"".join(tokens), re.DOTALL), len(tokens)) for tokens in tokenize(pattern)
    ))


def _byte(c: int) -> bytes:
    return b"\\x%02x" % c


def tokenize(pattern: bytes) -> list[list[bytes]]:
    """The pattern's segments (split at each ``*``), each a list of one-byte regex classes."""
    segments: list[list[bytes]] = [[]]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # '*'
            segments.append([])
            i += 1
            continue
        if c == 0x3F:  # '?'
            token, i = b".", i + 1
        elif c == 0x5B:  # '['
            token, i = _translate_class(pattern, i + 1)
        elif c == 0x5C and i + 1 < n:  # '\\' escaping the next byte
            token, i = _byte(pattern[i + 1]), i + 2
        else:
            token, i = _byte(c), i + 1
        segments[-1].append(token)
    return segments


def _translate_class(pattern: bytes, i: int) -> tuple[bytes, int]:
    """Translate a class starting just after '['; returns (regex, next index)."""
    n = len(pattern)
    negate = i < n and pattern[i] == 0x5E  # '^'
    if negate:
        i += 1
    items: list[bytes] = []
    while i < n:
        c = pattern[i]
        if c == 0x5C and n - i >= 2:
            items.append(_byte(pattern[i + 1]))
            i += 2
        elif c == 0x5D:  # ']'
            i += 1
            break
        elif n - i >= 3 and pattern[i + 1] == 0x2D:  # 'a-z'
            lo, hi = sorted((c, pattern[i + 2]))
            items.append(_byte(lo) + b"-" + _byte(hi))
            i += 3
        else:
            items.append(_byte(c))
            i += 1
    if not items:
        return (b"." if negate else b"(?!)"), i
    return b"[" + (b"^" if negate else b"") + b"".join(items) + b"]", i
