"""Log lines a peer can cause at will are sampled, so that a peer cannot flood the log (and its disk)."""

import logging

import pytest

from trionode.io.logs import Sampled


def test_a_warning_a_peer_can_cause_at_will_is_logged_once_per_thousand(caplog: pytest.LogCaptureFixture) -> None:
    # Issue 12 §3.1: every malformed Raft or replication message from a peer was one warning line.
    sampled = Sampled(logging.getLogger("trionode.test"))
    with caplog.at_level(logging.WARNING):
        for _ in range(2500):
            sampled.warning("dropping a malformed Raft message: %s", "x")
    assert [r.getMessage() for r in caplog.records] == [
        f"dropping a malformed Raft message: x ({n} so far)" for n in (1, 1001, 2001)
    ]
