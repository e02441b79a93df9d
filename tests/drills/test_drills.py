"""Every drill, briefly: real nodes, real faults, the broadened workload, the independent checker.

Each of the 13 drills runs 10 s of faults (``DRILL_DURATION_S``) plus start-up, recovery
and final reads: with three more drills than before, 10 s instead of 15 s keeps the
total about the same. A failure prints the drill's one-line summary, its findings and
where its history, timeline.svg and node logs are (pytest keeps the test's tmp_path).
"""

from pathlib import Path

import pytest

from scripts.drills.nemesis import NEMESES
from scripts.drills.runner import DrillOptions, run

DRILL_DURATION_S = 10.0
DRILL_SEED = 1
ACKED_MIN = 100  # the workload really ran: a drill that acknowledged nothing proves nothing

# Known node bugs (issue 10, section 2) that the broadened workload exposes. Fixes land
# separately; the lead removes a mark once its fix is merged. Measured at seed 1 with
# 10 s: every drill fails on the first (unsafe-flushall, crashes, and lost writes once a
# flushed replica is promoted), and kill-primary --without flushall on the second.
REPLICA_WRITES = (
    "node bugs 2.1/2.2: a replica executes FLUSHALL sent to it, and deletes an expired key on a READONLY GET; "
    "the write lands at the replica's own offset and it dies with ReplayError at its primary's next record "
    "(unsafe-flushall, crashes>=1, then lost writes when a flushed replica is promoted)"
)
CLOCK_WENT_BACK = (
    "node bug 2.9: gossip and replication timers use the wall clock; a backward step kills the node with "
    "'AssertionError: the clock went back' (core/gossip/detector.py), crashes>=1"
)
KNOWN_BUGS: dict[str, str] = dict.fromkeys(sorted(NEMESES), REPLICA_WRITES) | {
    "clock-step": f"{CLOCK_WENT_BACK}; and {REPLICA_WRITES}"
}


def _case(name: str) -> object:
    reason = KNOWN_BUGS.get(name)
    return pytest.param(name, marks=pytest.mark.xfail(strict=False, reason=reason)) if reason else name


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", [_case(name) for name in sorted(NEMESES)])
def test_drill(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    result = run(DrillOptions(name, DRILL_DURATION_S, DRILL_SEED, out))
    findings = (out / "findings.txt").read_text() if (out / "findings.txt").exists() else ""
    detail = f"{result.line()}\n{findings[:4000]}\nrun directory: {out}"
    assert not result.error, detail
    assert result.faults >= 1, detail
    assert result.check is not None and result.check.acked >= ACKED_MIN, detail
    assert result.unread == 0, detail
    assert result.check.valid, detail
    assert result.exit_code == 0, detail
