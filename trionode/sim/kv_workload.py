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
session asked it to wait for (its store's, ``DataDisk.acked_offset``: what
recovery's plan said at the restart, raised by its drivers), as the node's
shell does; then kv_checks.py checks it. At execution:
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
from trionode.core.reply import Action, ErrorReply
from trionode.core.server_specs import SERVER_COMMANDS
from trionode.core.session import Node, NodeFacts, Session
from trionode.sim.data_config import SHARD_ID
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
WAIT_PIPELINE_PROBABILITY = 0.1  # of commands to the primary: write, WAIT, read, read in one pipeline
WAIT_TIMEOUT_MS_MAX = 1500
CLIENT_TIMEOUT_MS = 5000  # a client gives up on a connection busy this long (outcome unknown)
EXPIRY_PROBABILITY = 0.2  # every node runs an active expiry cycle (only a serving primary deletes) this often
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

    def __init__(self, node: "SimNode", role: object, tag: tuple[int, int]) -> None:
        self.role = role  # the node's shell it was built under (held, so compared by identity, never by id())
        self.tag = tag  # (incarnation, cuts of the log)
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
class Wait:
    """A WAIT the client's connection is blocked on (io/node.py ``wait_replicas``)."""

    offset: int  # the session's last write
    replicas: int
    timeout_ms: int
    since_ms: int | None = None  # the node's monotonic clock once ``offset`` was acknowledged


@dataclass(slots=True)
class Client:
    node_id: str = ""
    readonly: bool = False
    pipeline: list[list[bytes]] = field(default_factory=list)  # sent, not yet executed (behind a WAIT)
    lo: int = 0  # the window's lower end for the reads of this pipeline (kv_checks.py)
    held: int = 0  # replies the node still holds
    wait: Wait | None = None
    sent_ms: int = 0
    floors: dict[str, int] = field(default_factory=dict)  # node -> its last ack'd write with that node in the ISR

    @property
    def busy(self) -> bool:
        return bool(self.pipeline) or self.held > 0 or self.wait is not None

    def reset(self) -> None:
        """The connection dropped, or the client gave up: whatever is outstanding has an unknown outcome."""
        self.pipeline, self.held, self.wait = [], 0, None


class KVWorkload:
    """The clients of one shard and its nodes' keyspaces (with two shards, one each: their logs differ).

    ``keyless``: DBSIZE and FLUSHALL too, which see every key of the shard; off while slots
    migrate, as keys come and go then that this workload's checker does not follow.
    """

    def __init__(self, plane: "FailoverPlane", rng: random.Random, shard_id: str = SHARD_ID,
                 keyless: bool = True) -> None:  # fmt: skip
        self.plane = plane
        self.rng = rng
        self.shard_id, self.keyless = shard_id, keyless
        self.node_ids = [n.id for n in plane.group(shard_id)]
        self.shard_checker = plane.checkers[shard_id]
        self.checker = KVChecker(self.shard_checker.acked, plane.name)
        self.clients = [Client() for _ in range(CLIENTS)]
        self.keyspaces: dict[str, NodeKeyspace] = {}
        self.wall_offsets = {n: rng.randint(-WALL_SKEW_MS_MAX, WALL_SKEW_MS_MAX) for n in self.node_ids}
        self.serial = 0

    def wall(self, node_id: str) -> int:
        return WALL_BASE_MS + self.plane.now_ms + self.wall_offsets[node_id]

    def step_wall(self, node_id: str, delta_ms: int) -> None:
        """The node's wall clock jumps (NTP, an operator): only its expiry decisions see it."""
        self.wall_offsets[node_id] += delta_ms

    # --- each step -------------------------------------------------------------------------------

    def step(self) -> None:
        for node in (self.plane.nodes[n] for n in self.node_ids):
            if self.alive(node):
                self.release(node)
                if self.rng.random() < EXPIRY_PROBABILITY:
                    self.active_expiry(node)
            elif node.id in self.keyspaces:
                self.drop(self.keyspaces.pop(node.id))
        for i, client in enumerate(self.clients):
            if client.busy and self.plane.now_ms - client.sent_ms > CLIENT_TIMEOUT_MS:
                self.drop(self.keyspaces[client.node_id], only=i)
            elif client.wait is not None:
                self.poll_wait(i, client)
            elif not client.busy and self.rng.random() < SEND_PROBABILITY:
                self.send(i, client)

    def drop(self, kv: NodeKeyspace, only: int | None = None) -> None:
        """Connections to ``kv``'s node drop (all, or client ``only``'s): outcomes unknown."""
        for i, client in enumerate(self.clients):
            if client.node_id == kv.node.facts.node_id and only in (None, i):
                client.reset()
        kv.held = [h for h in kv.held if only is not None and h.client != only]

    @staticmethod
    def alive(node: "SimNode") -> bool:
        """Up, and not stopped at a crash point the nemesis has yet to carry out."""
        return node.up and not (node.replica is not None and node.replica.crashed)

    def keyspace(self, node: "SimNode") -> NodeKeyspace:
        """The node's keyspace, equal to its log; rebuilt after a cut, a crash or a change of role."""
        role = node.primary if node.primary is not None else node.replica
        tag = (node.incarnation, node.disk.cuts)
        kv = self.keyspaces.get(node.id)
        if kv is None or kv.role is not role or kv.tag != tag or kv.data.applied_offset > len(node.disk.log):
            if kv is not None:
                self.drop(kv)
            kv = self.keyspaces[node.id] = NodeKeyspace(node, role, tag)
        kv.catch_up(node.disk.log)
        kv.acknowledge(self.plane.acked_offset(node))
        return kv

    def release(self, node: "SimNode") -> None:
        kv = self.keyspace(node)
        acked = kv.data.visibility.acked
        ready = [h for h in kv.held if h.required <= acked]
        kv.held = [h for h in kv.held if h.required > acked]
        for held in ready:
            self.deliver(node, held)

    def deliver(self, node: "SimNode", held: Held) -> None:
        client, checker, argv = self.clients[held.client], self.checker, held.argv
        client.held -= 1
        if held.write:
            checker.check_write(node.id, argv, held.reply, held.required)
            isr = self.shard_checker.isr_at(held.required)
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
        primary_id = p.config.shard_of(self.shard_id).primary_id
        node = p.nodes[primary_id if to_primary else rng.choice(self.node_ids)]
        if not self.alive(node) or not p.reaches(CLIENT, node.id):
            return  # the connection fails: nothing was sent
        readonly = node.id != primary_id
        if not readonly and rng.random() < WAIT_PIPELINE_PROBABILITY:
            wait = [b"WAIT", b"%d" % rng.randint(1, 2), b"%d" % rng.randint(10, WAIT_TIMEOUT_MS_MAX)]
            client.pipeline = [self.write_argv(), wait, self.read_argv(), self.read_argv()]
        elif rng.random() < (0.2 if readonly else 0.55):
            client.pipeline = [self.write_argv()]
        else:
            client.pipeline = [self.read_argv()]
        client.node_id, client.readonly, client.sent_ms = node.id, readonly, p.now_ms
        client.lo = client.floors.get(node.id, 0) if readonly else self.checker.acked_length()
        kv = self.keyspace(node)
        self.stamp(node, kv.session(i, readonly))
        self.run(node, i, client)

    def stamp(self, node: "SimNode", session: Session) -> None:
        """The session's clocks, read once per batch of commands and again after every wait (resp_server.py)."""
        session.now_ms, session.mono_ms = self.wall(node.id), node.clock(self.plane.now_ms)

    def run(self, node: "SimNode", i: int, client: Client) -> None:
        """Execute the client's pipeline in order, up to its end or a WAIT."""
        kv = self.keyspace(node)
        self.route(node, kv)
        session = kv.session(i, client.readonly)
        while client.pipeline:
            argv = client.pipeline.pop(0)
            reply, required = session.execute(argv)
            if isinstance(reply, Action):
                assert reply.kind == "wait", reply
                client.wait = Wait(session.last_write_offset, *reply.args)
                return
            self.executed(node, kv, i, client, argv, reply, required)

    def poll_wait(self, i: int, client: Client) -> None:
        """WAIT: once the last write is acknowledged, until enough replicas hold it or the timeout passes."""
        p, node = self.plane, self.plane.nodes[client.node_id]
        kv, wait = self.keyspace(node), client.wait
        if wait is None or kv.data.visibility.acked < wait.offset:
            return  # dropped with its connection, or the write is not acknowledged yet
        now = node.clock(p.now_ms)
        wait.since_ms = now if wait.since_ms is None else wait.since_ms
        count = node.primary.driver.wait_count(wait.offset) if node.primary is not None else 0
        if count < wait.replicas and now - wait.since_ms < wait.timeout_ms:
            return
        holders = [n for n in p.group(self.shard_id) if n is not node and n.disk.durable >= wait.offset]
        if count > len(holders):
            self.checker.fail(f"WAIT: {p.name(node.id)} answers {count} for offset {wait.offset}, "
                              f"{len(holders)} replicas hold it durably")  # fmt: skip
        p.coverage.waits += 1
        client.wait = None
        self.stamp(node, kv.session(i, client.readonly))
        self.run(node, i, client)

    def executed(self, node: "SimNode", kv: NodeKeyspace, i: int, client: Client, argv: list[bytes], reply: Any,
                 required: int) -> None:  # fmt: skip
        """Log what the command wrote, check who may have run it, and hold its reply."""
        p = self.plane
        if effects := kv.data.take_outbox():
            if not p.serves(node):
                offset, effect = effects[0]
                self.checker.fail(f"own write: {p.name(node.id)}, not the serving primary, logs {effect!r} at "
                                  f"its own offset {offset} for {b' '.join(argv)!r}")  # fmt: skip
            p.log_batch(node, effects)
            p.coverage.writes += 1
            p.coverage.writes_while_isolated += not p.reaches(LEADER, node.id)
        if isinstance(reply, ErrorReply):
            p.coverage.commands_refused += 1
            return
        if kv.node.routing.am_primary and not p.serves(node):
            self.checker.fail(f"S2 serving: {p.name(node.id)} runs {b' '.join(argv)!r} as primary without a valid "
                              f"lease")  # fmt: skip
        write = TABLE[argv[0].lower()].is_write
        if not write and not p.serves(node) and (node.replica is None or node.replica.driver.read_bound() is None):
            self.checker.fail(f"S7 serving: {p.name(node.id)} answers {b' '.join(argv)!r} without a read bound")
        p.coverage.replica_reads += client.readonly and not write
        client.held += 1
        kv.held.append(Held(i, argv, reply, required, client.lo, kv.session(i, client.readonly).now_ms, write))

    def route(self, node: "SimNode", kv: NodeKeyspace) -> None:
        """The node's routing (rebuilt only when its view or read rights change) and its lease."""
        serving = node.replica is not None and node.replica.driver.read_bound() is not None
        key = (node.learned, serving)
        if kv.routing_key != key:
            kv.routing_key = key
            kv.node.routing = routing.from_cluster_state(node.view_state, node.id, replica_serving=serving)
        kv.node.lease_until_ms = node.failover.lease_until_ms

    def active_expiry(self, node: "SimNode") -> None:
        """The node's expiry cycle, on any node: the node's rule (``Node.expire_some``) says whether it may
        delete; the deletions are logged like any write, and only a serving primary may log them."""
        kv = self.keyspace(node)
        self.route(node, kv)
        kv.node.expire_some(self.wall(node.id), node.clock(self.plane.now_ms), self.rng, wal_room=True)
        if effects := kv.data.take_outbox():
            if not self.plane.serves(node):
                self.checker.fail(f"own write: {self.plane.name(node.id)}, not the serving primary, logs expiry "
                                  f"deletes at its own offset {effects[0][0]}")  # fmt: skip
            self.plane.log_batch(node, effects)

    # --- commands ----------------------------------------------------------------------------------

    def value(self) -> bytes:
        self.serial += 1
        return b"v%d" % self.serial

    def read_argv(self) -> list[bytes]:
        rng = self.rng
        if rng.random() < 0.1 and self.keyless:
            return [b"DBSIZE"]
        kind = rng.choice(list(KEYS))
        read = READS[kind]
        assert read[0] in READ_EMPTY
        return [read[0], rng.choice(KEYS[kind]), *read[1:]]

    def write_argv(self) -> list[bytes]:
        rng = self.rng
        if rng.random() < FLUSHALL_PROBABILITY and self.keyless:
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
