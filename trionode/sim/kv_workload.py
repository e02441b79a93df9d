"""Clients of the failover simulation: every command family, TTLs, keyless commands, READONLY reads.

Theory of operation
-------------------
Each data node runs the node's own command path: a real :class:`Session`
over a real :class:`DataState` (core/session.py, core/data_state.py), routed
by :func:`routing.from_cluster_state` of the node's *view*, with the lease its
failover controller holds. :class:`NodeKeyspace` keeps that keyspace equal to
the node's log: a primary executes commands and appends their effects to its
disk; a replica replays what its driver appended; after any cut of the log
(``DataDisk.cuts``), a crash or a change of role the keyspace is rebuilt from
the log, and replies still held are dropped (their outcome is unknown).

``CLIENTS`` clients each have at most one command outstanding. A client sends
to the committed primary most of the time and otherwise to any node: to a
node that is not the primary, with ``READONLY``, either a read (keyed or
DBSIZE) or a write (keyed or FLUSHALL), which must be refused. Keys are typed
by name (strings ``s*``, counters ``n*``, lists ``l*``, hashes ``h*``, sets
``z*``), so WRONGTYPE never hides a reply; some writes carry a TTL (``SET
PX``, ``PEXPIRE``, ``EXPIRE``) measured on the serving node's *wall* clock,
which the nemesis steps backward and forward (:meth:`KVWorkload.step_wall`);
leases and timers use the monotonic clocks only.

A reply is held until the node's acknowledged offset reaches the offset the
session asked it to wait for (the primary's watermark; a replica's read
bound), as the node's shell does; then kv_checks.py checks it. At execution:
a node that is not the serving primary must log nothing of its own (a
replica never expires a key itself, nobody but the primary writes), and a
replica serves reads only while its driver has a read bound (S7).

Random choices come from the Random named ``failover-clients``.
"""

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trionode.core import routing
from trionode.core.data_state import DataState
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.reply import ErrorReply
from trionode.core.server_specs import SERVER_COMMANDS
from trionode.core.session import Node, NodeFacts, Session
from trionode.sim.failover_nemesis import CLIENT, LEADER
from trionode.sim.kv_checks import READ_EMPTY, KVChecker

if TYPE_CHECKING:
    from trionode.sim.failover_plane import FailoverPlane, SimNode

CLIENTS = 3
SEND_PROBABILITY = 0.5  # per idle client per step
TO_PRIMARY_PROBABILITY = 0.7  # else any node
FLUSHALL_PROBABILITY = 0.005  # of writes: it wipes what the other checks look at
WALL_BASE_MS = 1_700_000_000_000
WALL_SKEW_MS_MAX = 50  # the nodes' wall clocks agree to within this, until the nemesis steps one
TTL_MS_MAX = 1500
EXPIRY_PROBABILITY = 0.2  # a serving primary runs an active expiry cycle in this share of steps
TABLE = {name.encode(): spec for name, spec in {**KEYSPACE_COMMANDS, **SERVER_COMMANDS}.items()}
KEYS = {kind: [b"%s%d" % (kind, i) for i in range(3)] for kind in (b"s", b"n", b"l", b"h", b"z")}
READS = {b"s": [b"GET"], b"n": [b"GET"], b"l": [b"LRANGE", b"0", b"-1"], b"h": [b"HGETALL"], b"z": [b"SMEMBERS"]}


@dataclass(slots=True)
class Held:
    """A reply the node holds until its acknowledged offset reaches ``required``."""

    client: int
    argv: list[bytes]
    reply: Any
    required: int
    lo: int  # the lowest acknowledged offset the reply may show (kv_checks.py)
    wall_ms: int  # the node's wall clock when it executed the command
    write: bool


class NodeKeyspace:
    """One node's keyspace and sessions, rebuilt from its log whenever that log was cut."""

    def __init__(self, node: "SimNode", tag: tuple[Any, ...]) -> None:
        self.tag = tag
        self.data = DataState()
        facts = NodeFacts(node.id, "", "h", 7000, 17000, 1, 0, "", "sim")
        self.node = Node(self.data, TABLE, facts, dict, routing.not_a_member())
        self.sessions: dict[tuple[int, bool], Session] = {}
        self.routing_key: tuple[int, bool] | None = None
        self.held: list[Held] = []

    def session(self, client: int, readonly: bool) -> Session:
        session = self.sessions.get((client, readonly))
        if session is None:
            session = self.sessions[(client, readonly)] = Session(self.node, client, f"k{client}")
            session.readonly = readonly
        return session

    def catch_up(self, log: list[list[bytes]]) -> None:
        for offset in range(self.data.applied_offset + 1, len(log) + 1):
            self.data.replay(offset, list(log[offset - 1]))

    def acknowledge(self, acked: int) -> None:
        acked = min(acked, self.data.applied_offset)
        if acked > self.data.visibility.acked:
            self.data.visibility.advance(acked)


@dataclass(slots=True)
class Client:
    busy: bool = False
    floors: dict[str, int] = field(default_factory=dict)  # node -> its last ack'd write with that node in the ISR


class KVWorkload:
    def __init__(self, plane: "FailoverPlane", rng: random.Random) -> None:
        self.plane = plane
        self.rng = rng
        self.checker = KVChecker(plane.checker.acked, plane.name)
        self.clients = [Client() for _ in range(CLIENTS)]
        self.keyspaces: dict[str, NodeKeyspace] = {}
        self.wall_offsets = {n: rng.randint(-WALL_SKEW_MS_MAX, WALL_SKEW_MS_MAX) for n in plane.nodes}
        self.serial = 0

    def wall(self, node_id: str) -> int:
        return WALL_BASE_MS + self.plane.now_ms + self.wall_offsets[node_id]

    def step_wall(self, node_id: str, delta_ms: int) -> None:
        """The node's wall clock jumps (NTP, an operator): only its expiry decisions see it."""
        self.wall_offsets[node_id] += delta_ms

    # --- each step -------------------------------------------------------------------------------

    def step(self) -> None:
        for node in self.plane.nodes.values():
            if self.alive(node):
                self.release(node)
                if self.plane.serves(node) and self.rng.random() < EXPIRY_PROBABILITY:
                    self.active_expiry(node)
        for i, client in enumerate(self.clients):
            if not client.busy and self.rng.random() < SEND_PROBABILITY:
                self.send(i, client)

    @staticmethod
    def alive(node: "SimNode") -> bool:
        """Up, and not stopped at a crash point the nemesis has yet to carry out."""
        return node.up and not (node.replica is not None and node.replica.crashed)

    def keyspace(self, node: "SimNode") -> NodeKeyspace:
        """The node's keyspace, equal to its log; rebuilt after a cut, a crash or a change of role."""
        role = node.primary if node.primary is not None else node.replica
        tag = (node.incarnation, id(role), node.disk.cuts)
        kv = self.keyspaces.get(node.id)
        if kv is None or kv.tag != tag or kv.data.applied_offset > len(node.disk.log):
            if kv is not None:
                for held in kv.held:
                    self.clients[held.client].busy = False  # the connection dropped: outcome unknown
            kv = self.keyspaces[node.id] = NodeKeyspace(node, tag)
        kv.catch_up(node.disk.log)
        kv.acknowledge(self.acked_offset(node))
        return kv

    def acked_offset(self, node: "SimNode") -> int:
        """What the node takes as acknowledged: its watermark as primary, its read bound as replica."""
        if node.primary is not None:
            return self.plane.watermark(node, node.primary)
        bound = node.replica.driver.read_bound() if node.replica is not None else None
        return bound or 0

    def release(self, node: "SimNode") -> None:
        kv = self.keyspace(node)
        acked = kv.data.visibility.acked
        ready = [h for h in kv.held if h.required <= acked]
        kv.held = [h for h in kv.held if h.required > acked]
        for held in ready:
            self.deliver(node, held)

    def deliver(self, node: "SimNode", held: Held) -> None:
        client, checker, argv = self.clients[held.client], self.checker, held.argv
        client.busy = False
        if held.write:
            checker.check_write(node.id, argv, held.reply, held.required)
            isr = self.plane.checker.isr_at(held.required)
            for member in isr:
                client.floors[member] = max(client.floors.get(member, 0), held.required)
        elif argv[0] == b"DBSIZE":
            checker.check_dbsize(node.id, held.reply, held.lo)
        else:
            checker.check_read(node.id, argv, held.reply, held.wall_ms, held.lo)
        self.plane.coverage.reads_served += not held.write
        self.plane.coverage.replies_checked += 1

    # --- sending -----------------------------------------------------------------------------------

    def send(self, i: int, client: Client) -> None:
        p, rng = self.plane, self.rng
        to_primary = rng.random() < TO_PRIMARY_PROBABILITY
        node = p.nodes[p.config.shard.primary_id if to_primary else rng.choice(list(p.nodes))]
        if not self.alive(node) or not p.reaches(CLIENT, node.id):
            return  # the connection fails: nothing was sent
        readonly = node.id != p.config.shard.primary_id
        argv = self.write_argv() if rng.random() < (0.2 if readonly else 0.55) else self.read_argv()
        self.execute(node, i, client, argv, readonly)

    def execute(self, node: "SimNode", i: int, client: Client, argv: list[bytes], readonly: bool) -> None:
        p, kv = self.plane, self.keyspace(node)
        self.route(node, kv)
        session = kv.session(i, readonly)
        session.now_ms, session.mono_ms = self.wall(node.id), node.clock(p.now_ms)
        lo = client.floors.get(node.id, 0) if readonly else self.checker.acked_length()
        reply, required = session.execute(argv)
        if effects := kv.data.take_outbox():
            if not p.serves(node):
                offset, effect = effects[0]
                self.checker.fail(f"own write: {p.name(node.id)}, not the serving primary, logs {effect!r} at "
                                  f"its own offset {offset} for {b' '.join(argv)!r}")  # fmt: skip
            node.disk.append([list(effect) for _, effect in effects])
            p.coverage.writes += 1
            p.coverage.writes_while_isolated += not p.reaches(LEADER, node.id)
        if isinstance(reply, ErrorReply):
            p.coverage.commands_refused += 1
            return
        write = TABLE[argv[0].lower()].is_write
        if not write and not p.serves(node) and (node.replica is None or node.replica.driver.read_bound() is None):
            self.checker.fail(f"S7 serving: {p.name(node.id)} answers {b' '.join(argv)!r} without a read bound")
        p.coverage.replica_reads += readonly and not write
        client.busy = True
        kv.held.append(Held(i, argv, reply, required, lo, session.now_ms, write))

    def route(self, node: "SimNode", kv: NodeKeyspace) -> None:
        """The node's routing (rebuilt only when its view or read rights change) and its lease."""
        serving = node.replica is not None and node.replica.driver.read_bound() is not None
        key = (node.learned, serving)
        if kv.routing_key != key:
            kv.routing_key = key
            kv.node.routing = routing.from_cluster_state(node.view_state, node.id, replica_serving=serving)
        kv.node.lease_until_ms = node.failover.lease_until_ms

    def active_expiry(self, node: "SimNode") -> None:
        """A serving primary's expiry cycle: the deletions are logged like any write."""
        kv = self.keyspace(node)
        kv.data.expire_some(self.wall(node.id), self.rng)
        node.disk.append([list(effect) for _, effect in kv.data.take_outbox()])

    # --- commands ----------------------------------------------------------------------------------

    def value(self) -> bytes:
        self.serial += 1
        return b"v%d" % self.serial

    def read_argv(self) -> list[bytes]:
        rng = self.rng
        if rng.random() < 0.1:
            return [b"DBSIZE"]
        kind = rng.choice(list(KEYS))
        read = READS[kind]
        assert read[0] in READ_EMPTY
        return [read[0], rng.choice(KEYS[kind]), *read[1:]]

    def write_argv(self) -> list[bytes]:
        rng = self.rng
        if rng.random() < FLUSHALL_PROBABILITY:
            return [b"FLUSHALL"]
        kind = rng.choice(list(KEYS))
        key, roll = rng.choice(KEYS[kind]), rng.random()
        if roll < 0.1:
            return [b"DEL", key]
        if roll < 0.2:
            return [b"PEXPIRE", key, b"%d" % rng.randint(1, TTL_MS_MAX)]
        if roll < 0.25:
            return [b"EXPIRE", key, b"1"]
        member = b"m%d" % rng.randrange(4)
        match kind:
            case b"s":
                if rng.random() < 0.3:
                    return [b"APPEND", key, self.value()]
                ttl = [b"PX", b"%d" % rng.randint(1, TTL_MS_MAX)] if rng.random() < 0.3 else []
                return [b"SET", key, self.value(), *ttl]
            case b"n":
                return [b"INCR", key]
            case b"l":
                return [b"RPUSH", key, self.value()] if rng.random() < 0.8 else [b"LPOP", key]
            case b"h":
                return [b"HSET", key, member, self.value()] if rng.random() < 0.8 else [b"HDEL", key, member]
        return [b"SADD", key, member] if rng.random() < 0.8 else [b"SREM", key, member]
