"""The cores stay pure: no trio, no IO, no clock, no global randomness (DESIGN §2).

Deterministic simulation depends on this; a core module that imports any of
these would make a simulated run depend on the real world.
"""

import ast
from pathlib import Path

import trionode

FORBIDDEN_MODULES = {
    "trio", "os", "time", "datetime", "random", "socket", "threading", "asyncio",
    "subprocess", "secrets", "uuid", "signal", "select", "selectors", "io", "pathlib", "shutil",
}
CORE = Path(trionode.__file__).parent / "core"


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_core_modules_import_nothing_impure() -> None:
    offenders = []
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10, "the core package moved; update this test"
    for path in files:
        for lineno, module in _imports(ast.parse(path.read_text())):
            if module.split(".")[0] in FORBIDDEN_MODULES:
                offenders.append(f"{path.relative_to(CORE.parent)}:{lineno} imports {module}")
    assert offenders == []


def test_core_modules_do_not_reach_impure_modules_through_builtins() -> None:
    # open() and __import__ would bypass the import check above.
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("open", "__import__", "exec", "eval", "input")
            ):
                offenders.append(f"{path.relative_to(CORE.parent)}:{node.lineno} calls {node.func.id}()")
    assert offenders == []


def test_the_purity_check_catches_an_impure_import() -> None:
    tree = ast.parse("import os\nfrom time import monotonic\nimport trio.lowlevel\n")
    assert [m.split(".")[0] for _, m in _imports(tree)] == ["os", "time", "trio"]
