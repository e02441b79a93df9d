"""The simulator's restarts run the node's recovery rules (core/wal/recovery.py): a bug planted in them is caught.

Each test plants one bug in the shipped rule, which both io/data_store.py's
``recover`` and the simulated disk's crash carry out, and searches the first
seeds of ``--data-plane --failover`` for the failure it must cause (a few
seeds, as any change to the simulation moves the ones that do). The plan's
acknowledged offset is carried out too: a restarted node's store, and its
replica driver, start from it, as the node's do.
"""

import dataclasses
from collections.abc import Callable

import pytest

from tests.sim.test_failover_plane import _failures
from trionode.core.wal import recovery
from trionode.core.wal.recovery import CannotStart, Plan

RealPlan = Callable[[int, int, int, int], Plan | CannotStart]


def _plant(monkeypatch: pytest.MonkeyPatch, change: Callable[[Plan, int], Plan | CannotStart]) -> None:
    """Recovery's plan, passed through ``change`` (with the WAL's first offset) whenever the disk is accepted."""
    real: RealPlan = recovery.plan

    def planted(snapshot_offset: int, snapshot_acked: int, wal_first: int, wal_next: int) -> Plan | CannotStart:
        plan = real(snapshot_offset, snapshot_acked, wal_first, wal_next)
        return change(plan, wal_first) if isinstance(plan, Plan) else plan

    monkeypatch.setattr(recovery, "plan", planted)


def test_a_rule_that_wants_the_wal_to_overlap_the_snapshot_stops_a_node_after_any_compaction(
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    def off_by_one(plan: Plan, wal_first: int) -> Plan | CannotStart:
        overlaps = plan.snapshot_offset == 0 or wal_first <= plan.snapshot_offset
        return plan if overlaps else CannotStart(wal_first, plan.snapshot_offset)

    _plant(monkeypatch, off_by_one)
    failures = _failures((1, 2))
    assert len(failures) == 2 and all(f.startswith("S6 recovery") for f in failures), failures


def test_a_rule_that_forgets_the_wals_last_record_loses_an_acknowledged_write(
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    def short(plan: Plan, wal_first: int) -> Plan:
        return dataclasses.replace(plan, end=plan.end - 1) if plan.end > plan.snapshot_offset else plan

    _plant(monkeypatch, short)
    failures = _failures((1, 2))
    assert len(failures) == 2 and all(f.startswith("S1 durability") for f in failures), failures


def test_a_rule_that_replays_the_records_a_snapshot_holds_again_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only a crash between a compaction's install and its WAL removal leaves such records: seeds 6 and 10 of 1..30.
    _plant(monkeypatch, lambda plan, wal_first: dataclasses.replace(plan, replay_from=wal_first))
    failures = _failures((6, 10))
    assert len(failures) == 2 and all(f.startswith("S1 lost write") for f in failures), failures


def test_a_rule_that_takes_the_replayed_records_as_acknowledged_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # Records past the snapshot may never have reached the ISR: a restarted node that took them as
    # acknowledged would answer reads of them (a replica's READONLY reads too) and a failover may cut them.
    _plant(monkeypatch, lambda plan, wal_first: dataclasses.replace(plan, acked=plan.end))
    failures = _failures((1, 2))
    assert len(failures) == 2 and all(f.startswith("S7 acknowledged offset") for f in failures), failures
