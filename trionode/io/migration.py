"""Slot migration's shell: carries out the core's decisions on a real node (DESIGN §6, issue 11).

Every decision is the core's (``core/migration``): which jobs run and when
they copy, pause, commit or abort (:class:`MigrationController`), what the
stream holds and when it is sent again (``stream.py``), which keys are staged,
hidden or deleted (``staging.py``). This shell only executes:

* proposals (start, commit, abort) go to the control plane, each in its own
  task; a refused start goes back to its job;
* a copy chunk reads one bounded chunk of a slot's cut (``copy.py``) in the
  shell's task, appends it to the job's stream and yields, so the event loop
  is held for one chunk at most; copy and cleanup chunks run within the
  migration's share of the loop (``pacing.py``), so client commands and the
  WAL's writer thread keep most of it under load;
* every effect the data WAL logs passes :meth:`_on_logged`: the parts that
  touch a streaming job's slots join its stream right after, in WAL order, so
  a copy chunk (read after the outbox was logged) and the writes around it
  reach the target in the order they happened here;
* a pause adds the job's slots to the routing's ``paused`` set: writes to them
  come back from the session and wait in their connection until the pause
  ends (``wait_resumed``), then run again (here, or MOVED after a commit);
* cleanup deletes hidden keys on a primary in bounded chunks of ordinary
  logged DELs, once the configuration is known to be caught up (the leader's
  read index, asked of the control plane once per process).

The target's side (``ImportShell``) lives in ``migration_import.py``.
"""

import functools
import logging
import os
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import trio

from trionode import limits
from trionode.core.cluster.state import slots_of
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.migration import export
from trionode.core.migration.commands import JobRow
from trionode.core.migration.controller import MigrationController
from trionode.core.migration.copy import SlotCopier, copy_step
from trionode.core.migration.staging import ConfigCatchUp, SlotRoles, cleanup_delete
from trionode.core.migration.stream import StreamSender, stream_writes
from trionode.core.reply import OK
from trionode.io.control import ProposalError, monotonic_ms
from trionode.io.migration_import import ImportShell
from trionode.io.migration_pacing import Pacer

if TYPE_CHECKING:
    from trionode.io.node import NodeRuntime

log = logging.getLogger("trionode.migration")

TICK_MS = 100
_DEL = KEYSPACE_COMMANDS["del"]


def _job_ids() -> Iterator[str]:
    while True:
        yield os.urandom(20).hex()


class MigrationShell:
    def __init__(self, runtime: "NodeRuntime") -> None:
        self.runtime = runtime
        self.control = runtime.control
        self.controller = MigrationController(runtime.node_id, min_insync_replicas=runtime.config.min_insync_replicas)
        self.imports = ImportShell(runtime)
        self.senders: dict[str, StreamSender] = {}  # Invariant: one per job in controller.jobs that streams
        self.copiers: dict[str, SlotCopier] = {}
        self.held: dict[str, frozenset[int]] = {}  # job id -> slots whose writes wait
        self.catch_up = ConfigCatchUp()
        self.roles: SlotRoles | None = None
        self._roles_for: tuple | None = None
        self._copies: deque[export.CopyChunk] = deque()  # Invariant: at most one per job (the core's rule)
        self._wake = trio.Event()
        self._resumed = trio.Event()
        self._cleanup_wanted = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._early: list[tuple[Any, tuple]] = []  # Invariant: empty once run() started
        self._ids = _job_ids()
        self.imports.wake_cleanup = lambda: self._cleanup_wanted.set()  # (the event is replaced after each wait)
        runtime.store.on_logged = self._on_logged
        self.control.bus_handlers.update({"mig_ready": self._on_ready, "mig_ack": self._on_ack})

    # --- commands ------------------------------------------------------------------------
    def command(self, argv: list[bytes]) -> Any:
        """CLUSTER MIGRATESLOTS / CANCELSLOTMIGRATIONS (raises CommandError)."""
        now = self.runtime.clock_ms()
        if argv[1].lower() == b"migrateslots":
            self._carry(self.controller.migrate(argv, self.control.state, self._ids, now))
        else:
            self._carry(self.controller.cancel_all(now))
        return OK

    def rows(self) -> list[JobRow]:
        return [*self.controller.rows(), *self.imports.rows()]

    def paused_slots(self) -> frozenset[int]:
        return frozenset().union(*self.held.values())

    async def wait_resumed(self) -> None:
        await self._resumed.wait()

    # --- inputs ----------------------------------------------------------------------------
    def on_config(self) -> None:
        state = self.control.state
        self._hide_unowned_slots()
        self._carry(self.controller.on_config(state, self.runtime.clock_ms()))
        self.imports.on_config(state)
        self._cleanup_wanted.set()

    def _hide_unowned_slots(self) -> None:
        """Keep the keys of slots this shard does not own (staged, leftovers) out of reads and expiry."""
        state = self.control.state
        me = state.nodes.get(self.runtime.node_id)
        key = (me.shard_id if me else None, tuple(state.slot_owners), tuple(state.migrations))
        if key == self._roles_for:
            return  # most entries change neither ownership nor migrations: skip the 16384-slot walk
        self._roles_for = key
        self.roles = SlotRoles.from_config(state, key[0]) if key[0] else None
        self.runtime.data.keyspace.hidden = self.roles.hidden() if self.roles else frozenset()

    def _on_logged(self, batch: list[tuple[int, tuple[bytes, ...]]]) -> None:
        """Effects just written to the data WAL: the moving slots' ones join their streams."""
        if not self.senders:
            return
        now = self.runtime.clock_ms()
        effects = [effect for _, effect in batch]
        for job_id, sender in list(self.senders.items()):
            job = self.controller.job(job_id)
            if job is None:
                continue
            actions = stream_writes(job, sender, effects, now)
            self._send(job_id)
            self._carry(actions)

    def _on_ready(self, peer_id: str, payload: dict) -> None:
        job = self.controller.from_target(payload["id"], peer_id)
        if job is None:
            return
        if "error" in payload:
            log.info("migration %s: the target refused: %s", job.migration_id[:12], payload["error"])
            return  # asked again until the start timeout (ExportJob.tick)
        self._carry(job.on_established(self.runtime.clock_ms()))

    def _on_ack(self, peer_id: str, payload: dict) -> None:
        job = self.controller.from_target(payload["id"], peer_id)
        sender = self.senders.get(payload["id"])
        if job is None or sender is None:
            return
        now = self.runtime.clock_ms()
        sender.on_ack(payload["offset"], now)
        self._carry(job.on_target_ack(payload["offset"], now))

    # --- actions ---------------------------------------------------------------------------
    def _carry(self, actions: list[export.Action]) -> None:
        for action in actions:
            if isinstance(action, (export.ProposeStart, export.ProposeCommit, export.ProposeAbort)):
                self._start(self._propose, action)
            elif isinstance(action, export.Establish):
                self.senders.setdefault(action.migration_id, StreamSender())
                self.copiers.setdefault(action.migration_id, SlotCopier())
                slots = [list(r) for r in action.slots]
                self.control.bus.send(action.target_node_id, {"k": "mig_import", "id": action.migration_id,
                                                              "slots": slots})  # fmt: skip
            elif isinstance(action, export.CopyChunk):
                self._copies.append(action)
                self._wake.set()
            elif isinstance(action, export.PauseWrites):
                self._pause(action)
            else:
                assert isinstance(action, export.ResumeWrites), action
                self._resume(action.migration_id)
        self._forget_finished()

    def _pause(self, action: export.PauseWrites) -> None:
        job, sender = self.controller.job(action.migration_id), self.senders.get(action.migration_id)
        if job is not None:
            self.runtime.log_outbox()  # whatever ran before the pause is in the stream before its end
        self.held[action.migration_id] = frozenset(slots_of(action.slots))
        self.runtime.refresh_routing()
        if job is None:
            return  # an orphan's slots: held until the configuration shows its fate; nothing streams
        assert sender is not None
        self._carry(job.on_paused(sender.last_offset, self.runtime.clock_ms()))

    def _resume(self, migration_id: str) -> None:
        if self.held.pop(migration_id, None) is not None:
            self.runtime.refresh_routing()
            self._resumed.set()
            self._resumed = trio.Event()

    def _forget_finished(self) -> None:
        for job_id in [j for j in self.senders if self.controller.job(j) is None]:
            del self.senders[job_id]
            self.copiers.pop(job_id, None)
            self._resume(job_id)

    def _start(self, fn: Any, *args: Any) -> None:
        if self._nursery is None:
            self._early.append((fn, args))  # an orphan's abort, found while the log is re-applied at startup
        else:
            self._nursery.start_soon(fn, *args)

    async def _propose(self, action: Any) -> None:
        migration_id = action.command["migration_id"]
        try:
            await self.control.submit(action.command)
        except ProposalError as e:
            log.info("migration %s: %s not applied: %s", migration_id[:12], action.command["op"], e)
            job = self.controller.job(migration_id)
            if isinstance(action, export.ProposeStart) and str(e).startswith("ERR ") and job is not None:
                self._carry(job.on_refused(str(e)[4:], self.runtime.clock_ms()))

    def _copy(self, action: export.CopyChunk) -> None:
        job, sender = self.controller.job(action.migration_id), self.senders.get(action.migration_id)
        if job is None or sender is None:
            return  # the job ended while this chunk waited
        self.runtime.log_outbox()  # writes before the cut are in the stream before it
        copier, keyspace = self.copiers[action.migration_id], self.runtime.data.keyspace
        actions = copy_step(job, sender, copier, keyspace, action, self.runtime.clock_ms())
        self._send(action.migration_id)
        self._carry(actions)

    def _send(self, migration_id: str) -> None:
        job, sender = self.controller.job(migration_id), self.senders[migration_id]
        assert job is not None
        while batch := sender.take():
            self.control.bus.send(job.target_node_id, {"k": "mig_data", "id": migration_id, "from": batch[0][0],
                                                       "recs": [record for _, record in batch]})  # fmt: skip

    # --- cleanup ------------------------------------------------------------------------------
    def _cleanup_step(self) -> bool:
        """Delete one bounded chunk of hidden keys this primary must not keep; False if none."""
        runtime = self.runtime
        gate = runtime.node.write_gate(monotonic_ms(), runtime.wal.has_room())
        if not gate.open():
            return False
        keyspace = runtime.data.keyspace
        caught_up = self.catch_up.caught_up(self.control.state.applied_index)
        argv = cleanup_delete(self.roles, keyspace, gate, config_caught_up=caught_up, clearing=self.imports.clearing())
        if argv is not None:
            runtime.data.execute(_DEL, argv, runtime.clock_ms(), primary=True)
            runtime.log_outbox()
        self.controller.on_cleaned(keyspace.count_in_slot, runtime.clock_ms())
        self.imports.on_cleared()
        return argv is not None

    async def _catch_up_loop(self) -> None:
        """The leader's read index, for ``catch_up``: asked once per process, every tick until answered."""
        while (index := await self.control.read_index(TICK_MS)) is None:
            await trio.sleep(TICK_MS / 1000)
        self.catch_up.on_read_index(index)
        self._cleanup_wanted.set()

    # --- tasks ------------------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for fn, args in self._early:
                nursery.start_soon(fn, *args)
            self._early.clear()
            nursery.start_soon(self._tick_loop)
            nursery.start_soon(self._cleanup_loop)
            nursery.start_soon(self._catch_up_loop)
            nursery.start_soon(self.imports.ack_loop)
            nursery.start_soon(self.imports.apply_loop)
            task_status.started()
            copying = Pacer()
            while True:
                while self._copies:
                    await copying.run(functools.partial(self._copy, self._copies.popleft()))
                await self._wake.wait()
                self._wake = trio.Event()

    async def _tick_loop(self) -> None:
        while True:
            await trio.sleep(TICK_MS / 1000)
            now = self.runtime.clock_ms()
            self._carry(self.controller.tick(now))
            for job_id, sender in list(self.senders.items()):
                if sender.tick(now):
                    self._send(job_id)

    async def _cleanup_loop(self) -> None:
        cleaning = Pacer()
        while True:
            if await cleaning.run(self._cleanup_step):
                continue
            with trio.move_on_after(limits.migration_cleanup_idle_ms / 1000):
                await self._cleanup_wanted.wait()
            self._cleanup_wanted = trio.Event()
