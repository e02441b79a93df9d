"""``trionode sim``: run one seed or a range, print reports, time the run.

Theory of operation. This is the only simulator module that reads the wall
clock, and only to print steps per second on stderr: stdout depends on the
seeds alone, byte for byte, so two runs can be diffed. Exit status 0 when
every seed passed, 1 when any failed.
"""

import re
import time
from collections.abc import Callable

from trionode.sim.failover_migration import CombinedCoverage
from trionode.sim.failover_plane import FailoverCoverage
from trionode.sim.migration_coverage import MigrationCoverage, MigrationResult
from trionode.sim.migration_coverage import report as migration_report
from trionode.sim.migration_plane import run_migration
from trionode.sim.runner import SimConfig, SimResult, report, run
from trionode.sim.trace import Coverage, DataCoverage

_RANGE = re.compile(r"^(\d+)\.\.(\d+)$")


def parse_seeds(text: str) -> range:
    """``A..B`` (inclusive) as a range; ValueError for anything else."""
    match = _RANGE.match(text)
    if match is None or int(match[1]) > int(match[2]):
        raise ValueError(f"--seeds wants A..B with A <= B, not {text!r}")
    return range(int(match[1]), int(match[2]) + 1)


def run_seeds(seeds: range, steps: int, nodes: int, out: Callable[[str], None], data_plane: bool = False,
              failover: bool = False, migration: bool = False) -> tuple[list[SimResult], int]:  # fmt: skip
    """Run each seed; one line per seed (with the trace of a failure), then totals. Returns (results, steps run)."""
    results, total, steps_run = [], Coverage(), 0
    data_total: DataCoverage | FailoverCoverage | CombinedCoverage = (
        CombinedCoverage() if migration else FailoverCoverage() if failover else DataCoverage()
    )
    for seed in seeds:
        config = SimConfig(seed=seed, steps=steps, nodes=nodes, data_plane=data_plane, failover=failover,
                           migration=migration)  # fmt: skip
        result = run(config)
        results.append(result)
        total.add(result.coverage)
        steps_run += result.steps
        data = ""
        if result.data_coverage is not None:
            data_total.add(result.data_coverage)  # type: ignore[arg-type]
            data = f" data-plane: {result.data_coverage.format()}"
        if result.ok:
            out(f"ok seed={seed} steps={result.steps} {result.coverage.format()}{data}")
        else:
            for line in report(result)[:-1]:
                out(line)
    failed = [r.seed for r in results if not r.ok]
    out(f"seeds={seeds.start}..{seeds.stop - 1} runs={len(results)} ok={len(results) - len(failed)} "
        f"failed={len(failed)}{' ' + ','.join(map(str, failed)) if failed else ''}")  # fmt: skip
    out(f"total: {total.format()}")
    if data_plane:
        out(f"total data-plane: {data_total.format()}")
    return results, steps_run


def run_migration_seeds(seeds: range, steps: int, out: Callable[[str], None]) -> list[MigrationResult]:
    """``--migration``: one line per seed (the trace of a failure), then totals."""
    results, total = [], MigrationCoverage()
    for seed in seeds:
        result = run_migration(seed, steps)
        results.append(result)
        total.add(result.coverage)
        if result.ok:
            out(f"ok seed={seed} steps={steps} {result.coverage.format()}")
        else:
            for line in migration_report(result):
                out(line)
    failed = [r.seed for r in results if not r.ok]
    out(f"seeds={seeds.start}..{seeds.stop - 1} runs={len(results)} ok={len(results) - len(failed)} "
        f"failed={len(failed)}{' ' + ','.join(map(str, failed)) if failed else ''}")  # fmt: skip
    out(f"total migration: {total.format()}")
    return results


def main(seed: int, seeds: str | None, steps: int, nodes: int, out: Callable[[str], None],
         err: Callable[[str], None], data_plane: bool = False, failover: bool = False,
         migration: bool = False) -> int:  # fmt: skip
    started = time.perf_counter()
    if migration and not failover:
        picked = parse_seeds(seeds) if seeds is not None else range(seed, seed + 1)
        migration_results = run_migration_seeds(picked, steps, out)
        elapsed_s = max(time.perf_counter() - started, 1e-9)
        err(f"{steps * len(picked)} steps in {elapsed_s:.2f} s: {steps * len(picked) / elapsed_s:.0f} steps/s")
        return 0 if all(r.ok for r in migration_results) else 1
    if seeds is None:
        result = run(SimConfig(seed=seed, steps=steps, nodes=nodes, data_plane=data_plane, failover=failover,
                               migration=migration))  # fmt: skip
        for line in report(result):
            out(line)
        results, steps_run = [result], result.steps
    else:
        results, steps_run = run_seeds(parse_seeds(seeds), steps, nodes, out, data_plane, failover, migration)
    elapsed_s = max(time.perf_counter() - started, 1e-9)
    err(f"{steps_run} steps in {elapsed_s:.2f} s: {steps_run / elapsed_s:.0f} steps/s")
    return 0 if all(r.ok for r in results) else 1
