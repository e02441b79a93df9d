"""The failover simulation's clients (kv_workload.py) and reply checks (kv_checks.py) can fail.

Each planted bug breaks one decision the node's command path makes, in the
shipped core the simulator drives, and the checker must name what a client
would have seen: a replica that expires keys itself or a keyless write run
anywhere (own write), a reply that does not wait for the watermark
(unacknowledged read), a key served past its deadline (expired read), and a
replica that serves from a keyspace behind what it acknowledged (stale read:
older than the client's own write), a lease checked on a clock read before a
wait (S2 serving), and a WAIT that counts replicas lacking the write. Each searches the first seeds for a few that
show its bug, with a step count short enough that the file stays cheap in CI.
"""

from collections.abc import Callable
from typing import Any

import pytest

from trionode.core.data_state import DataState
from trionode.core.keyspace.store import Keyspace
from trionode.core.replication.primary import PrimaryTracker
from trionode.core.routing import Routing
from trionode.core.visibility import Visibility
from trionode.sim import failover_nemesis
from trionode.sim.kv_checks import Reference, visible
from trionode.sim.kv_workload import KVWorkload, NodeKeyspace
from trionode.sim.runner import SimConfig, Simulation, report

# CPU-bound seed searches: the bound catches a hang; a loaded machine is several times slower.
pytestmark = pytest.mark.timeout(480)

SEARCH_SEEDS = range(1, 41)


def _failures(want: int, steps: int, seeds: range = SEARCH_SEEDS) -> list[str]:
    """The first ``want`` failures among ``seeds`` (fewer if the bug is missed).

    The search stops at the ``want``-th, so a caught bug costs a few seeds, and any change to the
    simulation that moves which seeds show it does not break the test.
    """
    failures: list[str] = []
    for seed in seeds:
        result = Simulation(SimConfig(seed=seed, steps=steps, data_plane=True, failover=True)).run()
        if not result.ok:
            failures.append(result.failure)
            if len(failures) == want:
                break
    return failures


def test_the_reference_keeps_every_state_of_a_key_and_hides_expired_ones() -> None:
    ref = Reference()
    acked = [[b"SET", b"s0", b"a"], [b"RPUSH", b"l0", b"x"], [b"SET", b"s0", b"b", b"PXAT", b"100"],
             [b"FLUSHALL"], [b"SET", b"s0", b"c"]]  # fmt: skip
    ref.extend(acked)
    assert [ref.state_at(b"s0", o) for o in range(6)] == [
        (None, None), (b"a", None), (b"a", None), (b"b", 100), (None, None), (b"c", None)]  # fmt: skip
    assert ref.states_between(b"s0", 1, 4) == [(b"a", None), (b"b", 100), (None, None)]
    assert ref.counts == [0, 1, 2, 2, 0, 1]
    assert visible((b"b", 100), 100, None) == b"b" and visible((b"b", 100), 101, None) is None


def test_a_replica_that_expires_keys_itself_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    execute = DataState.execute

    def as_primary(self: DataState, spec: Any, argv: list[bytes], now_ms: int, *, primary: bool) -> Any:
        return execute(self, spec, argv, now_ms, primary=True)

    monkeypatch.setattr(DataState, "execute", as_primary)
    # Only a READONLY read between a key's deadline and the primary's DEL shows it: about one seed in eight.
    failures = _failures(1, 450, range(1, 121))
    assert failures and all(f.startswith("own write") and "b'DEL'" in f for f in failures), failures


def test_a_keyless_write_run_anywhere_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Routing, "keyless_error", lambda self, write, readonly_session=False: None)
    failures = _failures(2, 20)
    assert len(failures) == 2 and all(f.startswith(("own write", "S7 serving")) for f in failures), failures


def test_a_reply_that_does_not_wait_for_the_watermark_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Visibility, "required", lambda self, key: 0)
    failures = _failures(2, 60)
    assert len(failures) == 2 and all(f.startswith("unacknowledged read") for f in failures), failures


def test_a_key_served_past_its_deadline_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Keyspace, "expire_if_due", lambda self, key: False)
    failures = _failures(1, 450)
    assert failures and all(f.startswith("expired read") for f in failures), failures


def test_a_replica_serving_older_than_the_clients_write_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    catch_up: Callable[[NodeKeyspace, list[list[bytes]]], None] = NodeKeyspace.catch_up

    def lagging(self: NodeKeyspace, log: list[list[bytes]]) -> None:
        # A replica whose keyspace applies records only well after it acknowledged them.
        catch_up(self, log if self.node.routing.am_primary else log[: max(0, len(log) - 3)])

    monkeypatch.setattr(NodeKeyspace, "catch_up", lagging)
    failures = _failures(2, 70)
    assert len(failures) == 2 and all(f.startswith("stale read") for f in failures), failures


def test_a_lease_checked_on_a_stale_clock_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shell reads the clock once per batch and again after a wait (issue 10 §2.8: not after
    WAIT). Here a session's clocks are read once, at its first command, and never again."""
    stamp = KVWorkload.stamp

    def once(self: KVWorkload, node: Any, session: Any) -> None:
        if not session.mono_ms:
            stamp(self, node, session)

    monkeypatch.setattr(KVWorkload, "stamp", once)
    failures = _failures(2, 300)
    assert len(failures) == 2 and all(f.startswith(("own write", "S2 serving")) for f in failures), failures
    assert any(f.startswith("S2 serving") for f in failures), failures


def test_a_wait_that_counts_replicas_without_the_write_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PrimaryTracker, "wait_count", lambda self, offset: len(self._followers))
    failures = _failures(2, 150)
    assert len(failures) == 2 and all(f.startswith("WAIT") for f in failures), failures


def test_a_crash_in_a_partial_syncs_cut_keeps_the_acknowledged_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """The nemesis crashes a replica at the cut of a partial sync (as at seed 20 once: B restarts
    with 17 records, all acknowledged, and resyncs keeping all 17). The driver used to cut under the
    loading marker, so B came back empty while in the ISR (S1); now a cut in place sets no marker.
    Here every armed sync crash is at the cut; the first seeds that reach one must all pass."""
    cut = next(step for step in failover_nemesis.SYNC_STEPS if step[0] == "cut")
    monkeypatch.setattr(failover_nemesis, "SYNC_STEPS", (cut,))
    reached = 0
    for seed in range(1, 81):
        result = Simulation(SimConfig(seed=seed, steps=700, data_plane=True, failover=True)).run()
        assert result.ok, report(result)
        reached += any("crashes at 'cut' of a sync" in line for line in result.trace)
        if reached == 2:
            break
    assert reached == 2, "no seed crashed a replica at the cut of a partial sync"
