"""Untrusted values named in an error message: short, and never an error of their own.

Theory of operation
-------------------
The decoders of peer messages (bus envelopes, Raft, replication, gossip, cluster
commands) refuse a bad field with an error that names the value. Such a value
may be an integer Python will not print (more than 4300 decimal digits: ``repr``
raises ValueError) or a structure too large to print whole. Named with ``!r``,
the first raised a ValueError from inside the code that was refusing it, which
no caller expected: one frame stopped the node. :func:`shown` prints a bounded
abbreviation (``reprlib``) and says so when a value cannot be printed.
"""

import reprlib
from typing import Any

_chars_default = 60
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = _chars_default


def shown(value: Any, chars: int = _chars_default) -> str:
    """``repr(value)`` cut to ``chars``, never raising."""
    try:
        text = _repr.repr(value)
    except ValueError:  # an integer too long to print in decimal
        text = f"<{type(value).__name__} too large to show>"
    return text[:chars]
