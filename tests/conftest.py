"""The order the suite runs in: real processes, drills and simulator searches first.

The two xdist workers take one test at a time as they free up (``--maxschedchunk=1`` in
pyproject.toml), so a run that starts with its long tests ends on short ones and both workers
finish together. In collection order the simulator's seed searches came last: a long test taken
late leaves the other worker idle until it ends.

Hypothesis runs without its per-example deadline and its too-slow health check: on a loaded 2-core
CI machine both measure the load, not the code (a 200 ms deadline turned a sound property into
DeadlineExceeded, then Flaky). Every test still has pytest-timeout's bound against a hang.
"""

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("trionode", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("trionode")

LONG_FIRST = ("tests/process/", "tests/drills/test_drills.py", "tests/sim/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_FIRST))  # stable: file order within each part
