"""One client connection's command dispatch, without the socket.

Theory of operation. The shell parses requests and hands each ``argv`` to
:meth:`Session.execute`, which returns the reply value and the offset that must
be acknowledged before the reply may leave the node (0 when it depends on
nothing unacknowledged). Keyspace commands go to :class:`DataState`; server and
cluster commands are answered here from the node's facts. A few commands need
the shell to act (SHUTDOWN, WAIT, QUIT): they return an :class:`Action` that
the shell carries out (see ``reply.Action``).

Cluster rules come before execution: a multi-key command whose keys hash to
different slots is refused with CROSSSLOT, as Valkey does in cluster mode.
Routing to other shards (MOVED/ASK) arrives with the sharded data plane.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trionode.core import errors, server_commands
from trionode.core.command_spec import CommandSpec
from trionode.core.data_state import DataState
from trionode.core.errors import CommandError
from trionode.core.reply import ErrorReply
from trionode.core.routing import Routing
from trionode.core.slots import key_slot


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """Facts about this node that do not change while it runs."""

    node_id: str
    shard_id: str
    host: str
    port: int
    bus_port: int
    process_id: int
    started_ms: int
    config_file: str
    version: str


@dataclass(slots=True)
class Node:
    """What sessions need from the node they run in (built by the shell)."""

    data: DataState
    table: dict[bytes, CommandSpec]
    facts: NodeFacts
    # Extra INFO sections only the shell can know (persistence, stats, clients).
    shell_info: Callable[[], dict[str, dict[str, Any]]]
    # Which slots this node serves; replaced by the shell whenever the configuration changes.
    routing: Routing
    # The cluster as this node sees it, for CLUSTER SLOTS/SHARDS/NODES/INFO (shell-provided).
    cluster_view: Callable[[], Any]


class Session:
    def __init__(self, node: Node, client_id: int, addr: str) -> None:
        self.node = node
        self.client_id = client_id
        self.addr = addr
        self.proto = 2
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.readonly = False
        self.asking = False
        self.last_write_offset = 0
        self.now_ms = 0

    def execute(self, argv: list[bytes]) -> tuple[Any, int]:
        """The reply to ``argv`` and the offset it must wait for."""
        spec = self.node.table.get(argv[0].lower())
        if spec is None:
            name = argv[0].decode("utf-8", "replace")
            return ErrorReply(errors.unknown_command(name, argv[1:])), 0
        if not spec.arity_ok(len(argv)):
            return ErrorReply(errors.wrong_arity(spec.name)), 0
        try:
            if spec.handler is None:
                # Server replies (INFO, CLUSTER COUNTKEYSINSLOT, even PING) wait for what was
                # applied before them, as Redis's replies wait for its AOF fsync.
                return server_commands.run(self, spec, argv), self.node.data.applied_offset
            if spec.first_key > 0:
                error = self._route(spec, argv)
                if error is not None:
                    return ErrorReply(error), 0
            reply, required = self.node.data.execute(spec, argv, self.now_ms)
        except CommandError as e:
            return ErrorReply(str(e)), 0
        if required > self.last_write_offset and spec.is_write:
            self.last_write_offset = required
        return reply, required


    def _route(self, spec: CommandSpec, argv: list[bytes]) -> str | None:
        """CROSSSLOT, MOVED or CLUSTERDOWN for a keyed command this node must not run; else None."""
        slot = key_slot(argv[spec.first_key])
        if spec.last_key != spec.first_key:
            for i in spec.key_positions(len(argv))[1:]:
                if key_slot(argv[i]) != slot:
                    return errors.CROSSSLOT
        return self.node.routing.error_for(slot, spec.is_write, self.readonly)
