"""The cluster configuration that Raft replicates: nodes, shards, slots, ISR, migrations.

Theory of operation
-------------------
:class:`ClusterState` is the value the Raft applier owns and mutates, one
committed entry at a time, through :func:`trionode.core.cluster.commands.apply`.
Every replica of the Raft log that applies the same entries holds an equal
state, so the state holds only plain values: no clock, no health, no offsets
(those are the shell's, passed in when a view is built).

What it holds:

- ``nodes``: every member node with its address, its shard and its role in it;
- ``shards``: per shard its epoch, primary, replicas, in-sync set (ISR) and
  slot ranges. The shard epoch changes only by failover, so one epoch names at
  most one primary (S2). ``epoch_max`` is the highest epoch ever issued; a
  new shard starts above it, so a re-created shard id never meets a command
  meant for its earlier life;
- ``slot_owners``: the 16384-entry slot -> shard table, kept exactly equal to
  the shards' ranges (S3), so routing is one index;
- ``migrations``: slot migrations in flight, and a bounded history of finished
  ones (for CLUSTER GETSLOTMIGRATIONS);
- ``rejections``: the last few entries the applier refused, with the reason;
- ``acl_users``: ACL users by name, each as the canonical rules that rebuild
  it (``core/acl.py``: ``describe``), passwords only as SHA-256 digests;
  ``acl_users_created`` says which configuration version made each one, so a
  user deleted and made again under its name is another user: a node that
  never saw the table without it (one rebuild for a batch of entries, or a
  snapshot) still logs out the connections of the first (``Node.set_users``).

Records (:class:`NodeRecord`, :class:`Shard`, :class:`Migration`) are frozen;
the applier replaces them, so a record handed out is never changed under the
reader. Raft membership (voters, learners) is not here: it travels in Raft's
own ConfChange entries.

:mod:`.snapshot` converts it to and from plain
CBOR-friendly values (str, int, None, list, dict); the round trip is exact.
"""

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import groupby
from typing import Literal

from trionode import limits
from trionode.core.cluster_view import SlotRange, ranges_from_slots

# Bounds of the configuration (DESIGN §2: everything has a limit).
# fmt: off
nodes_max = 1000                  # member nodes, as Valkey's practical cluster ceiling
shard_replicas_max = 15           # replicas attached to one shard
migrations_max = 64               # migrations in flight at once
migration_history_max = 16        # finished migrations remembered
rejections_max = 64               # refused entries remembered
host_bytes_max = 255              # a host name or address, as DNS bounds it
acl_users_max = 1000              # ACL users in the cluster
# fmt: on

Role = Literal["primary", "replica", "none"]
ROLES: tuple[Role, ...] = ("primary", "replica", "none")
MIGRATION_STATES = ("running", "committed", "aborted")
_HEX = frozenset("0123456789abcdef")


def is_id(value: object) -> bool:
    """Node, shard, migration and cluster ids are 40 lower-case hex characters."""
    return isinstance(value, str) and len(value) == 40 and set(value) <= _HEX


@dataclass(frozen=True, slots=True)
class NodeRecord:
    id: str  # Invariant: is_id(id).
    host: str
    port: int
    bus_port: int
    shard_id: str | None = None  # Invariant: None exactly when role == "none".
    role: Role = "none"  # Invariant: matches the shard's primary_id / replica_ids.


@dataclass(frozen=True, slots=True)
class Shard:
    id: str
    epoch: int  # Invariant: >= 1; bumped only by failover, so one primary per epoch (S2).
    primary_id: str  # Invariant: in isr_ids, not in replica_ids.
    replica_ids: tuple[str, ...] = ()  # Invariant: sorted, unique.
    isr_ids: tuple[str, ...] = ()  # Invariant: sorted, unique, subset of {primary} | replicas.
    isr_version: int = 0  # Invariant: bumped by every change to isr_ids (compare-and-set token).
    slots: tuple[SlotRange, ...] = ()  # Invariant: sorted, disjoint; equal to slot_owners' view.


@dataclass(frozen=True, slots=True)
class Migration:
    id: str
    slots: tuple[SlotRange, ...]  # Invariant: non-empty; while running, owned by the source.
    source_shard_id: str
    target_shard_id: str  # Invariant: != source_shard_id.
    source_epoch: int  # The shards' epochs at start; a failover on either side dooms the migration.
    target_epoch: int
    state: str = "running"  # Invariant: one of MIGRATION_STATES; "running" only in migrations.


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    op: str
    reason: str


def _no_owners() -> list[str | None]:
    return [None] * limits.slots_count


@dataclass(slots=True)
class ClusterState:
    cluster_id: str = ""  # Invariant: "" until bootstrap, then is_id().
    nodes: dict[str, NodeRecord] = field(default_factory=dict)  # Invariant: len <= nodes_max.
    shards: dict[str, Shard] = field(default_factory=dict)
    slot_owners: list[str | None] = field(default_factory=_no_owners)  # Invariant: equals shards' ranges.
    migrations: dict[str, Migration] = field(default_factory=dict)  # Invariant: all "running".
    migration_history: deque[Migration] = field(default_factory=lambda: deque(maxlen=migration_history_max))
    rejections: deque[Rejection] = field(default_factory=lambda: deque(maxlen=rejections_max))
    epoch_max: int = 0  # Invariant: >= every epoch ever issued (Valkey's currentEpoch); never decreases.
    applied_index: int = 0  # Invariant: the index of the last entry applied, refused or not.
    config_version: int = 0  # Invariant: bumped by every entry that changed the state.
    acl_users: dict[str, tuple[str, ...]] = field(default_factory=dict)  # Invariant: len <= acl_users_max.
    acl_users_created: dict[str, int] = field(default_factory=dict)  # Invariant: the keys of acl_users.
    members_ever: int = 0  # Invariant: nodes ever admitted (bootstrap, node_join); >= len(nodes); never decreases.

    @property
    def bootstrapped(self) -> bool:
        return self.cluster_id != ""


# --- slot ranges ------------------------------------------------------------------


def slots_of(ranges: Iterable[SlotRange]) -> set[int]:
    return {slot for start, end in ranges for slot in range(start, end + 1)}


def owner_ranges(owners: list[str | None]) -> dict[str, tuple[SlotRange, ...]]:
    """Each owning shard's sorted ranges, read off the slot table in one pass."""
    assert len(owners) == limits.slots_count, len(owners)
    found: dict[str, list[SlotRange]] = {}
    slot = 0
    for owner, run in groupby(owners):
        length = sum(1 for _ in run)
        if owner is not None:
            found.setdefault(owner, []).append((slot, slot + length - 1))
        slot += length
    assert slot == limits.slots_count
    return {shard_id: tuple(ranges) for shard_id, ranges in found.items()}


def owners_from_shards(shards: Iterable[Shard]) -> tuple[list[str | None], list[int]]:
    """The slot table the shards' ranges describe, and the slots claimed twice."""
    owners = _no_owners()
    doubled: list[int] = []
    for shard in shards:
        for start, end in shard.slots:
            doubled += [start + i for i, s in enumerate(owners[start : end + 1]) if s is not None]
            owners[start : end + 1] = [shard.id] * (end - start + 1)
    return owners, doubled


def normalize_ranges(ranges: Iterable[SlotRange]) -> tuple[SlotRange, ...]:
    return ranges_from_slots(slots_of(ranges))
