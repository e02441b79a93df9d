"""Coverage counters and the bounded event trace printed with a failure.

Theory of operation. A passing simulation proves little unless the faults it
claims to inject happened, so every run prints :class:`Coverage` (and, with
``--data-plane``, :class:`DataCoverage`), and the CI tests assert each counter
is non-zero across their seed range. The trace keeps the last
``TRACE_EVENTS_MAX`` notable events (elections, crashes, partitions,
membership, snapshots; ``data:`` events of the data plane); with the seed, it
is the starting point for a replay.
"""

import dataclasses
from collections import deque
from dataclasses import dataclass

TRACE_EVENTS_MAX = 30


class _Counters:
    """Named integer counters: listed, summed and printed in field order."""

    __slots__ = ()

    def items(self) -> list[tuple[str, int]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]  # type: ignore[arg-type]

    def add(self, other: "_Counters") -> None:
        for name, value in other.items():
            setattr(self, name, getattr(self, name) + value)

    def format(self) -> str:
        return " ".join(f"{name}={value}" for name, value in self.items())


@dataclass(slots=True)
class Coverage(_Counters):
    elections: int = 0
    leader_changes: int = 0
    crashes: int = 0
    restarts: int = 0
    partitions: int = 0
    msgs_dropped: int = 0
    msgs_duplicated: int = 0
    snapshots_installed: int = 0
    conf_changes: int = 0
    proposals_committed: int = 0
    stale_rejected: int = 0
    torn_tails_cut: int = 0
    crashes_mid_persist: int = 0
    corruptions_detected: int = 0
    transfers: int = 0


@dataclass(slots=True)
class DataCoverage(_Counters):
    """What the data plane (``--data-plane``) did: printed only when it runs."""

    writes: int = 0  # client effects the primary appended
    acks: int = 0  # replica acks the primary's tracker accepted
    hw_advances: int = 0  # steps at which the acknowledged offset moved
    resyncs_partial: int = 0
    resyncs_full: int = 0
    isr_shrinks: int = 0  # committed and accepted
    isr_expands: int = 0
    isr_refused: int = 0  # committed but refused (stale version, duplicates)
    replica_crashes: int = 0
    primary_crashes: int = 0
    partitions: int = 0
    msgs_dropped: int = 0


class Recorder:
    """The current step, the coverage counters and the trace ring."""

    def __init__(self) -> None:
        self.step = 0
        self.applied_max = 0  # the highest index any node applied: coverage counts each entry once
        self.coverage = Coverage()
        self.trace: deque[str] = deque(maxlen=TRACE_EVENTS_MAX)
        self.names: dict[str, str] = {}  # node id -> short name (n1, n2, ...) for readable events

    def name(self, node_id: str) -> str:
        return self.names.get(node_id, node_id[-6:])

    def note(self, text: str) -> None:
        self.trace.append(f"step {self.step}: {text}")
