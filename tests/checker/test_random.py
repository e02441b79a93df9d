"""Randomized histories from a sequential model run with random concurrency windows.

Each operation takes effect at one instant inside its [invoke, complete] window
(later, or never, for an unknown outcome; never for a failure), so every
generated history is linearizable by construction: the checker must say yes.
Mutating one read to a value never written must make it say no.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from scripts.checker import check_history

Record = dict[str, Any]

REGISTERS = ("r0", "r1")
LISTS = ("l0",)


def generate(seed: int, processes: int = 5, ops_per_process: int = 16) -> list[Record]:
    rng = random.Random(seed)
    planned: list[dict[str, Any]] = []
    counter = 0
    for p in range(processes):
        t = rng.uniform(0, 2)
        for _ in range(ops_per_process):
            counter += 1
            key = rng.choice(REGISTERS + LISTS)
            is_list = key in LISTS
            write = rng.random() < 0.5
            f = ("rpush" if write else "lrange") if is_list else ("set" if write else "get")
            start = t
            end = start + rng.uniform(0.05, 3.0)
            status = "ok"
            effect: float | None = rng.uniform(start, end)
            roll = rng.random()
            if roll < 0.1:
                status = "info"
                if write:
                    effect = rng.uniform(start, end + 5) if rng.random() < 0.5 else None
            elif roll < 0.2:
                status = "fail"
                effect = None
            planned.append(
                {
                    "p": p,
                    "f": f,
                    "key": key,
                    "value": f"v{counter}" if write else None,
                    "start": start,
                    "end": end,
                    "status": status,
                    "effect": effect,
                }
            )
            t = end + rng.uniform(0, 0.5)
    # Execute the effects in order on the sequential model.
    registers: dict[str, Any] = {}
    lists: dict[str, list[str]] = {k: [] for k in LISTS}
    for o in sorted((o for o in planned if o["effect"] is not None), key=lambda o: o["effect"]):
        if o["f"] == "set":
            registers[o["key"]] = o["value"]
        elif o["f"] == "rpush":
            lists[o["key"]].append(o["value"])
        elif o["f"] == "get":
            o["result"] = registers.get(o["key"])
        else:
            o["result"] = list(lists[o["key"]])
    records: list[Record] = []
    for o in planned:
        written = o["f"] in ("set", "rpush")
        records.append(
            {
                "process": o["p"],
                "type": "invoke",
                "f": o["f"],
                "key": o["key"],
                "value": o["value"] if written else None,
                "time": o["start"],
            }
        )
        value = o["value"] if written else (o.get("result") if o["status"] == "ok" else None)
        records.append(
            {"process": o["p"], "type": o["status"], "f": o["f"], "key": o["key"], "value": value, "time": o["end"]}
        )
    return records


@pytest.mark.parametrize("seed", range(60))
def test_generated_histories_are_linearizable(seed: int) -> None:
    result = check_history(generate(seed))
    assert result.findings == []
    assert result.linearizable == "yes"
    assert result.valid


@pytest.mark.parametrize("seed", range(30))
def test_mutated_read_is_caught(seed: int) -> None:
    records = generate(seed)
    rng = random.Random(1000 + seed)
    reads = [i for i, r in enumerate(records) if r["type"] == "ok" and r["f"] == "get"]
    i = rng.choice(reads)
    records[i] = {**records[i], "value": "never-written"}
    result = check_history(records)
    assert result.linearizable == "no"
    assert result.phantoms == 1
    assert not result.valid


@pytest.mark.parametrize("seed", range(20))
def test_duplicated_list_element_is_caught(seed: int) -> None:
    records = generate(seed)
    reads = [i for i, r in enumerate(records) if r["type"] == "ok" and r["f"] == "lrange" and r["value"]]
    if not reads:
        pytest.skip("no non-empty list read in this history")
    i = random.Random(seed).choice(reads)
    records[i] = {**records[i], "value": [*records[i]["value"], records[i]["value"][0]]}
    result = check_history(records)
    assert "duplicate" in {f.kind for f in result.findings}
    assert not result.valid
