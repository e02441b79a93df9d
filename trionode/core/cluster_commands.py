"""CLUSTER subcommands: answered from the node's view of the cluster.

Theory of operation. Until the Raft control plane exists, a node is a
one-node cluster that owns every slot; :func:`single_node_view` builds that
view from the node's facts. Formatting is ``cluster_view``'s job; this module
validates arguments and routes. Subcommands that change the cluster (MEET,
ADDSLOTS, FAILOVER, ...) are refused with an error that says so, rather than
pretending to succeed.
"""

from typing import TYPE_CHECKING, Any

from trionode import limits
from trionode.core import cluster_view, errors
from trionode.core.cluster_view import ClusterView, NodeView
from trionode.core.errors import CommandError
from trionode.core.keyspace.values import parse_int
from trionode.core.slots import key_slot

if TYPE_CHECKING:
    from trionode.core.session import Session

NOT_YET = (
    "ERR CLUSTER {sub} needs the Raft control plane, which this trionode version does not have yet; "
    "the node runs as a single-node cluster"
)
_CHANGES_CLUSTER = {
    b"meet", b"forget", b"addslots", b"addslotsrange", b"delslots", b"delslotsrange", b"replicate",
    b"failover", b"migrateslots", b"cancelslotmigrations", b"setslot", b"reset",
}


def single_node_view(session: "Session") -> ClusterView:
    facts = session.node.facts
    me = NodeView(
        id=facts.node_id,
        ip=facts.host,
        port=facts.port,
        bus_port=facts.bus_port,
        role="primary",
        primary_id=None,
        shard_id=facts.shard_id,
        slots=((0, limits.slots_count - 1),),
        replication_offset=session.node.data.applied_offset,
    )
    return ClusterView(myself_id=facts.node_id, current_epoch=0, nodes=(me,), state_ok=True)


def run(session: "Session", argv: list[bytes]) -> Any:
    sub = argv[1].lower()
    handler = _HANDLERS.get(sub)
    if handler is not None:
        arity, fn = handler
        if not (len(argv) == arity if arity > 0 else len(argv) >= -arity):
            raise CommandError(errors.wrong_arity(f"cluster|{sub.decode()}"))
        return fn(session, argv)
    if sub in _CHANGES_CLUSTER:
        raise CommandError(NOT_YET.format(sub=sub.decode().upper()))
    if sub == b"getslotmigrations":
        return []
    raise CommandError(errors.unknown_subcommand(argv[1].decode("utf-8", "replace"), "cluster"))


def _slot_arg(arg: bytes) -> int:
    try:
        slot = parse_int(arg)
    except CommandError:
        raise CommandError("ERR Invalid or out of range slot") from None
    if not 0 <= slot < limits.slots_count:
        raise CommandError("ERR Invalid or out of range slot")
    return slot


def _countkeysinslot(session: "Session", argv: list[bytes]) -> int:
    return session.node.data.keyspace.count_in_slot(_slot_arg(argv[2]))


def _getkeysinslot(session: "Session", argv: list[bytes]) -> list[bytes]:
    slot = _slot_arg(argv[2])
    count = parse_int(argv[3])
    if count < 0:
        raise CommandError("ERR Invalid number of keys")
    return session.node.data.keyspace.keys_in_slot(slot, count)


_HANDLERS = {
    b"slots": (2, lambda s, a: cluster_view.cluster_slots(single_node_view(s))),
    b"shards": (2, lambda s, a: cluster_view.cluster_shards(single_node_view(s))),
    b"nodes": (2, lambda s, a: cluster_view.cluster_nodes(single_node_view(s))),
    b"info": (2, lambda s, a: cluster_view.cluster_info(single_node_view(s))),
    b"myid": (2, lambda s, a: s.node.facts.node_id.encode()),
    b"myshardid": (2, lambda s, a: s.node.facts.shard_id.encode()),
    b"keyslot": (3, lambda s, a: key_slot(a[2])),
    b"countkeysinslot": (3, _countkeysinslot),
    b"getkeysinslot": (4, _getkeysinslot),
}
