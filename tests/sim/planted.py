"""Planted bugs: backends and disks that break one rule each, to prove the checker can fail.

A checker that passes whatever the code does is a defect (STYLE.md); each bug
here must make some seed fail with the invariant it breaks.
"""

import dataclasses
from typing import Any

from trionode.core.migration.export import PAUSED, PauseWrites
from trionode.core.raft.messages import Message, MsgType, Ready
from trionode.sim.backend import Backend, real_backend
from trionode.sim.migration_plane import MigrationPlane

VOTE_RESPONSES = (MsgType.VOTE_RESP, MsgType.PRE_VOTE_RESP)


class VoteFlipper:
    """A RawNode that grants every vote it is asked for, whatever its log and earlier vote say."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ready(self) -> Ready:
        ready = self._inner.ready()
        self._last = ready
        return dataclasses.replace(ready, messages=tuple(self._flip(m) for m in ready.messages))

    def advance(self, ready: Ready) -> None:
        self._inner.advance(self._last)

    @staticmethod
    def _flip(msg: Message) -> Message:
        return dataclasses.replace(msg, reject=False) if msg.type in VOTE_RESPONSES else msg


def vote_flipping_backend() -> Backend:
    real = real_backend()

    def make(node_id: str, rng: Any, **durable: Any) -> Any:
        return VoteFlipper(real.make_raw_node(node_id, rng, **durable))

    return dataclasses.replace(real, make_raw_node=make)


def epoch_reusing_backend() -> Backend:
    """A cluster state machine whose failover keeps the shard epoch: two primaries share an epoch."""
    real = real_backend()

    def apply(state: Any, index: int, command: Any) -> Any:
        before = state.shards.get(command.get("shard_id", "")) if isinstance(command, dict) else None
        result = real.apply(state, index, command)
        after = state.shards.get(before.id) if before is not None else None
        if command.get("op") == "failover" and after is not None and after.epoch != before.epoch:
            state.shards[after.id] = dataclasses.replace(after, epoch=before.epoch)
        return result

    return dataclasses.replace(real, apply=apply)


class EntryDropper(VoteFlipper):
    """A RawNode whose shell is never handed entries to persist, yet whose ACKs go out: acks without persisting."""

    def ready(self) -> Ready:
        ready = self._inner.ready()
        self._last = ready
        return dataclasses.replace(ready, entries=())


def ack_without_persist_backend(liar: str) -> Backend:
    real = real_backend()

    def make(node_id: str, rng: Any, **durable: Any) -> Any:
        inner = real.make_raw_node(node_id, rng, **durable)
        return EntryDropper(inner) if node_id == liar else inner

    return dataclasses.replace(real, make_raw_node=make)


# --- slot migration (trionode/sim/migration_plane.py) ------------------------------------------


class SelfAckingSource(MigrationPlane):
    """A source that takes the end of its stream as acknowledged once writes pause: it commits
    before the target holds the last records (the rule the export job keeps: commit only on the
    target's acknowledgement of the final offset)."""

    def carry(self, node: Any, actions: list[Any]) -> None:
        super().carry(node, actions)
        for action in actions:
            job = node.proc.controller.job(action.migration_id) if isinstance(action, PauseWrites) else None
            if job is not None and job.state == PAUSED:
                super().carry(node, job.on_target_ack(job.progress.sent_offset, self.now_ms))


class UnheldPause(MigrationPlane):
    """A pause that holds nothing: commands on the moving slots run on the source during the handover."""

    def mig_serves(self, node: Any, slot: int) -> bool:
        proc = node.proc
        return self.leased(node) and proc is not None and proc.roles is not None and proc.roles.serves(slot)


class StagedServer(MigrationPlane):
    """A target that serves the slots it is importing as if it owned them (staged keys visible)."""

    def mig_serves(self, node: Any, slot: int) -> bool:
        proc = node.proc
        if proc is not None and proc.roles is not None and proc.roles.staged(slot) and self.leased(node):
            return True
        return super().mig_serves(node, slot)


class UnheldOrphans(MigrationPlane):
    """A restarted source that lets writes to an orphan migration's slots run (the rule before seed 28)."""

    def carry(self, node: Any, actions: list[Any]) -> None:
        jobs = node.proc.controller.jobs
        super().carry(node, [a for a in actions if not (isinstance(a, PauseWrites) and a.migration_id not in jobs)])


class EarlyAckingTarget(MigrationPlane):
    """A target that acknowledges the stream once applied on its primary, not on its whole ISR (Valkey #2723)."""

    def import_durable(self, node: Any) -> int:
        return len(node.log)


class EarlyAckingShard:
    """In the failover plane with migrations: a target primary that acknowledges the stream once it logged it,
    not once its ISR holds it (Valkey #2723); a failover of the target may then lose moved keys."""

    def import_durable(self, node: Any) -> int:
        return len(node.disk.log)
