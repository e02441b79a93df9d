"""Timers run on the monotonic clock: a wall clock that steps back does not kill the node (issue 10, 2.9)."""

import random
from pathlib import Path

import pytest

from trionode.config import Config
from trionode.io import data_store
from trionode.io.control import ControlPlane
from trionode.io.node import NodeRuntime
from trionode.io.raft_store import RaftStore

pytestmark = pytest.mark.timeout(30)


def test_a_backward_wall_clock_step_leaves_failure_detection_running(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    wall = [1_800_000_000_000]
    monkeypatch.setattr(NodeRuntime, "clock_ms", staticmethod(lambda: wall[0]))
    config = Config(data_dir=str(tmp_path))
    datadir = data_store.open_datadir(config.data_dir)
    try:
        store = data_store.DataStore.recover(datadir.path, config)
        control = ControlPlane(datadir.node_id, RaftStore.recover(datadir.path), ("127.0.0.1", 0), random.Random(1))
        runtime = NodeRuntime(config, "", datadir, store, control)
        gossip, peer = runtime.gossip, "f" * 40
        gossip.detector.set_members({datadir.node_id, peer}, [datadir.node_id, peer])
        gossip.detector.tick(gossip.clock_ms())  # what the gossip task does every round
        wall[0] -= 3_600_000  # NTP steps the wall clock back an hour
        gossip.detector.tick(gossip.clock_ms())
        assert gossip.healths()[peer] == "online" and control.failed_nodes() == set()
    finally:
        datadir.close()
