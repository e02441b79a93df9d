"""The migrate drill's choice of ranges: displaced slots go home first, new ranges stay within one shard."""

import random

import pytest

from scripts.drills.mover import RANGE_SLOTS, SLOTS, displaced_run, export_rows, failed_export, owners, random_range

pytestmark = pytest.mark.timeout(30)

STATUS = {"shards": [{"id": "a", "slots": [[0, 8191]]}, {"id": "b", "slots": [[8192, 16383]]}]}


def test_owners_reads_each_shards_ranges() -> None:
    now = owners(STATUS)
    assert now[0] == now[8191] == "a" and now[8192] == now[SLOTS - 1] == "b"


def test_the_first_displaced_run_goes_home_one_owner_at_a_time() -> None:
    home = owners(STATUS)
    assert displaced_run(home, home) is None
    now = owners({"shards": [{"id": "a", "slots": [[0, 8191], [9000, 9099]]},
                             {"id": "b", "slots": [[8192, 8999], [9100, 16383]]}]})  # fmt: skip
    assert displaced_run(home, now) == (9000, 9099)
    now[100:200] = ["b"] * 100
    assert displaced_run(home, now) == (100, 199)


@pytest.mark.parametrize("seed", range(20))
def test_a_new_range_is_owned_by_its_shard_and_bounded(seed: int) -> None:
    now = owners(STATUS)
    now[3000:3010] = ["b"] * 10  # a hole: a range of "a" never crosses it
    start, end = random_range(now, "a", random.Random(seed))
    assert all(now[s] == "a" for s in range(start, end + 1))
    assert 1 <= end - start + 1 <= RANGE_SLOTS[1]


class _Node:
    """Answers GETSLOTMIGRATIONS as redis-py hands RESP2 maps over: flat lists of keys and values."""

    def __init__(self, rows: list[dict[str, object]]) -> None:
        self.rows = rows

    def call(self, *args: object) -> list[list[object]]:
        assert args == ("CLUSTER", "GETSLOTMIGRATIONS")
        encode = lambda v: v.encode() if isinstance(v, str) else v  # noqa: E731
        return [[x for k, v in row.items() for x in (k.encode(), encode(v))] for row in self.rows]


def _row(name: str, operation: str, ranges: str, state: str) -> dict[str, object]:
    return {"name": name, "operation": operation, "slot_ranges": ranges, "state": state, "message": "why", "lag": 0}


def test_a_failed_start_is_the_sources_new_export_of_those_slots() -> None:
    node = _Node([_row("new", "EXPORT", "0-99", "failed"), _row("old", "EXPORT", "0-99", "failed"),
                  _row("imp", "IMPORT", "0-99", "failed")])  # fmt: skip
    assert [r["name"] for r in export_rows(node)] == ["new", "old"]
    assert failed_export(node, "0-99", {"old"}) == _row("new", "EXPORT", "0-99", "failed")
    assert failed_export(node, "0-99", {"old", "new"}) is None
    assert failed_export(_Node([_row("new", "EXPORT", "0-99", "snapshotting")]), "0-99", set()) is None
