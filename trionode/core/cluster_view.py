"""The cluster as one node sees it, and the CLUSTER replies drawn from it.

Theory of operation
-------------------
A :class:`ClusterView` is an immutable snapshot: every known node (a
:class:`NodeView`), which node is "myself", the current epoch and whether the
cluster state is ok. The shell builds a fresh view whenever the committed
configuration or a node's health changes; nothing here mutates.

Invariants, checked when a view is built (a broken view is a programmer error):

- node ids are unique, 40 lower-case hex characters, and myself is among them;
- only primaries own slots, and each slot has at most one owner (S3);
- a node's slot ranges are inclusive, sorted and disjoint.

The formatters (:func:`cluster_slots`, :func:`cluster_shards`,
:func:`cluster_nodes`, :func:`cluster_info`) reproduce Valkey 8's layouts, field
order and spelling, because redis-py, ``redis-cli -c`` and
``redis-cli --cluster check`` parse them. They return reply values
(:mod:`trionode.core.reply`); the RESP serializer picks RESP2 or RESP3 framing.

Deliberately left to the shell: health detection, ping/pong timestamps (they are
passed in as plain numbers), bus message counters, and TLS ports.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from trionode.core.reply import Verbatim

SLOTS = 16384
ROLES = ("primary", "replica")
HEALTHS = ("online", "loading", "suspect", "failed")
# Valkey's clusterGetMessageTypeString order; CLUSTER INFO lists per-type counters in it.
MESSAGE_TYPES = (
    "ping", "pong", "meet", "fail", "publish", "publishshard",
    "auth-req", "auth-ack", "update", "mfstart", "module",
)  # fmt: skip

SlotRange = tuple[int, int]
_HEX = frozenset("0123456789abcdef")


def _is_node_id(text: str) -> bool:
    return len(text) == 40 and set(text) <= _HEX


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeView:
    id: str  # Invariant: 40 lower-case hex characters.
    ip: str
    port: int
    bus_port: int
    hostname: str = ""
    role: Literal["primary", "replica"]
    primary_id: str | None  # Invariant: None exactly when role is primary.
    shard_id: str
    slots: tuple[SlotRange, ...] = ()  # Invariant: sorted, disjoint, empty for replicas.
    health: Literal["online", "loading", "suspect", "failed"] = "online"
    replication_offset: int = 0
    config_epoch: int = 0
    link_connected: bool = True
    ping_sent_ms: int = 0  # CLUSTER NODES columns; the shell owns the clock.
    pong_recv_ms: int = 0

    def __post_init__(self) -> None:
        assert _is_node_id(self.id) and _is_node_id(self.shard_id), (self.id, self.shard_id)
        assert self.role in ROLES and self.health in HEALTHS, (self.role, self.health)
        assert (self.primary_id is None) == (self.role == "primary"), (self.role, self.primary_id)
        assert not self.slots or self.role == "primary", f"replica {self.id} owns slots"
        previous_end = -1
        for start, end in self.slots:
            assert previous_end < start <= end < SLOTS, f"bad slot range {start}-{end} on {self.id}"
            previous_end = end

    @property
    def is_primary(self) -> bool:
        return self.role == "primary"

    @property
    def slot_count(self) -> int:
        return sum(end - start + 1 for start, end in self.slots)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterView:
    myself_id: str
    current_epoch: int
    nodes: tuple[NodeView, ...]
    state_ok: bool
    # Derived once per view, so routing a command is one tuple index.
    _owners: tuple[NodeView | None, ...] = field(init=False, repr=False, compare=False)
    # Maximal runs of consecutive slots with one owner, by start slot (what Valkey walks).
    _runs: tuple[tuple[int, int, NodeView], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {node.id: node for node in self.nodes}
        assert len(by_id) == len(self.nodes), "duplicate node id in view"
        assert self.myself_id in by_id, f"myself {self.myself_id} not in view"
        owners: list[NodeView | None] = [None] * SLOTS
        for node in self.nodes:
            for start, end in node.slots:
                assert owners[start : end + 1].count(None) == end - start + 1, (
                    f"slot overlap at {start}-{end}"
                )
                owners[start : end + 1] = [node] * (end - start + 1)
        object.__setattr__(self, "_owners", tuple(owners))
        object.__setattr__(self, "_runs", _owner_runs(self.nodes))

    @property
    def myself(self) -> NodeView:
        return self.node(self.myself_id)

    def node(self, node_id: str) -> NodeView:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def replicas_of(self, primary_id: str) -> list[NodeView]:
        return [node for node in self.nodes if node.primary_id == primary_id]

    @property
    def known_nodes(self) -> int:
        return len(self.nodes)

    @property
    def cluster_size(self) -> int:
        """Primaries serving at least one slot, as CLUSTER INFO counts them."""
        return sum(1 for node in self.nodes if node.is_primary and node.slots)


def _owner_runs(nodes: Iterable[NodeView]) -> tuple[tuple[int, int, NodeView], ...]:
    pieces = sorted((start, end, node) for node in nodes for start, end in node.slots)
    runs: list[tuple[int, int, NodeView]] = []
    for start, end, node in pieces:
        # Two ranges of one node that touch are one run, as in Valkey's slot-table walk.
        if runs and runs[-1][2] is node and runs[-1][1] + 1 == start:
            runs[-1] = (runs[-1][0], end, node)
        else:
            runs.append((start, end, node))
    return tuple(runs)


def slot_owner(view: ClusterView, slot: int) -> NodeView | None:
    """The primary serving ``slot`` in this view, or None if it is unassigned."""
    assert 0 <= slot < SLOTS, slot
    return view._owners[slot]


def ranges_from_slots(slots: Iterable[int]) -> tuple[SlotRange, ...]:
    """Sorted inclusive ranges covering exactly the given slots (duplicates allowed)."""
    ranges: list[SlotRange] = []
    for slot in sorted(set(slots)):
        assert 0 <= slot < SLOTS, slot
        if ranges and ranges[-1][1] + 1 == slot:
            ranges[-1] = (ranges[-1][0], slot)
        else:
            ranges.append((slot, slot))
    return tuple(ranges)


# --- CLUSTER SLOTS -------------------------------------------------------------


def _slots_endpoint(node: NodeView) -> list:
    # Preferred endpoint is the IP, so the metadata map carries only the hostname, if any.
    metadata = {b"hostname": node.hostname.encode()} if node.hostname else {}
    return [node.ip.encode(), node.port, node.id.encode(), metadata]


def _listed_in_slots(replica: NodeView) -> bool:
    # Valkey hides replicas that are failed or have not finished their first sync.
    return replica.health not in ("failed", "loading")


def cluster_slots(view: ClusterView) -> list:
    """CLUSTER SLOTS: one entry per run of slots, primary first, then listed replicas."""
    reply = []
    for start, end, primary in view._runs:
        replicas = [r for r in view.replicas_of(primary.id) if _listed_in_slots(r)]
        reply.append([start, end, _slots_endpoint(primary), *map(_slots_endpoint, replicas)])
    return reply


# --- CLUSTER SHARDS ------------------------------------------------------------


def _shard_health(node: NodeView) -> bytes:
    # Valkey spells a failed node "fail"; a suspect (PFAIL) node still counts as online.
    return {"failed": b"fail", "loading": b"loading"}.get(node.health, b"online")


def _shard_node(node: NodeView) -> dict:
    entry: dict = {b"id": node.id.encode(), b"port": node.port, b"ip": node.ip.encode()}
    entry[b"endpoint"] = node.ip.encode()
    if node.hostname:
        entry[b"hostname"] = node.hostname.encode()
    entry[b"role"] = b"master" if node.is_primary else b"replica"
    entry[b"replication-offset"] = node.replication_offset
    entry[b"health"] = _shard_health(node)
    return entry


def _shards_in_order(view: ClusterView) -> list[list[NodeView]]:
    shards: dict[str, list[NodeView]] = {}
    for node in sorted(view.nodes, key=lambda n: not n.is_primary):
        shards.setdefault(node.shard_id, []).append(node)
    # Valkey's order is a hash table's; ours is by first slot, slotless shards last.
    first_slot: dict[str, int] = {}
    for start, _, owner in view._runs:  # runs go by start slot: the first seen is the lowest
        first_slot.setdefault(owner.shard_id, start)
    return sorted(shards.values(), key=lambda nodes: first_slot.get(nodes[0].shard_id, SLOTS))


def cluster_shards(view: ClusterView) -> list:
    """CLUSTER SHARDS: per shard, its flat slot list and a map per node (primary first)."""
    reply = []
    for nodes in _shards_in_order(view):
        flat: list[int] = []
        for start, end, owner in view._runs:
            if owner.shard_id == nodes[0].shard_id:
                flat += (start, end)
        reply.append({b"slots": flat, b"nodes": [_shard_node(node) for node in nodes]})
    return reply


# --- CLUSTER NODES -------------------------------------------------------------


def _node_flags(view: ClusterView, node: NodeView) -> str:
    flags = ["myself"] if node.id == view.myself_id else []
    flags.append("master" if node.is_primary else "slave")
    flags += {"suspect": ["fail?"], "failed": ["fail"]}.get(node.health, [])
    return ",".join(flags)


def _node_epoch(view: ClusterView, node: NodeView) -> int:
    # Like Valkey's nodeEpoch(): a replica reports the config epoch of its primary.
    if node.primary_id is not None:
        try:
            return view.node(node.primary_id).config_epoch
        except KeyError:
            pass
    return node.config_epoch


def _node_line(view: ClusterView, node: NodeView, runs: list[SlotRange]) -> str:
    address = f"{node.ip}:{node.port}@{node.bus_port}" + (f",{node.hostname}" if node.hostname else "")
    link = "connected" if node.link_connected or node.id == view.myself_id else "disconnected"
    columns = [
        node.id, address, _node_flags(view, node), node.primary_id or "-",
        str(node.ping_sent_ms), str(node.pong_recv_ms), str(_node_epoch(view, node)), link,
    ]  # fmt: skip
    columns += (str(start) if start == end else f"{start}-{end}" for start, end in runs)
    return " ".join(columns)


def cluster_nodes(view: ClusterView) -> Verbatim:
    """CLUSTER NODES: one line per node, each ending in LF (RESP3 sends it verbatim)."""
    runs: dict[str, list[SlotRange]] = {}
    for start, end, owner in view._runs:
        runs.setdefault(owner.id, []).append((start, end))
    return Verbatim("".join(_node_line(view, n, runs.get(n.id, [])) + "\n" for n in view.nodes))


# --- CLUSTER INFO --------------------------------------------------------------


def _message_lines(direction: str, counts: Mapping[str, int]) -> list[str]:
    assert set(counts) <= set(MESSAGE_TYPES), f"unknown bus message types {set(counts) - set(MESSAGE_TYPES)}"
    lines = [
        f"cluster_stats_messages_{kind}_{direction}:{counts[kind]}"
        for kind in MESSAGE_TYPES
        if counts.get(kind)
    ]
    return [*lines, f"cluster_stats_messages_{direction}:{sum(counts.values())}"]


def cluster_info(
    view: ClusterView,
    *,
    messages_sent: Mapping[str, int] | None = None,
    messages_received: Mapping[str, int] | None = None,
    links_buffer_limit_exceeded: int = 0,
) -> Verbatim:
    """CLUSTER INFO, CRLF-terminated lines in Valkey's order.

    Message counters are per bus message type (keys from :data:`MESSAGE_TYPES`);
    types with a zero count are omitted, as Valkey does.
    """
    by_health = {health: 0 for health in HEALTHS}
    for start, end, owner in view._runs:
        by_health[owner.health] += end - start + 1
    assigned = sum(by_health.values())
    lines = [
        f"cluster_state:{'ok' if view.state_ok else 'fail'}",
        f"cluster_slots_assigned:{assigned}",
        f"cluster_slots_ok:{by_health['online'] + by_health['loading']}",
        f"cluster_slots_pfail:{by_health['suspect']}",
        f"cluster_slots_fail:{by_health['failed']}",
        f"cluster_known_nodes:{view.known_nodes}",
        f"cluster_size:{view.cluster_size}",
        f"cluster_current_epoch:{view.current_epoch}",
        f"cluster_my_epoch:{_node_epoch(view, view.myself)}",
        *_message_lines("sent", messages_sent or {}),
        *_message_lines("received", messages_received or {}),
        f"total_cluster_links_buffer_limit_exceeded:{links_buffer_limit_exceeded}",
    ]
    return Verbatim("".join(line + "\r\n" for line in lines))
