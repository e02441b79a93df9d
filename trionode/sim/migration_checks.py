"""The migration simulation's checks: S3 in every committed configuration, and no acknowledged write lost.

Theory of operation
-------------------
:class:`MigrationChecker` is told every committed entry, every write a client
saw acknowledged, every reply a node served, and which nodes accept writes
at each step; it raises :class:`MigrationViolation` at the first breach:

- **S3** (DESIGN §2): after every committed entry each slot has exactly one
  owner, a shard of the configuration, and a slot changes owner only by an
  applied ``migration_commit`` that names it, from the migration's source to
  its target;
- **one writer per slot**: at every step, a node that accepts writes for a
  slot belongs to the shard that owns it in the committed configuration. The
  source accepting a write after the commit, or the target before it (a
  staged key served), breaks it;
- **no acknowledged write lost**: every key's values are numbered in the order
  the clients wrote them, one write in flight per key. A reply served for a
  key must hold a value at least as new as the last one acknowledged before
  the read was sent; after the quiet end, the owner's primary must hold such a
  value for every key, and the other shard none of the moved keys.
"""

from dataclasses import dataclass, field
from typing import Any

from trionode.core.cluster import ApplyResult, ClusterState
from trionode.core.cluster.state import slots_of
from trionode.core.slots import key_slot


class MigrationViolation(AssertionError):
    pass


@dataclass(slots=True)
class KeyHistory:
    values: list[bytes] = field(default_factory=list)  # every value written, in order
    acked: int = -1  # Invariant: the index of the newest acknowledged value (-1: none yet)


class MigrationChecker:
    def __init__(self, keys: list[bytes]) -> None:
        self.keys = {key: KeyHistory() for key in keys}

    # --- the configuration -------------------------------------------------------------

    def on_commit(self, cmd: dict[str, Any], result: ApplyResult, before: list[str | None],
                  after: ClusterState) -> None:  # fmt: skip
        """S3 for the configuration a committed entry produced (``before``: the slot owners before it)."""
        owners = after.slot_owners
        if not set(owners) <= after.shards.keys():
            raise MigrationViolation(f"S3: a slot has no owner shard after {cmd['op']}")
        if owners == before:
            return
        changed = {slot for slot, (old, new) in enumerate(zip(before, owners, strict=True)) if old != new}
        if cmd["op"] != "migration_commit" or not result.ok:
            raise MigrationViolation(f"S3: {cmd['op']} changed the owner of slots {sorted(changed)[:4]}")
        moved = next(m for m in reversed(after.migration_history) if m.id == cmd["migration_id"])
        slots = set(slots_of(moved.slots))
        if changed != slots or any(before[s] != moved.source_shard_id or owners[s] != moved.target_shard_id
                                   for s in slots):  # fmt: skip
            raise MigrationViolation(f"S3: migration {moved.id[:8]} moved {sorted(changed)[:4]}, not its slots")

    def on_writers(self, writers: dict[int, list[tuple[str, str]]], committed: ClusterState) -> None:
        """``writers``: per slot, the (node, shard) pairs accepting writes for it now."""
        for slot, nodes in writers.items():
            owner = committed.slot_owners[slot]
            strangers = [node for node, shard in nodes if shard != owner]
            if strangers or len(nodes) > 1:
                raise MigrationViolation(f"slot {slot} owned by shard {str(owner)[:6]} accepts writes on {nodes}")

    # --- the clients ---------------------------------------------------------------------

    def on_write(self, key: bytes) -> bytes:
        """A client is about to write ``key``: the new value."""
        history = self.keys[key]
        value = b"%d" % len(history.values)
        history.values.append(value)
        return value

    def on_acked(self, key: bytes, value: bytes) -> None:
        history = self.keys[key]
        index = history.values.index(value)
        history.acked = max(history.acked, index)

    def on_read(self, key: bytes, value: bytes | None, acked_before: int, where: str) -> None:
        self._at_least(key, value, acked_before, f"a read of {key!r} on {where}")

    def acked_index(self, key: bytes) -> int:
        return self.keys[key].acked

    def at_end(self, owner_value: dict[bytes, bytes | None], others: dict[bytes, bool]) -> None:
        """The quiet end: each key's owner holds it; ``others``: the non-owner shard still holds the key."""
        for key, value in owner_value.items():
            self._at_least(key, value, self.keys[key].acked, f"the final read of {key!r} (slot {key_slot(key)})")
        kept = sorted(key for key, held in others.items() if held)
        if kept:
            raise MigrationViolation(f"keys left on the shard that does not own them: {kept[:4]}")

    def _at_least(self, key: bytes, value: bytes | None, acked: int, what: str) -> None:
        history = self.keys[key]
        if value is None:
            if acked >= 0:
                raise MigrationViolation(f"{what} found nothing; value #{acked} was acknowledged")
            return
        if value not in history.values:
            raise MigrationViolation(f"{what} returned {value!r}, never written")
        if history.values.index(value) < acked:
            raise MigrationViolation(f"{what} returned #{value.decode()}; #{acked} was acknowledged before "
                                     "(a lost write, or a stale read)")  # fmt: skip
