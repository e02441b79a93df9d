"""One client connection's command dispatch, without the socket.

Theory of operation. The shell parses requests and hands each ``argv`` to
:meth:`Session.execute`, which returns the reply value and the offset that must
be acknowledged before the reply may leave the node (0 when it depends on
nothing unacknowledged). Keyspace commands go to :class:`DataState`; server and
cluster commands are answered here from the node's facts. A few commands need
the shell to act (SHUTDOWN, WAIT, QUIT): they return an :class:`Action` that
the shell carries out (see ``reply.Action``).

Cluster rules come before execution: a multi-key command whose keys hash to
different slots is refused with CROSSSLOT, as Valkey does in cluster mode; a
keyed command for a slot served elsewhere gets MOVED or CLUSTERDOWN. Commands
without keys obey the same rules with no slot to look up (DESIGN §5.1): a write
such as FLUSHALL runs only on a primary, DBSIZE/KEYS/SCAN only where a keyed
read would. A primary whose lease ran out serves nothing, keyed or not.
A write to a slot in a migration's handover pause is handed back to the shell
(``Action("paused")``), which waits for the pause to end and runs it again:
then it executes here (the migration aborted) or gets MOVED (it committed).
On the target's primary, a command for a slot it imports is handed back too
(``Action("importing", argv, redirect)``) instead of being sent back to the
source: the shell catches up with the committed configuration and runs it
again, and sends ``redirect`` only if it is still not served here.
"""

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trionode import limits
from trionode.core import errors, server_commands
from trionode.core.auth import Users
from trionode.core.command_spec import CommandSpec
from trionode.core.data_state import DataState
from trionode.core.errors import CommandError
from trionode.core.keyspace.store import RandomSource
from trionode.core.migration.staging import WriteGate
from trionode.core.reply import Action, ErrorReply
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
    cluster_view: Callable[[], Any] = lambda: None
    # CLUSTER GETSLOTMIGRATIONS' jobs (core/migration/commands.JobRow), from the shell's migration jobs.
    migration_rows: Callable[[], list[Any]] = list
    # Until when (monotonic ms) this node's primary lease lets it serve; kept current by the shell.
    lease_until_ms: int = -1
    # Who may connect and what they may run (core/auth.py); the shell replaces it with set_users().
    users: Users = field(default_factory=lambda: Users.build(""))
    # The sessions open on this node (each adds itself), for set_users() to log out a deleted user's.
    sessions: "weakref.WeakSet[Session]" = field(default_factory=weakref.WeakSet, repr=False)
    # Derived for the dispatcher: ``table`` plus each name in upper case, the
    # two spellings clients send, so most lookups need no lower().
    lookup: dict[bytes, CommandSpec] = field(init=False, repr=False)
    # Cache of serves_every_slot(): the routing it was computed for, and the answer.
    _checked_routing: Routing | None = field(default=None, init=False, repr=False)
    _every_slot: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.lookup = {**self.table, **{name.upper(): spec for name, spec in self.table.items()}}

    def set_users(self, users: Users) -> None:
        """Install a new user table. A session whose user is no longer in it, or was deleted and made
        again since (``Users.continues``), is logged out (NOAUTH until it authenticates again), as Valkey
        closes it: a user created later under the same name, with another password and other rights,
        must not inherit connections that logged in as the old one."""
        before, self.users = self.users, users
        for session in self.sessions:
            if session.user is not None and not users.continues(before, session.user):
                session.user = None

    def serves_every_slot(self) -> bool:
        """True when ``routing`` lets any command run on any slot (a node that owns them all).

        Single-key commands then skip hashing their key. Computed once for each
        routing the shell installs, by asking it about every slot.
        """
        routing = self.routing
        if routing is not self._checked_routing:
            # A write passing on a slot implies a read does too (Routing.error_for).
            self._every_slot = not routing.paused and all(
                routing.error_for(slot) is None for slot in range(limits.slots_count)
            )
            self._checked_routing = routing
        return self._every_slot

    def write_gate(self, mono_ms: int, wal_room: bool) -> WriteGate:
        """This node's right, at ``mono_ms`` (monotonic), to log a write no client sent (expiry, cleanup).

        The rule a client's write obeys (routing, then the lease), with no client to refuse:
        a deposed or partitioned primary whose lease ran out must log nothing (S2), since a
        new primary may be writing the same offsets already.
        """
        routing = self.routing
        return WriteGate(primary=routing.am_primary, lease_valid=mono_ms < self.lease_until_ms,
                         disk_full=routing.disk_full, wal_room=wal_room)  # fmt: skip

    def expire_some(self, now_ms: int, mono_ms: int, rng: RandomSource, *, wal_room: bool) -> int:
        """One active expiry cycle, if :meth:`write_gate` is open: the keys deleted (their DELs are logged).

        ``now_ms`` (wall clock) decides which keys are past their deadline; ``mono_ms`` the lease.
        """
        if not self.write_gate(mono_ms, wal_room).open():
            return 0
        return self.data.expire_some(now_ms, rng)


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
        self.now_ms = 0   # wall clock, for expiry
        self.mono_ms = 0  # monotonic clock, for the primary lease
        self.user = node.users.initial_user()  # None until AUTH succeeds (core/auth.py)
        node.sessions.add(self)

    def execute(self, argv: list[bytes]) -> tuple[Any, int]:
        """The reply to ``argv`` and the offset it must wait for."""
        node = self.node
        spec = node.lookup.get(argv[0]) or node.table.get(argv[0].lower())
        if spec is None:
            name = argv[0].decode("utf-8", "replace")
            return ErrorReply(errors.unknown_command(name, argv[1:])), 0
        if not spec.arity_ok(len(argv)):
            return ErrorReply(errors.wrong_arity(spec.name)), 0
        if self.user not in node.users.unrestricted and (refused := node.users.refusal(self.user, spec, argv)):
            return ErrorReply(refused), 0
        try:
            if spec.handler is None:
                if server_commands.reads_slot_keys(spec, argv) and (error := self._keyless_error(write=False)):
                    return ErrorReply(error), 0
                # Replies that describe the keyspace (INFO keyspace, CLUSTER COUNTKEYSINSLOT) wait for
                # what was applied before them, like any read; the rest reveal no data.
                reply = server_commands.run(self, spec, argv)
                return reply, (node.data.applied_offset if server_commands.reads_keyspace(spec, argv) else 0)
            if spec.first_key <= 0:
                # FLUSHALL, DBSIZE, KEYS, SCAN: the same rules as keyed commands, minus the slot.
                error = self._keyless_error(spec.is_write)
            elif spec.single_key and node.serves_every_slot():
                # Every slot is served here, so only the lease can refuse (see _route).
                error = errors.LEASE_EXPIRED if self.mono_ms >= node.lease_until_ms else None
            else:
                slot = key_slot(argv[spec.first_key])
                error = self._route(spec, argv, slot)
                routing = node.routing
                if error is None and slot in routing.paused:
                    # Reads wait too: once the commit may have applied, the target may take writes
                    # this node's configuration does not show yet (two-shard simulation, seed 46).
                    return Action("paused", argv), 0  # the shell waits out the handover, then retries
                if error is not None and error != errors.CROSSSLOT and slot in routing.importing:
                    # The source may have applied the commit and sent this client here: the shell
                    # catches up with the configuration before it sends the client back (Routing).
                    return Action("importing", argv, error), 0
            if error is not None:
                return ErrorReply(error), 0
            reply, required = node.data.execute(spec, argv, self.now_ms, primary=node.routing.am_primary)
        except CommandError as e:
            return ErrorReply(str(e)), 0
        if required > self.last_write_offset and spec.is_write:
            self.last_write_offset = required
        return reply, required

    def _route(self, spec: CommandSpec, argv: list[bytes], slot: int) -> str | None:
        """CROSSSLOT, MOVED or CLUSTERDOWN for a keyed command (its first key in ``slot``) this node
        must not run; else None."""
        if spec.last_key != spec.first_key:
            for i in spec.key_positions(len(argv))[1:]:
                if key_slot(argv[i]) != slot:
                    return errors.CROSSSLOT
        return self.node.routing.error_for(slot, spec.is_write, self.readonly) or self._lease_error()

    def _keyless_error(self, write: bool) -> str | None:
        """The keyed rules minus the slot (Routing.keyless_error), then the lease; None to run."""
        return self.node.routing.keyless_error(write, self.readonly) or self._lease_error()

    def _lease_error(self) -> str | None:
        """LEASE_EXPIRED on a primary whose lease ran out (partitioned or paused: another
        primary may exist, S2); None otherwise. Asked only once routing lets the command run."""
        node = self.node
        if node.routing.am_primary and self.mono_ms >= node.lease_until_ms:
            return errors.LEASE_EXPIRED
        return None
