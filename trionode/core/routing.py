"""Which slots this node serves, and what to tell a client about the others.

Theory of operation. A :class:`Routing` is an immutable table built from the
applied cluster configuration whenever it changes; sessions consult the
current one for every keyed command. A slot is served here only if its shard
is this node's shard and this node is that shard's primary, or, for a read on
a READONLY connection, if this node is an in-sync replica of that shard that
is streaming (never while it loads or catches up: S7, seed 003). Otherwise the
client gets ``MOVED slot host:port`` (the owner's primary), or
``CLUSTERDOWN`` when nobody owns the slot or the node is not in a cluster.
Writes are refused with ``NOREPLICAS`` while the shard's ISR is smaller than
``min_insync_replicas``, and with ``MISCONF`` while the node's disk is full.
During a slot migration's handover the moving slots are ``paused``: their
commands, reads too, wait (the session hands them back to the shell) instead
of failing: once the commit may have applied, the target may already take
writes that this node's configuration does not show, and a read here would
return a value older than an acknowledged write.
The commit reaches the nodes one by one, so just after it the source may
send a client here, to the target's primary, while this node's configuration
still names the source. Answering MOVED back would bounce the client between
the two until the commit applies here (Valkey's handover avoids this by the
target taking ownership before the source lets go). So the slots a running
migration moves to this shard are ``importing`` on its primary: a command for
one is handed back to the shell, which first applies what the Raft leader had
committed when asked (its read index), and runs the command again. It is
served if the commit was among that. Otherwise the source had not applied the
commit when the client left it either (whatever it had applied was committed
before the question), so this client did not follow a MOVED of the commit:
it is redirected to the source, which still holds the slots.
The errors are Valkey's, byte for byte, because cluster clients act on them.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from trionode import limits
from trionode.core import errors
from trionode.core.cluster.state import ClusterState, slots_of


@dataclass(frozen=True, slots=True)
class Routing:
    # Invariant: len(owners) == slots_count; an owner is a shard id or None.
    owners: tuple[str | None, ...]
    my_shard: str | None
    am_primary: bool
    primary_addr: Mapping[str, str]    # shard id -> "host:port" of its primary
    member: bool = True                # False until the node belongs to a cluster
    replica_serving: bool = False      # an in-sync, streaming replica may serve READONLY reads
    writes_refused: str | None = None  # NOREPLICAS while the ISR is below min_insync_replicas; MISCONF
    disk_full: bool = False            # the data WAL found no space: every write, keyless ones too, is refused
    # A slot migration involves this node's shard: FLUSHALL would empty the target's own slots
    # along with the staged ones, or leave the target's copy of the moving slots stale.
    migrating: bool = False
    paused: frozenset[int] = frozenset()  # slots in a migration's handover: their commands wait (Session)
    # Slots a running migration moves to this node's shard, on its primary: a redirect for one waits
    # until the configuration has caught up with the leader's (Session).
    importing: frozenset[int] = frozenset()

    def error_for(self, slot: int, write: bool = True, readonly_session: bool = False) -> str | None:
        """None when this node serves ``slot`` for this command; otherwise the error line to send."""
        owner = self.owners[slot]
        if owner is not None and owner == self.my_shard:
            if self.am_primary:
                return self.writes_refused if write else None
            if readonly_session and not write and self.replica_serving:
                return None
        if not self.member:
            return errors.CLUSTERDOWN_NOT_MEMBER
        if owner is None or owner not in self.primary_addr:
            return errors.CLUSTERDOWN_UNBOUND
        return f"MOVED {slot} {self.primary_addr[owner]}"

    def keyless_error(self, write: bool, readonly_session: bool = False) -> str | None:
        """None when this node may run a command without keys (FLUSHALL, DBSIZE, KEYS, SCAN).

        The keyed rules with no slot to look up: a write runs only on a shard's primary, a read
        there or, for a READONLY connection, on an in-sync streaming replica. There is no slot
        to redirect with, so a replica refuses with Valkey's replica errors instead of MOVED.
        Valkey runs any command without keys on any node, replicas included (getNodeByQuery);
        here a replica without READONLY refuses, as it would otherwise show a client data older
        than writes it saw acknowledged (§5.4: READONLY is the opt-in to stale reads).
        The primary's lease is the caller's to check, as for keyed commands.
        """
        if not self.member:
            return errors.CLUSTERDOWN_NOT_MEMBER
        if self.am_primary:
            if write and self.migrating:
                return self.writes_refused or errors.FLUSHALL_MIGRATING
            return self.writes_refused if write else None
        if self.my_shard is None:
            return errors.NO_SHARD
        if write:
            return errors.READONLY_REPLICA
        if not self.replica_serving:
            return errors.MASTERDOWN
        return None if readonly_session else errors.REPLICA_NEEDS_READONLY


def serve_everything(shard_id: str) -> Routing:
    """The routing of a node that owns every slot (a one-node cluster)."""
    return Routing((shard_id,) * limits.slots_count, shard_id, True, {shard_id: ""})


def not_a_member() -> Routing:
    return Routing((None,) * limits.slots_count, None, False, {}, member=False)


def from_cluster_state(
    state: ClusterState, my_id: str, *, min_insync_replicas: int = 1, replica_serving: bool = False,
    disk_full: bool = False, paused: frozenset[int] = frozenset(),
) -> Routing:
    """The routing a node derives from the applied configuration (and its replication state)."""
    me = state.nodes.get(my_id)
    if not state.bootstrapped or me is None:
        return not_a_member()
    primary_addr = {}
    for shard_id, shard in state.shards.items():
        primary = state.nodes.get(shard.primary_id)
        if primary is not None:
            primary_addr[shard_id] = f"{primary.host}:{primary.port}"
    my_shard = state.shards.get(me.shard_id) if me.shard_id is not None else None
    refused = errors.NOREPLICAS if my_shard is not None and len(my_shard.isr_ids) < min_insync_replicas else None
    if disk_full:
        refused = errors.DISK_FULL
    in_isr = my_shard is not None and my_id in my_shard.isr_ids
    migrating = any(me.shard_id in (m.source_shard_id, m.target_shard_id) for m in state.migrations.values())
    importing: set[int] = set()
    for m in state.migrations.values():
        if m.target_shard_id == me.shard_id and me.role == "primary":
            importing |= slots_of(m.slots)
    return Routing(
        tuple(state.slot_owners), me.shard_id, me.role == "primary", primary_addr,
        replica_serving=replica_serving and in_isr and me.role == "replica", writes_refused=refused,
        disk_full=disk_full, migrating=migrating, paused=paused, importing=frozenset(importing),
    )
