"""The failover simulation's safety checks (DESIGN S1, S2, S5, S7, S8, §5.4), run after every step.

Theory of operation
-------------------
:class:`FailoverChecker` keeps ``acked``: every effect any primary, of any
epoch, ever acknowledged, by offset. A primary acknowledges by reporting a
watermark (:meth:`on_watermark`); before ``acked`` grows from its log, the
checker shows that log starts with ``acked`` (one shard, one history: a new
primary's log must extend every acknowledged write, S1 across failovers).

- **S1** (:meth:`check`): every acknowledged offset is durable, with the
  acknowledged content, on the committed primary and on every member of the
  committed ISR (up or down: the disk is what counts). At acknowledgement,
  every member of the ISR the primary acknowledged under holds it durably.
  Content is compared incrementally: ``matched[node]`` is the prefix of the
  node's log shown equal to ``acked`` (cut back when the disk was cut).
- **S2**: at most one node *serves* at a time: believes it is the primary and
  its lease is valid on its own (drifting) clock. The set is passed in by the
  plane, computed with the same predicate the nodes use to accept commands.
- **S5**: a loading replica reports offset 0 and is not in the committed ISR;
  a chosen successor (:meth:`on_successor`) is in the committed ISR, not
  loading, and holds every acknowledged write (so offset > 0 once anything was
  acknowledged).
- **S8** (:meth:`on_member_change`): a committed replica-set change never
  leaves the ISR without a caught-up replica when it had one, and a new member
  starts outside the ISR.
- **S7 / §5.4**: what a node takes as acknowledged (its store's offset, which
  its replies and a replica's ``READONLY`` reads wait for) is a prefix of
  ``acked``, up or down, restarted or not: a restart takes recovery's word
  for it (core/wal/recovery.py), so a rule that trusts too much is caught at
  once, not only when a client happens to read the record;
- **replies**: kv_checks.py, fed the acknowledged log and, per offset, the
  ISR it was first acknowledged under (:meth:`isr_at`).

A failure raises :class:`InvariantViolation` naming the property.
"""

import bisect
from collections.abc import Callable, Mapping

from trionode.core.cluster import Shard
from trionode.sim.data_disk import DataDisk, Effect
from trionode.sim.invariants import InvariantViolation


class FailoverChecker:
    def __init__(self, name_of: Callable[[str], str]) -> None:
        self._name = name_of
        self.acked: list[Effect] = []  # Invariant: only grows
        self.ack_ends: list[int] = []  # ascending: offsets up to ack_ends[i] were first acknowledged under...
        self.ack_isrs: list[tuple[str, ...]] = []  # ...the ISR ack_isrs[i]
        self.matched: dict[str, int] = {}  # node -> prefix of its log equal to ``acked``

    def fail(self, message: str) -> None:
        raise InvariantViolation(message)

    def _match(self, node_id: str, disk: DataDisk) -> int:
        """The prefix of ``disk.log`` shown equal to ``acked`` (stops at the first difference)."""
        m = self.matched.get(node_id, 0)
        if disk.cut_to is not None:
            m = min(m, disk.cut_to)
        end = min(len(disk.log), len(self.acked))
        log, acked = disk.log, self.acked
        while m < end and log[m] == acked[m]:
            m += 1
        self.matched[node_id] = m
        return m

    def on_watermark(self, node_id: str, hw: int, isr_ids: tuple[str, ...], isr_version: int,
                     disks: Mapping[str, DataDisk]) -> None:  # fmt: skip
        """``node_id`` (a primary) reports ``hw`` acknowledged under ``isr_ids``: S1 at this moment."""
        for member in isr_ids:
            if disks[member].durable < hw:
                names = ",".join(self._name(m) for m in isr_ids)
                self.fail(
                    f"S1 durability: {self._name(node_id)} acknowledges {hw} under ISR [{names}] "
                    f"version {isr_version}, {self._name(member)} holds {disks[member].durable} durably"
                )
        disk = disks[node_id]
        have = self._match(node_id, disk)
        if have < min(hw, len(self.acked)):
            self.fail(
                f"S1 lost write: {self._name(node_id)} acknowledges {hw}, but its offset {have + 1} "
                f"differs from the acknowledged {self.acked[have]!r}"
            )
        if hw > len(self.acked):
            self.acked.extend(disk.log[len(self.acked) : hw])
            self.ack_ends.append(len(self.acked))
            self.ack_isrs.append(isr_ids)
        self.matched[node_id] = max(self.matched.get(node_id, 0), min(hw, len(disk.log)))

    def isr_at(self, offset: int) -> tuple[str, ...]:
        """The ISR that ``offset`` was first acknowledged under: every member held it durably then."""
        i = bisect.bisect_left(self.ack_ends, offset)
        return self.ack_isrs[i] if offset > 0 and i < len(self.ack_isrs) else ()

    def on_successor(self, node_id: str, shard: Shard, disk: DataDisk, loading: bool) -> None:
        who = self._name(node_id)
        if node_id not in shard.isr_ids:
            self.fail(f"S5 promotion: {who} is chosen but is not in the ISR")
        if loading or disk.loading_marker:
            self.fail(f"S5 promotion: {who} is chosen while loading")
        empty = disk.durable == 0 and node_id != shard.primary_id  # a reinstated primary may have no write yet
        if disk.durable < len(self.acked) or empty:
            self.fail(f"S5 promotion: {who} is chosen at offset {disk.durable}, {len(self.acked)} acknowledged")

    def on_member_change(self, op: str, before: Shard, after: Shard) -> None:
        had = set(before.isr_ids) - {before.primary_id}
        has = set(after.isr_ids) - {after.primary_id}
        if had and not has:
            self.fail(
                f"S8 membership: {op} left ISR {sorted(map(self._name, after.isr_ids))} without a caught-up replica"
            )
        joined = set(after.replica_ids) - set(before.replica_ids)
        if joined & set(after.isr_ids):
            self.fail(f"S8 membership: {op} admitted {sorted(map(self._name, joined))} straight into the ISR")

    def check(self, disks: Mapping[str, DataDisk], shard: Shard, serving: list[str],
              loading: Mapping[str, int | None]) -> None:  # fmt: skip
        """Every step. ``loading``: node -> the offset it reports while loading (absent: not loading)."""
        if len(serving) > 1:
            self.fail(f"S2 one writer: {', '.join(map(self._name, serving))} all hold a valid lease as primary")
        acked = len(self.acked)
        for member in (shard.primary_id, *shard.isr_ids):
            disk = disks[member]
            if disk.durable < acked:
                self.fail(
                    f"S1 durability: {acked} acknowledged, but {self._name(member)} (primary or ISR) "
                    f"holds {disk.durable} durably"
                )
            if (m := self._match(member, disk)) < acked:
                self.fail(
                    f"S1 lost write: {self._name(member)} (primary or ISR) holds {disk.log[m]!r} at "
                    f"offset {m + 1}, acknowledged {self.acked[m]!r}"
                )
        for node_id, reported in loading.items():
            if reported:
                self.fail(f"S5 loading offset: {self._name(node_id)} is loading but reports {reported}")
            if node_id in shard.isr_ids:
                self.fail(f"S5 loading in ISR: {self._name(node_id)} is loading and in the committed ISR")
        for node_id, disk in disks.items():
            if (m := self._match(node_id, disk)) < disk.acked_offset:
                self.fail(
                    f"S7 acknowledged offset: {self._name(node_id)} takes {disk.acked_offset} as acknowledged, but "
                    f"only its first {m} offsets are the acknowledged log ({len(self.acked)} long)"
                )
            disk.cut_to = None
