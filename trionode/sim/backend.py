"""The pieces the simulator drives, gathered so tests can swap in fakes or planted bugs.

Theory of operation. The simulator never imports the Raft core or the cluster
state machine directly: :func:`real_backend` binds them into a
:class:`Backend`, and a test can replace any field (a RawNode wrapper that
flips votes, a ``records_for`` that drops entries) to prove the invariant
checker catches the bug.
"""

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trionode.core.raft.messages import Entry, HardState, Ready, Snapshot

StateMachine = Any  # the cluster state; opaque to the simulator


@dataclass(frozen=True, slots=True)
class Restored:
    hard_state: HardState
    snapshot: Snapshot
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Backend:
    # Raft core
    make_raw_node: Callable[..., Any]  # (node_id, rng, *, hard_state, snapshot, entries) -> RawNode
    records_for: Callable[[Ready], list[Any]]
    snapshot_record: Callable[[Snapshot], Any]
    snapshot_from_record: Callable[[Any], Snapshot]
    replay: Callable[[Snapshot, Sequence[Any]], Restored]
    not_leader_errors: tuple[type[BaseException], ...]  # proposal refusals the workload expects
    transfer_errors: tuple[type[BaseException], ...]  # leadership transfer refusals
    # Cluster state machine
    new_state: Callable[[], StateMachine]
    apply: Callable[[StateMachine, int, Any], Any]  # (state, index, command) -> result
    check_invariants: Callable[[StateMachine], list[str]]
    to_snapshot: Callable[[StateMachine], Any]
    from_snapshot: Callable[[Any], StateMachine]
    primaries: Callable[[StateMachine], list[tuple[str, int, str]]]  # (shard, epoch, primary) sorted


def real_backend(election_ticks: int = 10, voters_max: int = 5) -> Backend:
    """The Raft core and cluster state machine under test (imported lazily: they may be in flux)."""
    from trionode.core.cluster import invariants as cluster_invariants
    from trionode.core.cluster import snapshot as cluster_snapshot
    from trionode.core.cluster import state as cluster_state
    from trionode.core.raft import config as raft_config
    from trionode.core.raft import durable, rawnode

    def make_raw_node(node_id: str, rng: random.Random, **durable_state: Any) -> Any:
        config = raft_config.RaftConfig(node_id=node_id, election_ticks=election_ticks, voters_max=voters_max)
        return rawnode.RawNode(config, rng, **durable_state)

    def replay(snapshot: Snapshot, records: Sequence[Any]) -> Restored:
        out = durable.replay(snapshot, list(records))
        return Restored(out.hard_state, out.snapshot, tuple(out.entries))

    from trionode.core.cluster import commands as cluster_commands

    def primaries(state: Any) -> list[tuple[str, int, str]]:
        return sorted((s.id, s.epoch, s.primary_id) for s in state.shards.values())

    return Backend(
        make_raw_node=make_raw_node,
        records_for=durable.records_for,
        snapshot_record=durable.snapshot_record,
        snapshot_from_record=durable.snapshot_from_record,
        replay=replay,
        not_leader_errors=(raft_config.NotLeader, raft_config.ProposalRefused, raft_config.ConfChangeRefused),
        transfer_errors=(raft_config.TransferRefused,),
        new_state=cluster_state.ClusterState,
        apply=cluster_commands.apply,
        check_invariants=cluster_invariants.check_invariants,
        to_snapshot=cluster_snapshot.to_snapshot,
        from_snapshot=cluster_snapshot.from_snapshot,
        primaries=primaries,
    )
