"""Every drill, briefly: real nodes, real faults, a recorded workload, the independent checker.

Each run lasts about 20 s of faults (``DRILL_DURATION_S``) plus start-up, recovery and
final reads. A failure prints the drill's one-line summary, its findings and where its
history and node logs are (the test's tmp_path is kept by pytest for inspection).
"""

from pathlib import Path

import pytest

from scripts.drills.nemesis import NEMESES
from scripts.drills.runner import DrillOptions, run

DRILL_DURATION_S = 10.0
DRILL_SEED = 1
ACKED_MIN = 100  # the workload really ran: a drill that acknowledged nothing proves nothing

# Known node bugs (issue 10, section 2) that the broadened workload exposes; fixes land
# separately, and the lead removes a mark once its fix is merged.
FLUSHALL_ON_REPLICA = (
    "node bug: a replica executes FLUSHALL (keyless commands skip routing), logs it at its own offset, "
    "and dies with ReplayError when its primary's next record arrives (crashes>=1)"
)
CLOCK_WENT_BACK = (
    "node bug: gossip and replication timers use the wall clock; a backward step kills the node with "
    "'AssertionError: the clock went back' (core/gossip/detector.py), crashes>=1"
)
KNOWN_BUGS: dict[str, str] = dict.fromkeys(sorted(NEMESES), FLUSHALL_ON_REPLICA) | {
    "clock-step": f"{CLOCK_WENT_BACK}; and {FLUSHALL_ON_REPLICA}"
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
