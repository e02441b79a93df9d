"""``trionode cluster check``: is the cluster whole, judged from every node's own report.

Theory of operation
-------------------
The operator's question is the one ``redis-cli --cluster check`` answers: can
the cluster serve every slot right now, and does every node agree on who owns
what? The CLI gathers one ``CLUSTER STATUS`` report from each member (or the
reason it could not) and hands them here; this module reads no clock and
opens no socket.

A finding is an **error** when a client would notice it now or after one
more fault:

- a member is unreachable, or reports a problem of its own (no Raft leader,
  slots with no owner, a shard whose primary has failed: the node's own
  health rules, not repeated here);
- a slot owned by two shards (the reports' ranges are re-checked here
  rather than trusted);
- an ISR member the failure detector marks failed;
- members disagree on the slot map at the same configuration version (at
  different versions one of them is merely behind, which Raft repairs: a
  **warning**);
- a migration is still running although a failover on either side has
  already doomed it (its recorded epochs are stale): an orphan nobody ended.

Everything else worth knowing (a suspect primary, a replica outside the
ISR, a migration in flight, a member lagging behind the configuration) is
a **warning**.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trionode import limits

Report = Mapping[str, Any]


@dataclass(slots=True)
class CheckResult:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_cluster(entry: Report, others: Mapping[str, Report | str]) -> CheckResult:
    """Judge the cluster from ``entry`` (the node asked first) and every other member's report.

    ``others`` maps a member's address to its report, or to why it could not be had.
    """
    assert entry.get("nodes") is not None, "a CLUSTER STATUS report"
    result = CheckResult()
    result.errors += [f"{entry['node_id'][:12]}: {p}" for p in entry.get("problems", [])]
    result.errors += _doubled_slots(entry["shards"])
    _shard_findings(entry, result)
    _migration_findings(entry, result)
    for addr, report in sorted(others.items()):
        if isinstance(report, str):
            result.errors.append(f"node at {addr} is unreachable: {report}")
            continue
        result.errors += [f"{report['node_id'][:12]} at {addr}: {p}" for p in report.get("problems", [])]
        _agreement_findings(entry, report, addr, result)
    return result


def _doubled_slots(shards: list[Report]) -> list[str]:
    owners = [0] * limits.slots_count
    for shard in shards:
        for start, end in shard["slots"]:
            for slot in range(max(start, 0), min(end, limits.slots_count - 1) + 1):
                owners[slot] += 1
    doubled = [slot for slot, count in enumerate(owners) if count > 1]
    return [f"{len(doubled)} slots are owned by more than one shard (first: {doubled[0]})"] if doubled else []


def _shard_findings(entry: Report, result: CheckResult) -> None:
    nodes = {n["id"]: n for n in entry["nodes"]}
    for shard in entry["shards"]:
        name = f"shard {shard['id'][:12]}"
        primary = nodes.get(shard["primary_id"])
        if primary is None:
            result.errors.append(f"{name}: primary {shard['primary_id'][:12]} is not a member")
        elif shard["slots"] and primary["health"] not in ("online", "failed"):  # failed: a problem already
            result.warnings.append(f"{name}: primary {shard['primary_id'][:12]} is {primary['health']}")
        for member in shard["isr_ids"]:
            if nodes.get(member, {}).get("health") == "failed":
                result.errors.append(f"{name}: ISR member {member[:12]} is failed")
        for replica in shard["replica_ids"]:
            if replica not in shard["isr_ids"]:
                result.warnings.append(f"{name}: replica {replica[:12]} is not in the ISR")


def _migration_findings(entry: Report, result: CheckResult) -> None:
    epochs = {s["id"]: s["epoch"] for s in entry["shards"]}
    for m in entry.get("migrations", []):
        what = f"migration {m['id']} of slots {m['slots']}"
        stale = (epochs.get(m["source_shard_id"]) != m["source_epoch"]
                 or epochs.get(m["target_shard_id"]) != m["target_epoch"])  # fmt: skip
        if stale:
            result.errors.append(f"{what} is stuck: a failover doomed it and no abort was committed")
        else:
            result.warnings.append(f"{what} is in flight ({m['state']})")


def _agreement_findings(entry: Report, report: Report, addr: str, result: CheckResult) -> None:
    mine, theirs = entry["config_version"], report["config_version"]
    if _slot_map(entry) == _slot_map(report):
        return
    who = f"{report['node_id'][:12]} at {addr}"
    if mine == theirs:
        result.errors.append(f"{who} disagrees on the slot map at configuration version {mine}")
    else:
        result.warnings.append(f"{who} is at configuration version {theirs}, not {mine}")


def _slot_map(report: Report) -> dict[str, list[list[int]]]:
    return {s["id"]: sorted(s["slots"]) for s in report["shards"] if s["slots"]}
