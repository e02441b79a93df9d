"""The migrate drill's choice of ranges: displaced slots go home first, new ranges stay within one shard."""

import random

import pytest

from scripts.drills.mover import RANGE_SLOTS, SLOTS, displaced_run, owners, random_range

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
