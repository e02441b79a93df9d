"""One seed, one output: in-process twice, and across processes with different PYTHONHASHSEED."""

import os
import subprocess
import sys

from trionode.sim.runner import SimConfig, report, run

STEPS = 800


def test_same_seed_twice_in_process_is_identical() -> None:
    first = report(run(SimConfig(seed=11, steps=STEPS)))
    second = report(run(SimConfig(seed=11, steps=STEPS)))
    assert first == second
    assert first[-1] == f"ok seed=11 steps={STEPS}"
    assert report(run(SimConfig(seed=12, steps=STEPS))) != first  # the seed matters


def _cli(hash_seed: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    command = [sys.executable, "-m", "trionode", "sim", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_stdout_is_byte_identical_across_hash_seeds() -> None:
    outs = [_cli(h, "--seeds", "3..5", "--steps", "600") for h in ("0", "1", "4242")]
    assert all(o.returncode == 0 for o in outs), outs[0].stdout + outs[0].stderr
    assert outs[0].stdout == outs[1].stdout == outs[2].stdout
    assert "steps/s" in outs[0].stderr and "steps/s" not in outs[0].stdout
    single = _cli("7", "--seed", "4", "--steps", "600")
    assert single.stdout.splitlines()[-1] == "ok seed=4 steps=600"
    assert f"ok seed=4 steps=600 {single.stdout.splitlines()[-2].removeprefix('coverage: ')}" in outs[0].stdout


def test_the_checker_saw_commits_and_leaders() -> None:
    from trionode.sim.runner import Simulation

    sim = Simulation(SimConfig(seed=5, steps=STEPS))
    assert sim.run().ok
    checker = sim.checker
    assert len(checker.committed) > 20 and len(checker.leaders) >= 1 and len(checker.applied) > 20
    assert checker.durable_target is not None and checker.durable_target.index > 20
