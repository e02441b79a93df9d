"""What trionode knows about each command, as data.

A :class:`CommandSpec` carries the same facts Redis keeps in its command table:
arity (positive means exact, negative means "at least", the name counts), flags,
and where the keys are (first, last, step; last -1 means "to the end"). COMMAND,
COMMAND GETKEYS, cluster routing and the dispatcher all read these; nothing else
hard-codes key positions.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str  # lower case, as COMMAND reports it
    arity: int
    flags: tuple[str, ...]  # Redis flag names: write, readonly, denyoom, fast, ...
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    handler: Callable[..., Any] | None = None
    # Derived once, because the dispatcher asks for them on every command.
    is_write: bool = field(init=False, repr=False, compare=False)
    single_key: bool = field(init=False, repr=False, compare=False)  # exactly one key, at first_key
    _argc_min: int = field(init=False, repr=False, compare=False)
    _argc_max: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_write", "write" in self.flags)
        object.__setattr__(self, "single_key", self.first_key > 0 and self.last_key == self.first_key)
        object.__setattr__(self, "_argc_min", abs(self.arity))
        object.__setattr__(self, "_argc_max", self.arity if self.arity > 0 else 1 << 62)
        assert self.arity != 0, self.name

    def arity_ok(self, argc: int) -> bool:
        return self._argc_min <= argc <= self._argc_max

    def key_positions(self, argc: int) -> range:
        """Indexes of the key arguments in an argv of length ``argc``."""
        if self.first_key <= 0:
            return range(0)
        last = self.last_key if self.last_key >= 0 else argc + self.last_key
        return range(self.first_key, min(last, argc - 1) + 1, self.step)
