"""Routing: who serves a slot, and the exact error every other client gets."""

import copy

from trionode.core import errors
from trionode.core.cluster.commands import apply, command
from trionode.core.cluster.state import ClusterState
from trionode.core.data_state import DataState
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.reply import Action, ErrorReply
from trionode.core.routing import Routing, from_cluster_state, not_a_member
from trionode.core.server_specs import SERVER_COMMANDS
from trionode.core.session import Node, NodeFacts, Session
from trionode.core.slots import key_slot

A, B, R = "a" * 40, "b" * 40, "c" * 40
SA, SB = "1" * 40, "2" * 40
MID = "9" * 40


def _state() -> ClusterState:
    state = ClusterState()
    cmds = [
        command("bootstrap", cluster_id="f" * 40, node_id=A, host="127.0.0.1", port=7001, bus_port=17001),
        command("node_join", node_id=B, host="127.0.0.1", port=7002, bus_port=17002),
        command("node_join", node_id=R, host="127.0.0.1", port=7003, bus_port=17003),
        command("shard_create", shard_id=SA, epoch=1, primary_id=A),
        command("slots_assign", shard_id=SA, epoch=1, slots=[(0, 8000)]),
        command("shard_create", shard_id=SB, epoch=2, primary_id=B),
        command("slots_assign", shard_id=SB, epoch=2, slots=[(8001, 16000)]),
        command("replica_attach", shard_id=SA, epoch=1, node_id=R),
    ]
    for index, cmd in enumerate(cmds, start=1):
        assert apply(state, index, cmd).ok
    return state


def test_primary_serves_its_slots_and_moves_the_rest() -> None:
    routing = from_cluster_state(_state(), A)
    assert routing.error_for(5) is None
    assert routing.error_for(9000) == "MOVED 9000 127.0.0.1:7002"
    assert routing.error_for(16100) == "CLUSTERDOWN Hash slot not served"


def test_replica_moves_writes_and_serves_readonly_reads_only_while_in_sync_and_streaming() -> None:
    state = _state()
    outside_isr = from_cluster_state(state, R, replica_serving=True)
    assert outside_isr.error_for(5, write=False, readonly_session=True) == "MOVED 5 127.0.0.1:7001"
    apply(state, 9, command("isr_expand", shard_id=SA, epoch=1, isr_version=state.shards[SA].isr_version,
                            node_id=R))
    serving = from_cluster_state(state, R, replica_serving=True)
    assert serving.error_for(5, write=False, readonly_session=True) is None
    assert serving.error_for(5, write=True, readonly_session=True) == "MOVED 5 127.0.0.1:7001"
    assert serving.error_for(5, write=False, readonly_session=False) == "MOVED 5 127.0.0.1:7001"
    loading = from_cluster_state(state, R, replica_serving=False)
    assert loading.error_for(5, write=False, readonly_session=True) == "MOVED 5 127.0.0.1:7001"


def test_writes_are_refused_below_min_insync_replicas() -> None:
    routing = from_cluster_state(_state(), A, min_insync_replicas=2)
    assert routing.error_for(5, write=True) == "NOREPLICAS Not enough good replicas to write."
    assert routing.error_for(5, write=False) is None


def test_a_full_disk_refuses_writes_but_not_reads() -> None:
    routing = from_cluster_state(_state(), A, disk_full=True)
    assert routing.disk_full
    assert routing.error_for(5) == errors.DISK_FULL and errors.DISK_FULL.startswith("MISCONF ")
    assert routing.error_for(5, write=False) is None
    assert routing.error_for(9000) == "MOVED 9000 127.0.0.1:7002"  # not ours: still redirected


def test_a_node_outside_any_cluster_is_down() -> None:
    assert not_a_member().error_for(0) == "CLUSTERDOWN The cluster is down"


def test_flushall_is_refused_on_both_shards_of_a_migration_and_paused_slots_are_carried() -> None:
    state = _state()
    cmd = command("migration_start", migration_id=MID, source_shard_id=SA, target_shard_id=SB, source_epoch=1,
                  target_epoch=2, slots=[(0, 9)])  # fmt: skip
    assert apply(state, state.applied_index + 1, cmd).ok
    for node in (A, B):
        routing = from_cluster_state(state, node, paused=frozenset({3}))
        assert routing.keyless_error(write=True) == errors.FLUSHALL_MIGRATING
        assert routing.keyless_error(write=False) is None and routing.paused == frozenset({3})
    assert apply(state, state.applied_index + 1, command("migration_abort", migration_id=MID)).ok
    assert from_cluster_state(state, A).keyless_error(write=True) is None


# --- just after a migration's commit: the two primaries apply it one after the other ------------

MOVING = (0, 9)
KEY = next(k for k in (b"key%d" % i for i in range(100_000)) if MOVING[0] <= key_slot(k) <= MOVING[1])
MOVED_TO_A = f"MOVED {key_slot(KEY)} 127.0.0.1:7001"
MOVED_TO_B = f"MOVED {key_slot(KEY)} 127.0.0.1:7002"


def _migrating() -> tuple[ClusterState, ClusterState]:
    """The configuration once SA -> SB's migration of MOVING started, and the same once it committed."""
    started = _state()
    cmd = command("migration_start", migration_id=MID, source_shard_id=SA, target_shard_id=SB, source_epoch=1,
                  target_epoch=2, slots=[MOVING])  # fmt: skip
    assert apply(started, started.applied_index + 1, cmd).ok
    committed = copy.deepcopy(started)
    commit = command("migration_commit", migration_id=MID, source_epoch=1, target_epoch=2)
    assert apply(committed, committed.applied_index + 1, commit).ok
    return started, committed


def _session(routes: Routing) -> Session:
    table = {name.encode(): spec for name, spec in {**KEYSPACE_COMMANDS, **SERVER_COMMANDS}.items()}
    facts = NodeFacts(B, SB, "127.0.0.1", 7002, 17002, 1, 0, "", "0")
    return Session(Node(DataState(), table, facts, dict, routes, lease_until_ms=1 << 62), 1, "127.0.0.1:1")


def test_only_the_target_primary_holds_the_slots_it_imports() -> None:
    started, committed = _migrating()
    assert from_cluster_state(started, B).importing == frozenset(range(MOVING[0], MOVING[1] + 1))
    assert from_cluster_state(started, A).importing == frozenset()  # the source
    assert from_cluster_state(committed, B).importing == frozenset()  # the slots are its own now


def test_a_client_sent_to_the_target_by_the_committed_source_is_not_sent_back() -> None:
    # The source applied the commit first and sends the client to the target, whose configuration
    # still names the source: the target answered MOVED back, and the client bounced between the two
    # until the target applied the commit too.
    started, committed = _migrating()
    assert _session(from_cluster_state(committed, A)).execute([b"SET", KEY, b"v"])[0] == ErrorReply(MOVED_TO_B)
    target = _session(from_cluster_state(started, B))
    for argv in ([b"SET", KEY, b"v"], [b"GET", KEY]):
        reply, _ = target.execute(argv)
        # Handed to the shell, which catches up with the leader's configuration before it redirects.
        assert isinstance(reply, Action) and reply.kind == "importing", reply
        assert reply.args == (argv, MOVED_TO_A)
    target.node.routing = from_cluster_state(committed, B)  # caught up: the commit was applied here
    assert target.execute([b"SET", KEY, b"v"])[0] == "OK" and target.execute([b"GET", KEY])[0] == b"v"


def test_other_redirects_of_the_target_are_unchanged() -> None:
    started, _ = _migrating()
    target = _session(from_cluster_state(started, B))
    other = next(k for k in (b"other%d" % i for i in range(100_000)) if MOVING[1] < key_slot(k) <= 8000)
    assert target.execute([b"GET", other])[0] == ErrorReply(f"MOVED {key_slot(other)} 127.0.0.1:7001")
    assert target.execute([b"MGET", KEY, other])[0] == ErrorReply(errors.CROSSSLOT)
    aborted = copy.deepcopy(started)
    assert apply(aborted, aborted.applied_index + 1, command("migration_abort", migration_id=MID)).ok
    assert _session(from_cluster_state(aborted, B)).execute([b"GET", KEY])[0] == ErrorReply(MOVED_TO_A)
