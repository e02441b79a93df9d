"""Simulated time and seeded randomness.

Theory of operation. The simulator has one global clock: an integer count of
ticks, advanced by one per step. Nodes see time only through ``tick()`` calls,
which the runner may skip or double for one node to model clock drift.

Each subsystem draws from its own ``random.Random``, derived from the run's
seed and the subsystem's name. A string seed is turned into an integer with
SHA-512 by ``random.Random`` itself (seed version 2), so the derivation does
not depend on ``PYTHONHASHSEED``; and adding draws in one subsystem does not
shift the choices of another.
"""

import random
from dataclasses import dataclass


def derive_rng(seed: int, name: str) -> random.Random:
    """A Random for one subsystem, a pure function of (seed, name)."""
    assert seed >= 0, seed
    return random.Random(f"trionode-sim/{seed}/{name}")


@dataclass(slots=True)
class SimClock:
    """The global simulated time, in ticks. Invariant: never goes backwards."""

    now_ticks: int = 0

    def advance(self) -> int:
        self.now_ticks += 1
        return self.now_ticks
