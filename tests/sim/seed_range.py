"""A simulator seed range as CI runs it: two forked workers (the CI machine's cores), every failing seed reported."""

import concurrent.futures
import multiprocessing
from collections.abc import Callable, Iterable

from trionode.sim.runner import SimResult, report

WORKERS = 2


def run_seeds(run_seed: Callable[[int], SimResult], seeds: Iterable[int], chunksize: int = 1) -> list[SimResult]:
    """Every seed's result, in seed order; fails with the report of each seed that did not pass."""
    context = multiprocessing.get_context("fork")  # the workers inherit the test's imports and patches
    with concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
        results = list(pool.map(run_seed, seeds, chunksize=chunksize))
    failed = [line for r in results if not r.ok for line in report(r)]
    assert not failed, "\n".join(failed)
    return results
