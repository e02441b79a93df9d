"""CLUSTER subcommands: answered from the node's view of the cluster.

Theory of operation. Read-only subcommands are answered here from the view
the shell builds out of the applied Raft configuration (``Node.cluster_view``);
formatting is ``cluster_view``'s job. Subcommands that change the cluster
(MEET, FORGET, ADDSLOTS, REPLICATE, FAILOVER, RESET, and trionode's BOOTSTRAP,
STATUS, DETACH, REPLACE and ADDSHARD) are
validated here and handed to the shell as an ``Action``: they become Raft
proposals, which must wait for a commit. MIGRATESLOTS and CANCELSLOTMIGRATIONS
go to the shell's migration jobs (``core/migration/controller.py`` decides);
GETSLOTMIGRATIONS formats their rows. Those that need later parts of the
design (SETSLOT, DELSLOTS) are refused with an error that says so, rather than
pretending to succeed.
"""

from typing import TYPE_CHECKING, Any

from trionode import limits
from trionode.core import cluster_view, errors
from trionode.core.errors import CommandError
from trionode.core.keyspace.values import parse_int
from trionode.core.migration.commands import migration_rows
from trionode.core.reply import Action
from trionode.core.slots import key_slot

if TYPE_CHECKING:
    from trionode.core.session import Session

NOT_YET = "ERR CLUSTER {sub} is not available in this trionode version yet"
# Subcommands the shell carries out through the control plane, with their arity.
_CHANGES = {
    b"meet": -4, b"forget": 3, b"addslots": -3, b"addslotsrange": -4, b"replicate": 3, b"bootstrap": 2, b"status": 2,
    b"failover": -2, b"detach": 3, b"replace": 4, b"setsecret": 3, b"reset": -2, b"addshard": 2,
}
_LATER = {b"setslot", b"delslots", b"delslotsrange"}
_MIGRATION = {b"migrateslots": -3, b"cancelslotmigrations": 2}  # the shell's migration jobs, with their arity


def run(session: "Session", argv: list[bytes]) -> Any:
    sub = argv[1].lower()
    handler = _HANDLERS.get(sub)
    if handler is not None:
        arity, fn = handler
        _check_arity(sub, argv, arity)
        return fn(session, argv)
    if sub in _CHANGES:
        _check_arity(sub, argv, _CHANGES[sub])
        return Action("cluster", [sub, *argv[2:]])
    if sub in _MIGRATION:
        _check_arity(sub, argv, _MIGRATION[sub])
        return Action("migration", argv)
    if sub in _LATER:
        raise CommandError(NOT_YET.format(sub=sub.decode().upper()))
    raise CommandError(errors.unknown_subcommand(argv[1].decode("utf-8", "replace"), "cluster"))


def _check_arity(sub: bytes, argv: list[bytes], arity: int) -> None:
    if not (len(argv) == arity if arity > 0 else len(argv) >= -arity):
        raise CommandError(errors.wrong_arity(f"cluster|{sub.decode()}"))


def slot_arg(arg: bytes) -> int:
    try:
        slot = parse_int(arg)
    except CommandError:
        raise CommandError(errors.INVALID_SLOT) from None
    if not 0 <= slot < limits.slots_count:
        raise CommandError(errors.INVALID_SLOT)
    return slot


def _countkeysinslot(session: "Session", argv: list[bytes]) -> int:
    return session.node.data.keyspace.visible_in_slot(slot_arg(argv[2]))


def _getkeysinslot(session: "Session", argv: list[bytes]) -> list[bytes]:
    slot = slot_arg(argv[2])
    count = parse_int(argv[3])
    if count < 0:
        raise CommandError("ERR Invalid number of keys")
    keyspace = session.node.data.keyspace
    return [] if slot in keyspace.hidden else keyspace.keys_in_slot(slot, count)


_HANDLERS = {
    b"slots": (2, lambda s, a: cluster_view.cluster_slots(s.node.cluster_view())),
    b"shards": (2, lambda s, a: cluster_view.cluster_shards(s.node.cluster_view())),
    b"nodes": (2, lambda s, a: cluster_view.cluster_nodes(s.node.cluster_view())),
    b"info": (2, lambda s, a: cluster_view.cluster_info(s.node.cluster_view())),
    b"myid": (2, lambda s, a: s.node.facts.node_id.encode()),
    b"myshardid": (2, lambda s, a: s.node.facts.shard_id.encode()),
    b"keyslot": (3, lambda s, a: key_slot(a[2])),
    b"countkeysinslot": (3, _countkeysinslot),
    b"getkeysinslot": (4, _getkeysinslot),
    b"getslotmigrations": (2, lambda s, a: migration_rows(s.node.migration_rows())),
}
