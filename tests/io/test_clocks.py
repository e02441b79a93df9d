"""Timers run on the monotonic clock: a wall clock that steps back does not kill the node (issue 10, 2.9)."""

from pathlib import Path

import pytest

from tests.io.helpers import node_runtime
from trionode.io.node import NodeRuntime

pytestmark = pytest.mark.timeout(30)


def test_a_backward_wall_clock_step_leaves_failure_detection_running(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    wall = [1_800_000_000_000]
    monkeypatch.setattr(NodeRuntime, "clock_ms", staticmethod(lambda: wall[0]))
    with node_runtime(tmp_path) as runtime:
        gossip, peer, me = runtime.gossip, "f" * 40, runtime.node_id
        gossip.detector.set_members({me, peer}, [me, peer])
        gossip.detector.tick(gossip.clock_ms())  # what the gossip task does every round
        wall[0] -= 3_600_000  # NTP steps the wall clock back an hour
        gossip.detector.tick(gossip.clock_ms())
        assert gossip.healths()[peer] == "online" and runtime.control.failed_nodes() == set()
