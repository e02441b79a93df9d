"""CLUSTER subcommands that change the cluster: each becomes Raft proposals.

The session validated the arguments' shape; here they become cluster commands
(``core/cluster/commands.py``) submitted through the control plane, which
forwards them to the leader and waits until they are applied. The reply is
OK only once the change is committed and applied; a refusal by the apply
function comes back as an error with its reason.
"""

import json
import os
from typing import TYPE_CHECKING, Any

import trio

from trionode import limits
from trionode.core import acl_commands, errors
from trionode.core.bus_auth import secret_refusal
from trionode.core.cluster.commands import command
from trionode.core.cluster.reset import reset_refusal
from trionode.core.cluster_commands import slot_arg
from trionode.core.errors import CommandError
from trionode.core.raft.messages import ConfChange, ConfChangeKind
from trionode.core.reply import OK, ErrorReply
from trionode.io.control import ControlPlane, ProposalError
from trionode.io.resp_client import RemoteError, call_once

if TYPE_CHECKING:
    from trionode.io.node import NodeRuntime


async def run(runtime: "NodeRuntime", argv: list[bytes]) -> Any:
    handler = _HANDLERS[argv[0]]
    try:
        return await handler(runtime, argv[1:])
    except (ProposalError, CommandError) as e:
        return ErrorReply(str(e))
    except RemoteError as e:
        return ErrorReply(f"ERR {e}")


async def _bootstrap(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    await runtime.bootstrap()
    return OK


async def _meet(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    host = args[0].decode()
    port = _port(args[1])
    password = runtime.config.requirepass  # the nodes of a cluster share it (conf/single.toml)
    node_id = (await call_once(host, port, "CLUSTER", "MYID", password=password)).decode()
    announced = await _remote_ports(host, port, password)
    bus_port = _port(args[2]) if len(args) > 2 else announced["cluster_bus_port"]
    # Clients are sent to the port the node announces, which may not be the one dialled here:
    # with TLS on it is the TLS port, while this call (like the command line) uses the plain one.
    client_port = announced["cluster_client_port"]
    secret = runtime.cluster_secret.value
    if not secret:
        raise CommandError(errors.NO_CLUSTER_SECRET)
    # Hand the joining node our cluster's secret before anyone dials it: its bus proves nothing without it.
    await call_once(host, port, "CLUSTER", "SETSECRET", secret, password=password)
    control = runtime.control
    if node_id not in control.state.nodes:
        await control.submit(command("node_join", node_id=node_id, host=host, port=client_port, bus_port=bus_port))
    if node_id not in control.conf_members():
        await _change_membership(control, ConfChange(ConfChangeKind.ADD_LEARNER, node_id))
    return OK


async def _change_membership(control: "ControlPlane", change: ConfChange) -> None:
    """Raft takes one membership change at a time; wait for a pending one (a promotion) to finish."""
    with trio.move_on_after(limits.raft_proposal_timeout_ms / 1000):
        while True:
            try:
                await control.submit(change=change)
                return
            except ProposalError as e:
                if "pending" not in str(e) and str(e) != errors.LEADERSHIP_MOVED:
                    raise
            await trio.sleep(0.05)
    raise ProposalError("TRYAGAIN another membership change kept the cluster busy; retry")


async def _setsecret(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    """CLUSTER SETSECRET secret: a node that belongs to no cluster yet takes the one it is about to join."""
    offered, secret = args[0].decode("utf-8", "replace"), runtime.cluster_secret
    in_a_cluster = bool(runtime.control.store.cluster_id)
    refusal = secret_refusal(in_a_cluster, secret.from_config, secret.value, offered)
    if refusal is not None:
        raise CommandError(refusal)
    if offered != secret.value:
        secret.store(offered)
    return OK


async def _acl_setuser(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    """ACL SETUSER, validated and its passwords hashed by the session (core/acl_commands.py)."""
    await runtime.control.submit(acl_commands.setuser_command(args))
    return OK


async def _acl_deluser(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    """ACL DELUSER: how many of the named users existed and are now gone."""
    deleted = 0
    for name in dict.fromkeys(a.decode("utf-8", "replace") for a in args):
        if name in runtime.control.state.acl_users:
            await runtime.control.submit(command("acl_deluser", user=name))
            deleted += 1
    return deleted


async def _remote_ports(host: str, port: int, password: str) -> dict[str, int]:
    """The ports a node announces (INFO cluster): ``cluster_bus_port`` and ``cluster_client_port``."""
    info = (await call_once(host, port, "INFO", "cluster", password=password)).decode()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    try:
        return {name: int(fields[name]) for name in ("cluster_bus_port", "cluster_client_port")}
    except (KeyError, ValueError):
        raise CommandError(f"ERR {host}:{port} did not report the ports it announces") from None


async def _forget(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    node_id = args[0].decode()
    control = runtime.control
    if node_id == runtime.node_id:
        raise CommandError("ERR I tried hard but I can't forget myself...")
    if node_id not in control.state.nodes and node_id not in control.conf_members():
        raise CommandError(f"ERR Unknown node {node_id}")
    # The cluster state refuses a node that still belongs to a shard: that verdict is committed
    # before Raft lets the node go, so a refused FORGET leaves it a full member. A FORGET that
    # stopped in between is finished by running it again (the node is then only a Raft member).
    if node_id in control.state.nodes:
        await control.submit(command("node_forget", node_id=node_id))
    if node_id in control.conf_members():
        await _change_membership(control, ConfChange(ConfChangeKind.REMOVE, node_id))
    return OK


async def _own_shard(runtime: "NodeRuntime") -> Any:
    """The shard this node is the primary of, created (empty) if it has none yet."""
    control = runtime.control
    me = control.state.nodes.get(runtime.node_id)
    if me is None:
        raise CommandError("CLUSTERDOWN this node is not part of a cluster yet")
    if me.role == "replica":
        raise CommandError("ERR a replica cannot own slots")
    async with control.admin_lock:
        # Concurrent ADDSLOTS on a node without a shard must create one shard, not several.
        if control.state.nodes[runtime.node_id].shard_id is None:
            # Epoch 0: the apply function picks it, since this node's view may lag shards made elsewhere.
            new_shard = command("shard_create", shard_id=os.urandom(20).hex(), epoch=0, primary_id=runtime.node_id)
            await control.submit(new_shard)
    return control.state.shards[control.state.nodes[runtime.node_id].shard_id]


async def _addslots(runtime: "NodeRuntime", args: list[bytes], ranges: list[tuple[int, int]]) -> Any:
    shard = await _own_shard(runtime)
    await runtime.control.submit(command("slots_assign", shard_id=shard.id, epoch=shard.epoch, slots=ranges))
    return OK


async def _addshard(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    """CLUSTER ADDSHARD: become the primary of a new, empty shard (slots arrive by migration)."""
    await _own_shard(runtime)
    return OK


async def _addslots_list(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    return await _addslots(runtime, args, [(s, s) for s in (slot_arg(a) for a in args)])


async def _addslotsrange(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    if len(args) % 2:
        raise CommandError("ERR wrong number of arguments for 'cluster|addslotsrange' command")
    ranges = [(slot_arg(args[i]), slot_arg(args[i + 1])) for i in range(0, len(args), 2)]
    if any(start > end for start, end in ranges):
        raise CommandError("ERR start slot number is greater than end slot number")
    return await _addslots(runtime, args, ranges)


async def _replicate(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    state = runtime.control.state
    primary = state.nodes.get(args[0].decode())
    if primary is None:
        raise CommandError(f"ERR Unknown node {args[0].decode('utf-8', 'replace')}")
    if primary.role != "primary":
        raise CommandError("ERR I can only replicate a master, not a replica.")
    shard = state.shards[primary.shard_id]
    attach = command("replica_attach", shard_id=shard.id, epoch=shard.epoch, node_id=runtime.node_id)
    await runtime.control.submit(attach)
    return OK


async def _failover(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    """CLUSTER FAILOVER [FORCE|TAKEOVER], run on the replica that should take over.

    The Raft leader stops renewing the old primary's lease and promotes this node once
    that lease has run out, so the two never serve at once. Every option keeps the ISR
    rule: only an in-sync replica may take over, and it holds every acknowledged write.
    """
    if args and args[0].lower() not in (b"force", b"takeover"):
        raise CommandError("ERR syntax error")
    state = runtime.control.state
    me = state.nodes.get(runtime.node_id)
    if me is None or me.role != "replica":
        raise CommandError("ERR You should send CLUSTER FAILOVER to a replica")
    shard = state.shards[me.shard_id]
    if runtime.node_id not in shard.isr_ids:
        raise CommandError("ERR this replica is not in sync with its primary (not in the ISR); it cannot take over")
    await runtime.failover.request(shard.id, runtime.node_id)
    return OK


def _shard_of_replica(runtime: "NodeRuntime", node_id: str) -> Any:
    node = runtime.control.state.nodes.get(node_id)
    if node is None or node.role != "replica":
        raise CommandError(f"ERR node {node_id} is not a replica")
    return runtime.control.state.shards[node.shard_id]


async def _detach(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    """CLUSTER DETACH <replica-id> (trionode): remove a replica from its shard (S8 applies)."""
    node_id = args[0].decode("utf-8", "replace")
    shard = _shard_of_replica(runtime, node_id)
    await runtime.control.submit(command("replica_detach", shard_id=shard.id, epoch=shard.epoch, node_id=node_id))
    return OK


async def _replace(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    """CLUSTER REPLACE <old-replica-id> <new-node-id> (trionode): the new one starts outside the ISR."""
    old_id, new_id = (a.decode("utf-8", "replace") for a in args)
    shard = _shard_of_replica(runtime, old_id)
    change = command("replica_replace", shard_id=shard.id, epoch=shard.epoch, old_id=old_id, new_id=new_id)
    await runtime.control.submit(change)
    return OK


async def _reset(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    """CLUSTER RESET [HARD|SOFT]: leave a cluster this node formed alone and never wrote to.

    Anything else is refused with the reason (core/cluster/reset.py): trionode never drops
    a member or data by reset. The node keeps its id, which no other node ever knew.
    """
    if args and args[0].lower() not in (b"hard", b"soft"):
        raise CommandError("ERR syntax error")
    control = runtime.control

    def refusal() -> str | None:
        conf = control.rawnode.conf
        return reset_refusal(control.state, runtime.node_id, conf.voters, conf.learners, runtime.data.applied_offset)

    await control.leave(refusal, runtime.replication.forget_history)
    return OK


async def _status(runtime: "NodeRuntime", args: list[bytes]) -> Any:
    return json.dumps(runtime.status_report(), sort_keys=True).encode()


def _port(raw: bytes) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise CommandError(f"ERR Invalid base port specified: {raw.decode('utf-8', 'replace')}") from None
    if not 0 < port < 65536:
        raise CommandError(f"ERR Invalid base port specified: {port}")
    return port


_HANDLERS = {
    b"bootstrap": _bootstrap,
    b"meet": _meet,
    b"setsecret": _setsecret,
    b"acl-setuser": _acl_setuser,
    b"acl-deluser": _acl_deluser,
    b"forget": _forget,
    b"addslots": _addslots_list,
    b"addslotsrange": _addslotsrange,
    b"addshard": _addshard,
    b"replicate": _replicate,
    b"status": _status,
    b"failover": _failover,
    b"detach": _detach,
    b"replace": _replace,
    b"reset": _reset,
}
