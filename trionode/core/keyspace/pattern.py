"""Redis glob patterns (KEYS, SCAN MATCH), compiled to regexes and cached.

Theory of operation
-------------------
Redis matches with ``stringmatchlen``; ``fnmatch`` differs from it in many
corners, so this module re-reads a pattern exactly the way that C function
consumes it and emits an equivalent anchored regex:

* ``*`` any run of bytes, ``?`` any one byte, ``\\x`` the byte ``x`` (a lone
  trailing backslash is itself).
* ``[...]`` a class: ``^`` first negates, ``\\x`` escapes, ``a-z`` is a range
  (reversed ends are swapped), ``]`` closes. A class that never closes takes
  the rest of the pattern; ``[]`` matches nothing and ``[^]`` any byte.
  ``a-`` followed by any byte is a range too (``[a-]`` is the range a..]).

Classes consume the pattern independently of the subject string, so the
translation is exact. One quirk sits outside the regex: ``stringmatchlen``
stops when the subject is empty, so the empty key matches only the empty
pattern (KEYS and SCAN special-case a lone ``*`` before matching). Compiled patterns live in a small bounded cache.
"""

import re

_CACHE_ENTRIES_MAX = 256
_cache: dict[bytes, re.Pattern[bytes]] = {}


def glob_match(pattern: bytes, subject: bytes) -> bool:
    """True if ``subject`` matches the Redis glob ``pattern``."""
    if not subject:
        return not pattern
    compiled = _cache.get(pattern)
    if compiled is None:
        if len(_cache) >= _CACHE_ENTRIES_MAX:
            _cache.clear()  # crude but bounded; patterns repeat in practice
        compiled = _cache[pattern] = re.compile(translate(pattern), re.DOTALL)
    return compiled.fullmatch(subject) is not None


def _byte(c: int) -> bytes:
    return b"\\x%02x" % c


def translate(pattern: bytes) -> bytes:
    """The regex (for ``fullmatch``) equivalent to a Redis glob."""
    out: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # '*'
            out.append(b".*")
            i += 1
        elif c == 0x3F:  # '?'
            out.append(b".")
            i += 1
        elif c == 0x5B:  # '['
            regex, i = _translate_class(pattern, i + 1)
            out.append(regex)
        elif c == 0x5C and i + 1 < n:  # '\\' escaping the next byte
            out.append(_byte(pattern[i + 1]))
            i += 2
        else:
            out.append(_byte(c))
            i += 1
    return b"".join(out)


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
