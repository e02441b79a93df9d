import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--rewrite", action="store_true", help="rewrite Raft script expected output")


@pytest.fixture
def rewrite(request: pytest.FixtureRequest) -> bool:
    try:
        flag = bool(request.config.getoption("--rewrite"))
    except ValueError:  # option not registered (conftest not loaded at startup)
        flag = False
    return flag or os.environ.get("RAFT_REWRITE") == "1"
