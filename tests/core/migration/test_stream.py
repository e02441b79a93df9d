"""The migration stream: which effects it carries, how a copy rebuilds keys, and resending what the bus lost."""

from dataclasses import replace

import pytest

from trionode.core.data_state import DataState
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.migration.staging import AckSource, ConfigCatchUp, ImportJob, WriteGate
from trionode.core.migration.stream import (
    COPY,
    WRITE,
    StreamSender,
    apply_record,
    copy_record,
    receive,
    record_effects,
    stream_effect,
    well_formed,
)
from trionode.core.slots import key_slot

from ..keyspace.helpers import snapshot

MOVING, STAYING = b"{m}key", b"{s}key"
SLOTS = frozenset({key_slot(MOVING)})
NOW = 1_700_000_000_000
TABLE = {name.encode(): spec for name, spec in KEYSPACE_COMMANDS.items()}


def test_only_the_moving_slots_effects_go_into_the_stream() -> None:
    assert stream_effect((b"SET", MOVING, b"1"), SLOTS) == [b"SET", MOVING, b"1"]
    assert stream_effect((b"SET", STAYING, b"1"), SLOTS) is None
    # Active expiry and cleanup delete across slots in one effect: only the moving keys go.
    assert stream_effect((b"DEL", STAYING, MOVING), SLOTS) == [b"DEL", MOVING]
    with pytest.raises(AssertionError):
        stream_effect((b"FLUSHALL",), SLOTS)  # routing refuses it while a migration runs


def _run(data: DataState, *argv: bytes) -> None:
    data.execute(TABLE[argv[0].lower()], list(argv), NOW, primary=True)


def test_a_copy_and_the_writes_after_it_rebuild_the_source_keys_on_the_target() -> None:
    source, target = DataState(), DataState()
    _run(source, b"RPUSH", b"{m}list", b"a", b"b")
    _run(source, b"HSET", b"{m}hash", b"f", b"1", b"g", b"2")
    _run(source, b"SADD", b"{m}set", b"x")
    _run(source, b"SET", b"{m}str", b"v", b"PXAT", b"%d" % (NOW + 60_000))
    _run(target, b"SET", b"{m}str", b"stale")  # an earlier value the copy must replace whole
    keys = [b"{m}list", b"{m}hash", b"{m}set", b"{m}str"]
    records = [copy_record(source.keyspace.dump_keys(keys))]
    source.take_outbox()
    _run(source, b"LPUSH", b"{m}list", b"z")  # a write after the cut, streamed as logged
    records += [[WRITE, list(effect)] for _, effect in source.take_outbox()]
    slots = frozenset(key_slot(k) for k in keys)
    for record in records:
        assert well_formed(record, slots)
        apply_record(target, record)
    assert snapshot(target.keyspace) == snapshot(source.keyspace)


def test_a_write_that_fails_on_the_targets_partial_key_is_skipped_and_the_copy_repairs_it() -> None:
    source, target = DataState(), DataState()
    _run(source, b"HSET", b"{m}k", b"f", b"1")
    _run(target, b"RPUSH", b"{m}k", b"stale")  # cannot happen in a stream, but must not crash the target
    apply_record(target, [WRITE, [b"HSET", b"{m}k", b"g", b"2"]])
    assert target.keyspace.data[b"{m}k"].__class__ is not dict
    _run(source, b"HSET", b"{m}k", b"g", b"2")
    apply_record(target, copy_record(source.keyspace.dump_keys([b"{m}k"])))
    assert snapshot(target.keyspace) == snapshot(source.keyspace)


def test_malformed_records_are_refused() -> None:
    assert not well_formed([WRITE, [b"SET", STAYING, b"1"]], SLOTS)  # a key outside the import
    assert not well_formed([WRITE, [b"GET", MOVING]], SLOTS)
    assert not well_formed([WRITE, [b"SET", MOVING]], SLOTS)
    assert not well_formed(copy_record([[MOVING, "string", 5, None]]), SLOTS)
    assert not well_formed(copy_record([[MOVING, "zset", [b"a"], None]]), SLOTS)
    assert not well_formed(copy_record([[STAYING, "string", b"v", None]]), SLOTS)
    assert not well_formed([COPY, [MOVING, "string", b"v"]], SLOTS)  # an entry cut short
    assert well_formed(copy_record([[MOVING, "string", b"v", None], [MOVING, "set", [b"a"], 5]]), SLOTS)


def test_the_sender_resends_from_the_first_unacknowledged_record_after_silence() -> None:
    sender = StreamSender(resend_ms=100)
    for i in range(5):
        sender.append([WRITE, [b"SET", MOVING, b"%d" % i]], NOW)
    assert [o for o, _ in sender.take(3)] == [1, 2, 3]
    assert [o for o, _ in sender.take(3)] == [4, 5]
    sender.on_ack(2, NOW + 50)
    assert not sender.tick(NOW + 100)  # the ack was progress
    assert sender.take() == []
    assert sender.tick(NOW + 150)
    assert [o for o, _ in sender.take()] == [3, 4, 5]
    sender.on_ack(5, NOW + 160)
    assert not sender.records and not sender.tick(NOW + 10_000)


def test_the_target_applies_only_the_next_record_and_reacknowledges_duplicates() -> None:
    job = ImportJob("m" * 40, "n" * 40, ((0, 0),))
    job.on_cleared(lambda slot: 0)
    assert job.admit(1) and not job.admit(2)
    assert job.on_applied(1, 10)
    assert not job.admit(1) and not job.admit(3) and job.admit(2)
    assert job.reack() == []
    assert job.on_durable(10) == [AckSource("m" * 40, "n" * 40, 1)]
    assert job.reack() == [AckSource("m" * 40, "n" * 40, 1)]


OPEN = WriteGate(primary=True, lease_valid=True, disk_full=False, wal_room=True)


def test_a_stream_message_is_applied_only_with_wal_room_in_order_and_duplicates_ask_for_the_ack_again() -> None:
    data, job = DataState(), ImportJob("m" * 40, "n" * 40, tuple((s, s) for s in SLOTS), lag_records_max=2)
    message = [[WRITE, [b"SET", MOVING, b"1"]], [WRITE, [b"SET", MOVING, b"2"]]]
    assert receive(job, data, 1, message, gate=OPEN).applied == 0  # still clearing: dropped
    job.on_cleared(lambda slot: 0)
    full = replace(OPEN, wal_room=False)
    assert receive(job, data, 1, message, gate=full).applied == 0  # the WAL is full: dropped, resent later
    assert MOVING not in data.keyspace.data
    assert receive(job, data, 2, message, gate=OPEN).applied == 0  # a gap: the resend fills it
    first = receive(job, data, 1, message, gate=OPEN)
    assert (first.applied, first.reack, first.overflow) == (2, [], False)
    assert data.keyspace.data[MOVING] == b"2"
    job.on_durable(data.applied_offset)
    assert receive(job, data, 1, message, gate=OPEN).reack == [AckSource("m" * 40, "n" * 40, 2)]
    overflow = receive(job, data, 3, [[WRITE, [b"SET", MOVING, b"%d" % i]] for i in range(3)], gate=OPEN)
    assert overflow.overflow and overflow.applied == 3  # three records not yet durable on the ISR: too far behind


@pytest.mark.parametrize("closed", [{"lease_valid": False}, {"primary": False}, {"disk_full": True}])
def test_a_target_whose_lease_ran_out_logs_no_streamed_write(closed: dict[str, bool]) -> None:
    """A target primary deposed or cut off from its shard, which the source still reaches, must not log
    the stream: a new primary of its shard may be writing the same offsets (S2). The resend brings it again."""
    data, job = DataState(), ImportJob("m" * 40, "n" * 40, tuple((s, s) for s in SLOTS), lag_records_max=8)
    job.on_cleared(lambda slot: 0)
    receipt = receive(job, data, 1, [[WRITE, [b"SET", MOVING, b"1"]]], gate=replace(OPEN, **closed))
    assert receipt.applied == 0 and data.applied_offset == 0 and MOVING not in data.keyspace.data


def test_the_config_is_caught_up_once_the_leaders_read_index_is_applied() -> None:
    catch_up = ConfigCatchUp()
    assert not catch_up.caught_up(100)  # no answer yet: nothing is known
    catch_up.on_read_index(50)
    catch_up.on_read_index(70)  # only the first answer counts
    assert not catch_up.caught_up(49) and catch_up.caught_up(50)
    assert catch_up.caught_up(0)  # applying only moves forward: it stays caught up


def test_a_source_that_asks_again_gets_its_answer_again_once_the_slots_are_clear() -> None:
    job = ImportJob("m" * 40, "n" * 40, ((0, 0),))
    assert job.on_asked_again(lambda slot: 3) == []  # still clearing
    ready = job.on_asked_again(lambda slot: 0)
    assert ready and job.accepts_stream()
    assert job.on_asked_again(lambda slot: 0) == ready  # the first answer may have been dropped


def test_a_copy_chunk_of_plain_strings_is_a_few_effects_not_one_per_key() -> None:
    entries = [[b"{m}%d" % i, "string", b"v", None] for i in range(100)]
    entries.append([b"{m}ttl", "string", b"v", NOW])
    effects = record_effects(copy_record(entries), lambda key: key in (b"{m}1", b"{m}2"))
    assert [e[0] for e in effects] == [b"DEL", b"SET", b"MSET"]
    assert effects[0] == [b"DEL", b"{m}1", b"{m}2"] and effects[1] == [b"SET", b"{m}ttl", b"v", b"PXAT", b"%d" % NOW]
