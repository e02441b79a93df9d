"""A drill stopped from outside takes its cluster with it.

A drill killed by hand (SIGTERM, or its terminal closing) once left its five node processes
running, holding ports and disk; the next drill then raced them.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.drills.cluster import processes_running

ROOT = Path(__file__).resolve().parents[2]
NODES = 5
WAIT_S = 90.0


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_drill_stopped_by_a_signal_kills_every_node_it_started(signum: int, tmp_path: Path) -> None:
    out = tmp_path / "run"
    drill = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "drill"), "kill-random", "--duration", "120",
                              "--seed", "1", "--out", str(out)],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for(lambda: len(processes_running(str(out / "conf"))) == NODES, "the drill's five nodes")
        drill.send_signal(signum)
        code = drill.wait(timeout=WAIT_S)
        _wait_for(lambda: not processes_running(str(out / "conf")), "the nodes to be gone")
        assert code == 128 + signum  # the shell's convention for "ended by this signal"
    finally:
        drill.kill()
        for pid in processes_running(str(out / "conf")):
            os.kill(pid, signal.SIGKILL)
