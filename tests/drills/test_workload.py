"""How the drill workload records outcomes: a write is ``fail`` only when it certainly did not happen."""

import random

import pytest
import redis
from redis.exceptions import ClusterDownError, MovedError, ResponseError, TryAgainError

from scripts.drills.workload import LIST_OPS_MAX, REGISTER_OPS_MAX, Keys, Recorder, outcome_of

pytestmark = pytest.mark.timeout(30)

NEVER_SENT_OR_REFUSED = [
    redis.ConnectionError("Error 111 connecting to 127.0.0.1:40869. Connection refused."),
    redis.TimeoutError("Timeout connecting to server"),
    ClusterDownError("this primary's lease has expired; the slot may have a new primary"),
    TryAgainError("TRYAGAIN"),
    MovedError("3999 127.0.0.1:6381"),
    ResponseError("NOREPLICAS Not enough good replicas to write."),
]
MAYBE_HAPPENED = [
    redis.ConnectionError("Connection closed by server."),
    redis.TimeoutError("Timeout reading from socket"),
    ResponseError("ERR something unexpected"),
    RuntimeError("anything else"),
]


@pytest.mark.parametrize("exc", NEVER_SENT_OR_REFUSED, ids=repr)
def test_a_write_refused_or_never_sent_is_a_definite_failure(exc: Exception) -> None:
    assert outcome_of(exc, "set") == "fail"
    assert outcome_of(exc, "rpush") == "fail"


@pytest.mark.parametrize("exc", MAYBE_HAPPENED, ids=repr)
def test_a_write_that_may_have_reached_the_server_is_unknown(exc: Exception) -> None:
    assert outcome_of(exc, "set") == "info"
    assert outcome_of(exc, "rpush") == "info"


def test_a_read_that_did_not_complete_observed_nothing() -> None:
    for exc in NEVER_SENT_OR_REFUSED + MAYBE_HAPPENED:
        assert outcome_of(exc, "get") == outcome_of(exc, "lrange") == "fail"


def test_recorder_pairs_invoke_and_completion_and_keeps_the_error() -> None:
    rec = Recorder()

    def broken() -> None:
        raise redis.ConnectionError("Connection closed by server.")

    assert rec.run(7, "set", "r1", "v1", broken) == "info"
    assert rec.run(7, "get", "r1", None, lambda: b"v0") == "ok"
    kinds = [(r["type"], r["f"], r["value"]) for r in rec.records]
    assert kinds == [("invoke", "set", "v1"), ("info", "set", "v1"), ("invoke", "get", None), ("ok", "get", "v0")]
    assert rec.records[1]["error"].startswith("ConnectionError")


def test_keys_retire_after_their_budget() -> None:
    keys, rng = Keys(), random.Random(0)
    picks = [keys.pick("r", rng) for _ in range(REGISTER_OPS_MAX * 20)]
    per_key = {k: picks.count(k) for k in set(picks)}
    assert max(per_key.values()) <= REGISTER_OPS_MAX
    lists = [keys.pick("l", rng) for _ in range(LIST_OPS_MAX * 10)]
    assert max(lists.count(k) for k in set(lists)) <= LIST_OPS_MAX
    assert set(picks) | set(lists) <= set(keys.used)
