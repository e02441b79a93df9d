"""The invariants every committed cluster configuration keeps, as a checker.

Theory of operation. :func:`check_invariants` reads a :class:`ClusterState`
and returns one line per broken rule (empty when all hold). The applier never
lets a state break them, so a non-empty answer is a bug or a corrupt snapshot;
the tests call it after every entry, the simulator after every step, and the
snapshot loader before trusting a snapshot. It never raises on a state built
from well-typed records, however inconsistent.

The rules:

- S3, one owner: no slot is claimed by two shards, and the slot table equals
  the shards' ranges (which are sorted and disjoint);
- one primary per shard, a member node marked primary of that shard, and in
  the ISR; the ISR is a subset of the primary and the replicas;
- replicas are member nodes marked replica of that shard; a node's shard and
  role agree with the shard that lists it;
- epochs are >= 1 and <= epoch_max; migrations in flight name existing, distinct shards, own
  slots of their source, and do not overlap each other; the epochs a migration recorded at its
  start are not above its shards' epochs now (epochs never decrease, so a higher recorded one
  is a corrupt record that could let a commit through after a failover, seed 001);
- bounds hold (nodes, replicas, migrations); every ACL user has its creation recorded.
"""

from collections.abc import Iterator

from trionode import limits
from trionode.core.cluster.state import (
    MIGRATION_STATES,
    ClusterState,
    Shard,
    is_id,
    migrations_max,
    nodes_max,
    owners_from_shards,
    shard_replicas_max,
    slots_of,
)


def check_invariants(state: ClusterState) -> list[str]:
    """Every broken invariant of ``state``, one line each; [] when it is sound."""
    problems = [*_slot_problems(state), *_node_problems(state)]
    if state.members_ever < len(state.nodes):
        problems.append(f"members_ever {state.members_ever} < {len(state.nodes)} members")
    for shard_id, shard in state.shards.items():
        problems += [f"shard {shard_id}: {p}" for p in _shard_problems(state, shard_id, shard)]
    problems += _migration_problems(state)
    if len(state.nodes) > nodes_max:
        problems.append(f"{len(state.nodes)} nodes exceed nodes_max {nodes_max}")
    if state.cluster_id and not is_id(state.cluster_id):
        problems.append(f"cluster id {state.cluster_id!r} is not 40 hex characters")
    if any(shard.epoch > state.epoch_max for shard in state.shards.values()):
        problems.append(f"a shard epoch exceeds epoch_max {state.epoch_max}")
    if state.acl_users.keys() != state.acl_users_created.keys():
        problems.append("the ACL users and the record of their creation name different users")
    return problems


def _ranges_problems(ranges: tuple[tuple[int, int], ...]) -> Iterator[str]:
    previous_end = -1
    for start, end in ranges:
        if not previous_end < start <= end < limits.slots_count:
            yield f"slot range {start}-{end} is out of order, overlapping or out of bounds"
        previous_end = end


def _slot_problems(state: ClusterState) -> list[str]:
    problems = [p for shard in state.shards.values() for p in _ranges_problems(shard.slots)]
    if problems:
        return problems  # the table comparison below assumes well-formed ranges
    owners, doubled = owners_from_shards(state.shards.values())
    if doubled:
        problems.append(f"slots {doubled[:8]} are owned by more than one shard (S3)")
    if owners != state.slot_owners:
        wrong = [slot for slot, (a, b) in enumerate(zip(owners, state.slot_owners, strict=False)) if a != b]
        problems.append(f"slot table disagrees with the shards' ranges at slots {wrong[:8]}")
    return problems


def _node_problems(state: ClusterState) -> Iterator[str]:
    for node_id, node in state.nodes.items():
        if node_id != node.id or not is_id(node_id):
            yield f"node key {node_id!r} does not match its record or is not 40 hex characters"
        if (node.shard_id is None) != (node.role == "none"):
            yield f"node {node_id}: role {node.role} with shard {node.shard_id}"
            continue
        shard = state.shards.get(node.shard_id) if node.shard_id else None
        if node.shard_id is not None and shard is None:
            yield f"node {node_id}: its shard {node.shard_id} does not exist"
        elif shard is not None and node_id not in (shard.primary_id, *shard.replica_ids):
            yield f"node {node_id}: not listed by its shard {shard.id}"


def _shard_problems(state: ClusterState, shard_id: str, shard: Shard) -> Iterator[str]:
    if shard_id != shard.id or not is_id(shard_id):
        yield "key does not match the record or is not 40 hex characters"
    if shard.epoch < 1 or shard.isr_version < 0:
        yield f"epoch {shard.epoch} < 1 or isr_version {shard.isr_version} < 0"
    for field_name, ids in (("replica_ids", shard.replica_ids), ("isr_ids", shard.isr_ids)):
        if list(ids) != sorted(set(ids)):
            yield f"{field_name} {ids} are not sorted and unique"
    if len(shard.replica_ids) > shard_replicas_max:
        yield f"{len(shard.replica_ids)} replicas exceed shard_replicas_max {shard_replicas_max}"
    if shard.primary_id in shard.replica_ids or shard.primary_id not in shard.isr_ids:
        yield f"primary {shard.primary_id} is listed as a replica or is missing from the ISR"
    if not set(shard.isr_ids) <= {shard.primary_id, *shard.replica_ids}:
        yield f"ISR {shard.isr_ids} is not within the primary and the replicas"
    expected = [(shard.primary_id, "primary")] + [(r, "replica") for r in shard.replica_ids]
    for node_id, role in expected:
        node = state.nodes.get(node_id)
        if node is None or (node.shard_id, node.role) != (shard_id, role):
            yield f"{role} {node_id} is not a member node recorded as {role} of this shard"


def _migration_problems(state: ClusterState) -> Iterator[str]:
    claimed: set[int] = set()
    if len(state.migrations) > migrations_max:
        yield f"{len(state.migrations)} migrations in flight exceed migrations_max {migrations_max}"
    for key, m in state.migrations.items():
        source, target = state.shards.get(m.source_shard_id), state.shards.get(m.target_shard_id)
        if key != m.id or m.state != "running" or not m.slots:
            yield f"migration {key}: id, state {m.state} or empty slots"
        bad_ranges = list(_ranges_problems(m.slots))
        if bad_ranges:
            yield f"migration {key}: {bad_ranges[0]}"
            continue
        if source is None or target is None or source is target:
            yield f"migration {key}: source and target must be two existing shards"
        elif m.source_epoch > source.epoch or m.target_epoch > target.epoch or min(m.source_epoch, m.target_epoch) < 1:
            yield f"migration {key}: recorded epochs {m.source_epoch}/{m.target_epoch} are not epochs its shards had"
        slots = slots_of(m.slots)
        if source is not None and any(state.slot_owners[slot] != source.id for slot in slots):
            yield f"migration {key}: moves slots its source does not own"
        if slots & claimed:
            yield f"migration {key}: overlaps another migration in flight"
        claimed |= slots
    for m in state.migration_history:
        if m.state not in MIGRATION_STATES or m.state == "running":
            yield f"finished migration {m.id} has state {m.state}"
