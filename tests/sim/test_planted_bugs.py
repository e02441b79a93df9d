"""The checker catches planted bugs: a vote flipper, a lying fsync, an epoch reused by failover."""

from collections.abc import Callable

import pytest

from tests.sim.planted import ack_without_persist_backend, epoch_reusing_backend, vote_flipping_backend
from trionode.sim.backend import Backend
from trionode.sim.disk import SimDisk
from trionode.sim.runner import SimConfig, node_id, run

SEEDS = range(1, 9)
STEPS = 1500


def _failures(backend_factory: Callable[[], Backend] | None = None) -> list[str]:
    results = [run(SimConfig(seed=s, steps=STEPS), backend_factory() if backend_factory else None) for s in SEEDS]
    return [r.failure for r in results if not r.ok]


def test_flipped_votes_break_raft_safety() -> None:
    failures = _failures(vote_flipping_backend)
    assert len(failures) >= len(SEEDS) // 2, failures
    raft_rules = ("election safety", "log matching", "leader completeness", "state machine safety", "committed")
    assert all(f.startswith(raft_rules) for f in failures), failures


def test_a_lying_fsync_is_caught_at_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SimDisk, "fsync", lambda self, name: None)  # acks entries that are not on disk
    failures = _failures()
    assert len(failures) >= len(SEEDS) // 2, failures
    # Caught at a restart, or earlier when a quorum's disks no longer hold a committed entry.
    assert all(f.startswith(("restart lost synced state", "committed entry lost")) for f in failures), failures


def test_acks_without_persisting_lose_committed_entries() -> None:
    failures = _failures(lambda: ack_without_persist_backend(liar=node_id(1)))
    assert len(failures) == len(SEEDS), failures
    assert sum(f.startswith("committed entry lost") for f in failures) >= len(SEEDS) // 2, failures


def test_a_reused_shard_epoch_is_caught() -> None:
    failures = _failures(epoch_reusing_backend)
    assert len(failures) >= len(SEEDS) // 2, failures
    assert all(f.startswith("one primary per epoch") for f in failures), failures


def test_the_real_backend_passes_the_same_seeds() -> None:
    assert _failures() == []
