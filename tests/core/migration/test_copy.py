"""Copy chunks from a cut, interleaved with writes in one ordered stream: the target converges."""

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from trionode.core.errors import CommandError
from trionode.core.keyspace import Keyspace, execute
from trionode.core.migration.copy import SlotCopier
from trionode.core.slots import key_slot

from ..keyspace.helpers import START_MS, snapshot

# Keys of two slots that move ({a} and {b}) and one that stays ({c}).
KEYS = [f"{{{tag}}}k{i}".encode() for tag in "abc" for i in range(6)]
MOVING = sorted({key_slot(b"{a}"), key_slot(b"{b}")})
WRITES = st.sampled_from(["SET", "DEL", "RPUSH", "HSET", "SADD", "PEXPIRE", "LPOP"])


def _write(draw: st.DrawFn) -> list[bytes]:
    op, key = draw(WRITES), draw(st.sampled_from(KEYS))
    value = str(draw(st.integers(0, 9))).encode()
    args = {"SET": [value], "DEL": [], "RPUSH": [value], "HSET": [b"f", value], "SADD": [value],
            "PEXPIRE": [b"100000"], "LPOP": []}[op]  # fmt: skip
    return [op.encode(), key, *args]


def _run(ks: Keyspace, argv: list[bytes]) -> None:
    with contextlib.suppress(CommandError):  # WRONGTYPE and friends change nothing
        execute(ks, argv)


def _apply_chunk(target: Keyspace, entries: list[list]) -> None:
    """The target replaces each key of a chunk whole."""
    for entry in entries:
        if entry[0] in target.data:
            target.delete(entry[0])
    target.load_chunk(entries)


def _moving_contents(ks: Keyspace) -> list:
    """The moving slots' keys, as comparable values: a set's members in no particular order (as SMEMBERS)."""
    entries = sorted((entry for entry in snapshot(ks) if key_slot(entry[0]) in MOVING), key=lambda entry: entry[0])
    return [[key, kind, sorted(value) if kind == "set" else value, *rest] for key, kind, value, *rest in entries]


@settings(max_examples=100, deadline=None)
@given(st.data(), st.integers(1, 3))
def test_chunks_and_streamed_writes_converge_to_the_source(data: st.DataObject, keys_max: int) -> None:
    source, target, copier = Keyspace(), Keyspace(), SlotCopier()
    source.now_ms = START_MS
    for _ in range(data.draw(st.integers(0, 25))):  # the slots' contents before the migration
        _run(source, _write(data.draw))
    source.effects.clear()
    for slot in MOVING:
        cursor: int | None = 0
        while cursor is not None:
            for _ in range(data.draw(st.integers(0, 3))):  # writes land between chunks...
                _run(source, _write(data.draw))
                for effect in source.effects:  # ...and those to the moving slots are streamed, in order
                    if key_slot(effect[1]) in MOVING:
                        execute(target, effect)
                source.effects.clear()
            entries, cursor = copier.chunk(source, slot, cursor, keys_max)
            _apply_chunk(target, entries)
    assert _moving_contents(target) == _moving_contents(source)
    assert all(key_slot(key) in MOVING for key in target.data)
    target.check_invariants()


def test_a_slot_is_paged_from_its_cut_skipping_keys_deleted_since_and_never_scanning_other_slots() -> None:
    ks = Keyspace()
    ks.now_ms = START_MS
    for i in range(5):
        execute(ks, [b"SET", f"{{a}}k{i}".encode(), b"v"])
    execute(ks, [b"SET", b"{c}other", b"v"])
    slot, copier = key_slot(b"{a}"), SlotCopier()
    entries, cursor = copier.chunk(ks, slot, 0, 2)
    assert [e[0] for e in entries] == [b"{a}k0", b"{a}k1"] and cursor == 2
    execute(ks, [b"DEL", b"{a}k2"])  # streamed as a DEL: the chunk skips it
    execute(ks, [b"SET", b"{a}new", b"v"])  # streamed as a SET: not in the cut
    entries, cursor = copier.chunk(ks, slot, cursor, 2)
    assert [e[0] for e in entries] == [b"{a}k3"] and cursor == 4
    entries, cursor = copier.chunk(ks, slot, cursor, 2)
    assert entries == [[b"{a}k4", "string", b"v", None]] and cursor is None
