"""Slot migration in the simulation: two shards move slots back and forth (``trionode sim --migration``).

Theory of operation
-------------------
Two shards, S (nodes A0 primary, A1, A2) and T (B0 primary, B1, B2), in one
committed :class:`ClusterState` changed only by the real ``apply``: entries
commit after a random delay, perhaps lost or twice (:class:`ConfigLog`, as
data_config.py does for one shard). Each node learns the committed
configuration at its own pace (a prefix, never out of order) and keeps what
it learned across crashes (Raft state is durable).

*Migration*. Every node runs the node's own migration decisions, as
io/migration.py and io/migration_import.py carry them out: a
:class:`MigrationController` (MIGRATESLOTS, the export job, orphans), its
stream (:class:`StreamSender`, ``stream_writes``, ``copy_step``), the target's
:class:`ImportJob` (``refuse_import``, ``receive``, ``on_durable``,
``import_over``), the slot rule (:class:`SlotRoles`) and cleanup
(``cleanup_delete`` behind a :class:`WriteGate`, after :class:`ConfigCatchUp`).
An operator moves a fixed set of slots (``MOVING``) from its owner to the
other shard, again and again; ``mig_*`` messages travel over a lossy,
delaying network.

*Data*. Each node keeps a log of effects (its WAL, kept whole across a crash)
and a :class:`DataState` built from it. A replica pulls records from the
primary its view names, unless fenced at a later epoch; when it follows a new
primary it first cuts its log back to their common prefix. A primary's
acknowledged offset is the least log length among the members of its view's
ISR (and replicas it proposed to add) that follow it, and nothing until an
``isr_fence`` it proposed at its start has applied (as the PrimaryDriver
does). The primary proposes ``isr_expand`` for a replica that caught up.

*Failover*. The control plane fences a shard's replicas and proposes
``failover`` to the up ISR replica with the longest log when the primary is
down or cut off, or now and then at random (the old primary still up). A node
serves (accepts writes, answers reads) while its view names it primary at the
committed epoch (the lease's guarantee, S2, taken as given here), and only the
slots its view's :class:`SlotRoles` says it owns and no pause holds.

*Nemesis*: crashes and restarts of any node, crashes aimed at a running
job's source or target primary, cuts (a node hears nothing and
learns nothing), manual failovers, a full WAL queue now and then; in every
phase of a job, on both sides. *Clients* write and read a few keys of the
moving slots, of S's other slots and of T's, routed by the committed
configuration or by some node's stale view.

*Checks* (migration_checks.py): S3 after every commit, one shard accepting
writes per slot at every step, every read at least as new as the last
acknowledged write, and at the quiet end every acknowledged write on the
owner and no moved key left behind.

What is abstract here: replication is a log copy, not the replication
drivers of data_shells.py; leases are the committed epoch; the control plane
is the ConfigLog, not the simulated Raft nodes.
"""

import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from trionode.core.cluster import ClusterState, command
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
from trionode.sim.cluster_log import ConfigLog
from trionode.sim.migration_checks import MigrationChecker, MigrationViolation
from trionode.sim.migration_coverage import MigrationCoverage, MigrationFaults, MigrationResult

STEP_MS = 10
S_ID, T_ID = "5a" * 20, "7b" * 20
S_NODES = tuple(f"{0xE0000 + i:040x}" for i in range(3))
T_NODES = tuple(f"{0xE0010 + i:040x}" for i in range(3))
NAMES = {**{n: f"A{i}" for i, n in enumerate(S_NODES)}, **{n: f"B{i}" for i, n in enumerate(T_NODES)}}
BOUNDS = ExportBounds(pause_ms_max=300, copy_keys_max=2, copy_lag_records_max=4, pause_lag_records_max=2,
                      lag_records_max=400, ack_timeout_ms=800, propose_retry_ms=200, start_timeout_ms=1_000,
                      establish_retry_ms=100)  # fmt: skip
RESEND_MS = 150
CLEANUP_IDLE_MS = 500
CLEANUP_KEYS_MAX = 1  # one key per chunk: cleaning lasts a few steps, so faults land in it
PULL_RECORDS_MAX = 3
FAILOVER_AFTER_MS = 150
FAILOVER_RETRY_MS = 400
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
MOVING_KEYS = _keys(4, lambda s: s < 8192, _TAKEN)
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
    starts: set[str] = field(default_factory=set)  # migration ids whose start this process proposed
    cleanup_at_ms: int = 0  # when the cleanup runs next (io: woken by a change, or after being idle)


@dataclass(slots=True)
class Node:
    id: str
    shard: str
    log: list[tuple[bytes, ...]] = field(default_factory=list)  # its WAL: effect at offset i + 1
    learned: int = 0
    fence: int = 0  # the epoch it was fenced at (durable): it follows no primary of an older one
    up: bool = True
    cut_until_ms: int = -1
    incarnation: int = 0
    data: DataState = field(default_factory=DataState)
    proc: Process | None = None
    following: tuple[str, int] | None = None  # (primary, epoch) whose log this one's is a prefix of
    expanding: dict[str, int] = field(default_factory=dict)  # replica -> ISR version its isr_expand named
    isr_fenced: tuple[int, int, int] | None = None  # (epoch, ISR version, ms) of this process's isr_fence
    hw: tuple[int, int] = (0, 0)  # (epoch, offset) this process acknowledged as primary (Primary.acked)


class MigrationPlane:
    def __init__(self, seed: int, faults: MigrationFaults | None = None) -> None:
        self.seed = seed
        self.faults = faults or MigrationFaults()
        self.rng = random.Random(f"migration-{seed}")
        self.clog = ConfigLog(random.Random(f"migration-config-{seed}"), self.faults.commit)
        self.nodes = {n: Node(n, S_ID) for n in S_NODES} | {n: Node(n, T_ID) for n in T_NODES}
        self.checker = MigrationChecker([*MOVING_KEYS, *S_KEYS, *T_KEYS])
        self.coverage = MigrationCoverage()
        self.notes: list[str] = []
        self.now_ms = 0
        self.msgs: list[tuple[int, int, str, str, dict[str, Any]]] = []
        self.msg_seq = 0
        self.job_serial = 0
        self.pending: dict[bytes, tuple[str, int, int, bytes]] = {}  # key -> (node, incarnation, offset, value)
        self.failing_over: dict[str, tuple[int, int]] = {}  # shard -> (epoch, ms proposed)
        self._roles: dict[tuple, tuple[SlotRoles, frozenset[int]]] = {}
        self._bootstrap()

    # --- setup and names ---------------------------------------------------------------

    def _bootstrap(self) -> None:
        c = self.clog
        c.commit_now(command("bootstrap", cluster_id="c" * 40, node_id=S_NODES[0], host="h", port=7000,
                             bus_port=17000))  # fmt: skip
        for i, node in enumerate([*S_NODES[1:], *T_NODES]):
            c.commit_now(command("node_join", node_id=node, host="h", port=7001 + i, bus_port=17001 + i))
        for shard, nodes, epoch, slots in ((S_ID, S_NODES, 1, [(0, 8191)]), (T_ID, T_NODES, 2, [(8192, 16383)])):
            c.commit_now(command("shard_create", shard_id=shard, epoch=epoch, primary_id=nodes[0]))
            c.commit_now(command("slots_assign", shard_id=shard, epoch=epoch, slots=slots))
            for node in nodes[1:]:
                c.commit_now(command("replica_attach", shard_id=shard, epoch=epoch, node_id=node))
                v = c.state.shards[shard].isr_version
                c.commit_now(command("isr_expand", shard_id=shard, epoch=epoch, isr_version=v, node_id=node))
        for node in self.nodes.values():
            node.learned = c.index
            self.start_process(node)

    def name(self, node_id: str) -> str:
        return NAMES.get(node_id, node_id[:6])

    def note(self, text: str) -> None:
        self.notes.append(f"{self.now_ms:>7} ms  {text}")

    def view(self, node: Node) -> ClusterState:
        return self.clog.states[node.learned - 1]

    def cut(self, node: Node) -> bool:
        return self.now_ms < node.cut_until_ms

    def is_primary(self, node: Node) -> bool:
        return node.up and self.view(node).shards[node.shard].primary_id == node.id

    def leased(self, node: Node) -> bool:
        """The lease's guarantee (S2): only the primary of the committed epoch serves."""
        mine, committed = self.view(node).shards[node.shard], self.clog.state.shards[node.shard]
        return self.is_primary(node) and mine.epoch == committed.epoch

    def serves(self, node: Node, slot: int) -> bool:
        """Routing and the session's rule: owned in the node's view, not held by a pause (reads neither)."""
        proc = node.proc
        if not self.leased(node) or proc is None or proc.roles is None or not proc.roles.serves(slot):
            return False
        return not any(slot in held for held in proc.held.values())

    # --- the step ----------------------------------------------------------------------------

    def step(self, *, quiet: bool = False) -> None:
        self.now_ms += STEP_MS
        self.commit()
        self.learn_all()
        if not quiet:
            self.nemesis()
        self.failover_control()
        self.deliver()
        for node in self.nodes.values():
            if node.up:
                self.node_step(node)
        if not quiet:
            self.operator()
            self.clients()
        self.resolve_writes()
        self.check_writers()

    def commit(self) -> None:
        for cmd, result, before in self.clog.commit_due(self.now_ms):
            self.checker.on_commit(cmd, result, before, self.clog.state)
            op = cmd["op"]
            if op == "migration_start" and not result.ok:
                self.coverage.starts_refused += 1
                self.refused_start(cmd["migration_id"], result.reason)
            elif op in ("migration_commit", "migration_abort") and result.ok:
                self.coverage.commits += op == "migration_commit"
                self.coverage.aborts += op == "migration_abort"
                self.note(f"{op} {cmd['migration_id'][-4:]} applied")
            elif op == "failover" and result.ok:
                self.coverage.failovers += 1
                self.count_fault(cmd["shard_id"])
                self.failing_over.pop(cmd["shard_id"], None)
                self.note(f"failover: {self.name(cmd['node_id'])} primary of {cmd['shard_id'][:2]}")

    def refused_start(self, migration_id: str, reason: str) -> None:
        for node in self.nodes.values():
            proc = node.proc
            job = proc.controller.job(migration_id) if proc is not None and migration_id in proc.starts else None
            if job is not None:
                self.carry(node, job.on_refused(reason, self.now_ms))

    # --- learning the configuration ----------------------------------------------------------

    def learn_all(self) -> None:
        for node in self.nodes.values():
            behind = node.up and not self.cut(node) and node.learned < self.clog.index
            if behind and self.rng.random() < self.faults.learn_probability:
                self.learn(node, self.rng.randint(node.learned + 1, self.clog.index))

    def learn(self, node: Node, index: int) -> None:
        node.learned = index
        self.on_config(node)

    def roles(self, view: ClusterState, shard_id: str) -> tuple[SlotRoles, frozenset[int]]:
        """The slot rule for ``view`` (remembered: the configurations differ in few ways, the walk is long)."""
        # Owners change only by migrations here: the running and the finished ones name the configuration.
        key = (shard_id, tuple(view.migrations), tuple(m.id for m in view.migration_history))
        if key not in self._roles:
            roles = SlotRoles.from_config(view, shard_id)
            self._roles[key] = (roles, roles.hidden())
        return self._roles[key]

    def on_config(self, node: Node) -> None:
        """The migration shell's ``on_config``: hide unowned slots, feed the controller, end imports."""
        proc, view = node.proc, self.view(node)
        assert proc is not None
        proc.roles, node.data.keyspace.hidden = self.roles(view, node.shard)
        self.carry(node, proc.controller.on_config(view, self.now_ms))
        for migration_id in [m for m in proc.imports if import_over(view, m, node.id)]:
            del proc.imports[migration_id]
        proc.cleanup_at_ms = self.now_ms

    # --- carrying out the controller's actions (io/migration.py ``_carry``) --------------------

    def carry(self, node: Node, actions: list[export.Action]) -> None:
        proc = node.proc
        assert proc is not None
        for action in actions:
            if isinstance(action, (export.ProposeStart, export.ProposeCommit, export.ProposeAbort)):
                if isinstance(action, export.ProposeStart):
                    proc.starts.add(action.command["migration_id"])
                if not self.cut(node):
                    self.clog.propose(action.command, self.now_ms)
            elif isinstance(action, export.Establish):
                proc.senders.setdefault(action.migration_id, StreamSender(resend_ms=RESEND_MS))
                proc.copiers.setdefault(action.migration_id, SlotCopier())
                slots = [list(r) for r in action.slots]
                self.send(node, action.target_node_id, {"k": "mig_import", "id": action.migration_id, "slots": slots})
            elif isinstance(action, export.CopyChunk):
                proc.copies.append(action)
            elif isinstance(action, export.PauseWrites):
                self.coverage.pauses += 1
                job = proc.controller.job(action.migration_id)
                if job is not None:
                    self.log_outbox(node)
                proc.held[action.migration_id] = frozenset(slots_of(action.slots))
                if job is None:
                    self.coverage.orphans_held += 1
                else:
                    self.carry(node, job.on_paused(proc.senders[action.migration_id].last_offset, self.now_ms))
            else:
                assert isinstance(action, export.ResumeWrites), action
                proc.held.pop(action.migration_id, None)
        for job_id in [j for j in proc.senders if proc.controller.job(j) is None]:
            del proc.senders[job_id]
            proc.copiers.pop(job_id, None)
            proc.held.pop(job_id, None)

    # --- data: the WAL, the stream of logged writes, replication ---------------------------------

    def log_outbox(self, node: Node) -> None:
        """Effects the data state made go to the WAL, and the moving slots' ones into their streams."""
        batch = node.data.take_outbox()
        for offset, effect in batch:
            assert offset == len(node.log) + 1, (offset, len(node.log))
            node.log.append(effect)
        proc = node.proc
        if not batch or proc is None or not proc.senders:
            return
        effects = [effect for _, effect in batch]
        for job_id, sender in list(proc.senders.items()):
            job = proc.controller.job(job_id)
            if job is not None:
                before = sender.last_offset
                actions = stream_writes(job, sender, effects, self.now_ms)
                self.coverage.stream_records += sender.last_offset - before
                self.send_stream(node, job_id)
                self.carry(node, actions)

    def rebuild(self, node: Node) -> None:
        node.data = DataState()
        for offset, effect in enumerate(node.log, 1):
            node.data.replay(offset, list(effect))
        if node.proc is not None and node.proc.roles is not None:
            node.data.keyspace.hidden = node.proc.roles.hidden()

    def acked(self, primary: Node) -> int:
        """The offset every member of the primary's ISR (and replicas it is adding) has held while following it.

        A member that does not follow it (yet) holds nothing known; what all held once stays held
        while this process is primary of this epoch (a member cuts its log only to follow another).
        """
        shard = self.view(primary).shards[primary.shard]
        fenced = primary.isr_fenced
        if fenced is None or fenced[0] != shard.epoch or shard.isr_version <= fenced[1]:
            return 0  # before its isr_fence applied, its view's ISR may be older than the one it must count
        members = (set(shard.isr_ids) | set(primary.expanding)) - {primary.id}
        me = (primary.id, shard.epoch)
        now = min([len(primary.log), *(len(self.nodes[m].log) if self.nodes[m].following == me else 0
                                       for m in members)])  # fmt: skip
        if primary.hw[0] != shard.epoch:
            primary.hw = (shard.epoch, 0)
        primary.hw = (shard.epoch, max(primary.hw[1], now))
        return primary.hw[1]

    def isr_fence(self, node: Node, shard: Any) -> None:
        """A primary process commits an ``isr_fence`` before it acknowledges anything (as PrimaryDriver does):
        an ISR change its previous process proposed may have applied unseen."""
        fenced = node.isr_fenced
        if fenced is not None and fenced[0] == shard.epoch and (shard.isr_version > fenced[1]
                                                                or self.now_ms - fenced[2] < FAILOVER_RETRY_MS):
            return  # fenced, or the proposal is still on its way
        node.isr_fenced = (shard.epoch, shard.isr_version, self.now_ms)
        self.clog.propose(command("isr_fence", shard_id=node.shard, epoch=shard.epoch,
                                  isr_version=shard.isr_version), self.now_ms)  # fmt: skip

    def import_durable(self, node: Node) -> int:
        """What an import may acknowledge to its source: the shard's acknowledged offset (a planted bug overrides)."""
        return self.acked(node)

    def pull(self, node: Node) -> None:
        """A replica copies the next records of the primary its view names (not across a fence)."""
        shard = self.view(node).shards[node.shard]
        primary = self.nodes[shard.primary_id]
        if primary is node or not primary.up or self.cut(primary) or shard.epoch < node.fence:
            return
        if not self.is_primary(primary) or self.view(primary).shards[node.shard].epoch != shard.epoch:
            return
        if node.following != (primary.id, shard.epoch):
            common = 0
            while common < min(len(node.log), len(primary.log)) and node.log[common] is primary.log[common]:
                common += 1
            if common < len(node.log):
                del node.log[common:]
                self.rebuild(node)
            node.following = (primary.id, shard.epoch)
        start = len(node.log)
        for effect in primary.log[start : start + PULL_RECORDS_MAX]:
            node.log.append(effect)
            node.data.replay(len(node.log), list(effect))
        # The primary proposes the expansion, from its own view (the replica's may differ).
        mine = self.view(primary).shards[node.shard]
        if node.id not in mine.isr_ids and len(node.log) == len(primary.log) and node.id not in primary.expanding:
            primary.expanding[node.id] = mine.isr_version
            self.clog.propose(command("isr_expand", shard_id=node.shard, epoch=mine.epoch,
                                      isr_version=mine.isr_version, node_id=node.id), self.now_ms)  # fmt: skip

    # --- the nodes ------------------------------------------------------------------------------------

    def start_process(self, node: Node) -> None:
        node.proc = Process(MigrationController(node.id, bounds=BOUNDS))
        self.rebuild(node)
        self.on_config(node)

    def node_step(self, node: Node) -> None:
        proc = node.proc
        assert proc is not None
        if not self.is_primary(node):
            if not self.cut(node) and self.rng.random() < self.faults.pull_probability:
                self.pull(node)
            self.carry(node, proc.controller.tick(self.now_ms))
            return
        shard = self.view(node).shards[node.shard]
        # An expansion counts until the view shows it applied or refused (the ISR version moved on).
        node.expanding = {n: v for n, v in node.expanding.items() if n not in shard.isr_ids and v == shard.isr_version}
        self.isr_fence(node, shard)
        self.carry(node, proc.controller.tick(self.now_ms))
        for job_id, sender in list(proc.senders.items()):
            if sender.tick(self.now_ms):
                self.send_stream(node, job_id)
        if proc.copies:
            self.copy(node, proc.copies.popleft())
        if proc.catch_up.target is None and not self.cut(node):
            proc.catch_up.on_read_index(self.clog.index)  # the leader's read index, asked once per process
        if self.now_ms >= proc.cleanup_at_ms:
            self.cleanup(node)
        acked = self.import_durable(node)
        for job in list(proc.imports.values()):
            for ack in job.on_durable(acked):
                self.send(node, ack.source_node_id, {"k": "mig_ack", "id": ack.migration_id, "offset": ack.offset})

    def copy(self, node: Node, action: export.CopyChunk) -> None:
        proc = node.proc
        assert proc is not None
        job, sender = proc.controller.job(action.migration_id), proc.senders.get(action.migration_id)
        if job is None or sender is None:
            return
        self.log_outbox(node)
        self.coverage.copy_chunks += 1
        actions = copy_step(job, sender, proc.copiers[action.migration_id], node.data.keyspace, action, self.now_ms)
        self.send_stream(node, action.migration_id)
        self.carry(node, actions)

    def cleanup(self, node: Node) -> None:
        proc = node.proc
        assert proc is not None
        gate = WriteGate(primary=True, lease_valid=self.leased(node), disk_full=False,
                         wal_room=self.rng.random() >= self.faults.wal_full_probability)  # fmt: skip
        caught_up = proc.catch_up.caught_up(node.learned)
        clearing = frozenset().union(*(j.slot_set() for j in proc.imports.values() if j.state == "clearing"))
        argv = cleanup_delete(proc.roles, node.data.keyspace, gate, config_caught_up=caught_up, clearing=clearing,
                              keys_max=CLEANUP_KEYS_MAX)  # fmt: skip
        proc.cleanup_at_ms = self.now_ms + (STEP_MS if argv is not None else CLEANUP_IDLE_MS)
        if argv is not None:
            self.coverage.cleanup_deletes += 1
            node.data.execute(_DEL, argv, self.now_ms, primary=True)
            self.log_outbox(node)
        count = node.data.keyspace.count_in_slot
        proc.controller.on_cleaned(count, self.now_ms)
        for job in proc.imports.values():
            for ready in job.on_cleared(count):
                self.send(node, ready.source_node_id, {"k": "mig_ready", "id": ready.migration_id})

    # --- the bus ---------------------------------------------------------------------------------------

    def send(self, node: Node, to: str, payload: dict[str, Any]) -> None:
        if self.cut(node) or self.rng.random() < self.faults.msg_loss_probability:
            self.coverage.msgs_lost += 1
            return
        self.msg_seq += 1
        due = self.now_ms + self.rng.randint(0, self.faults.msg_delay_ms_max)
        self.msgs.append((due, self.msg_seq, node.id, to, payload))

    def send_stream(self, node: Node, migration_id: str) -> None:
        proc = node.proc
        assert proc is not None
        job, sender = proc.controller.job(migration_id), proc.senders[migration_id]
        assert job is not None
        while batch := sender.take(4):
            self.send(node, job.target_node_id, {"k": "mig_data", "id": migration_id, "from": batch[0][0],
                                                 "recs": [record for _, record in batch]})  # fmt: skip

    def deliver(self) -> None:
        self.msgs.sort(key=lambda m: m[:2])
        due = [m for m in self.msgs if m[0] <= self.now_ms]
        self.msgs = self.msgs[len(due) :]
        for _, _, frm, to, payload in due:
            node = self.nodes[to]
            if node.up and not self.cut(node) and node.proc is not None:
                self.receive(node, frm, payload)

    def receive(self, node: Node, frm: str, payload: dict[str, Any]) -> None:
        proc, kind = node.proc, payload["k"]
        assert proc is not None
        if kind == "mig_import":
            self.on_import(node, frm, payload)
        elif kind == "mig_data":
            job = proc.imports.get(payload["id"])
            if job is None or job.source_node_id != frm:
                return
            wal_room = self.rng.random() >= self.faults.wal_full_probability
            receipt = receive(job, node.data, payload["from"], payload["recs"], wal_room=wal_room)
            if receipt.overflow:
                del proc.imports[job.migration_id]
            self.log_outbox(node)
            for ack in receipt.reack:
                self.send(node, frm, {"k": "mig_ack", "id": ack.migration_id, "offset": ack.offset})
        elif (job := proc.controller.from_target(payload["id"], frm)) is not None:
            if kind == "mig_ready" and "error" not in payload:
                self.carry(node, job.on_established(self.now_ms))
            elif kind == "mig_ack" and (sender := proc.senders.get(job.migration_id)) is not None:
                sender.on_ack(payload["offset"], self.now_ms)
                self.carry(node, job.on_target_ack(payload["offset"], self.now_ms))

    def on_import(self, node: Node, frm: str, payload: dict[str, Any]) -> None:
        proc = node.proc
        assert proc is not None
        migration_id = payload["id"]
        request = ImportRequest(migration_id, frm, normalize_ranges([tuple(r) for r in payload["slots"]]))
        new = migration_id not in proc.imports
        answers, reason = answer_import(proc.imports, request, self.view(node), node.id,
                                        node.data.keyspace.count_in_slot, BOUNDS.lag_records_max)  # fmt: skip
        if reason is not None:
            self.send(node, frm, {"k": "mig_ready", "id": migration_id, "error": reason})
            return
        if new:
            proc.cleanup_at_ms = self.now_ms  # an earlier attempt's keys may be staged there: delete them first
        for ready in answers:
            self.send(node, frm, {"k": "mig_ready", "id": ready.migration_id})

    # --- faults and the control plane's failover -----------------------------------------------------

    def nemesis(self) -> None:
        f, rng = self.faults, self.rng
        for node in self.nodes.values():
            if not node.up and rng.random() < f.restart_probability:
                self.restart(node)
        up = [n for n in self.nodes.values() if n.up]
        if rng.random() < f.crash_probability and len(up) > 3:
            self.crash(rng.choice(up))
        jobs = [(n, job) for n in up if n.proc is not None for job in n.proc.controller.jobs.values()]
        handover = any(job.state in ("paused", "committing", "cleaning") for _, job in jobs)
        if jobs and rng.random() < (f.handover_crash_probability if handover else f.job_crash_probability):
            source, job = rng.choice(jobs)
            self.note(f"aimed at job {job.migration_id[-4:]} ({job.state})")
            self.crash(source if rng.random() < 0.5 or not self.nodes[job.target_node_id].up
                       else self.nodes[job.target_node_id])  # fmt: skip
        if rng.random() < f.cut_probability:
            node = rng.choice(up)
            node.cut_until_ms = self.now_ms + rng.randint(50, 600)
            self.count_fault(node.shard)
            self.coverage.cuts += 1
            self.note(f"{self.name(node.id)} cut off until {node.cut_until_ms}")
        if rng.random() < f.manual_failover_probability:
            shard = rng.choice((S_ID, T_ID))
            if shard not in self.failing_over:
                self.coverage.manual_failovers += 1
                self.propose_failover(shard)

    def count_fault(self, shard_id: str) -> None:
        """A fault hit ``shard_id``: count it under each running job's side and phase."""
        for node in self.nodes.values():
            for job in node.proc.controller.jobs.values() if node.proc is not None else ():
                side = "source" if shard_id == job.source_shard_id else "target"
                name = f"{side}_{job.state}"
                if hasattr(self.coverage, name):
                    setattr(self.coverage, name, getattr(self.coverage, name) + 1)

    def crash(self, node: Node) -> None:
        self.count_fault(node.shard)
        if node.proc is not None and (node.proc.controller.jobs or node.proc.imports):
            self.coverage.crashes_in_job += 1
        self.coverage.crashes += 1
        node.up, node.proc, node.following = False, None, None
        node.expanding, node.hw, node.isr_fenced = {}, (0, 0), None  # the process's primary state
        node.incarnation += 1
        self.note(f"{self.name(node.id)} crashes")

    def restart(self, node: Node) -> None:
        node.up = True
        self.start_process(node)
        self.note(f"{self.name(node.id)} restarts, log {len(node.log)}, config {node.learned}")

    def failover_control(self) -> None:
        for shard_id in (S_ID, T_ID):
            shard = self.clog.state.shards[shard_id]
            primary = self.nodes[shard.primary_id]
            pending = self.failing_over.get(shard_id)
            if pending is not None and pending[0] == shard.epoch and self.now_ms - pending[1] >= FAILOVER_RETRY_MS:
                self.propose_failover(shard_id)
            elif pending is None and (not primary.up or self.cut(primary)):
                self.failing_over[shard_id] = (shard.epoch, self.now_ms - FAILOVER_RETRY_MS + FAILOVER_AFTER_MS)

    def propose_failover(self, shard_id: str) -> None:
        """Fence the shard's replicas at the next epoch, then propose the longest up ISR member."""
        shard = self.clog.state.shards[shard_id]
        self.failing_over[shard_id] = (shard.epoch, self.now_ms)
        candidates = [self.nodes[n] for n in shard.isr_ids if n != shard.primary_id and self.nodes[n].up]
        for replica_id in shard.replica_ids:
            replica = self.nodes[replica_id]
            replica.fence, replica.following = max(replica.fence, shard.epoch + 1), None
        if candidates:
            successor = max(candidates, key=lambda n: (len(n.log), n.id))
            self.clog.propose(command("failover", shard_id=shard_id, epoch=shard.epoch, node_id=successor.id),
                              self.now_ms)  # fmt: skip

    # --- the operator and the clients --------------------------------------------------------------------

    def operator(self) -> None:
        """Move MOVING to the other shard whenever no migration runs (MIGRATESLOTS to the owner's primary)."""
        state = self.clog.state
        if state.migrations or self.rng.random() >= self.faults.migrate_probability:
            return
        source = state.slot_owners[MOVING[0]]
        target = T_ID if source == S_ID else S_ID
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
        self.coverage.jobs_started += 1
        self.note(f"MIGRATESLOTS {source[:2]} -> {target[:2]} on {self.name(node.id)}")
        self.carry(node, actions)

    def job_ids(self) -> Iterator[str]:
        while True:
            self.job_serial += 1
            yield f"{self.seed % 0xFFFF:04x}{self.job_serial:036x}"

    def route(self, slot: int) -> Node:
        """The node a client sends a command for ``slot`` to: by the committed configuration, or a stale view."""
        state = self.clog.state
        if self.rng.random() < self.faults.stale_route_probability:
            state = self.view(self.rng.choice(list(self.nodes.values())))
        return self.nodes[state.shards[state.slot_owners[slot]].primary_id]

    def clients(self) -> None:
        f, rng = self.faults, self.rng
        keys = list(self.checker.keys)
        if rng.random() < f.write_probability:
            key = rng.choice(keys)
            if key not in self.pending:
                self.write(key)
        if rng.random() < f.read_probability:
            self.read(rng.choice(keys))

    def write(self, key: bytes) -> None:
        node = self.route(key_slot(key))
        if not node.up or self.cut(node) or not self.serves(node, key_slot(key)):
            self.coverage.refused += 1
            return
        value = self.checker.on_write(key)
        node.data.execute(_SET, [b"SET", key, value], self.now_ms, primary=True)
        self.log_outbox(node)
        self.coverage.writes += 1
        self.pending[key] = (node.id, node.incarnation, len(node.log), value)

    def read(self, key: bytes) -> None:
        node = self.route(key_slot(key))
        if not node.up or self.cut(node) or not self.serves(node, key_slot(key)):
            return
        reply, wait = node.data.execute(_GET, [b"GET", key], self.now_ms, primary=True)
        self.log_outbox(node)
        if wait > self.acked(node):
            return  # the reply would wait for the ISR: not answered in this step
        self.coverage.reads_checked += 1
        self.checker.on_read(key, reply, self.checker.acked_index(key), self.name(node.id))

    def resolve_writes(self) -> None:
        for key, (node_id, incarnation, offset, value) in list(self.pending.items()):
            node = self.nodes[node_id]
            if not node.up or node.incarnation != incarnation or not self.leased(node):
                del self.pending[key]  # the client never learns: the value may or may not be there
            elif self.is_primary(node) and self.acked(node) >= offset:
                del self.pending[key]
                self.checker.on_acked(key, value)
                self.coverage.writes_acked += 1

    def check_writers(self) -> None:
        writers: dict[int, list[tuple[str, str]]] = {}
        for node in self.nodes.values():
            if node.up and self.leased(node):
                for slot in CHECKED_SLOTS:
                    if self.serves(node, slot):
                        writers.setdefault(slot, []).append((self.name(node.id), node.shard))
        self.checker.on_writers(writers, self.clog.state)

    # --- the quiet end ---------------------------------------------------------------------------------------

    def settle(self, steps_max: int) -> None:
        """Heal everything, stop starting jobs, run until no job runs and no leftovers remain."""
        for node in self.nodes.values():
            node.cut_until_ms = -1
            if not node.up:
                self.restart(node)
        for _ in range(steps_max):
            self.step(quiet=True)
            if self.settled():
                return
        raise MigrationViolation(f"nothing settled in {steps_max} quiet steps: {self.state_line()}")

    def settled(self) -> bool:
        state = self.clog.state
        if state.migrations or self.pending or any(n.learned < self.clog.index for n in self.nodes.values()):
            return False
        for shard_id in (S_ID, T_ID):
            primary = self.nodes[state.shards[shard_id].primary_id]
            if primary.proc is None or primary.proc.controller.jobs or primary.proc.imports:
                return False
            if primary.data.keyspace.visible_count() != len(primary.data.keyspace):
                return False  # leftovers or staged keys not cleaned up yet
        return True

    def state_line(self) -> str:
        state = self.clog.state
        jobs = {self.name(n.id): sorted(j.state for j in n.proc.controller.jobs.values())
                for n in self.nodes.values() if n.proc is not None and n.proc.controller.jobs}  # fmt: skip
        return f"migrations {len(state.migrations)}, jobs {jobs}, pending {len(self.pending)}"

    def final_check(self) -> None:
        state = self.clog.state
        owner_value: dict[bytes, bytes | None] = {}
        others: dict[bytes, bool] = {}
        for key in self.checker.keys:
            owner = state.slot_owners[key_slot(key)]
            other = T_ID if owner == S_ID else S_ID
            primary = self.nodes[state.shards[owner].primary_id]
            owner_value[key] = primary.data.keyspace.data.get(key)
            others[key] = key in self.nodes[state.shards[other].primary_id].data.keyspace.data
        self.checker.at_end(owner_value, others)


def run_migration(seed: int, steps: int = 2_000, *, plane_type: type[MigrationPlane] = MigrationPlane,
                  faults: MigrationFaults | None = None) -> MigrationResult:  # fmt: skip
    """One seed: ``steps`` steps of faults and moves, then the quiet end and its checks."""
    plane = plane_type(seed, faults)
    result = MigrationResult(seed, steps, coverage=plane.coverage, notes=plane.notes)
    try:
        for _ in range(steps):
            plane.step()
        plane.settle(steps_max=3_000)
        plane.final_check()
    except MigrationViolation as e:
        result.failure, result.failed_at = str(e), plane.now_ms
    return result
