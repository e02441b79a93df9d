"""Random command sequences, valid and not: invariants, safety across steps, snapshots, determinism."""

from typing import Any

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trionode.core.cluster import (
    COMMAND_FIELDS,
    ClusterState,
    NodeAddress,
    apply,
    check_invariants,
    command,
    copy_state,
    from_snapshot,
    plan_create,
    shard_id_for,
    to_snapshot,
)
from trionode.core.cluster.state import slots_of

NODES = [f"{i:040x}" for i in range(1, 8)]
SHARDS = ["a" * 40, "b" * 40, "e" * 40, *(shard_id_for(n) for n in NODES[:3])]
MIGRATIONS = ["1" * 40, "2" * 40, "3" * 40]
CLUSTER = "c" * 40
POOLS = {
    "cluster_id": [CLUSTER], "node_id": NODES, "primary_id": NODES, "old_id": NODES, "new_id": NODES,
    "shard_id": SHARDS, "source_shard_id": SHARDS, "target_shard_id": SHARDS, "migration_id": MIGRATIONS,
}  # fmt: skip
LIKELY = st.sampled_from([True] * 5 + [False])  # near-uniform, unlike small integers
DAMAGE = st.sampled_from(["none"] * 17 + ["junk", "field", "drop"])
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def _slots(draw: st.DrawFn, state: ClusterState, owner: str | None) -> list[list[int]]:
    """Mostly a run of slots that ``owner`` owns (None: unowned), sometimes any range."""
    runs = [(s, e) for s, e in _runs(state, owner)]
    if runs and draw(LIKELY):
        start, end = draw(st.sampled_from(runs))
        a = draw(st.integers(start, end))
        return [[a, draw(st.integers(a, min(end, a + 500)))]]
    a = draw(st.integers(0, 16383))
    return [[a, draw(st.integers(a, min(16383, a + 3000)))]]


def _runs(state: ClusterState, owner: str | None) -> list[tuple[int, int]]:
    if owner is not None:
        return list(state.shards[owner].slots) if owner in state.shards else []
    free = [slot for slot, o in enumerate(state.slot_owners) if o is None]
    return [(free[0], free[0])] if free else []


def _epoch(draw: st.DrawFn, state: ClusterState, shard_id: str) -> int:
    shard = state.shards.get(shard_id)
    return shard.epoch if shard and draw(LIKELY) else draw(st.integers(0, 6))


def _realistic(draw: st.DrawFn, state: ClusterState, cmd: dict[str, Any]) -> None:
    """Make the drawn fields mostly agree with the state, so many commands apply."""
    migration = state.migrations.get(cmd.get("migration_id", ""))
    if cmd["op"] == "migration_commit" and migration is not None:
        cmd["source_epoch"] = _epoch(draw, state, migration.source_shard_id)
        cmd["target_epoch"] = _epoch(draw, state, migration.target_shard_id)
    for side in ("source", "target"):
        if f"{side}_shard_id" in cmd:
            cmd[f"{side}_epoch"] = _epoch(draw, state, cmd[f"{side}_shard_id"])
    if "epoch" in cmd:
        fresh = cmd["op"] == "shard_create" and draw(LIKELY)
        cmd["epoch"] = state.epoch_max + 1 if fresh else _epoch(draw, state, cmd["shard_id"])
    if "isr_version" in cmd and cmd["shard_id"] in state.shards and draw(LIKELY):
        cmd["isr_version"] = state.shards[cmd["shard_id"]].isr_version
    if "slots" in cmd:
        owner = cmd.get("source_shard_id")  # migration_start moves owned slots; slots_assign wants free ones
        cmd["slots"] = _slots(draw, state, owner)


def _candidates(state: ClusterState, cmd: dict[str, Any], name: str) -> list[str]:
    """The ids that would make field ``name`` of ``cmd`` plausible in ``state``."""
    shard = state.shards.get(cmd.get("shard_id", ""))
    free = [n for n, rec in state.nodes.items() if rec.role == "none"]
    if name in ("shard_id", "source_shard_id", "target_shard_id"):
        return sorted(state.shards) if cmd["op"] != "shard_create" else [s for s in SHARDS if s not in state.shards]
    if name in ("primary_id", "new_id") or (name == "node_id" and cmd["op"] == "replica_attach"):
        return free
    if name in ("node_id", "old_id") and shard is not None and cmd["op"] not in ("node_forget", "node_info"):
        in_sync = [n for n in shard.replica_ids if n in shard.isr_ids]
        return {"isr_expand": [n for n in shard.replica_ids if n not in in_sync], "isr_shrink": in_sync,
                "failover": in_sync, "reinstate": [shard.primary_id, *in_sync]}.get(
                    cmd["op"], list(shard.replica_ids))  # fmt: skip
    if name == "node_id":
        return [n for n in NODES if (n in state.nodes) != (cmd["op"] == "node_join")]
    if name == "migration_id" and cmd["op"] != "migration_start":
        return sorted(state.migrations)
    return []


def _field(draw: st.DrawFn, state: ClusterState, cmd: dict[str, Any], name: str) -> Any:
    if name in POOLS:
        likely = _candidates(state, cmd, name)
        return draw(st.sampled_from(likely if likely and draw(LIKELY) else POOLS[name]))
    if name in ("port", "bus_port"):
        index = NODES.index(cmd["node_id"])
        return draw(st.sampled_from([7000 + index, 7000 + (index + 1) % 7, 17000 + index]))
    if name == "host":
        return draw(st.sampled_from(["127.0.0.1", "127.0.0.1", "10.0.0.2"]))
    return draw(st.integers(0, 6))  # epochs and ISR versions; slots are set by _realistic


@st.composite
def command_for(draw: st.DrawFn, state: ClusterState) -> Any:
    ops = sorted(COMMAND_FIELDS)
    if len(state.shards) < 2 and draw(LIKELY):
        ops = ["node_join", "shard_create", "slots_assign", "replica_attach"]
    elif draw(LIKELY):  # favour the ops that race each other: failover and migration
        ops = [*ops, "failover", "migration_start", *(["migration_commit"] * 2 * bool(state.migrations))]
    op = draw(st.sampled_from(ops))
    cmd: dict[str, Any] = {"op": op}
    for name in COMMAND_FIELDS[op]:
        cmd[name] = _field(draw, state, cmd, name)
    _realistic(draw, state, cmd)
    damage = draw(DAMAGE)
    if damage == "junk":
        return draw(JUNK)
    if damage == "field":
        cmd[draw(st.sampled_from(sorted(cmd)))] = draw(JUNK)
    if damage == "drop":
        cmd.pop(draw(st.sampled_from(sorted(cmd))))
    return cmd


def _check_step(before: ClusterState, after: ClusterState, cmd: Any, ok: bool) -> None:
    """Safety across one step, beyond the invariants of each state."""
    assert check_invariants(after) == []
    op = cmd.get("op") if ok else None
    pairs = zip(before.slot_owners, after.slot_owners, strict=True)
    moved = [slot for slot, (was, now) in enumerate(pairs) if was is not None and now != was]
    assert not moved or op == "migration_commit", f"{op} moved owned slots {moved[:3]}"  # S3
    if op == "migration_commit":
        _check_commit(before, after, cmd["migration_id"], set(moved))
    for shard_id, shard in after.shards.items():
        old = before.shards.get(shard_id)
        if old is None:
            assert op == "shard_create" and shard.epoch > before.epoch_max and shard.isr_ids == (shard.primary_id,)
            continue
        assert shard.epoch >= old.epoch
        if shard.epoch == old.epoch:
            assert shard.primary_id == old.primary_id  # S2: one primary per epoch
        else:
            assert op in ("failover", "reinstate") and shard.primary_id in old.isr_ids  # S5: only ISR members
            assert op == "failover" or (shard.primary_id, shard.isr_ids) == (old.primary_id, old.isr_ids)
        joined = set(shard.isr_ids) - set(old.isr_ids)
        assert not joined or op == "isr_expand", f"{op} added {joined} to the ISR"  # S8
    assert after.epoch_max >= before.epoch_max


def _check_commit(before: ClusterState, after: ClusterState, migration_id: str, moved: set[int]) -> None:
    """A commit moves exactly its slots, source to target, and only if neither shard failed over (seed 001)."""
    m = before.migrations[migration_id]
    assert moved == slots_of(m.slots)
    assert all(after.slot_owners[slot] == m.target_shard_id for slot in moved)
    assert (before.shards[m.source_shard_id].epoch, before.shards[m.target_shard_id].epoch) == (
        m.source_epoch,
        m.target_epoch,
    )


def _run(data: st.DataObject, steps: int) -> tuple[ClusterState, list[Any]]:
    state, log = ClusterState(), []
    start = data.draw(st.sampled_from(["empty", "bootstrapped", "formed", "formed", "formed"]), label="start")
    prefix = {"empty": [], "bootstrapped": _bootstrapped_prefix(), "formed": _formed_prefix()}[start][::-1]
    for index in range(1, steps + 1):
        cmd = prefix.pop() if prefix else data.draw(command_for(state), label=f"command {index}")
        before = copy_state(state)
        result = apply(state, index, cmd)
        assert result.ok == (state.config_version == before.config_version + 1)
        if result.ok:
            _check_step(before, state, cmd, True)
        else:
            assert state.rejections[-1].reason == result.reason
            state_without_log = copy_state(state)
            state_without_log.applied_index, state_without_log.rejections = before.applied_index, before.rejections
            assert state_without_log == before, f"refused {cmd} changed the state"
        log.append(cmd)
    return state, log


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bootstrapped_prefix() -> list[dict[str, Any]]:
    return [{"op": "bootstrap", "cluster_id": CLUSTER, "node_id": NODES[0], "host": "h", "port": 1, "bus_port": 2}]


def _formed_prefix() -> list[dict[str, Any]]:
    """A formed cluster (3 shards of 7 nodes, every replica caught up), as commands."""
    addresses = [NodeAddress(n, "127.0.0.1", 7000 + i, 17000 + i) for i, n in enumerate(NODES)]
    plan, scratch = plan_create(addresses, 1, cluster_id=CLUSTER), ClusterState()
    for index, cmd in enumerate(plan, 1):
        assert apply(scratch, index, cmd).ok
    for shard in sorted(scratch.shards.values(), key=lambda shard: shard.id):
        for version, node_id in enumerate(shard.replica_ids):
            plan.append(command("isr_expand", shard_id=shard.id, epoch=shard.epoch, isr_version=version,
                                node_id=node_id))  # fmt: skip
    return plan


@SETTINGS
@given(st.data(), st.integers(1, 80))
def test_random_sequences_keep_every_invariant_and_step_rule(data: st.DataObject, steps: int) -> None:
    _run(data, steps)


@settings(SETTINGS, max_examples=75)
@given(st.data(), st.integers(1, 80))
def test_snapshots_round_trip_exactly_and_replays_are_deterministic(data: st.DataObject, steps: int) -> None:
    state, log = _run(data, steps)
    snap = to_snapshot(state)
    assert from_snapshot(snap) == state
    assert from_snapshot(cbor2.loads(cbor2.dumps(snap))) == state
    twin = ClusterState()
    results = [apply(twin, index, cmd) for index, cmd in enumerate(log, 1)]
    assert twin == state and to_snapshot(twin) == snap
    refusals = [r.reason for r in results if not r.ok]
    assert refusals[-64:] == [r.reason for r in state.rejections]
    # A node restored from the snapshot goes on exactly as one that replayed the log.
    restored = from_snapshot(snap)
    for index in range(len(log) + 1, len(log) + 6):
        cmd = data.draw(command_for(state), label=f"after restore {index}")
        assert apply(restored, index, cmd) == apply(state, index, cmd)
    assert restored == state


@settings(max_examples=300, deadline=None)
@given(st.lists(JUNK | st.dictionaries(st.sampled_from(["op", *POOLS, "port", "slots"]), JUNK), max_size=10))
def test_apply_never_raises_on_any_value(commands: list[Any]) -> None:
    state = ClusterState()
    for index, cmd in enumerate([*_bootstrapped_prefix(), *commands], 1):
        apply(state, index, cmd)
    assert check_invariants(state) == [] and state.applied_index == len(commands) + 1
    assert len(state.nodes) == 1 and state.config_version == 1
