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

Compiling is what a long pattern costs (``re`` parses its pattern in Python,
microseconds per byte: a 200 KB pattern froze the node for seconds). So a
run of one repeated token compiles as one bounded repeat (``?`` a thousand
times is ``.{1000}``), and a pattern is compiled only once a subject is as
long as the bytes it must match: shorter subjects are refused by length
alone, whatever the pattern holds.

One quirk sits outside the segments: ``stringmatchlen`` stops when the subject
is empty, so the empty key matches only the empty pattern (KEYS and SCAN
special-case a lone ``*`` before matching). Patterns, tokenized and compiled
as needed, live in a small bounded cache.
"""

import itertools
import re
from dataclasses import dataclass, field

_CACHE_ENTRIES_MAX = 256


@dataclass(frozen=True, slots=True)
class _Segment:
    regex: re.Pattern[bytes]  # a sequence of one-byte classes
    length: int               # bytes it matches


@dataclass(slots=True)
class _Glob:
    tokens: list[list[bytes]]  # the pattern cut at its stars; one segment if it has none
    length: int                # bytes a subject needs at least: every token matches one
    segments: tuple[_Segment, ...] = field(default=())  # compiled on first use by a long enough subject


_cache: dict[bytes, _Glob] = {}


def glob_match(pattern: bytes, subject: bytes) -> bool:
    """True if ``subject`` matches the Redis glob ``pattern``."""
    if not subject:
        return not pattern
    glob = _cache.get(pattern)
    if glob is None:
        if len(_cache) >= _CACHE_ENTRIES_MAX:
            _cache.clear()  # crude but bounded; patterns repeat in practice
        tokens = tokenize(pattern)
        if len(tokens) > 2:  # adjacent stars leave empty segments between them; as one star they match the same
            tokens = [tokens[0], *filter(None, tokens[1:-1]), tokens[-1]]
        glob = _cache[pattern] = _Glob(tokens, sum(map(len, tokens)))
    if glob.length > len(subject):
        return False
    if not glob.segments:
        glob.segments = tuple(_Segment(_compile(tokens), len(tokens)) for tokens in glob.tokens)
    return _match(glob.segments, subject)


def _match(segments: tuple[_Segment, ...], subject: bytes) -> bool:
    head, *rest = segments
    if not rest:
        return head.length == len(subject) and head.regex.match(subject) is not None
    *middle, tail = rest
    position, end = head.length, len(subject) - tail.length
    if position > end or head.regex.match(subject) is None:
        return False
    for segment in middle:
        found = segment.regex.search(subject, position, end)
        if found is None:
            return False
        position = found.end()
    return tail.regex.match(subject, end) is not None


def _compile(tokens: list[bytes]) -> re.Pattern[bytes]:
    """One segment's regex; a run of one repeated token is a single repeat, whatever its length."""
    runs = ((token, sum(1 for _ in run)) for token, run in itertools.groupby(tokens))
    return re.compile(b"".join(token if n == 1 else b"(?:%s){%d}" % (token, n) for token, n in runs), re.DOTALL)


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
