"""The control plane's read index: a node catches up with everything committed before it asked."""

import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
import trio.testing

from trionode.io.control import ControlPlane
from trionode.io.raft_store import RaftStore

pytestmark = pytest.mark.timeout(30)

LEADER, PEER = "a" * 40, "b" * 40


class _Bus:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def send(self, node_id: str, payload: dict) -> bool:
        self.sent.append((node_id, payload))
        return True


def _follower(tmp_path: Path, commit_index: int | None = None, leads: bool = False) -> ControlPlane:
    control = ControlPlane("c" * 40, RaftStore.recover(tmp_path), ("127.0.0.1", 0), random.Random(1))
    control.bus = _Bus()  # type: ignore[assignment]
    control.rawnode = SimpleNamespace(is_leader=leads, read_index=lambda: commit_index)  # type: ignore[assignment]
    control.leader = LEADER
    control.state.applied_index = 3
    return control


async def _applies(control: ControlPlane, index: int) -> None:
    control.state.applied_index = index
    control._applied.set()
    control._applied = trio.Event()


async def test_catch_up_waits_for_the_leaders_read_index_to_apply_here(tmp_path: Path) -> None:
    control = _follower(tmp_path)
    done: list[bool] = []

    async def catch_up() -> None:
        done.append(await control.catch_up(10_000))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(catch_up)
        await trio.testing.wait_all_tasks_blocked()
        [(to, question)] = control.bus.sent  # type: ignore[attr-defined]
        assert to == LEADER and question["k"] == "read_index" and "index" not in question
        control._on_bus_message(LEADER, {"k": "read_index", "req": question["req"], "index": 7})
        await _applies(control, 6)
        await trio.testing.wait_all_tasks_blocked()
        assert done == []  # entry 7 may be the commit that gives this shard the slot
        await _applies(control, 7)
    assert done == [True] and control._read_indexes == {}


async def test_catch_up_gives_up_past_its_bound_when_the_leader_does_not_answer(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    control = _follower(tmp_path)
    start = trio.current_time()
    assert not await control.catch_up(1_000)
    assert trio.current_time() - start == pytest.approx(1.0) and control._read_indexes == {}
    control.leader = ""
    assert not await control.catch_up(1_000)  # no leader known: at once
    assert trio.current_time() - start == pytest.approx(1.0)


async def test_the_leader_answers_with_its_read_index_and_knows_its_own(tmp_path: Path) -> None:
    control = _follower(tmp_path, commit_index=9, leads=True)
    control._on_bus_message(PEER, {"k": "read_index", "req": 4})
    assert control.bus.sent == [(PEER, {"k": "read_index", "req": 4, "index": 9})]  # type: ignore[attr-defined]
    assert await control.read_index(1_000) == 9
    (tmp_path / "other").mkdir()
    silent = _follower(tmp_path / "other", commit_index=None, leads=True)  # nothing committed in its term yet
    silent._on_bus_message(PEER, {"k": "read_index", "req": 4})
    assert silent.bus.sent == []  # type: ignore[attr-defined]
