"""Parsing of numeric arguments with Redis's exact acceptance rules.

Redis reads integers with ``string2ll``: an optional ``-``, no ``+``, no spaces,
no leading zeros (``"0"`` alone is fine, ``"-0"`` is not), within int64. Python's
``int()`` is far more lenient (spaces, ``+``, ``_``), so a regex gates it first.
Every parser raises :class:`CommandError` with the string the caller names,
because Redis uses different messages for the same failure in different places.
"""

import re

from trionode.core.errors import NOT_INTEGER, CommandError

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1

# At most 19 digits after the first: the int64 range check catches the rest.
_INT_RE = re.compile(rb"0|-?[1-9][0-9]{0,18}")
# strtoul as Redis's SCAN uses it: optional sign, digits; "" parses as 0.
_CURSOR_RE = re.compile(rb"(?:[+-]?[0-9]+)?")


def parse_int(raw: bytes, error: str = NOT_INTEGER) -> int:
    """An int64 under Redis's string2ll rules, else ``CommandError(error)``."""
    if _INT_RE.fullmatch(raw) is None:
        raise CommandError(error)
    value = int(raw)
    if value < INT64_MIN or value > INT64_MAX:
        raise CommandError(error)
    return value


def is_int(raw: bytes) -> bool:
    """True if ``raw`` would pass :func:`parse_int`."""
    if _INT_RE.fullmatch(raw) is None:
        return False
    return INT64_MIN <= int(raw) <= INT64_MAX


def parse_cursor(raw: bytes, error: str) -> int:
    """An unsigned 64-bit cursor as C ``strtoul`` reads it (negatives wrap)."""
    if _CURSOR_RE.fullmatch(raw) is None:
        raise CommandError(error)
    if not raw:
        return 0
    value = int(raw)
    if abs(value) > UINT64_MAX:
        raise CommandError(error)
    return value & UINT64_MAX


def add_int64(a: int, b: int, error: str) -> int:
    """``a + b``, or ``CommandError(error)`` if the sum leaves int64."""
    total = a + b
    if total < INT64_MIN or total > INT64_MAX:
        raise CommandError(error)
    return total
