"""Runs every script under testdata/ (``pytest tests/core/raft --rewrite`` regenerates outputs)."""

from pathlib import Path

import pytest

from tests.core.raft.script import Runner, parse, render

TESTDATA = Path(__file__).parent / "testdata"
SCRIPTS = sorted(TESTDATA.glob("*.txt"))


def test_the_required_scripts_exist() -> None:
    names = {p.stem for p in SCRIPTS}
    assert {
        "election", "prevote_rejoin", "checkquorum", "vote_stale_log", "conflicting_suffix",
        "learner_promotion", "snapshot_lagging", "leadership_transfer",
    } <= names  # fmt: skip


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script(path: Path, rewrite: bool) -> None:
    blocks, tail = parse(path.read_text())
    runner = Runner()
    outputs = []
    for b in blocks:
        got = runner.run(b.command)
        outputs.append(got)
        if not rewrite:
            assert got == b.expected, f"{path.name}: `{b.command}`\n" + "\n".join(got)
    if rewrite:
        path.write_text(render(blocks, tail, outputs))
