"""CLUSTER MIGRATESLOTS parsing and CLUSTER GETSLOTMIGRATIONS replies, as pure functions.

Theory of operation. ``CLUSTER MIGRATESLOTS SLOTSRANGE s e [s e ...] NODE id
[SLOTSRANGE ... NODE ...]`` is sent to the source primary and is all or
nothing: :func:`parse_migrateslots` checks every group against the applied
configuration and raises :class:`CommandError` with Valkey 9's message (in
Valkey's order) before any job exists, or returns one :class:`ExportRequest`
per group. Each group becomes one job, as in Valkey.

Beyond Valkey: a slot already in a migration of the configuration (not only
one of this node's jobs) counts as migrating, and the target must be the
primary of another shard (Valkey's target refuses later, in its handshake).

:func:`migration_rows` formats jobs for GETSLOTMIGRATIONS: an array of maps
with Valkey's keys (times in unix seconds), plus trionode's progress extras.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from trionode import limits
from trionode.core import errors
from trionode.core.cluster.state import ClusterState, SlotRange, is_id, normalize_ranges, slots_of
from trionode.core.errors import CommandError


@dataclass(frozen=True, slots=True)
class ExportRequest:
    slots: tuple[SlotRange, ...]  # Invariant: normalized, non-empty, owned by this node's shard.
    target_node_id: str
    target_shard_id: str


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job as GETSLOTMIGRATIONS shows it (the node's view, import or export)."""

    name: str
    operation: str  # EXPORT | IMPORT
    slots: tuple[SlotRange, ...]
    source_node: str
    target_node: str
    create_ms: int
    last_update_ms: int
    last_ack_ms: int
    state: str
    message: str = ""
    keys_copied: int = 0
    bytes_copied: int = 0
    lag: int = 0
    write_pause_ms: int = 0


def _int(arg: bytes) -> int | None:
    try:
        return int(arg)
    except ValueError:
        return None


def _slot(arg: bytes) -> int:
    value = _int(arg)
    if value is None or not 0 <= value < limits.slots_count:
        raise CommandError(errors.INVALID_SLOT)
    return value


def _ranges(argv: Sequence[bytes], i: int, state: ClusterState) -> tuple[list[SlotRange], str | None, int]:
    """Parse ``s e`` pairs from ``argv[i]`` up to the first non-integer: ranges, owner shard, next index."""
    ranges: list[SlotRange] = []
    owner: str | None = None
    while i < len(argv) and _int(argv[i]) is not None:
        start = _slot(argv[i])
        if i + 1 >= len(argv):
            raise CommandError(errors.MIGRATE_NO_END_SLOT)
        end = _slot(argv[i + 1])
        if start > end:
            raise CommandError(errors.migrate_start_after_end(start, end))
        for slot in range(start, end + 1):
            shard = state.slot_owners[slot]
            if shard is None:
                raise CommandError(errors.migrate_slot_unserved(slot))
            if owner is not None and shard != owner:
                raise CommandError(errors.MIGRATE_SPANS_SHARDS)
            owner = shard
        for prev_start, prev_end in ranges:
            if start <= prev_end and prev_start <= end:
                raise CommandError(errors.migrate_ranges_overlap(start, end, prev_start, prev_end))
        ranges.append((start, end))
        i += 2
    if not ranges:
        raise CommandError(errors.MIGRATE_NO_RANGES)
    return ranges, owner, i


def _target(argv: Sequence[bytes], i: int, state: ClusterState, myself_id: str) -> tuple[str, str]:
    if i + 1 >= len(argv) or argv[i].lower() != b"node":
        raise CommandError(errors.SYNTAX)
    name = argv[i + 1].decode("utf-8", "replace")
    if len(argv[i + 1]) != 40:
        raise CommandError(errors.invalid_node_name(name))
    node = state.nodes.get(name) if is_id(name) else None
    if node is None:
        raise CommandError(errors.unknown_node_name(name))
    if node.id == myself_id:
        raise CommandError(errors.MIGRATE_TARGET_IS_SELF)
    if node.role != "primary" or node.shard_id is None:
        raise CommandError(errors.MIGRATE_TARGET_NOT_PRIMARY)
    return node.id, node.shard_id


def parse_migrateslots(argv: Sequence[bytes], state: ClusterState, myself_id: str,
                       exporting: Iterable[int] = ()) -> list[ExportRequest]:  # fmt: skip
    """Validate ``CLUSTER MIGRATESLOTS ...`` (``argv[0:2]`` is the command) against ``state``.

    ``exporting`` holds the slots of this node's unfinished export jobs; the
    slots of every migration in ``state`` count too. Raises CommandError.
    """
    me = state.nodes.get(myself_id)
    if me is None or me.role != "primary":
        raise CommandError(errors.MIGRATE_NOT_PRIMARY)
    busy = set(exporting).union(*(slots_of(m.slots) for m in state.migrations.values()))
    requests: list[ExportRequest] = []
    i = 2
    while i < len(argv):
        if argv[i].lower() != b"slotsrange":
            raise CommandError(errors.SYNTAX)
        ranges, owner, i = _ranges(argv, i + 1, state)
        if owner != me.shard_id:
            raise CommandError(errors.MIGRATE_NOT_SERVED_HERE)
        slots = slots_of(ranges)
        if slots & busy:
            raise CommandError(errors.migrate_already_migrating(min(slots & busy)))
        if any(slots & slots_of(r.slots) for r in requests):
            raise CommandError(errors.MIGRATE_JOBS_OVERLAP)
        node_id, shard_id = _target(argv, i, state, myself_id)
        requests.append(ExportRequest(normalize_ranges(ranges), node_id, shard_id))
        i += 2
    if not requests:
        raise CommandError(errors.SYNTAX)
    return requests


def ranges_text(ranges: Iterable[SlotRange]) -> str:
    """Valkey's ``slot_ranges`` form: ``"0-10 20-29"`` (a single slot as ``"5-5"``)."""
    return " ".join(f"{start}-{end}" for start, end in ranges)


def migration_rows(rows: Iterable[JobRow]) -> list[dict[bytes, object]]:
    """The GETSLOTMIGRATIONS reply: one map per job, Valkey's keys first, then the extras."""
    return [dict(_row_items(row)) for row in rows]


def migration_row_status(row: JobRow) -> dict[str, object]:
    """One job as ``trionode status --json`` lists it: the same keys, as JSON text and numbers."""
    return {key.decode(): value.decode() if isinstance(value, bytes) else value for key, value in _row_items(row)}


def _row_items(row: JobRow) -> Iterator[tuple[bytes, object]]:
    yield b"name", row.name.encode()
    yield b"operation", row.operation.encode()
    yield b"slot_ranges", ranges_text(row.slots).encode()
    yield b"source_node", row.source_node.encode()
    yield b"target_node", row.target_node.encode()
    yield b"create_time", row.create_ms // 1000
    yield b"last_update_time", row.last_update_ms // 1000
    yield b"last_ack_time", row.last_ack_ms // 1000
    yield b"state", row.state.encode()
    yield b"message", row.message.encode()
    yield b"keys_copied", row.keys_copied
    yield b"bytes_copied", row.bytes_copied
    yield b"lag", row.lag
    yield b"write_pause_ms", row.write_pause_ms
