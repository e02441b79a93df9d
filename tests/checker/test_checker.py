"""The drill checker on hand-made histories: it catches each class and does not cry wolf."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from scripts.checker import (
    check_history,
    check_register,
    dump_jsonl,
    load_jsonl,
    main,
    pair_history,
    summary_line,
)

Record = dict[str, Any]


def op(process: int, f: str, key: str, value: Any, start: float, end: float, status: str = "ok") -> list[Record]:
    """An invoke/completion pair. Reads carry their result on the completion."""
    inv_value = value if f in ("set", "rpush") else None
    return [
        {"process": process, "type": "invoke", "f": f, "key": key, "value": inv_value, "time": start},
        {"process": process, "type": status, "f": f, "key": key, "value": value, "time": end},
    ]


def hist(*pairs: list[Record]) -> list[Record]:
    return [rec for pair in pairs for rec in pair]


def kinds(history: list[Record]) -> list[str]:
    return sorted(f.kind for f in check_history(history).findings)


def test_concurrent_linearizable_history_is_clean() -> None:
    # Two overlapping writes; reads observe a then b, which is one valid order
    # (b then a would have been valid too, had the reads said so).
    h = hist(
        op(0, "get", "k", None, -2, -1),
        op(1, "set", "k", "a", 0, 10),
        op(2, "set", "k", "b", 1, 9),
        op(3, "get", "k", "a", 2, 3),
        op(4, "get", "k", "b", 4, 5),
        op(3, "get", "k", "b", 11, 12),
    )
    result = check_history(h)
    assert result.findings == []
    assert result.valid
    assert summary_line(result) == "ops=6 acked=2 lost=0 phantoms=0 linearizable=yes violations=0"


def test_other_order_is_also_accepted() -> None:
    h = hist(
        op(1, "set", "k", "a", 0, 10),
        op(2, "set", "k", "b", 1, 9),
        op(3, "get", "k", "b", 2, 3),
        op(3, "get", "k", "a", 11, 12),
    )
    assert check_history(h).valid


def test_lost_write_register() -> None:
    h = hist(
        op(1, "set", "k", "a", 0, 1),
        op(1, "set", "k", "b", 2, 3),
        op(2, "get", "k", "a", 4, 5),
    )
    result = check_history(h)
    lost = [f for f in result.findings if f.kind == "lost"]
    assert [f.value for f in lost] == ["b"]  # "a" was overwritten by b, b is the lost one
    assert result.linearizable == "no"
    assert not result.valid
    assert summary_line(result).startswith("ops=3 acked=2 lost=1 phantoms=0 linearizable=no")


def test_lost_write_register_key_vanished() -> None:
    h = hist(op(1, "set", "k", "a", 0, 1), op(2, "get", "k", None, 4, 5))
    assert kinds(h) == ["lost", "nonlinearizable"]


def test_concurrent_write_is_not_lost() -> None:
    # b's write overlaps a's, so the final read may legitimately return a.
    h = hist(
        op(1, "set", "k", "a", 0, 3),
        op(2, "set", "k", "b", 1, 2),
        op(3, "get", "k", "a", 4, 5),
    )
    assert check_history(h).valid


def test_stale_read_is_not_linearizable() -> None:
    h = hist(
        op(1, "set", "k", "a", 0, 1),
        op(1, "set", "k", "b", 2, 3),
        op(2, "get", "k", "a", 4, 5),  # b completed before this read began
        op(1, "set", "k", "c", 6, 7),
        op(2, "get", "k", "c", 8, 9),
    )
    result = check_history(h)
    assert result.lost == 0
    assert result.phantoms == 0
    assert result.linearizable == "no"
    assert kinds(h) == ["nonlinearizable"]
    assert not result.valid


def test_phantom_register_value() -> None:
    h = hist(op(1, "set", "k", "a", 0, 1), op(2, "get", "k", "zzz", 2, 3))
    result = check_history(h)
    assert result.phantoms == 1
    assert result.linearizable == "no"


def test_value_from_another_key_is_a_phantom() -> None:
    h = hist(op(1, "set", "x", "a", 0, 1), op(2, "get", "y", "a", 2, 3))
    assert check_history(h).phantoms == 1


def test_reordered_list() -> None:
    h = hist(
        op(1, "rpush", "l", "x", 0, 1),
        op(1, "rpush", "l", "y", 2, 3),
        op(2, "lrange", "l", ["y", "x"], 4, 5),
    )
    result = check_history(h)
    assert [f.kind for f in result.findings] == ["list-order"]
    assert not result.valid


def test_concurrent_pushes_may_appear_in_any_order() -> None:
    h = hist(
        op(1, "rpush", "l", "x", 0, 3),
        op(2, "rpush", "l", "y", 1, 2),
        op(3, "lrange", "l", ["y", "x"], 4, 5),
        op(3, "lrange", "l", ["y", "x"], 6, 7),
    )
    assert check_history(h).valid


def test_duplicate_list_element() -> None:
    h = hist(op(1, "rpush", "l", "x", 0, 1), op(2, "lrange", "l", ["x", "x"], 2, 3))
    assert kinds(h) == ["duplicate"]


def test_lost_list_element_and_stale_list_read() -> None:
    h = hist(
        op(1, "rpush", "l", "x", 0, 1),
        op(1, "rpush", "l", "y", 2, 3),
        op(2, "lrange", "l", ["x"], 4, 5),  # stale: y was acked before
        op(2, "lrange", "l", ["x", "y"], 6, 7),
        op(1, "rpush", "l", "z", 8, 9),
        op(2, "lrange", "l", ["x", "y"], 10, 11),  # final: z lost
    )
    result = check_history(h)
    assert sorted((f.kind, f.value) for f in result.findings) == [("lost", "z"), ("stale-list-read", "y")]
    assert result.lost == 1


def test_element_seen_then_gone_is_lost_even_if_unacked() -> None:
    h = hist(
        op(1, "rpush", "l", "x", 0, 1, status="info"),
        op(2, "lrange", "l", ["x"], 2, 3),
        op(2, "lrange", "l", [], 4, 5),
    )
    assert kinds(h) == ["lost"]


def test_unknown_outcome_write_read_later_is_fine() -> None:
    h = hist(
        op(1, "set", "k", "a", 0, 1),
        op(2, "set", "k", "b", 2, 3, status="info"),
        op(3, "get", "k", "a", 4, 5),  # b had not taken effect yet...
        op(3, "get", "k", "b", 100, 101),  # ...and took effect long after its timeout
    )
    result = check_history(h)
    assert result.valid, result.findings


def test_unknown_outcome_write_never_seen_is_fine() -> None:
    h = hist(
        op(1, "set", "k", "a", 0, 1),
        op(2, "set", "k", "b", 2, 3, status="info"),
        op(3, "get", "k", "a", 4, 5),
        op(4, "rpush", "l", "x", 0, 1, status="info"),
        op(4, "rpush", "l", "y", 2, 3),
        op(5, "lrange", "l", ["y"], 6, 7),
    )
    assert check_history(h).valid


def test_unknown_outcome_write_seen_then_unseen_is_not_linearizable() -> None:
    h = hist(
        op(1, "set", "k", "a", 0, 1),
        op(2, "set", "k", "b", 2, 3, status="info"),
        op(3, "get", "k", "b", 4, 5),
        op(3, "get", "k", "a", 6, 7),
    )
    assert check_history(h).linearizable == "no"


def test_invoke_without_completion_is_unknown_outcome() -> None:
    h = hist(op(1, "set", "k", "a", 0, 1), op(3, "get", "k", "b", 4, 5))
    h.append({"process": 2, "type": "invoke", "f": "set", "key": "k", "value": "b", "time": 2})
    ops = pair_history(h)
    assert ops[2].status == "info" and ops[2].complete == math.inf
    assert check_history(h).valid


def test_failed_write_read_is_phantom() -> None:
    h = hist(
        op(1, "set", "k", "a", 0, 1),
        op(2, "set", "k", "b", 2, 3, status="fail"),
        op(3, "get", "k", "b", 4, 5),
        op(4, "rpush", "l", "x", 0, 1, status="fail"),
        op(5, "lrange", "l", ["x"], 2, 3),
    )
    result = check_history(h)
    assert result.phantoms == 2
    assert all("failed" in f.message for f in result.findings if f.kind == "phantom")
    assert result.linearizable == "no"


def test_failed_and_unknown_reads_are_ignored() -> None:
    h = hist(
        op(1, "set", "k", "a", 0, 1),
        op(2, "get", "k", None, 2, 3, status="fail"),
        op(3, "get", "k", None, 2, 3, status="info"),
        op(4, "get", "k", "a", 4, 5),
    )
    assert check_history(h).valid


def test_step_bound_reports_unknown() -> None:
    h = hist(*(op(p, "set", "k", f"v{p}", 0, 10) for p in range(6)), op(9, "get", "k", "v0", 11, 12))
    result = check_history(h, max_steps=3)
    assert result.linearizable == "unknown"
    assert [f.kind for f in result.findings] == ["unknown"]
    assert not result.valid
    assert check_history(h).linearizable == "yes"


def test_check_register_direct() -> None:
    ops = pair_history(hist(op(1, "set", "k", "a", 0, 1), op(2, "get", "k", "a", 2, 3)))
    verdict = check_register("k", ops)
    assert verdict.verdict == "yes" and verdict.ops == 2


def test_malformed_histories_are_rejected() -> None:
    with pytest.raises(ValueError):
        pair_history([{"process": 1, "type": "ok", "f": "get", "key": "k", "value": None, "time": 1}])
    with pytest.raises(ValueError):
        pair_history(hist(op(1, "set", "k", "a", 0, 1))[:1] * 2)
    with pytest.raises(ValueError):
        pair_history([{"process": 1, "type": "invoke", "f": "mset", "key": "k", "time": 1}])


def test_jsonl_roundtrip_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = hist(op(1, "set", "k", "a", 0, 1), op(2, "get", "k", "a", 2, 3), op(3, "lrange", "l", [], 0, 1))
    path = tmp_path / "h.jsonl"
    dump_jsonl(good, path)
    assert load_jsonl(path) == good
    assert main([str(path)]) == 0
    assert "linearizable=yes" in capsys.readouterr().out
    dump_jsonl(hist(op(1, "get", "k", "nope", 0, 1)), path)
    assert main([str(path)]) == 1
    assert "phantoms=1" in capsys.readouterr().out


def test_many_unknown_writes_nobody_read_do_not_blow_up_the_search() -> None:
    # A killed primary leaves dozens of timed-out writes per key; those no read saw cannot
    # change any verdict, and must not turn a clear history into "unknown".
    unknown = [op(100 + p, "set", "k", f"lost{p}", 1 + p * 0.01, 2, status="info") for p in range(40)]
    reads = [op(1, "get", "k", "a", 3 + i, 3.5 + i) for i in range(20)]
    clean = hist(op(1, "set", "k", "a", 0, 1), *unknown, *reads)
    assert check_history(clean, max_steps=5_000).linearizable == "yes"
    stale = clean + hist(op(2, "set", "k", "b", 30, 31), op(3, "get", "k", "a", 32, 33))
    assert check_history(stale, max_steps=5_000).linearizable == "no"
