"""A tiny client over a Keyspace for tests: argv building, clock, error capture."""

from typing import Any

import pytest

from trionode.core.errors import CommandError
from trionode.core.keyspace import Keyspace, execute

START_MS = 1_700_000_000_000


def encode(arg: Any) -> bytes:
    return arg if isinstance(arg, bytes) else str(arg).encode()


def snapshot(ks: Keyspace) -> list:
    """A deep, comparable copy of everything a keyspace holds."""
    return [entry for chunk in ks.dump(1 << 30) for entry in chunk]


class Client:
    def __init__(self, now_ms: int | None = START_MS, check: bool = True) -> None:
        self.ks = Keyspace()
        self.ks.now_ms = now_ms
        self.check = check  # check_invariants after each command: O(16384), skip in long loops

    def __call__(self, *args: Any) -> Any:
        reply = execute(self.ks, [encode(a) for a in args])
        if self.check:
            self.ks.check_invariants()
        return reply

    def err(self, *args: Any) -> str:
        """Run a command that must fail; assert it changed nothing."""
        before = snapshot(self.ks)
        effects_before = len(self.ks.effects)
        with pytest.raises(CommandError) as info:
            self(*args)
        assert snapshot(self.ks) == before
        assert len(self.ks.effects) == effects_before
        return str(info.value)

    def tick(self, ms: int) -> None:
        assert self.ks.now_ms is not None
        self.ks.now_ms += ms

    def drain(self) -> list[list[bytes]]:
        effects, self.ks.effects = self.ks.effects, []
        return effects
