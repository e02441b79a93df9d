"""The rebalance planner: every slot keeps one owner, shards end within one slot of their share, the fewest
slots move, in contiguous ranges, and the same cluster always gets the same plan."""

from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionode import limits
from trionode.core.cluster import SlotMove, apply_moves, moves_to_start, plan_rebalance, slot_quotas, split_slots
from trionode.core.cluster.state import slots_of

from .helpers import S1, S2

SHARDS = [c * 40 for c in "abcdef"]


@st.composite
def clusters(draw: st.DrawFn) -> tuple[dict[str, tuple], dict[str, int]]:
    """Shard id -> ranges covering all 16384 slots (some shards may hold none), and weights."""
    shards = SHARDS[: draw(st.integers(1, len(SHARDS)))]
    cuts = sorted(draw(st.sets(st.integers(1, limits.slots_count - 1), max_size=12)))
    owned: dict[str, list] = {shard: [] for shard in shards}
    for start, end in zip([0, *cuts], [*cuts, limits.slots_count], strict=True):
        owned[draw(st.sampled_from(shards))].append((start, end - 1))
    weights = {shard: draw(st.integers(0, 5)) for shard in shards}
    if not any(weights.values()):
        weights[shards[0]] = 1
    return {shard: tuple(ranges) for shard, ranges in owned.items()}, weights


def _moved(moves: list[SlotMove]) -> int:
    return sum(len(slots_of(m.slots)) for m in moves)


def _fewest_moved(owned: dict[str, tuple], weights: dict[str, int]) -> int:
    """By brute force: the fewest slots any choice of rounding (down or up, per shard) needs to move."""
    held = {shard: len(slots_of(r)) for shard, r in owned.items()}
    total, weight_sum = sum(held.values()), sum(weights.values())
    floors = {shard: total * w // weight_sum for shard, w in weights.items()}
    fractional = [shard for shard, w in weights.items() if total * w % weight_sum]
    spare = total - sum(floors.values())
    return min(
        sum(max(0, held[s] - floors[s] - (s in up)) for s in owned) for up in map(set, combinations(fractional, spare))
    )


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_a_plan_keeps_one_owner_per_slot_and_ends_within_one_slot_of_each_share(cluster) -> None:
    owned, weights = cluster
    moves = plan_rebalance(owned, weights)
    after = apply_moves(owned, moves)  # asserts each move's slots belong to its source when it runs
    held = [slots_of(ranges) for ranges in after.values()]
    assert sum(map(len, held)) == limits.slots_count and set().union(*held) == set(range(limits.slots_count))
    weight_sum = sum(weights.values())
    for shard, ranges in after.items():
        # |held - 16384 * w / W| < 1, in integers
        assert abs(len(slots_of(ranges)) * weight_sum - limits.slots_count * weights[shard]) < weight_sum
        assert weights[shard] or not ranges, "a shard of weight 0 is emptied"


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_a_plan_moves_the_fewest_slots_and_a_balanced_cluster_gets_none(cluster) -> None:
    owned, weights = cluster
    moves = plan_rebalance(owned, weights)
    assert _moved(moves) == _fewest_moved(owned, weights)
    assert plan_rebalance(apply_moves(owned, moves), weights) == []
    assert all(m.source_shard_id != m.target_shard_id and m.slots for m in moves)
    # One job per (source, target) pair at most, and no more pairs than a chain of givers and takers needs.
    pairs = {(m.source_shard_id, m.target_shard_id) for m in moves}
    assert len(pairs) == len(moves) <= len({s for pair in pairs for s in pair}) - 1 or not moves


@settings(max_examples=100, deadline=None)
@given(clusters())
def test_the_same_cluster_and_weights_always_give_the_same_plan(cluster) -> None:
    owned, weights = cluster
    reordered = dict(reversed(owned.items())), dict(reversed(weights.items()))
    assert plan_rebalance(owned, weights) == plan_rebalance(*reordered)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6))
def test_shards_holding_one_range_each_move_one_range_per_move_and_keep_one(count: int, added: int) -> None:
    owned = {SHARDS[i]: (r,) for i, r in enumerate(split_slots(count))} | {s: () for s in SHARDS[count:][:added]}
    moves = plan_rebalance(owned, dict.fromkeys(owned, 1))
    assert all(len(m.slots) == 1 for m in moves)
    after = apply_moves(owned, moves)
    assert all(len(after[shard]) == 1 for shard in SHARDS[:count]), "a shard giving slots keeps one range"


def test_a_new_empty_shard_takes_a_quarter_from_three_even_shards() -> None:
    owned = {SHARDS[i]: (r,) for i, r in enumerate(split_slots(3))} | {SHARDS[3]: ()}
    moves = plan_rebalance(owned, dict.fromkeys(owned, 1))
    assert moves == [
        SlotMove(SHARDS[0], SHARDS[3], ((4096, 5460),)),
        SlotMove(SHARDS[1], SHARDS[3], ((9557, 10922),)),
        SlotMove(SHARDS[2], SHARDS[3], ((15019, 16383),)),
    ]
    assert {shard: len(slots_of(r)) for shard, r in apply_moves(owned, moves).items()} == dict.fromkeys(owned, 4096)


def test_an_even_split_is_balanced_and_weight_zero_empties_a_shard() -> None:
    owned = {S1: ((0, 8191),), S2: ((8192, 16383),)}
    assert plan_rebalance(owned, {S1: 1, S2: 1}) == []
    assert plan_rebalance(owned, {S1: 0, S2: 7}) == [SlotMove(S1, S2, ((0, 8191),))]
    # 5461.33 and 10922.67: the spare slot stays with the shard that holds it, one fewer to move.
    assert slot_quotas({S1: 8192, S2: 8192}, {S1: 1, S2: 2}) == {S1: 5462, S2: 10922}


@pytest.mark.parametrize(
    ("weights", "message"),
    [({S1: 0, S2: 0}, "at least one above 0"), ({S1: -1, S2: 2}, "0 or more"), ({S1: 1}, "every shard")],
)
def test_a_bad_weighting_is_refused(weights: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_rebalance({S1: ((0, 8191),), S2: ((8192, 16383),)}, weights)


# --- running a plan: moves that share no shard run at once ------------------------------------


@settings(max_examples=100, deadline=None)
@given(clusters(), st.integers(1, 4), st.randoms(use_true_random=False))
def test_moves_run_at_once_only_on_distinct_shards_in_plan_order_and_all_run(cluster, running_max, rng) -> None:
    owned, weights = cluster
    moves = plan_rebalance(owned, weights)
    pending, running, order = list(range(len(moves))), [], []
    while pending or running:
        started = moves_to_start(moves, pending, running, running_max)
        assert started or running, "a plan never stalls"
        for i in started:
            pending.remove(i)
        running += started
        order += started
        shards = [shard for i in running for shard in moves[i][:2]]
        assert len(shards) == len(set(shards)) and len(running) <= running_max
        running.remove(rng.choice(running))  # jobs end in any order
    for shard in owned:  # each shard's moves run in plan order
        mine = [i for i in order if shard in moves[i][:2]]
        assert mine == sorted(mine)
    # Moves are independent: the order they ran in ends where the plan does.
    assert apply_moves(owned, [moves[i] for i in order]) == apply_moves(owned, moves)


def test_two_new_shards_take_from_two_old_ones_at_once() -> None:
    a, b, c, d = SHARDS[:4]
    moves = plan_rebalance({a: ((0, 8191),), b: ((8192, 16383),), c: (), d: ()}, dict.fromkeys((a, b, c, d), 1))
    assert [m[:2] for m in moves] == [(a, c), (b, d)]
    assert moves_to_start(moves, [0, 1], [], 64) == [0, 1]
    assert moves_to_start(moves, [0, 1], [], 1) == [0]  # migrations_max
    # One source giving to two targets: one at a time, in plan order.
    moves = plan_rebalance({a: ((0, 16383),), c: (), d: ()}, dict.fromkeys((a, c, d), 1))
    assert [m[:2] for m in moves] == [(a, c), (a, d)]
    assert moves_to_start(moves, [0, 1], [], 64) == [0]
    assert moves_to_start(moves, [1], [0], 64) == []
    assert moves_to_start(moves, [1], [], 64) == [1]
