"""One anomaly the checker found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One anomaly. ``ops`` are the indices (invocation order) of the operations involved."""

    kind: str
    key: str
    message: str
    ops: tuple[int, ...] = ()
    value: Any = None
