"""The two-shard migration simulation: a CI seed range passes with coverage, and planted bugs fail it."""

import os
import subprocess
import sys

import pytest

from tests.sim.planted import EarlyAckingTarget, SelfAckingSource, StagedServer, UnheldOrphans, UnheldPause
from tests.sim.seed_range import run_seeds
from trionode.sim.migration_coverage import MigrationCoverage, MigrationFaults, MigrationResult, report
from trionode.sim.migration_plane import MigrationPlane, run_migration

# The shortest range in which each counter is reached by three seeds or more (five of the
# per-phase counters by exactly three). More outside CI: python -m trionode sim --migration --seeds 1..230
CI_SEEDS = range(1, 11)
CI_STEPS = 1000
PLANTED_SEEDS = range(1, 21)  # searched in order until one fails
PLANTED_STEPS = 1000
SLOW_REPLICAS = MigrationFaults(pull_probability=0.15)


def _run_seed(seed: int) -> MigrationResult:
    return run_migration(seed, CI_STEPS)


@pytest.mark.timeout(240)  # CPU-bound: about 3 s on two idle cores, several times that on a loaded machine
def test_ci_seed_range_passes_with_faults_in_every_phase_on_both_sides() -> None:
    results = run_seeds(_run_seed, CI_SEEDS)
    total = MigrationCoverage()
    for r in results:
        total.add(r.coverage)
    missing = [name for name, value in total.items() if value == 0]
    assert not missing, f"never happened across seeds {CI_SEEDS.start}..{CI_SEEDS.stop - 1}: {missing}"
    assert total.commits >= len(CI_SEEDS) and total.aborts >= len(CI_SEEDS)


def test_slow_replicas_lose_nothing_either() -> None:
    """The planted target's seeds, run right: the lag alone loses nothing."""
    results = [run_migration(seed, 600, faults=SLOW_REPLICAS) for seed in range(1, 4)]
    assert all(r.ok for r in results), [line for r in results for line in report(r)]


def test_a_seed_runs_the_same_twice() -> None:
    first, second = run_migration(7, 400), run_migration(7, 400)
    assert first.notes == second.notes and first.coverage == second.coverage


def test_cli_output_is_byte_identical_across_hash_seeds() -> None:
    command = [sys.executable, "-m", "trionode", "sim", "--migration", "--seeds", "2..3", "--steps", "300"]
    outs = [subprocess.run(command, env={**os.environ, "PYTHONHASHSEED": h}, capture_output=True, text=True,
                           timeout=120, check=False) for h in ("0", "99")]  # fmt: skip
    assert all(o.returncode == 0 for o in outs), outs[0].stdout + outs[0].stderr
    assert outs[0].stdout == outs[1].stdout
    assert outs[0].stdout.splitlines()[-1].startswith("total migration: writes=")


def _first_failure(plane_type: type[MigrationPlane], faults: MigrationFaults | None) -> str:
    for seed in PLANTED_SEEDS:
        result = run_migration(seed, PLANTED_STEPS, plane_type=plane_type, faults=faults)
        if not result.ok:
            return result.failure
    return ""


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("plane_type", "faults", "caught_by"),
    [
        (SelfAckingSource, None, ("a lost write", "found nothing")),
        (UnheldPause, None, ("a lost write", "accepts writes on")),
        (StagedServer, None, ("accepts writes on",)),
        # The target's replicas must lag for an acknowledgement they do not back to matter.
        (EarlyAckingTarget, SLOW_REPLICAS, ("a lost write", "found nothing")),
        # Seed 28's bug: a source restarted mid-commit took writes on slots the target served.
        (UnheldOrphans, None, ("a lost write", "accepts writes on")),
    ],
)
def test_a_planted_migration_bug_is_caught(plane_type: type[MigrationPlane], faults: MigrationFaults | None,
                                           caught_by: tuple[str, ...]) -> None:  # fmt: skip
    failure = _first_failure(plane_type, faults)
    assert failure, f"{plane_type.__name__}: no seed of {PLANTED_SEEDS} failed"
    assert any(fragment in failure for fragment in caught_by), failure
