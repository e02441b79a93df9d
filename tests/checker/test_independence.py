"""The checker must stay independent of the server it judges."""

import ast
from pathlib import Path

import scripts.checker

PACKAGE = Path(scripts.checker.__file__).parent


def test_checker_imports_nothing_from_trionode() -> None:
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] == "trionode"]
    assert offenders == []
