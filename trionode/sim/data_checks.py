"""The data plane's safety checks (DESIGN S1, S5, S7, §5.4), run after every step.

Theory of operation
-------------------
:class:`DataChecker` keeps ``acked``: every effect the shard ever acknowledged,
by offset (the union over all watermarks any primary tracker reported; with
one epoch they form one growing prefix). It checks:

- **S1 at acknowledgement** (:meth:`on_watermark`): a tracker's watermark never
  decreases, and the offset it reports is durable on the primary and on every
  member of the ISR the tracker acknowledged it under;
- **S1 ever after** (:meth:`check`): every acknowledged offset is durable on the
  primary (up or down) and on every member of the committed ISR. A member
  removed by a committed shrink is no longer bound; one admitted by an expand
  is, from the step it commits (S8: it must have caught up);
- **log matching**: each node's log agrees with the primary's on every offset
  both hold, and the primary's log starts with ``acked``. Together with the
  durable counts above, this makes every ISR copy identical, not just long;
- **S5**: a loading replica reports offset 0 and is not in the committed ISR
  (stricter than "out once its shrink commits": with the WAL kept back to
  ``hw + 1``, an ISR member always gets a partial sync, so it never starts
  loading while a member); the primary's tracker credits no replica with more
  than its disk holds;
- **S7 / §5.4**: a replica's read bound is None while loading, and otherwise
  never exceeds the acknowledged offset.

Log comparisons are incremental: ``matched[node]`` is the prefix already shown
equal to the primary's log, and each disk's ``cut_to`` says how far back its
log was cut since the last check. So a step costs what it appended.

A failure raises :class:`InvariantViolation` naming the property; the runner
prints ``FAIL seed=N step=S: <property>: <detail>`` with the trace.
"""

from collections.abc import Callable, Mapping

from trionode.sim.data_config import ShardConfig
from trionode.sim.data_disk import DataDisk, Effect
from trionode.sim.data_shells import PrimaryShell, ReplicaShell
from trionode.sim.invariants import InvariantViolation


class DataChecker:
    def __init__(self, primary_id: str, name_of: Callable[[str], str]) -> None:
        self.primary_id = primary_id
        self._name = name_of
        self.acked: list[Effect] = []  # Invariant: only grows; acked[o - 1] is acknowledged offset o
        self.matched: dict[str, int] = {}  # node -> prefix of its log shown equal to the primary's
        self._acked_matched = 0  # prefix of ``acked`` shown equal to the primary's log

    def fail(self, message: str) -> None:
        raise InvariantViolation(message)

    def on_watermark(self, shell: PrimaryShell, hw: int, disks: Mapping[str, DataDisk]) -> bool:
        """The primary reports ``hw`` acknowledged; True when it moved. Checks S1 at this moment."""
        if hw < shell.reported_hw:
            self.fail(f"S1 watermark decreased: {shell.reported_hw} -> {hw}")
        if hw == shell.reported_hw:
            return False
        shell.reported_hw = hw
        isr = shell.tracker.isr_ids
        for member in isr:
            if disks[member].durable < hw:
                names = ",".join(self._name(m) for m in isr)
                self.fail(f"S1 durability: offset {hw} acknowledged under ISR [{names}] version "
                          f"{shell.tracker.isr_version}, but {self._name(member)} holds "
                          f"{disks[member].durable} durably")  # fmt: skip
        if hw > len(self.acked):
            self.acked.extend(disks[self.primary_id].log[len(self.acked) : hw])
        return True

    def check(self, disks: Mapping[str, DataDisk], config: ShardConfig, primary: PrimaryShell | None,
              replicas: Mapping[str, ReplicaShell | None]) -> None:  # fmt: skip
        self._check_logs(disks)
        acked = len(self.acked)
        for member in (self.primary_id, *config.shard.isr_ids):
            if disks[member].durable < acked:
                self.fail(f"S1 durability: {acked} acknowledged, but ISR member {self._name(member)} holds "
                          f"{disks[member].durable} durably")  # fmt: skip
        for replica_id, shell in replicas.items():
            if shell is not None:
                self._check_replica(shell, replica_id in config.shard.isr_ids)
        if primary is not None:
            for replica_id, status in primary.tracker.replica_status().items():
                if status["offset"] > disks[replica_id].durable:
                    self.fail(f"S5 honest offset: the primary credits {self._name(replica_id)} with "
                              f"{status['offset']}, its disk holds {disks[replica_id].durable}")  # fmt: skip
        for disk in disks.values():
            disk.cut_to = None

    def _check_replica(self, shell: ReplicaShell, in_isr: bool) -> None:
        driver, name = shell.driver, self._name(shell.id)
        bound = driver.read_bound()
        if driver.health == "loading":
            if bound is not None:
                self.fail(f"S7 serving while loading: {name} would serve up to {bound}")
            if driver.reported_offset() != 0:
                self.fail(f"S5 loading offset: {name} is loading but reports {driver.reported_offset()}")
            if in_isr:
                self.fail(f"S5 loading in ISR: {name} is loading and in the committed ISR")
        if bound is not None and bound > len(self.acked):
            self.fail(f"S7 read bound: {name} would serve up to {bound}, only {len(self.acked)} acknowledged")

    def _check_logs(self, disks: Mapping[str, DataDisk]) -> None:
        primary = disks[self.primary_id]
        primary_cut = len(primary.log) if primary.cut_to is None else primary.cut_to
        if primary_cut < len(self.acked):
            self.fail(f"S1 durability: the primary's log was cut to {primary_cut}, {len(self.acked)} acknowledged")
        start = min(self._acked_matched, primary_cut)
        self._acked_matched = self._compare("acknowledged", self.acked, start, primary, "the primary")
        for node_id, disk in disks.items():
            if node_id != self.primary_id:
                cut = min(primary_cut, len(disk.log) if disk.cut_to is None else disk.cut_to)
                start = min(self.matched.get(node_id, 0), cut)
                self.matched[node_id] = self._compare(self._name(node_id), disk.log, start, primary, "the primary")

    def _compare(self, what: str, log: list[Effect], start: int, ref: DataDisk, ref_name: str) -> int:
        """Compare ``log`` with ``ref.log`` from ``start`` on; the length both hold."""
        end = min(len(log), len(ref.log))
        for i in range(start, end):
            if log[i] != ref.log[i]:
                self.fail(f"log matching: {what} holds {log[i]!r} at offset {i + 1}, {ref_name} {ref.log[i]!r}")
        return end
