"""The failover simulation's clients (kv_workload.py) and reply checks (kv_checks.py) can fail.

Each planted bug breaks one decision the node's command path makes, in the
shipped core the simulator drives, and the checker must name what a client
would have seen: a replica that expires keys itself or a keyless write run
anywhere (own write), a reply that does not wait for the watermark
(unacknowledged read), a key served past its deadline (expired read), and a
replica that serves from a keyspace behind what it acknowledged (stale read:
older than the client's own write), a lease checked on a clock read before a
wait (S2 serving), and a WAIT that counts replicas lacking the write. The seeds and step counts are the
shortest that show each bug, so the file stays cheap in CI.
"""

from collections.abc import Callable
from typing import Any

import pytest

from trionode.core.data_state import DataState
from trionode.core.keyspace.store import Keyspace
from trionode.core.replication.primary import PrimaryTracker
from trionode.core.routing import Routing
from trionode.core.visibility import Visibility
from trionode.sim.kv_checks import Reference, visible
from trionode.sim.kv_workload import KVWorkload, NodeKeyspace
from trionode.sim.runner import SimConfig, Simulation, report


def _failures(seeds: tuple[int, ...], steps: int) -> list[str]:
    results = [Simulation(SimConfig(seed=s, steps=steps, data_plane=True, failover=True)).run() for s in seeds]
    return [r.failure for r in results if not r.ok]


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
    failures = _failures((4,), 460)
    assert failures and all(f.startswith("own write") and "b'DEL'" in f for f in failures), failures


def test_a_keyless_write_run_anywhere_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Routing, "keyless_error", lambda self, write, readonly_session=False: None)
    failures = _failures((3, 7), 150)
    assert len(failures) == 2 and failures[0].startswith("own write") and "FLUSHALL" in failures[0], failures
    assert failures[1].startswith("S7 serving"), failures


def test_a_reply_that_does_not_wait_for_the_watermark_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Visibility, "required", lambda self, key: 0)
    failures = _failures((1, 2, 8), 25)
    assert len(failures) == 3 and all(f.startswith("unacknowledged read") for f in failures), failures


def test_a_key_served_past_its_deadline_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Keyspace, "expire_if_due", lambda self, key: False)
    failures = _failures((2,), 90)
    assert failures and all(f.startswith("expired read") for f in failures), failures


def test_a_replica_serving_older_than_the_clients_write_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    catch_up: Callable[[NodeKeyspace, list[list[bytes]]], None] = NodeKeyspace.catch_up

    def lagging(self: NodeKeyspace, log: list[list[bytes]]) -> None:
        # A replica whose keyspace applies records only well after it acknowledged them.
        catch_up(self, log if self.node.routing.am_primary else log[: max(0, len(log) - 3)])

    monkeypatch.setattr(NodeKeyspace, "catch_up", lagging)
    failures = _failures((2, 3, 5), 125)
    assert len(failures) == 3 and all(f.startswith("stale read") for f in failures), failures


def test_a_lease_checked_on_a_stale_clock_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shell reads the clock once per batch and again after a wait (issue 10 §2.8: not after
    WAIT). Here a session's clocks are read once, at its first command, and never again."""
    stamp = KVWorkload.stamp

    def once(self: KVWorkload, node: Any, session: Any) -> None:
        if not session.mono_ms:
            stamp(self, node, session)

    monkeypatch.setattr(KVWorkload, "stamp", once)
    failures = _failures((1, 5), 140)
    assert len(failures) == 2 and all(f.startswith(("own write", "S2 serving")) for f in failures), failures
    assert any(f.startswith("S2 serving") for f in failures), failures


def test_a_wait_that_counts_replicas_without_the_write_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PrimaryTracker, "wait_count", lambda self, offset: len(self._followers))
    failures = _failures((1, 3), 120)
    assert len(failures) == 2 and all(f.startswith("WAIT") for f in failures), failures


@pytest.mark.parametrize(("seed", "steps"), [(2, 220), (13, 650)])
def test_a_crash_at_a_partial_syncs_cut_keeps_the_acknowledged_log(seed: int, steps: int) -> None:
    """On main both seeds fail S1: a replica in the ISR resyncs partially, and the nemesis crashes
    it at the cut (seed 2: C, 32 records acknowledged), which the driver made under the loading
    marker, so it came back empty. A cut in place now sets no marker (test_replica_driver pins the
    actions; test_replication_disk that the node's cut is crash-safe without it)."""
    result = Simulation(SimConfig(seed=seed, steps=steps, data_plane=True, failover=True)).run()
    assert result.ok, report(result)
