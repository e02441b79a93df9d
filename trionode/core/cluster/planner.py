"""Plans for operator flows, as lists of cluster commands (``trionode cluster create``).

Theory of operation. The planner turns an operator's request into the command
dicts that the Raft leader proposes one by one; it reads no state beyond its
arguments and decides nothing at apply time, so a plan that races another
change is simply refused entry by entry by :func:`~.commands.apply`.

:func:`plan_create` does what ``redis-cli --cluster create`` does: with
``replicas_per_primary`` = r, the first ``len(nodes) // (r + 1)`` nodes (after
spreading them over hosts) become primaries, each owning one contiguous
range of an even split of the 16384 slots; the other nodes are attached as
replicas, each to the primary with the fewest replicas, preferring one on
another host. Replicas are attached outside the ISR (S8); each enters the ISR
by ``isr_expand`` once it has caught up, which is the replication shell's job.

Shard ids are derived from the primary's node id, so the same request gives
the same plan. New shards start at ``first_epoch``, ``first_epoch + 1``, ...:
each ``shard_create`` must name an epoch above every epoch the cluster has
issued (1 for a fresh cluster; ``state.epoch_max + 1`` otherwise).

:func:`plan_rebalance` (``trionode cluster rebalance``) decides which slots
move between shards so that each holds its weight's share of the slots: its
quota is that share rounded down or up, so it ends within one slot of
proportional. Which shards round up is what decides how many slots move, so
the spare slots go to the shards holding the most beyond their share; then
no plan reaching shares within one slot moves fewer. A shard over its quota
gives up its highest slots, which keeps what it retains and what it hands
each receiver contiguous when it held one range. Ties break on shard ids,
so the same cluster and weights always give the same plan; a cluster already
within one slot everywhere gets an empty plan. The plan names shards, not
primaries: the shell resolves each move's current primaries when it runs it.

No shard both gives and receives, so each move takes only slots its source
held when planned, and the moves may run in any order. :func:`moves_to_start`
runs them concurrently where they share no shard: each shard takes part in one
migration at a time, in plan order, and at most ``migrations_max`` run at once.
"""

from collections.abc import Collection, Mapping, Sequence
from hashlib import sha1
from typing import Any, NamedTuple

from trionode import limits
from trionode.core.cluster.commands import command
from trionode.core.cluster.state import SlotRange, is_id, nodes_max, shard_replicas_max, slots_of
from trionode.core.cluster_view import ranges_from_slots


class NodeAddress(NamedTuple):
    id: str
    host: str
    port: int
    bus_port: int


def shard_id_for(primary_id: str) -> str:
    """The id of the shard a plan creates around ``primary_id``."""
    return sha1(f"trionode-shard:{primary_id}".encode()).hexdigest()


def split_slots(primaries: int) -> list[tuple[int, int]]:
    """16384 slots in ``primaries`` contiguous ranges, cut where ``redis-cli --cluster create`` cuts.

    redis-cli ends range i at lround((i + 1) * 16384 / n - 1); this is the same in integers.
    """
    assert 1 <= primaries <= limits.slots_count, primaries
    total = limits.slots_count
    ends = [(2 * (i + 1) * total - primaries) // (2 * primaries) for i in range(primaries)]
    starts = [0] + [end + 1 for end in ends[:-1]]
    assert ends[-1] == total - 1
    return list(zip(starts, ends, strict=True))


def _spread_over_hosts(nodes: Sequence[NodeAddress]) -> list[NodeAddress]:
    """Round-robin over hosts (keeping the given order per host), so primaries land apart."""
    by_host: dict[str, list[NodeAddress]] = {}
    for node in nodes:
        by_host.setdefault(node.host, []).append(node)
    queues = list(by_host.values())
    order = [queue[i] for i in range(max(map(len, queues))) for queue in queues if i < len(queue)]
    assert len(order) == len(nodes)
    return order


def _pick_primary(primaries: Sequence[NodeAddress], counts: list[int], replica: NodeAddress) -> int:
    # Fewest replicas first; among those, a primary on another host; then the earliest.
    return min(range(len(primaries)), key=lambda i: (counts[i], primaries[i].host == replica.host, i))


def _check(nodes: Sequence[NodeAddress], replicas_per_primary: int) -> int:
    ids = [node.id for node in nodes]
    if not all(map(is_id, ids)) or len(set(ids)) != len(ids):
        raise ValueError("node ids must be distinct and 40 lower-case hex characters")
    if len({(node.host, node.port) for node in nodes}) != len(nodes):
        raise ValueError("two nodes share an address")
    if replicas_per_primary < 0:
        raise ValueError("--replicas must be 0 or more")
    primaries = len(nodes) // (replicas_per_primary + 1)
    if primaries < 1:
        raise ValueError(f"{len(nodes)} nodes are too few for 1 primary with {replicas_per_primary} replicas")
    if len(nodes) > nodes_max or -(-(len(nodes) - primaries) // primaries) > shard_replicas_max:
        raise ValueError(f"at most {nodes_max} nodes and {shard_replicas_max} replicas per primary")
    return primaries


def plan_create(
    nodes: Sequence[NodeAddress],
    replicas_per_primary: int,
    *,
    cluster_id: str | None = None,
    known_ids: Collection[str] = (),
    first_epoch: int = 1,
) -> list[dict[str, Any]]:
    """The commands that form a cluster from ``nodes``; ValueError on an impossible request.

    With ``cluster_id``, the plan starts with ``bootstrap`` of ``nodes[0]``;
    every other node not in ``known_ids`` gets a ``node_join``.
    """
    primary_count = _check(nodes, replicas_per_primary)
    assert first_epoch >= 1
    plan = []
    if cluster_id is not None:
        first = nodes[0]
        plan.append(command("bootstrap", cluster_id=cluster_id, node_id=first.id, host=first.host,
                            port=first.port, bus_port=first.bus_port))  # fmt: skip
        known_ids = {*known_ids, first.id}
    for n in nodes:
        if n.id not in known_ids:
            plan.append(command("node_join", node_id=n.id, host=n.host, port=n.port, bus_port=n.bus_port))
    order = _spread_over_hosts(nodes)
    primaries, rest = order[:primary_count], order[primary_count:]
    epochs = {p.id: first_epoch + i for i, p in enumerate(primaries)}
    for primary, (start, end) in zip(primaries, split_slots(primary_count), strict=True):
        shard = {"shard_id": shard_id_for(primary.id), "epoch": epochs[primary.id]}
        plan.append(command("shard_create", **shard, primary_id=primary.id))
        plan.append(command("slots_assign", **shard, slots=[[start, end]]))
    counts = [0] * primary_count
    for replica in rest:
        chosen = _pick_primary(primaries, counts, replica)
        counts[chosen] += 1
        primary_id = primaries[chosen].id
        plan.append(command("replica_attach", shard_id=shard_id_for(primary_id), epoch=epochs[primary_id],
                            node_id=replica.id))  # fmt: skip
    return plan


# --- rebalance ---------------------------------------------------------------------------


class SlotMove(NamedTuple):
    """One migration of a plan: ``slots`` (sorted ranges, owned by the source when it runs) move."""

    source_shard_id: str
    target_shard_id: str
    slots: tuple[SlotRange, ...]


def slot_quotas(held: Mapping[str, int], weights: Mapping[str, int]) -> dict[str, int]:
    """How many of the held slots each shard should hold: its weight's share, rounded down or up.

    The slots left over after rounding down go, one each, to the shards whose share has a
    fraction, holding the most beyond their share first: each such slot is one fewer to move.
    """
    total, weight_sum = sum(held.values()), sum(weights.values())
    assert held.keys() == weights.keys() and weight_sum > 0
    floors = {shard: total * w // weight_sum for shard, w in weights.items()}
    fractions = {shard: total * w % weight_sum for shard, w in weights.items()}
    rounded_up = sorted((shard for shard in weights if fractions[shard]),
                        key=lambda shard: (floors[shard] - held[shard], -fractions[shard], shard))  # fmt: skip
    spare = total - sum(floors.values())
    assert 0 <= spare <= len(rounded_up)
    return {shard: floors[shard] + (shard in rounded_up[:spare]) for shard in weights}


def plan_rebalance(owned: Mapping[str, Sequence[SlotRange]], weights: Mapping[str, int]) -> list[SlotMove]:
    """The moves that bring every shard in ``owned`` (shard id -> its slot ranges) to its quota.

    ``weights`` gives each of those shards a weight (0 empties it); ValueError for a bad request.
    """
    if owned.keys() != weights.keys():
        raise ValueError("every shard needs a weight, and only shards have one")
    if any(w < 0 for w in weights.values()) or not any(weights.values()):
        raise ValueError("weights must be 0 or more, and at least one above 0")
    slots = {shard: sorted(slots_of(ranges)) for shard, ranges in owned.items()}
    assert sum(map(len, slots.values())) == len(set().union(*slots.values())), "a slot owned twice"
    quotas = slot_quotas({shard: len(s) for shard, s in slots.items()}, weights)
    # What each shard over its quota gives up (its highest slots), and each receiver's need, in shard order.
    given = [(shard, s[quotas[shard] :]) for shard, s in sorted(slots.items()) if len(s) > quotas[shard]]
    needs = [[shard, quotas[shard] - len(s)] for shard, s in sorted(slots.items()) if len(s) < quotas[shard]]
    moves = []
    for source, handed in given:
        while handed:
            target, need = needs[0]
            part, handed = handed[:need], handed[need:]
            moves.append(SlotMove(source, target, ranges_from_slots(part)))
            needs[0][1] -= len(part)
            if needs[0][1] == 0:
                needs.pop(0)
    assert not needs, needs
    return moves


def apply_moves(
    owned: Mapping[str, Sequence[SlotRange]], moves: Sequence[SlotMove]
) -> dict[str, tuple[SlotRange, ...]]:
    """Each shard's ranges once ``moves`` ran in order (each moves slots its source holds by then)."""
    slots = {shard: slots_of(ranges) for shard, ranges in owned.items()}
    for move in moves:
        moving = slots_of(move.slots)
        assert moving <= slots[move.source_shard_id] and move.source_shard_id != move.target_shard_id, move
        slots[move.source_shard_id] -= moving
        slots[move.target_shard_id] |= moving
    return {shard: ranges_from_slots(s) for shard, s in slots.items()}


def moves_to_start(
    moves: Sequence[SlotMove], pending: Sequence[int], running: Collection[int], running_max: int
) -> list[int]:
    """Which of the ``pending`` moves (indexes into ``moves``, in plan order) start now.

    A move starts once no move before it in the plan that shares a shard with it is running
    or still pending, and while fewer than ``running_max`` run: one migration per shard
    at a time (one handover pause on a source, one import on a target), in plan order.
    """
    assert running_max >= 1 and not set(pending) & set(running), (pending, running)
    claimed = {shard for i in running for shard in moves[i][:2]}
    started: list[int] = []
    for i in pending:
        shards = set(moves[i][:2])
        if not shards & claimed and len(running) + len(started) < running_max:
            started.append(i)
        claimed |= shards  # a move that waits keeps its shards' later moves waiting too
    return started
