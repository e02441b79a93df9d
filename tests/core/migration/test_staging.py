"""The staged-keys slot rule and the target's import job."""

from dataclasses import replace

from trionode.core.keyspace.store import Keyspace
from trionode.core.migration.staging import (
    AckSource,
    CountInSlot,
    DeleteChunk,
    ImportJob,
    ImportRequest,
    Ready,
    SlotRoles,
    WriteGate,
    answer_import,
    cleanup_chunk,
    cleanup_delete,
    import_over,
    refuse_import,
)

from ..cluster.helpers import M1, M2, S1, S2, N, two_shards


def _counts(keys: dict[int, int]) -> CountInSlot:
    return lambda slot: keys.get(slot, 0)


def test_staged_slots_are_hidden_until_the_commit_makes_them_owned() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 9]])
    target, source = SlotRoles.from_config(h.state, S2), SlotRoles.from_config(h.state, S1)
    assert target.staged(5) and not target.serves(5) and not target.staged(10)
    assert source.serves(5) and not source.staged(5)  # the source serves until the commit
    h.ok("migration_commit", migration_id=M1, source_epoch=1, target_epoch=2)
    target, source = SlotRoles.from_config(h.state, S2), SlotRoles.from_config(h.state, S1)
    assert target.serves(5) and not source.serves(5) and not source.staged(5)


def test_an_abort_turns_staged_keys_into_leftovers() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 9]])
    h.ok("migration_abort", migration_id=M1)
    roles = SlotRoles.from_config(h.state, S2)
    assert not roles.serves(5) and not roles.staged(5)
    chunk = cleanup_chunk(roles, _counts({5: 3, 9000: 4}), config_caught_up=True, keys_max=7)
    assert chunk == DeleteChunk(((5, 5),), 7)  # slot 9000 is S2's own: never deleted


def test_every_slot_not_owned_is_hidden_staged_or_foreign() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 9]])
    hidden = SlotRoles.from_config(h.state, S2).hidden()
    assert 5 in hidden and 10 in hidden and 9000 not in hidden
    assert len(hidden) == 8192


def test_cleanup_waits_for_a_caught_up_config_and_spares_staged_slots_unless_clearing() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 9]])
    roles = SlotRoles.from_config(h.state, S2)
    counts = _counts({3: 5, 20: 1, 9000: 7})
    # A restarted node's config lags: slot 20 may have been committed to it before the crash.
    assert cleanup_chunk(roles, counts, config_caught_up=False) is None
    assert cleanup_chunk(roles, counts, config_caught_up=True).slots == ((20, 20),)
    cleared = cleanup_chunk(roles, counts, config_caught_up=True, clearing=frozenset(range(10)))
    assert cleared.slots == ((3, 3), (20, 20))
    assert cleanup_chunk(roles, _counts({9000: 7}), config_caught_up=True) is None


def test_only_a_primary_that_may_write_deletes_leftovers_and_only_hidden_keys() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 9]])
    h.ok("migration_abort", migration_id=M1)
    roles = SlotRoles.from_config(h.state, S2)
    keyspace = Keyspace()
    for key in (b"{k596}", b"{k2603}", b"mine"):  # slots 0 and 2 (the aborted import's), 12680 (S2's own)
        keyspace.put_string(key, b"v")
    may = WriteGate(primary=True, lease_valid=True, disk_full=False, wal_room=True)
    assert cleanup_delete(roles, keyspace, may, config_caught_up=True) == [b"DEL", b"{k596}", b"{k2603}"]
    assert cleanup_delete(roles, keyspace, may, config_caught_up=True, keys_max=1) == [b"DEL", b"{k596}"]
    for closed in (dict(primary=False), dict(lease_valid=False), dict(disk_full=True), dict(wal_room=False)):
        gate = replace(may, **closed)
        assert cleanup_delete(roles, keyspace, gate, config_caught_up=True) is None, closed
    assert cleanup_delete(None, keyspace, may, config_caught_up=True) is None  # not in a shard yet


def test_a_request_adds_one_import_that_answers_once_its_slots_are_empty_and_again_when_asked() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 9]])
    jobs: dict = {}
    request = ImportRequest(M1, N[0], ((0, 9),))
    assert answer_import(jobs, request, h.state, N[4], _counts({})) == ([], "Target node is not a primary")
    assert not jobs
    assert answer_import(jobs, request, h.state, N[1], _counts({3: 2})) == ([], None)  # an earlier attempt's keys
    job = jobs[M1]
    assert answer_import(jobs, request, h.state, N[1], _counts({})) == ([Ready(M1, N[0])], None)
    assert jobs == {M1: job} and job.accepts_stream()
    assert answer_import(jobs, request, h.state, N[1], _counts({})) == ([Ready(M1, N[0])], None)  # answer lost


def test_an_import_is_accepted_only_when_the_configuration_agrees() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 9]])
    ok = ImportRequest(M1, N[0], ((0, 9),))
    assert refuse_import(ok, h.state, N[1]) is None
    assert refuse_import(ok, h.state, N[4]) == "Target node is not a primary"
    assert refuse_import(ImportRequest(M1, "9" * 40, ((0, 9),)), h.state, N[1]) == (
        "Target node does not know the source node"
    )
    assert refuse_import(ImportRequest(M1, N[1], ((0, 9),)), h.state, N[1]) == "Source node is target node itself"
    disagree = "Target node does not agree about current slot ownership"
    assert refuse_import(ImportRequest(M1, N[0], ((0, 8),)), h.state, N[1]) == disagree
    assert refuse_import(ImportRequest(M2, N[0], ((0, 9),)), h.state, N[1]) == disagree
    assert refuse_import(ImportRequest(M1, N[2], ((0, 9),)), h.state, N[1]) == disagree  # a replica of the source


def test_an_import_clears_its_slots_before_it_accepts_the_stream() -> None:
    job = ImportJob(M1, N[0], ((0, 9),))
    assert not job.accepts_stream()
    assert job.on_cleared(_counts({4: 1})) == []  # an aborted attempt's key is still there
    assert job.on_cleared(_counts({10: 1})) == [Ready(M1, N[0])]
    assert job.accepts_stream() and job.on_cleared(_counts({})) == []


def test_the_source_is_acked_only_what_the_whole_isr_holds() -> None:
    job = ImportJob(M1, N[0], ((0, 9),), lag_records_max=3)
    job.on_cleared(_counts({}))
    assert job.on_applied(1, 100) and job.on_applied(2, 101) and job.on_applied(3, 105)
    assert job.on_durable(99) == []
    assert job.on_durable(102) == [AckSource(M1, N[0], 2)]
    assert job.on_durable(104) == []
    assert job.on_durable(200) == [AckSource(M1, N[0], 3)] and job.acked == 3
    assert job.on_applied(4, 201) and job.on_applied(5, 202) and job.on_applied(6, 203)
    assert not job.on_applied(7, 204)  # too far behind: the import aborts rather than buffer more


def test_an_import_ends_with_its_migration_or_when_this_node_stops_being_primary() -> None:
    h = two_shards()
    h.migrate_start(M1, S1, S2, [[0, 9]])
    assert not import_over(h.state, M1, N[1])
    assert import_over(h.state, M1, N[4])  # a replica of the target imports nothing itself
    h.ok("migration_abort", migration_id=M1)
    assert import_over(h.state, M1, N[1])
