"""The migration shells of a simulated node, and the clients and checks of moving slots.

Theory of operation
-------------------
:class:`MigrationShells` is what io/migration.py and io/migration_import.py
do on a node, over a simulated bus, for any plane that mixes it in: the
two-shard migration plane (migration_plane.py, replication a log copy) and
the failover plane with migrations (failover_migration.py, the real
replication drivers and failover controller). Every decision is the core's
(core/migration): a :class:`MigrationController` with its export jobs and
orphans, the stream (:class:`StreamSender`, ``stream_writes``,
``copy_step``), the target's :class:`ImportJob` (``answer_import``,
``receive``, ``on_durable``, ``import_over``), the slot rule
(:class:`SlotRoles`) and cleanup (``cleanup_delete`` behind a
:class:`WriteGate`, after :class:`ConfigCatchUp`).

A plane provides what differs between the two, as hooks: the node's view
of the configuration and the committed one, its data state and WAL, whether
it holds a lease and whether it reaches the leader and the clients, the bus,
and the offset its shard has acknowledged.

*Clients* write and read a few keys of the moving slots, of the source's
other slots and of the target's, routed by the committed configuration or
by some node's stale view; a node takes a command only for a slot its view
owns, while its lease holds and no pause holds the slot (the session's
rule). *Checks* (migration_checks.py): one shard accepting writes per slot
at every step, every read at least as new as the last acknowledged write,
and at the quiet end every acknowledged write on the owner and no moved key
left behind.
"""

import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from trionode.core.cluster import ApplyResult, ClusterState
from trionode.core.cluster.state import normalize_ranges, slots_of
from trionode.core.data_state import DataState
from trionode.core.errors import CommandError
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.migration import export
from trionode.core.migration.controller import MigrationController
from trionode.core.migration.copy import SlotCopier, copy_step
from trionode.core.migration.export import ExportBounds
from trionode.core.migration.staging import (
    ConfigCatchUp,
    ImportJob,
    ImportRequest,
    SlotRoles,
    WriteGate,
    answer_import,
    cleanup_delete,
    import_over,
)
from trionode.core.migration.stream import StreamSender, receive, stream_writes
from trionode.core.slots import key_slot
from trionode.sim.migration_checks import MigrationChecker
from trionode.sim.migration_coverage import MigrationCoverage, MigrationFaults

STEP_MS = 10
BOUNDS = ExportBounds(pause_ms_max=300, copy_keys_max=2, copy_lag_records_max=4, pause_lag_records_max=2,
                      lag_records_max=400, ack_timeout_ms=800, propose_retry_ms=200, start_timeout_ms=1_000,
                      establish_retry_ms=100)  # fmt: skip
RESEND_MS = 150
CLEANUP_IDLE_MS = 500
CLEANUP_KEYS_MAX = 1  # one key per chunk: cleaning lasts a few steps, so faults land in it
_SET, _GET = KEYSPACE_COMMANDS["set"], KEYSPACE_COMMANDS["get"]
_DEL = KEYSPACE_COMMANDS["del"]


def _keys(count: int, want: Callable[[int], bool], taken: set[int]) -> list[bytes]:
    """``count`` keys of distinct slots for which ``want(slot)``, deterministic."""
    out, i = [], 0
    while len(out) < count:
        key = b"k%d" % i
        slot = key_slot(key)
        if want(slot) and slot not in taken:
            taken.add(slot)
            out.append(key)
        i += 1
    return out


_TAKEN: set[int] = set()
MOVING_KEYS = _keys(4, lambda s: s < 8192, _TAKEN)  # the source shard owns 0..8191 at the start
S_KEYS = _keys(3, lambda s: s < 8192, _TAKEN)
T_KEYS = _keys(3, lambda s: s >= 8192, _TAKEN)
MOVING = sorted(key_slot(k) for k in MOVING_KEYS)  # the slots that move back and forth
CHECKED_SLOTS = sorted(key_slot(k) for k in (*MOVING_KEYS, *S_KEYS, *T_KEYS))


@dataclass(slots=True)
class Process:
    """What a node's process holds of migration; a crash loses it (the shells' fields in io)."""

    controller: MigrationController
    senders: dict[str, StreamSender] = field(default_factory=dict)
    copiers: dict[str, SlotCopier] = field(default_factory=dict)
    held: dict[str, frozenset[int]] = field(default_factory=dict)
    copies: deque[export.CopyChunk] = field(default_factory=deque)
    imports: dict[str, ImportJob] = field(default_factory=dict)
    catch_up: ConfigCatchUp = field(default_factory=ConfigCatchUp)
    roles: SlotRoles | None = None
    hidden: frozenset[int] = frozenset()  # the slots ``roles`` hides (the keyspace's ``hidden``)
    starts: set[str] = field(default_factory=set)  # migration ids whose start this process proposed
    cleanup_at_ms: int = 0  # when the cleanup runs next (io: woken by a change, or after being idle)


def new_process(node_id: str, bounds: ExportBounds = BOUNDS, min_insync_replicas: int = 1) -> Process:
    return Process(MigrationController(node_id, min_insync_replicas=min_insync_replicas, bounds=bounds))


class MigrationShells:
    """Mixed into a plane, which sets the attributes below and provides the hooks."""

    nodes: dict[str, Any]  # each with id, up, incarnation, learned, proc (None while down) and shard_id
    now_ms: int
    mig_rng: random.Random
    mig_faults: MigrationFaults
    mig_coverage: MigrationCoverage
    mig_checker: MigrationChecker
    mig_shards: tuple[str, str]  # the shard owning the moving slots at the start, then the other
    job_tag: int  # the first hex digits of this run's migration ids
    job_serial: int
    pending: dict[bytes, tuple[str, Any, int, bytes]]  # key -> (node, process token, offset, value)
    _roles: dict[tuple, tuple[SlotRoles, frozenset[int]]]

    note: Callable[[str], None]  # the plane's trace
    name: Callable[[str], str]  # a node's short name

    # --- hooks --------------------------------------------------------------------------------

    def view(self, node: Any) -> ClusterState:
        """The configuration ``node`` applied."""
        raise NotImplementedError

    def committed_state(self) -> ClusterState:
        raise NotImplementedError

    def committed_index(self) -> int:
        raise NotImplementedError

    def data_of(self, node: Any) -> DataState:
        raise NotImplementedError

    def wal_append(self, node: Any, offset: int, effect: tuple[bytes, ...]) -> None:
        """Log ``effect`` at ``offset`` in the node's data WAL."""
        raise NotImplementedError

    def leased(self, node: Any) -> bool:
        """The node is the primary and its lease holds (S2)."""
        raise NotImplementedError

    def is_primary(self, node: Any) -> bool:
        raise NotImplementedError

    def reaches_leader(self, node: Any) -> bool:
        raise NotImplementedError

    def client_reaches(self, node: Any) -> bool:
        raise NotImplementedError

    def propose_migration(self, node: Any, cmd: dict[str, Any]) -> None:
        raise NotImplementedError

    def bus_send(self, node: Any, to: str, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    def acked(self, node: Any) -> int:
        """The offset the primary ``node``'s shard acknowledged (durable on its whole ISR)."""
        raise NotImplementedError

    def process_token(self, node: Any) -> Any:
        """What changes whenever the node's writes could be lost unseen (a crash, a demotion)."""
        raise NotImplementedError

    def import_durable(self, node: Any) -> int:
        """What an import may acknowledge to its source: the shard's acknowledged offset (a planted bug overrides)."""
        return self.acked(node)

    # --- the configuration -------------------------------------------------------------------

    def on_migration_entry(self, cmd: dict[str, Any], result: ApplyResult) -> None:
        """A committed migration entry: a refused start ends its job; outcomes are counted."""
        op = cmd["op"]
        if op == "migration_start" and not result.ok:
            self.mig_coverage.starts_refused += 1
            self.refused_start(cmd["migration_id"], result.reason)
        elif op in ("migration_commit", "migration_abort") and result.ok:
            self.mig_coverage.commits += op == "migration_commit"
            self.mig_coverage.aborts += op == "migration_abort"
            self.note(f"{op} {cmd['migration_id'][-4:]} applied")

    def refused_start(self, migration_id: str, reason: str) -> None:
        for node in self.nodes.values():
            proc = node.proc
            job = proc.controller.job(migration_id) if proc is not None and migration_id in proc.starts else None
            if job is not None:
                self.carry(node, job.on_refused(reason, self.now_ms))

    def roles(self, view: ClusterState, shard_id: str) -> tuple[SlotRoles, frozenset[int]]:
        """The slot rule for ``view`` (remembered: the configurations differ in few ways, the walk is long)."""
        # Owners change only by migrations here: the running and the finished ones name the configuration.
        key = (shard_id, tuple(view.migrations), tuple(m.id for m in view.migration_history))
        if key not in self._roles:
            roles = SlotRoles.from_config(view, shard_id)
            self._roles[key] = (roles, roles.hidden())
        return self._roles[key]

    def mig_on_config(self, node: Any) -> None:
        """The migration shell's ``on_config``: hide unowned slots, feed the controller, end imports."""
        proc, view = node.proc, self.view(node)
        assert proc is not None
        proc.roles, proc.hidden = self.roles(view, node.shard_id)
        self.data_of(node).keyspace.hidden = proc.hidden
        self.carry(node, proc.controller.on_config(view, self.now_ms))
        for migration_id in [m for m in proc.imports if import_over(view, m, node.id)]:
            del proc.imports[migration_id]
        proc.cleanup_at_ms = self.now_ms

    # --- carrying out the controller's actions (io/migration.py ``_carry``) --------------------

    def carry(self, node: Any, actions: list[export.Action]) -> None:
        proc = node.proc
        assert proc is not None
        for action in actions:
            if isinstance(action, (export.ProposeStart, export.ProposeCommit, export.ProposeAbort)):
                if isinstance(action, export.ProposeStart):
                    proc.starts.add(action.command["migration_id"])
                self.propose_migration(node, action.command)
            elif isinstance(action, export.Establish):
                proc.senders.setdefault(action.migration_id, StreamSender(resend_ms=RESEND_MS))
                proc.copiers.setdefault(action.migration_id, SlotCopier())
                slots = [list(r) for r in action.slots]
                self.bus_send(node, action.target_node_id, {"k": "mig_import", "id": action.migration_id,
                                                            "slots": slots})  # fmt: skip
            elif isinstance(action, export.CopyChunk):
                proc.copies.append(action)
            elif isinstance(action, export.PauseWrites):
                self.mig_coverage.pauses += 1
                job = proc.controller.job(action.migration_id)
                if job is not None:
                    self.log_outbox(node)
                proc.held[action.migration_id] = frozenset(slots_of(action.slots))
                if job is None:
                    self.mig_coverage.orphans_held += 1
                else:
                    self.carry(node, job.on_paused(proc.senders[action.migration_id].last_offset, self.now_ms))
            else:
                assert isinstance(action, export.ResumeWrites), action
                proc.held.pop(action.migration_id, None)
        for job_id in [j for j in proc.senders if proc.controller.job(j) is None]:
            del proc.senders[job_id]
            proc.copiers.pop(job_id, None)
            proc.held.pop(job_id, None)

    # --- data: the WAL and the stream of logged writes ------------------------------------------

    def log_outbox(self, node: Any) -> None:
        """Effects the data state made go to the WAL, and the moving slots' ones into their streams."""
        self.log_batch(node, self.data_of(node).take_outbox())

    def log_batch(self, node: Any, batch: list[tuple[int, tuple[bytes, ...]]]) -> None:
        """Effects the node's data state made, logged (io: ``store.on_logged`` feeds the streams)."""
        for offset, effect in batch:
            self.wal_append(node, offset, effect)
        proc = node.proc
        if not batch or proc is None or not proc.senders:
            return
        effects = [effect for _, effect in batch]
        for job_id, sender in list(proc.senders.items()):
            job = proc.controller.job(job_id)
            if job is not None:
                before = sender.last_offset
                actions = stream_writes(job, sender, effects, self.now_ms)
                self.mig_coverage.stream_records += sender.last_offset - before
                self.send_stream(node, job_id)
                self.carry(node, actions)

    def send_stream(self, node: Any, migration_id: str) -> None:
        proc = node.proc
        assert proc is not None
        job, sender = proc.controller.job(migration_id), proc.senders[migration_id]
        assert job is not None
        while batch := sender.take(4):
            self.bus_send(node, job.target_node_id, {"k": "mig_data", "id": migration_id, "from": batch[0][0],
                                                     "recs": [record for _, record in batch]})  # fmt: skip

    # --- the bus ---------------------------------------------------------------------------------

    def mig_receive(self, node: Any, frm: str, payload: dict[str, Any]) -> None:
        proc, kind = node.proc, payload["k"]
        assert proc is not None
        if kind == "mig_import":
            self.on_import(node, frm, payload)
        elif kind == "mig_data":
            job = proc.imports.get(payload["id"])
            if job is None or job.source_node_id != frm:
                return
            wal_room = self.mig_rng.random() >= self.mig_faults.wal_full_probability
            gate = WriteGate(primary=True, lease_valid=self.leased(node), disk_full=False, wal_room=wal_room)
            receipt = receive(job, self.data_of(node), payload["from"], payload["recs"], gate=gate)
            if receipt.overflow:
                del proc.imports[job.migration_id]
            self.log_outbox(node)
            for ack in receipt.reack:
                self.bus_send(node, frm, {"k": "mig_ack", "id": ack.migration_id, "offset": ack.offset})
        elif (job := proc.controller.from_target(payload["id"], frm)) is not None:
            if kind == "mig_ready" and "error" not in payload:
                self.carry(node, job.on_established(self.now_ms))
            elif kind == "mig_ack" and (sender := proc.senders.get(job.migration_id)) is not None:
                sender.on_ack(payload["offset"], self.now_ms)
                self.carry(node, job.on_target_ack(payload["offset"], self.now_ms))

    def on_import(self, node: Any, frm: str, payload: dict[str, Any]) -> None:
        proc = node.proc
        assert proc is not None
        migration_id = payload["id"]
        request = ImportRequest(migration_id, frm, normalize_ranges([tuple(r) for r in payload["slots"]]))
        new = migration_id not in proc.imports
        answers, reason = answer_import(proc.imports, request, self.view(node), node.id,
                                        self.data_of(node).keyspace.count_in_slot, BOUNDS.lag_records_max)  # fmt: skip
        if reason is not None:
            self.bus_send(node, frm, {"k": "mig_ready", "id": migration_id, "error": reason})
            return
        if new:
            proc.cleanup_at_ms = self.now_ms  # an earlier attempt's keys may be staged there: delete them first
        for ready in answers:
            self.bus_send(node, frm, {"k": "mig_ready", "id": ready.migration_id})

    # --- the node's migration tasks -----------------------------------------------------------------

    def migration_tick(self, node: Any) -> None:
        """A step of the migration shell's tasks: ticks, resends, a copy chunk, cleanup, import acks."""
        proc = node.proc
        assert proc is not None
        self.carry(node, proc.controller.tick(self.now_ms))
        if not self.is_primary(node):
            return
        for job_id, sender in list(proc.senders.items()):
            if sender.tick(self.now_ms):
                self.send_stream(node, job_id)
        if proc.copies:
            self.copy(node, proc.copies.popleft())
        if proc.catch_up.target is None and self.reaches_leader(node):
            proc.catch_up.on_read_index(self.committed_index())  # the leader's read index, asked once per process
        if self.now_ms >= proc.cleanup_at_ms:
            self.cleanup(node)
        acked = self.import_durable(node)
        for job in list(proc.imports.values()):
            for ack in job.on_durable(acked):
                self.bus_send(node, ack.source_node_id, {"k": "mig_ack", "id": ack.migration_id,
                                                         "offset": ack.offset})  # fmt: skip

    def copy(self, node: Any, action: export.CopyChunk) -> None:
        proc = node.proc
        assert proc is not None
        job, sender = proc.controller.job(action.migration_id), proc.senders.get(action.migration_id)
        if job is None or sender is None:
            return
        self.log_outbox(node)
        self.mig_coverage.copy_chunks += 1
        keyspace = self.data_of(node).keyspace
        actions = copy_step(job, sender, proc.copiers[action.migration_id], keyspace, action, self.now_ms)
        self.send_stream(node, action.migration_id)
        self.carry(node, actions)

    def cleanup(self, node: Any) -> None:
        proc, data = node.proc, self.data_of(node)
        assert proc is not None
        gate = WriteGate(primary=True, lease_valid=self.leased(node), disk_full=False,
                         wal_room=self.mig_rng.random() >= self.mig_faults.wal_full_probability)  # fmt: skip
        caught_up = proc.catch_up.caught_up(node.learned)
        clearing = frozenset().union(*(j.slot_set() for j in proc.imports.values() if j.state == "clearing"))
        argv = cleanup_delete(proc.roles, data.keyspace, gate, config_caught_up=caught_up, clearing=clearing,
                              keys_max=CLEANUP_KEYS_MAX)  # fmt: skip
        proc.cleanup_at_ms = self.now_ms + (STEP_MS if argv is not None else CLEANUP_IDLE_MS)
        if argv is not None:
            self.mig_coverage.cleanup_deletes += 1
            data.execute(_DEL, argv, self.now_ms, primary=True)
            self.log_outbox(node)
        count = data.keyspace.count_in_slot
        proc.controller.on_cleaned(count, self.now_ms)
        for job in proc.imports.values():
            for ready in job.on_cleared(count):
                self.bus_send(node, ready.source_node_id, {"k": "mig_ready", "id": ready.migration_id})

    # --- faults, counted by phase ----------------------------------------------------------------------

    def count_fault(self, shard_id: str) -> None:
        """A fault hit ``shard_id``: count it under each running job's side and phase."""
        for node in self.nodes.values():
            for job in node.proc.controller.jobs.values() if node.proc is not None else ():
                side = "source" if shard_id == job.source_shard_id else "target"
                name = f"{side}_{job.state}"
                if hasattr(self.mig_coverage, name):
                    setattr(self.mig_coverage, name, getattr(self.mig_coverage, name) + 1)

    def in_job(self, node: Any) -> bool:
        return node.proc is not None and bool(node.proc.controller.jobs or node.proc.imports)

    # --- the operator and the clients --------------------------------------------------------------------

    def operator(self) -> None:
        """Move MOVING to the other shard whenever no migration runs (MIGRATESLOTS to the owner's primary)."""
        state = self.committed_state()
        if state.migrations or self.mig_rng.random() >= self.mig_faults.migrate_probability:
            return
        source = state.slot_owners[MOVING[0]]
        target = self.mig_shards[1] if source == self.mig_shards[0] else self.mig_shards[0]
        node = self.nodes[state.shards[source].primary_id]
        if not node.up or node.proc is None or node.proc.controller.jobs:
            return
        argv = [b"CLUSTER", b"MIGRATESLOTS", b"SLOTSRANGE"]
        for slot in MOVING:
            argv += [b"%d" % slot, b"%d" % slot]
        argv += [b"NODE", state.shards[target].primary_id.encode()]
        try:
            actions = node.proc.controller.migrate(argv, self.view(node), self.job_ids(), self.now_ms)
        except CommandError as e:
            self.note(f"MIGRATESLOTS on {self.name(node.id)} refused: {e}")
            return
        self.mig_coverage.jobs_started += 1
        self.note(f"MIGRATESLOTS {source[:2]} -> {target[:2]} on {self.name(node.id)}")
        self.carry(node, actions)

    def job_ids(self) -> Iterator[str]:
        while True:
            self.job_serial += 1
            yield f"{self.job_tag:04x}{self.job_serial:036x}"

    def mig_serves(self, node: Any, slot: int) -> bool:
        """Routing and the session's rule: owned in the node's view, not held by a pause (reads neither)."""
        proc = node.proc
        if not self.leased(node) or proc is None or proc.roles is None or not proc.roles.serves(slot):
            return False
        return not any(slot in held for held in proc.held.values())

    def route(self, slot: int) -> Any:
        """The node a client sends a command for ``slot`` to: by the committed configuration, or a stale view."""
        state = self.committed_state()
        if self.mig_rng.random() < self.mig_faults.stale_route_probability:
            state = self.view(self.mig_rng.choice(list(self.nodes.values())))
        return self.nodes[state.shards[state.slot_owners[slot]].primary_id]

    def clients(self) -> None:
        f, rng = self.mig_faults, self.mig_rng
        keys = list(self.mig_checker.keys)
        if rng.random() < f.write_probability:
            key = rng.choice(keys)
            if key not in self.pending:
                self.write(key)
        if rng.random() < f.read_probability:
            self.read(rng.choice(keys))

    def write(self, key: bytes) -> None:
        node = self.route(key_slot(key))
        if not node.up or not self.client_reaches(node) or not self.mig_serves(node, key_slot(key)):
            self.mig_coverage.refused += 1
            return
        value = self.mig_checker.on_write(key)
        data = self.data_of(node)
        data.execute(_SET, [b"SET", key, value], self.now_ms, primary=True)
        self.log_outbox(node)
        self.mig_coverage.writes += 1
        self.pending[key] = (node.id, self.process_token(node), data.applied_offset, value)

    def read(self, key: bytes) -> None:
        node = self.route(key_slot(key))
        if not node.up or not self.client_reaches(node) or not self.mig_serves(node, key_slot(key)):
            return
        reply, wait = self.data_of(node).execute(_GET, [b"GET", key], self.now_ms, primary=True)
        self.log_outbox(node)
        if wait > self.acked(node):
            return  # the reply would wait for the ISR: not answered in this step
        self.mig_coverage.reads_checked += 1
        self.mig_checker.on_read(key, reply, self.mig_checker.acked_index(key), self.name(node.id))

    def resolve_writes(self) -> None:
        for key, (node_id, token, offset, value) in list(self.pending.items()):
            node = self.nodes[node_id]
            if not node.up or self.process_token(node) != token or not self.leased(node):
                del self.pending[key]  # the client never learns: the value may or may not be there
            elif self.is_primary(node) and self.acked(node) >= offset:
                del self.pending[key]
                self.mig_checker.on_acked(key, value)
                self.mig_coverage.writes_acked += 1

    def check_writers(self) -> None:
        writers: dict[int, list[tuple[str, str]]] = {}
        for node in self.nodes.values():
            if node.up and self.leased(node):
                for slot in CHECKED_SLOTS:
                    if self.mig_serves(node, slot):
                        writers.setdefault(slot, []).append((self.name(node.id), node.shard_id))
        self.mig_checker.on_writers(writers, self.committed_state())

    # --- the quiet end ---------------------------------------------------------------------------------------

    def migrations_settled(self) -> bool:
        state = self.committed_state()
        if state.migrations or self.pending:
            return False
        for shard_id in self.mig_shards:
            primary = self.nodes[state.shards[shard_id].primary_id]
            if primary.proc is None or primary.proc.controller.jobs or primary.proc.imports:
                return False
            keyspace = self.data_of(primary).keyspace
            if keyspace.visible_count() != len(keyspace):
                return False  # leftovers or staged keys not cleaned up yet
        return True

    def jobs_line(self) -> str:
        jobs = {self.name(n.id): sorted(j.state for j in n.proc.controller.jobs.values())
                for n in self.nodes.values() if n.proc is not None and n.proc.controller.jobs}  # fmt: skip
        return f"migrations {len(self.committed_state().migrations)}, jobs {jobs}, pending {len(self.pending)}"

    def final_check(self) -> None:
        state = self.committed_state()
        owner_value: dict[bytes, bytes | None] = {}
        others: dict[bytes, bool] = {}
        for key in self.mig_checker.keys:
            owner = state.slot_owners[key_slot(key)]
            other = self.mig_shards[1] if owner == self.mig_shards[0] else self.mig_shards[0]
            primary = self.nodes[state.shards[owner].primary_id]
            owner_value[key] = self.data_of(primary).keyspace.data.get(key)
            others[key] = key in self.data_of(self.nodes[state.shards[other].primary_id]).keyspace.data
        self.mig_checker.at_end(owner_value, others)
