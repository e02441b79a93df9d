"""The clock-step drill's shim steps a process's wall clock, and nothing else."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.drills.cluster import CLOCK_SHIM

PROBE = """
import threading, time
wall, mono = time.time(), time.monotonic()
time.sleep(0.1)  # a step must not break sleeps or timed waits (libfaketime does, in Python)
lock = threading.Lock(); lock.acquire()
assert lock.acquire(timeout=0.05) is False
path = __import__("os").environ["TRIONODE_DRILL_CLOCK_FILE"]
open(path, "w").write("-3000")
time.sleep(0.05)
print(round(time.time() - wall - (time.monotonic() - mono), 1), round(time.time_ns() / 1e9 - time.time(), 1))
"""


@pytest.mark.timeout(30)
def test_the_wall_clock_steps_by_the_offset_in_the_file(tmp_path: Path) -> None:
    clock = tmp_path / "n1.offset-ms"
    clock.write_text("2000\n")
    env = {**os.environ, "PYTHONPATH": str(CLOCK_SHIM), "TRIONODE_DRILL_CLOCK_FILE": str(clock)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    step_s, skew_s = out.stdout.split()
    assert float(step_s) == -5.0  # from +2 s to -3 s, while monotonic time went on
    assert float(skew_s) == 0.0  # time.time and time.time_ns agree
