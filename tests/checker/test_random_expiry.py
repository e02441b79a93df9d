"""Randomized histories of one key with deadlines, deletes and replica reads, correct by construction.

Each operation takes effect at one instant inside its [invoke, complete] window (later or
never for an unknown outcome, never for a failure), on a sequential model with real
deadlines: a key set with ``PX t`` at instant ``e`` is present until ``e + t``. Replica
reads see a prefix of the effects (up to an earlier instant, but never before the
client's own acknowledged writes) and hide keys past their deadline. The checker must
accept every such history with the tightest margin; this is the guard against its
expiry rule or replica rules accusing a correct server.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from scripts.checker import check_history

Record = dict[str, Any]
WRITES = ("set", "del", "expire")


def plan(seed: int, processes: int = 4, ops_per_process: int = 14) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    planned = []
    for p in range(processes):
        t = rng.uniform(0, 1)
        for n in range(ops_per_process):
            f = rng.choice(("set", "set", "get", "rget", "del", "exists", "expire"))
            start, end = t, t + rng.uniform(0.01, 0.8)
            status, effect = "ok", rng.uniform(start, end)
            if f in WRITES and rng.random() < 0.1:
                status, effect = "info", (rng.uniform(start, end + 3) if rng.random() < 0.5 else None)
            elif f in WRITES and rng.random() < 0.05:
                status, effect = "fail", None
            ttl = {"set": rng.choice((None, 300, 800, 1500)), "expire": rng.choice((300, 800))}.get(f)
            planned.append({"p": p, "f": f, "value": f"v{p}-{n}" if f == "set" else None, "ttl": ttl,
                            "start": start, "end": end, "status": status, "effect": effect})  # fmt: skip
            t = end + rng.uniform(0, 0.6)
    return planned


def execute(planned: list[dict[str, Any]], rng: random.Random) -> None:
    """Apply the effects in instant order; reads record what they see."""
    timeline: list[tuple[float, Any, float]] = [(-1.0, None, float("inf"))]  # (instant, value, deadline) after it
    for o in sorted((o for o in planned if o["effect"] is not None), key=lambda o: o["effect"]):
        at, (_, value, deadline) = o["effect"], timeline[-1]
        live = value is not None and at <= deadline
        if o["f"] == "set":
            timeline.append((at, o["value"], at + o["ttl"] / 1000 if o["ttl"] else float("inf")))
        elif o["f"] == "del":
            o["result"] = int(live)
            timeline.append((at, None, float("inf")))
        elif o["f"] == "expire":
            o["result"] = int(live)
            timeline.append((at, value if live else None, at + o["ttl"] / 1000 if live else float("inf")))
        elif o["f"] in ("get", "exists"):
            o["result"] = (value if live else None) if o["f"] == "get" else int(live)
        else:  # rget: a prefix no older than the client's own acknowledged writes, judged at its own instant
            own = [x["end"] for x in planned if x["p"] == o["p"] and x["f"] in WRITES and x["status"] == "ok"
                   and x["end"] < o["start"]]  # fmt: skip
            floor = max([x["effect"] for x in planned if x["end"] in own] + [-1.0])
            states = [s for s in timeline if s[0] >= floor] or [timeline[-1]]
            _, seen, seen_deadline = rng.choice(states[-3:])
            o["result"] = seen if seen is not None and at <= seen_deadline else None


def records(planned: list[dict[str, Any]]) -> list[Record]:
    out: list[Record] = []
    for o in planned:
        base = {"process": o["p"], "f": o["f"], "key": "t"}
        out.append({**base, "type": "invoke", "time": o["start"], "value": o["value"], "arg": o["ttl"]})
        done = {**base, "type": o["status"], "time": o["end"], "value": o["value"]}
        if o["status"] == "ok" and o["f"] in ("get", "rget", "exists"):
            done["value"] = o["result"]
        elif o["status"] == "ok" and o["f"] in ("del", "expire"):
            done["result"] = o["result"]
        out.append(done)
    return sorted(out, key=lambda r: (r["time"], r["type"] != "invoke"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", range(200))
def test_generated_histories_with_deadlines_pass(seed: int) -> None:
    planned = plan(seed)
    execute(planned, random.Random(seed))
    result = check_history(records(planned), clock_margin_s=0.001)
    assert [f.message for f in result.findings] == []
    assert result.valid
