"""The target primary's side of a slot migration: the shell around ``core/migration/staging.ImportJob``.

A source asks (``mig_import``); :func:`refuse_import` decides from the applied
configuration, and an accepted request becomes an :class:`ImportJob` that
first has its staged slots emptied (the migration shell's cleanup deletes
them, ``clearing``) and then answers ``mig_ready``. Stream records
(``mig_data``) are applied only in order (``ImportJob.admit``) as ordinary
write effects: logged in this node's data WAL and streamed to its replicas
like any write, so staged keys are durable on the whole ISR and survive a
restart or failover here. The ack task waits until the shard's acknowledged
offset (durable on every ISR member) covers what was applied, and only then
acknowledges the stream offsets (``mig_ack``). Stream messages are queued
(a bounded queue: the source resends what it drops) and applied by their own
task a record at a time, within the migration's share of the event loop
(``pacing.py``), so the bus and client commands are not held behind a burst.
A job ends when the configuration no longer shows its migration running:
committed (its keys are served now) or aborted (they are leftovers, deleted
by cleanup).
"""

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from trionode import limits
from trionode.core.cluster.state import ClusterState, normalize_ranges
from trionode.core.migration.commands import JobRow
from trionode.core.migration.staging import AckSource, ImportJob, ImportRequest, Ready, answer_import, import_over
from trionode.core.migration.stream import receive
from trionode.io.control import monotonic_ms
from trionode.io.data_store import AckAborted
from trionode.io.migration_pacing import Pacer

if TYPE_CHECKING:
    from trionode.io.node import NodeRuntime

log = logging.getLogger("trionode.migration")


class ImportShell:
    def __init__(self, runtime: "NodeRuntime") -> None:
        self.runtime = runtime
        self.control = runtime.control
        self.jobs: dict[str, ImportJob] = {}
        self.created_ms: dict[str, int] = {}  # Invariant: same keys as jobs
        self.log: deque[JobRow] = deque(maxlen=limits.migration_log_jobs_max)  # finished imports, oldest first
        self._applied = trio.Event()
        # (peer, message, its next record to apply); Invariant: len <= limits.migration_inbox_msgs_max
        self._inbox: deque[tuple[str, dict, int]] = deque()
        self._queued = trio.Event()
        self.wake_cleanup: Callable[[], None] = lambda: None  # installed by the migration shell
        self.control.bus_handlers.update({"mig_import": self._on_import, "mig_data": self._on_data})

    def clearing(self) -> frozenset[int]:
        """Staged slots of accepted imports that must be emptied before their stream starts."""
        return frozenset().union(*(job.slot_set() for job in self.jobs.values() if job.state == "clearing"))

    def rows(self) -> list[JobRow]:
        me = self.runtime.node_id
        now = self.runtime.clock_ms()
        active = [JobRow(name=j.migration_id, operation="IMPORT", slots=j.slots, source_node=j.source_node_id,
                         target_node=me, create_ms=self.created_ms[j.migration_id], last_update_ms=now,
                         last_ack_ms=now, state=j.state) for j in self.jobs.values()]  # fmt: skip
        return [*active, *reversed(self.log)]

    # --- inputs -----------------------------------------------------------------------------
    def on_config(self, state: ClusterState) -> None:
        for migration_id in list(self.jobs):
            if import_over(state, migration_id, self.runtime.node_id):
                self._end(migration_id, state)

    def _end(self, migration_id: str, state: ClusterState) -> None:
        job = self.jobs.pop(migration_id)
        created = self.created_ms.pop(migration_id)
        outcome = next((m.state for m in state.migration_history if m.id == migration_id), "")
        now = self.runtime.clock_ms()
        self.log.append(JobRow(name=migration_id, operation="IMPORT", slots=job.slots, source_node=job.source_node_id,
                               target_node=self.runtime.node_id, create_ms=created, last_update_ms=now,
                               last_ack_ms=now, state="success" if outcome == "committed" else "failed"))  # fmt: skip

    def _on_import(self, peer_id: str, payload: dict) -> None:
        migration_id = payload["id"]
        request = ImportRequest(migration_id, peer_id, normalize_ranges([tuple(r) for r in payload["slots"]]))
        new = migration_id not in self.jobs
        answers, reason = answer_import(self.jobs, request, self.control.state, self.runtime.node_id,
                                        self.runtime.data.keyspace.count_in_slot)  # fmt: skip
        if reason is not None:
            self.control.bus.send(peer_id, {"k": "mig_ready", "id": migration_id, "error": reason})
            return
        self._send_ready(answers)
        if new:
            self.created_ms[migration_id] = self.runtime.clock_ms()
            log.info("migration %s: importing %s from %s", migration_id[:12], request.slots, peer_id[:12])
            self.wake_cleanup()  # an earlier attempt's keys may be staged there: delete them first

    def on_cleared(self) -> None:
        """A cleanup chunk ran (or nothing was to delete): imports whose slots are empty may stream."""
        count = self.runtime.data.keyspace.count_in_slot
        for job in self.jobs.values():
            self._send_ready(job.on_cleared(count))

    def _send_ready(self, answers: list[Ready]) -> None:
        for ready in answers:
            self.control.bus.send(ready.source_node_id, {"k": "mig_ready", "id": ready.migration_id})

    def _on_data(self, peer_id: str, payload: dict) -> None:
        """Queue a stream message for the apply task; a full queue drops it (the source sends it again)."""
        job = self.jobs.get(payload["id"])
        if job is None or job.source_node_id != peer_id or len(self._inbox) >= limits.migration_inbox_msgs_max:
            return  # not ours, or too much already waiting
        if payload["recs"]:
            self._inbox.append((peer_id, payload, 0))
        self._queued.set()

    def _apply_next(self) -> None:
        """Apply the next queued record (the apply task's bounded chunk), after any the import already holds."""
        peer_id, payload, index = self._inbox[0]
        job, first, records = self.jobs.get(payload["id"]), payload["from"], payload["recs"]
        # Records already applied (a resend) are skipped in the same chunk: they cost nothing to skip.
        held = 0 if job is None else max(0, min(job.received - (first + index) + 1, len(records) - index - 1))
        end = index + held + 1
        if end >= len(records):
            self._inbox.popleft()
        else:
            self._inbox[0] = (peer_id, payload, end)
        if job is None or job.source_node_id != peer_id:
            return  # the import ended while the message waited
        runtime = self.runtime
        gate = runtime.node.write_gate(monotonic_ms(), runtime.wal.has_room())
        receipt = receive(job, runtime.data, first + index, records[index:end], gate=gate)
        if receipt.overflow:
            log.warning("migration %s: too far behind; the source will abort", job.migration_id[:12])
            self._end(job.migration_id, self.control.state)
        runtime.log_outbox()
        self._send_acks(receipt.reack)
        if receipt.applied:
            self._applied.set()

    def _send_acks(self, acks: list[AckSource]) -> None:
        for ack in acks:
            self.control.bus.send(ack.source_node_id, {"k": "mig_ack", "id": ack.migration_id, "offset": ack.offset})

    async def apply_loop(self) -> None:
        """Apply queued stream records in order, within the migration's share of the event loop."""
        applying = Pacer()
        while True:
            while self._inbox:
                await applying.run(self._apply_next)
            await self._queued.wait()
            self._queued = trio.Event()

    async def ack_loop(self) -> None:
        """Acknowledge stream offsets once what they wrote is durable on every ISR member."""
        store = self.runtime.store
        while True:
            await self._applied.wait()
            self._applied = trio.Event()
            try:
                await store.wait_acked(self.runtime.data.applied_offset)
            except AckAborted:
                continue  # deposed: the configuration ends the imports
            for job in list(self.jobs.values()):
                self._send_acks(job.on_durable(store.acked_offset))
