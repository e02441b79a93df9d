"""The cluster configuration commands and their apply function: the authority (DESIGN §4).

Theory of operation
-------------------
A command is a plain dict, ``{"op": name, field: value, ...}``, made of str,
int and lists of ``[start, end]`` slot ranges, so it travels in a Raft entry
unchanged. :func:`apply` runs one committed command against the
:class:`ClusterState`. It is deterministic and total: whatever the dict holds,
it returns an :class:`ApplyResult` and never raises. A command that is
malformed, or whose preconditions no longer hold when it is applied, is a
no-op recorded in ``state.rejections``. The Raft leader only pre-validates
(:func:`prevalidate`); between its check and the apply, other entries may have
committed, and the apply decides.

Every command that changes a shard names the shard epoch it expects (a
``shard_create`` names the new shard's epoch, or 0 for "the next one"); ISR
changes also name the ``isr_version`` they read (a compare-and-set, as Kafka's
partition epoch: a delayed ``isr_expand`` must not re-admit a replica that has
since fallen behind). A stale epoch or version makes the entry a no-op.

The rules the table below enforces, beyond shape and existence:

- slots are assigned only while unowned; ownership moves only by
  ``migration_commit`` (S3);
- ``migration_commit`` requires both shards' epochs to equal those named in the
  command and those recorded at ``migration_start``: a failover on either side
  in between makes it stale, so ownership never moves across a failover
  (seed 001). Such a migration can only be aborted and started again;
- a replica joins outside the ISR and enters it only by ``isr_expand`` (S8,
  seed 000); only an ISR member can be promoted (S5, seed 002);
- a replica-set change may not remove the last caught-up replica (the last
  ISR member besides the primary): shrink it from the ISR first, which is the
  primary's explicit decision, or bring another replica into the ISR (S8);
- ``failover`` moves the shard to epoch + 1 with the new primary. The new ISR
  is the old ISR minus the old primary (it contains the new primary). The old
  primary stays in the shard as a replica *outside* the ISR: it may hold an
  unacknowledged suffix it must truncate, and it re-enters only by
  ``isr_expand`` once caught up;
- ``reinstate`` moves the shard to epoch + 1 with the same primary and ISR
  (the failover controller's way out when fenced members left no one
  eligible and the primary is back);
- a node leaves the cluster (``node_forget``) only once it is in no shard.

Handlers validate everything first (raising the private ``_Refused``) and
only then mutate, so a refused command changes nothing but the rejection log
and ``applied_index``.
"""

from collections.abc import Callable, Mapping
from copy import copy
from dataclasses import dataclass, replace
from typing import Any

from trionode import limits
from trionode.core import acl
from trionode.core.cluster.state import (
    ClusterState,
    Migration,
    NodeRecord,
    Rejection,
    Role,
    Shard,
    SlotRange,
    acl_users_max,
    host_bytes_max,
    is_id,
    migrations_max,
    nodes_max,
    normalize_ranges,
    owner_ranges,
    shard_replicas_max,
    slots_of,
)
from trionode.core.errors import CommandError
from trionode.core.shown import shown

reason_chars_max = 240  # a recorded reason is cut here, so the rejection log stays bounded
epoch_max_value = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ApplyResult:
    ok: bool
    reason: str = ""  # "" when ok; otherwise "<code>: <detail>", the code a stable word


class _Refused(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}"[:reason_chars_max])
        self.reason = str(self)


def _require(condition: bool, code: str, detail: str) -> None:
    if not condition:
        raise _Refused(code, detail)


# --- field shapes -------------------------------------------------------------------


def _int_in(value: Any, low: int, high: int, name: str) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    _require(ok, "bad_command", f"{name} must be an integer in {low}..{high}, not {shown(value, 40)}")
    return value


def _parse_id(value: Any, name: str) -> str:
    _require(is_id(value), "bad_command", f"{name} must be 40 lower-case hex characters, not {shown(value, 60)}")
    return value


def _parse_host(value: Any, name: str) -> str:
    ok = isinstance(value, str) and 0 < len(value) <= host_bytes_max and value.isprintable()
    _require(ok and not any(c.isspace() for c in value), "bad_command", f"{name} is not a host: {shown(value, 60)}")
    return value


def _parse_ranges(value: Any, name: str) -> tuple[SlotRange, ...]:
    top = limits.slots_count - 1
    ok = isinstance(value, (list, tuple)) and 0 < len(value) <= limits.slots_count
    _require(ok, "bad_command", f"{name} must be a non-empty list of at most {limits.slots_count} ranges")
    for pair in value:
        _require(isinstance(pair, (list, tuple)) and len(pair) == 2, "bad_command", f"{name}: {shown(pair, 40)}")
        start, end = (_int_in(v, 0, top, f"{name} bound") for v in pair)
        _require(start <= end, "bad_command", f"{name}: range {start}-{end} ends before it starts")
    return normalize_ranges(value)


def _parse_user(value: Any, name: str) -> str:
    _require(acl.valid_user_name(value), "bad_command", f"{name} is not a user name: {shown(value, 60)}")
    return value


def _parse_rules(value: Any, name: str) -> tuple[str, ...]:
    ok = isinstance(value, (list, tuple)) and len(value) <= acl.rules_max
    ok = ok and all(isinstance(rule, str) and 0 < len(rule) <= 512 for rule in value)
    _require(ok, "bad_command", f"{name} must be a list of at most {acl.rules_max} rules")
    return tuple(value)


_Parser = Callable[[Any, str], Any]
_ID_FIELDS = ("cluster_id", "node_id", "shard_id", "primary_id", "old_id", "new_id", "migration_id",
              "source_shard_id", "target_shard_id")  # fmt: skip
_EPOCH_FIELDS = ("epoch", "source_epoch", "target_epoch", "isr_version")
FIELD_PARSERS: dict[str, _Parser] = {
    **dict.fromkeys(_ID_FIELDS, _parse_id),
    **dict.fromkeys(_EPOCH_FIELDS, lambda v, name: _int_in(v, 0, epoch_max_value, name)),
    "host": _parse_host,
    "port": lambda v, name: _int_in(v, 1, 65535, name),
    "bus_port": lambda v, name: _int_in(v, 1, 65535, name),
    "slots": _parse_ranges,
    "user": _parse_user,
    "rules": _parse_rules,
    "base": _parse_rules,
}


# --- shared checks (they only read) ---------------------------------------------------


def _node(state: ClusterState, node_id: str) -> NodeRecord:
    node = state.nodes.get(node_id)
    _require(node is not None, "unknown_node", f"node {node_id} is not a member")
    assert node is not None and node.id == node_id
    return node


def _free_node(state: ClusterState, node_id: str) -> NodeRecord:
    node = _node(state, node_id)
    _require(node.role == "none", "node_busy", f"node {node_id} is already {node.role} of shard {node.shard_id}")
    return node


def _shard_at(state: ClusterState, shard_id: str, epoch: int) -> Shard:
    shard = state.shards.get(shard_id)
    _require(shard is not None, "unknown_shard", f"shard {shard_id} does not exist")
    assert shard is not None and shard.epoch >= 1
    _require(shard.epoch == epoch, "stale_epoch", f"shard {shard_id} is at epoch {shard.epoch}, command names {epoch}")
    return shard


def _isr_at(shard: Shard, isr_version: int) -> None:
    current = shard.isr_version
    detail = f"shard {shard.id} ISR is at version {current}, command names {isr_version}"
    _require(current == isr_version, "stale_isr_version", detail)


def _replica_of(shard: Shard, node_id: str) -> None:
    _require(node_id != shard.primary_id, "is_primary", f"node {node_id} is the primary of shard {shard.id}")
    _require(node_id in shard.replica_ids, "not_replica", f"node {node_id} is not a replica of shard {shard.id}")


def _may_leave(shard: Shard, node_id: str) -> None:
    """S8: removing a replica must leave a caught-up replica if it was one."""
    _replica_of(shard, node_id)
    others = set(shard.isr_ids) - {shard.primary_id, node_id}
    last = node_id in shard.isr_ids and not others
    _require(not last, "last_caught_up", f"node {node_id} is the last caught-up replica of shard {shard.id}; "
             "shrink it from the ISR first or bring another replica in sync")  # fmt: skip


def _address_free(state: ClusterState, host: str, port: int, node_id: str) -> None:
    users = [n.id for n in state.nodes.values() if (n.host, n.port) == (host, port) and n.id != node_id]
    _require(not users, "address_in_use", f"{host}:{port} is already the address of node {users[:1]}")


def _running(state: ClusterState, migration_id: str) -> Migration:
    migration = state.migrations.get(migration_id)
    _require(migration is not None, "unknown_migration", f"migration {migration_id} is not in flight")
    assert migration is not None and migration.state == "running"
    return migration


# --- shared mutations (they only assert) ----------------------------------------------


def _set_role(state: ClusterState, node_id: str, shard_id: str | None, role: Role) -> None:
    assert (shard_id is None) == (role == "none"), (shard_id, role)
    state.nodes[node_id] = replace(state.nodes[node_id], shard_id=shard_id, role=role)


def _with_members(shard: Shard, replicas: set[str], isr: set[str], **changes: Any) -> Shard:
    """The shard with new replica and ISR sets (sorted); the ISR version moves if the ISR did."""
    isr_ids = tuple(sorted(isr))
    version = shard.isr_version + (isr_ids != shard.isr_ids)
    assert shard.primary_id not in replicas or "primary_id" in changes
    return replace(shard, replica_ids=tuple(sorted(replicas)), isr_ids=isr_ids, isr_version=version, **changes)


def _give_slots(state: ClusterState, slots: set[int], shard_id: str) -> None:
    losers = {state.slot_owners[slot] for slot in slots} - {None, shard_id}
    for slot in slots:
        state.slot_owners[slot] = shard_id
    ranges = owner_ranges(state.slot_owners)
    for changed in (*losers, shard_id):
        state.shards[changed] = replace(state.shards[changed], slots=ranges.get(changed, ()))
    assert all(state.slot_owners[slot] == shard_id for slot in slots)


def _finish(state: ClusterState, migration: Migration, outcome: str) -> None:
    assert outcome in ("committed", "aborted") and migration.id in state.migrations
    del state.migrations[migration.id]
    state.migration_history.append(replace(migration, state=outcome))


def _detach(state: ClusterState, shard: Shard, node_id: str) -> Shard:
    _set_role(state, node_id, None, "none")
    return _with_members(shard, set(shard.replica_ids) - {node_id}, set(shard.isr_ids) - {node_id})


# --- handlers: validate, then mutate ---------------------------------------------------

Args = Mapping[str, Any]


def _bootstrap(state: ClusterState, a: Args) -> None:
    _require(not state.bootstrapped, "already_bootstrapped", f"cluster {state.cluster_id} exists")
    assert not state.nodes and not state.shards
    state.cluster_id = a["cluster_id"]
    state.nodes[a["node_id"]] = NodeRecord(a["node_id"], a["host"], a["port"], a["bus_port"])
    state.members_ever = 1


def _node_join(state: ClusterState, a: Args) -> None:
    _require(a["node_id"] not in state.nodes, "node_exists", f"node {a['node_id']} is already a member")
    _require(len(state.nodes) < nodes_max, "too_many", f"the cluster already has {nodes_max} nodes")
    _address_free(state, a["host"], a["port"], a["node_id"])
    state.nodes[a["node_id"]] = NodeRecord(a["node_id"], a["host"], a["port"], a["bus_port"])
    state.members_ever += 1


def _node_info(state: ClusterState, a: Args) -> None:
    node = _node(state, a["node_id"])
    _address_free(state, a["host"], a["port"], node.id)
    state.nodes[node.id] = replace(node, host=a["host"], port=a["port"], bus_port=a["bus_port"])


def _node_forget(state: ClusterState, a: Args) -> None:
    node = _node(state, a["node_id"])
    _require(node.role == "none", "node_in_shard", f"node {node.id} is {node.role} of shard {node.shard_id}; "
             "fail it over or detach it first")  # fmt: skip
    del state.nodes[node.id]


def _shard_create(state: ClusterState, a: Args) -> None:
    # Epoch 0 asks for the next epoch at apply time. A node that proposes a shard for itself
    # (ADDSLOTS) may not have applied shards created elsewhere yet; an epoch it picked from
    # that stale view would be refused although nothing conflicts. A plan that names its
    # epochs (the planner's) still gets them checked.
    shard_id, epoch = a["shard_id"], a["epoch"] or state.epoch_max + 1
    _require(shard_id not in state.shards, "shard_exists", f"shard {shard_id} already exists")
    _require(epoch > state.epoch_max, "stale_epoch", f"a new shard must start above epoch {state.epoch_max}")
    _free_node(state, a["primary_id"])
    state.shards[shard_id] = Shard(shard_id, epoch, a["primary_id"], (), (a["primary_id"],))
    state.epoch_max = epoch
    _set_role(state, a["primary_id"], shard_id, "primary")


def _shard_remove(state: ClusterState, a: Args) -> None:
    shard = _shard_at(state, a["shard_id"], a["epoch"])
    _require(not shard.slots, "shard_has_slots", f"shard {shard.id} owns slots; migrate them away first")
    _require(not shard.replica_ids, "shard_has_replicas", f"shard {shard.id} has replicas; detach them first")
    busy = sorted(m.id for m in state.migrations.values() if shard.id in (m.source_shard_id, m.target_shard_id))
    _require(not busy, "shard_migrating", f"shard {shard.id} is in migration {busy[:1]}")
    del state.shards[shard.id]
    _set_role(state, shard.primary_id, None, "none")


def _slots_assign(state: ClusterState, a: Args) -> None:
    shard = _shard_at(state, a["shard_id"], a["epoch"])
    slots = slots_of(a["slots"])
    busy = sorted(slot for slot in slots if state.slot_owners[slot] is not None)
    _require(not busy, "slot_busy", f"slots {busy[:4]} are already owned; only a migration moves them")
    _give_slots(state, slots, shard.id)


def _replica_attach(state: ClusterState, a: Args) -> None:
    shard = _shard_at(state, a["shard_id"], a["epoch"])
    _free_node(state, a["node_id"])
    full = len(shard.replica_ids) >= shard_replicas_max
    _require(not full, "too_many", f"shard {shard.id} already has {shard_replicas_max} replicas")
    state.shards[shard.id] = _with_members(shard, {*shard.replica_ids, a["node_id"]}, set(shard.isr_ids))
    _set_role(state, a["node_id"], shard.id, "replica")


def _replica_detach(state: ClusterState, a: Args) -> None:
    shard = _shard_at(state, a["shard_id"], a["epoch"])
    _may_leave(shard, a["node_id"])
    state.shards[shard.id] = _detach(state, shard, a["node_id"])


def _replica_replace(state: ClusterState, a: Args) -> None:
    shard = _shard_at(state, a["shard_id"], a["epoch"])
    _may_leave(shard, a["old_id"])
    _free_node(state, a["new_id"])
    shard = _detach(state, shard, a["old_id"])
    state.shards[shard.id] = _with_members(shard, {*shard.replica_ids, a["new_id"]}, set(shard.isr_ids))
    _set_role(state, a["new_id"], shard.id, "replica")


def _isr_shrink(state: ClusterState, a: Args) -> None:
    shard = _shard_at(state, a["shard_id"], a["epoch"])
    _isr_at(shard, a["isr_version"])
    _replica_of(shard, a["node_id"])
    _require(a["node_id"] in shard.isr_ids, "not_in_isr", f"node {a['node_id']} is not in the ISR of {shard.id}")
    isr = set(shard.isr_ids) - {a["node_id"]}
    state.shards[shard.id] = _with_members(shard, set(shard.replica_ids), isr)


def _isr_expand(state: ClusterState, a: Args) -> None:
    shard = _shard_at(state, a["shard_id"], a["epoch"])
    _isr_at(shard, a["isr_version"])
    _replica_of(shard, a["node_id"])
    _require(a["node_id"] not in shard.isr_ids, "already_in_isr", f"node {a['node_id']} is in the ISR already")
    state.shards[shard.id] = _with_members(shard, set(shard.replica_ids), {*shard.isr_ids, a["node_id"]})


def _isr_fence(state: ClusterState, a: Args) -> None:
    # Only bumps isr_version: every ISR proposal made before it (at an older version) is now
    # stale. A restarted primary commits one before it acknowledges anything, so a proposal
    # its previous process left in flight can no longer admit a replica that missed writes.
    shard = _shard_at(state, a["shard_id"], a["epoch"])
    _isr_at(shard, a["isr_version"])
    state.shards[shard.id] = replace(shard, isr_version=shard.isr_version + 1)


def _failover(state: ClusterState, a: Args) -> None:
    shard = _shard_at(state, a["shard_id"], a["epoch"])
    new, old = a["node_id"], shard.primary_id
    _replica_of(shard, new)
    _require(new in shard.isr_ids, "not_in_isr", f"node {new} is not in the ISR of shard {shard.id}; "
             "only an in-sync replica may be promoted")  # fmt: skip
    replicas = (set(shard.replica_ids) - {new}) | {old}
    epoch = shard.epoch + 1
    state.shards[shard.id] = _with_members(shard, replicas, set(shard.isr_ids) - {old}, primary_id=new, epoch=epoch)
    state.epoch_max = max(state.epoch_max, epoch)
    _set_role(state, old, shard.id, "replica")
    _set_role(state, new, shard.id, "primary")


def _reinstate(state: ClusterState, a: Args) -> None:
    # Members fenced at epoch + 1 refuse the primary's stream at its epoch, and none of them was
    # eligible to take over (core/failover/controller.py): the next epoch lets them follow it again.
    shard = _shard_at(state, a["shard_id"], a["epoch"])
    _require(a["node_id"] == shard.primary_id, "not_primary", f"node {a['node_id']} is not the primary of "
             f"shard {shard.id}; only the primary may be reinstated")  # fmt: skip
    state.shards[shard.id] = replace(shard, epoch=shard.epoch + 1)
    state.epoch_max = max(state.epoch_max, shard.epoch + 1)


def _migration_start(state: ClusterState, a: Args) -> None:
    mid, slots = a["migration_id"], slots_of(a["slots"])
    known = mid in state.migrations or any(m.id == mid for m in state.migration_history)
    _require(not known, "migration_exists", f"migration id {mid} was used already")
    source = _shard_at(state, a["source_shard_id"], a["source_epoch"])
    target = _shard_at(state, a["target_shard_id"], a["target_epoch"])
    _require(source.id != target.id, "bad_command", "source and target are the same shard")
    _require(len(state.migrations) < migrations_max, "too_many", f"{migrations_max} migrations are in flight")
    foreign = sorted(slot for slot in slots if state.slot_owners[slot] != source.id)
    _require(not foreign, "slot_not_owned", f"slots {foreign[:4]} are not owned by source shard {source.id}")
    moving = set().union(*(slots_of(m.slots) for m in state.migrations.values())) & slots
    _require(not moving, "slot_migrating", f"slots {sorted(moving)[:4]} are already migrating")
    state.migrations[mid] = Migration(mid, a["slots"], source.id, target.id, source.epoch, target.epoch)


def _migration_commit(state: ClusterState, a: Args) -> None:
    migration = _running(state, a["migration_id"])
    for side, shard_id, recorded in (("source", migration.source_shard_id, migration.source_epoch),
                                     ("target", migration.target_shard_id, migration.target_epoch)):  # fmt: skip
        shard = _shard_at(state, shard_id, a[f"{side}_epoch"])
        _require(shard.epoch == recorded, "stale_epoch", f"{side} shard {shard_id} failed over during the "
                 f"migration (epoch {recorded} -> {shard.epoch}); abort and start again")  # fmt: skip
    _give_slots(state, slots_of(migration.slots), migration.target_shard_id)
    _finish(state, migration, "committed")


def _migration_abort(state: ClusterState, a: Args) -> None:
    _finish(state, _running(state, a["migration_id"]), "aborted")


def _acl_setuser(state: ClusterState, a: Args) -> None:
    """ACL SETUSER: the rules applied to the user the state holds, or to a new one built from ``base``.

    ``base`` (``acl_setuser_from`` only) is the user as the proposing node knew it
    without the state: the ``default`` user its requirepass made (core/auth.py). It is
    used only if the state does not hold that user when the entry applies, so a node
    that had not applied an earlier change of ``default`` yet cannot undo it.
    """
    name = a["user"]
    known = name in state.acl_users
    _require(known or len(state.acl_users) < acl_users_max, "too_many", f"there are {acl_users_max} users already")
    try:
        current = acl.apply_rules(acl.new_user(name), state.acl_users[name] if known else a.get("base", ()))
        user = acl.apply_rules(current, a["rules"])
    except CommandError as e:
        raise _Refused("bad_rule", str(e)) from None
    state.acl_users[name] = acl.describe(user)
    if not known:
        state.acl_users_created[name] = state.config_version + 1  # the version this entry makes


def _acl_deluser(state: ClusterState, a: Args) -> None:
    _require(a["user"] in state.acl_users, "unknown_user", f"user {a['user']} does not exist")
    del state.acl_users[a["user"]], state.acl_users_created[a["user"]]


@dataclass(frozen=True, slots=True)
class _Op:
    fields: tuple[str, ...]
    handler: Callable[[ClusterState, Args], None]


_ADDRESS = ("node_id", "host", "port", "bus_port")
OPS: dict[str, _Op] = {
    "bootstrap": _Op(("cluster_id", *_ADDRESS), _bootstrap),
    "node_join": _Op(_ADDRESS, _node_join),
    "node_info": _Op(_ADDRESS, _node_info),
    "node_forget": _Op(("node_id",), _node_forget),
    "shard_create": _Op(("shard_id", "epoch", "primary_id"), _shard_create),
    "shard_remove": _Op(("shard_id", "epoch"), _shard_remove),
    "slots_assign": _Op(("shard_id", "epoch", "slots"), _slots_assign),
    "replica_attach": _Op(("shard_id", "epoch", "node_id"), _replica_attach),
    "replica_detach": _Op(("shard_id", "epoch", "node_id"), _replica_detach),
    "replica_replace": _Op(("shard_id", "epoch", "old_id", "new_id"), _replica_replace),
    "isr_shrink": _Op(("shard_id", "epoch", "isr_version", "node_id"), _isr_shrink),
    "isr_expand": _Op(("shard_id", "epoch", "isr_version", "node_id"), _isr_expand),
    "isr_fence": _Op(("shard_id", "epoch", "isr_version"), _isr_fence),
    "failover": _Op(("shard_id", "epoch", "node_id"), _failover),
    "reinstate": _Op(("shard_id", "epoch", "node_id"), _reinstate),
    "migration_start": _Op(
        ("migration_id", "source_shard_id", "target_shard_id", "source_epoch", "target_epoch", "slots"),
        _migration_start,
    ),
    "migration_commit": _Op(("migration_id", "source_epoch", "target_epoch"), _migration_commit),
    "migration_abort": _Op(("migration_id",), _migration_abort),
    "acl_setuser": _Op(("user", "rules"), _acl_setuser),
    "acl_setuser_from": _Op(("user", "base", "rules"), _acl_setuser),
    "acl_deluser": _Op(("user",), _acl_deluser),
}
COMMAND_FIELDS: dict[str, tuple[str, ...]] = {name: op.fields for name, op in OPS.items()}


# --- entry points ------------------------------------------------------------------------


def _parse(state: ClusterState, command: Any) -> tuple[_Op, dict[str, Any]]:
    _require(isinstance(command, dict), "bad_command", f"a command is a dict, not {type(command).__name__}")
    op = OPS.get(command.get("op")) if isinstance(command.get("op"), str) else None
    _require(op is not None, "bad_command", f"unknown op {shown(command.get('op'), 40)}")
    assert op is not None
    missing = [name for name in op.fields if name not in command]
    extra = [shown(name) for name in command if name != "op" and name not in op.fields]
    _require(not missing and not extra, "bad_command", f"missing fields {missing}, unexpected {extra}"[:200])
    _require(state.bootstrapped or op.handler is _bootstrap, "not_bootstrapped", "bootstrap the cluster first")
    return op, {name: FIELD_PARSERS[name](command[name], name) for name in op.fields}


def _op_name(command: Any) -> str:
    op = command.get("op") if isinstance(command, dict) else None
    return op[:32] if isinstance(op, str) else "?"


def apply(state: ClusterState, index: int, command: Any) -> ApplyResult:
    """Apply committed entry ``index``; refuse (as a recorded no-op) what no longer holds."""
    assert index > state.applied_index, f"entry {index} applied after {state.applied_index}"
    try:
        op, args = _parse(state, command)
        op.handler(state, args)
    except _Refused as refused:
        state.rejections.append(Rejection(index, _op_name(command), refused.reason))
        result = ApplyResult(False, refused.reason)
    else:
        state.config_version += 1
        result = ApplyResult(True)
    state.applied_index = index
    assert result.ok or state.rejections[-1].index == index
    return result


def copy_state(state: ClusterState) -> ClusterState:
    """An independent copy (records are frozen, so copying the containers suffices)."""
    twin = copy(state)
    twin.nodes, twin.shards, twin.migrations = dict(state.nodes), dict(state.shards), dict(state.migrations)
    twin.slot_owners, twin.acl_users = list(state.slot_owners), dict(state.acl_users)
    twin.acl_users_created = dict(state.acl_users_created)
    twin.migration_history, twin.rejections = copy(state.migration_history), copy(state.rejections)
    assert twin == state and twin.slot_owners is not state.slot_owners
    return twin


def prevalidate(state: ClusterState, command: Any) -> ApplyResult:
    """The leader's check before proposing: would ``command`` apply now? ``state`` is unchanged."""
    return apply(copy_state(state), state.applied_index + 1, command)


def command(op: str, **fields: Any) -> dict[str, Any]:
    """Build a command dict; a wrong op or field set is a programmer error."""
    assert op in OPS, op
    assert set(fields) == set(OPS[op].fields), (op, sorted(fields))
    if "slots" in fields:
        fields["slots"] = [[start, end] for start, end in fields["slots"]]
    return {"op": op, **fields}
