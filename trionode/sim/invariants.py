"""Safety invariants, checked incrementally over the whole history of a run.

Theory of operation
-------------------
The runner reports every observable event to one :class:`SafetyChecker`:
entries persisted, commit indexes, entries applied, leaders seen, restarts,
cluster states. Each report is checked against registries that span the whole
run (never reset at a crash), so a violation is caught at the step it happens:

* **election safety** -- ``leaders[term]`` holds the one leader of each term;
* **log matching** -- ``chains[(index, term)]`` holds the chain hash (mirror.py)
  of the one entry any node ever persisted there: equal (index, term) must
  mean an equal prefix;
* **committed prefix** -- ``committed[i]`` is the chain hash of index i as
  first seen committed; any node's later commit must agree;
* **leader completeness** -- a node that becomes leader of term T holds every
  committed entry of a term < T, and every leader holds each entry committed
  in an earlier term;
* **state machine safety** -- ``applied[i]`` is the (term, digest) that the
  first node applied at i; every node applies exactly that, in order;
* **no committed entry lost** -- the highest index a leader ever reported
  committed stays on the synced disks of a quorum of that leader's voters;
  and a restart recovers at least every synced entry up to the synced commit;
* **membership agreement** -- ``memberships[i]`` is the membership that took
  effect at index i; the log decides it, so every node holds the same one
  (a joiner that never learned the founding voters would count itself alone);
* **cluster state** -- ``check_invariants`` is empty after every apply, and
  each (shard, epoch) names one primary across all nodes and all time.

A failure raises :class:`InvariantViolation` with a one-line description;
the runner prints it with the seed and the trace.
"""

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trionode.core.raft.messages import ConfState, HardState
from trionode.sim.mirror import LogMirror, chain_hash


class InvariantViolation(AssertionError):
    """A safety property failed; the message names it and the nodes involved."""


def quorum(voters_count: int) -> int:
    return voters_count // 2 + 1


@dataclass(frozen=True, slots=True)
class DurableTarget:
    """The highest committed entry a leader reported, and the voters that committed it."""

    index: int
    chain: int
    voters: tuple[str, ...]
    leader: str


class SafetyChecker:
    def __init__(self, name_of: Callable[[str], str] = str) -> None:
        self._name = name_of  # short node names for messages
        self.leaders: dict[int, str] = {}
        self.chains: dict[tuple[int, int], tuple[int, str]] = {}
        self.committed: list[int] = [0]  # committed[i] = chain hash at i; index 0 is the empty prefix
        self.committed_terms: list[int] = [0]
        self.applied: dict[int, tuple[int, int, str]] = {}
        self.last_applied: dict[str, int] = {}
        self.durable_target: DurableTarget | None = None
        self.shard_primaries: dict[tuple[str, int], tuple[str, str]] = {}
        self.state_digests: dict[int, tuple[int, str]] = {}  # applied index -> (state digest, first node)
        self.memberships: dict[int, tuple[ConfState, str]] = {}  # index a membership took effect -> it

    def fail(self, message: str) -> None:
        raise InvariantViolation(message)

    # --- elections --------------------------------------------------------------------

    def on_leader(self, node: str, term: int, log: LogMirror) -> None:
        """``node`` is leader of ``term``: one leader per term, and it holds all earlier-term commits."""
        seen = self.leaders.setdefault(term, node)
        if seen != node:
            self.fail(f"election safety: {self._name(seen)} and {self._name(node)} both leader in term {term}")
        self.check_leader_holds(node, term, log, bisect.bisect_left(self.committed_terms, term) - 1)

    def check_leader_holds(self, node: str, term: int, log: LogMirror, index: int) -> None:
        """Leader completeness for the committed prefix up to ``index`` (entries of terms < ``term``)."""
        if index <= 0 or index >= len(self.committed):
            return
        if not log.covers(index, self.committed[index], self.committed_chain):
            self.fail(
                f"leader completeness: leader {self._name(node)} of term {term} lacks committed index {index} "
                f"(term {self.committed_terms[index]}; its log ends at {log.last_index})"
            )

    # --- logs -------------------------------------------------------------------------

    def on_bootstrap(self, node: str, term: int, digest: int) -> None:
        """``node`` founds the cluster with a snapshot at index 1: that index is committed everywhere."""
        assert len(self.committed) == 1, "one bootstrap per run, before any commit"
        chain = chain_hash(0, term, digest)
        self.chains[(1, term)] = (chain, node)
        self.committed.append(chain)
        self.committed_terms.append(term)
        self.on_state_digest(node, 1, digest)

    def on_persist(self, node: str, appended: list[tuple[int, int, int]]) -> None:
        """``node`` persisted these (index, term, chain) entries: check log matching."""
        for index, term, chain in appended:
            if first := _disagreeing(self.chains, (index, term), chain, node):
                self.fail(
                    f"log matching: {self._name(node)} and {self._name(first[1])} hold different prefixes "
                    f"at index {index} term {term}"
                )

    def committed_chain(self, index: int) -> int | None:
        return self.committed[index] if 0 <= index < len(self.committed) else None

    def on_commit(self, node: str, commit: int, log: LogMirror, *, voters: tuple[str, ...], is_leader: bool) -> None:
        """``node`` reports ``commit``: its log must agree with every earlier commit report."""
        top = min(commit, log.last_index)
        known = min(top, len(self.committed) - 1)
        if known > log.snap_index and log.chain_at(known) != self.committed[known]:
            self.fail(f"committed entry changed: {self._name(node)} commits a different entry at {known}")
        for index in range(max(len(self.committed), log.snap_index + 1), top + 1):
            if index > len(self.committed):
                break  # a gap below this node's snapshot: another node will report it
            self.committed.append(log.chain_at(index) or 0)
            self.committed_terms.append(log.term_at(index) or 0)
        if is_leader and commit <= log.last_index and commit < len(self.committed):
            target = self.durable_target
            if target is None or commit > target.index:
                self.durable_target = DurableTarget(commit, self.committed[commit], voters, node)

    def on_commit_advanced(self, leaders: Mapping[str, tuple[int, LogMirror]]) -> None:
        """Every current leader (node -> (term, log)) holds every commit of an earlier term."""
        for node in sorted(leaders):
            term, log = leaders[node]
            self.check_leader_holds(node, term, log, bisect.bisect_left(self.committed_terms, term) - 1)

    def on_membership(self, node: str, since: int, conf: ConfState) -> None:
        """``node``'s membership took effect at index ``since``: the log decides it, so all nodes agree."""
        if first := _disagreeing(self.memberships, since, conf, node):
            self.fail(
                f"membership agreement: {self._name(node)} and {self._name(first[1])} hold different "
                f"memberships from index {since}"
            )

    # --- state machine ----------------------------------------------------------------

    def on_restore(self, node: str, applied_index: int) -> None:
        """``node`` (re)started from a snapshot or installed one: it has applied up to ``applied_index``."""
        self.last_applied[node] = applied_index

    def on_apply(self, node: str, index: int, term: int, digest: int) -> None:
        expected = self.last_applied.get(node, 0) + 1
        if index != expected:
            self.fail(f"state machine safety: {self._name(node)} applied index {index}, expected {expected}")
        self.last_applied[node] = index
        first = self.applied.setdefault(index, (term, digest, node))
        if first[:2] != (term, digest):
            self.fail(
                f"state machine safety: {self._name(node)} applied (term {term}) at index {index}, "
                f"{self._name(first[2])} applied (term {first[0]}) there"
            )

    def on_cluster_state(self, node: str, problems: list[str], primaries: list[tuple[str, int, str]]) -> None:
        """``node``'s cluster state after an apply: its own invariants, and one primary per shard epoch."""
        if problems:
            self.fail(f"cluster state on {self._name(node)}: {problems[0]}")
        for shard, epoch, primary in primaries:
            if first := _disagreeing(self.shard_primaries, (shard, epoch), primary, node):
                self.fail(
                    f"one primary per epoch: shard {shard[-6:]} epoch {epoch} has primary {self._name(primary)} "
                    f"on {self._name(node)} but {self._name(first[0])} on {self._name(first[1])}"
                )

    def on_state_digest(self, node: str, index: int, digest: int) -> None:
        """Two nodes that applied the same prefix hold equal states (checked at snapshots)."""
        if first := _disagreeing(self.state_digests, index, digest, node):
            self.fail(
                f"state machine safety: {self._name(node)} and {self._name(first[1])} hold different "
                f"cluster states at applied index {index}"
            )

    # --- durability -------------------------------------------------------------------

    def check_durable_quorum(self, durable: Mapping[str, LogMirror]) -> None:
        """The highest committed entry is on the synced disks of a quorum of its voters."""
        target = self.durable_target
        if target is None:
            return
        holders = [v for v in target.voters if v in durable and self._holds(durable[v], target)]
        if len(holders) < quorum(len(target.voters)):
            self.fail(
                f"committed entry lost: index {target.index} (committed by {self._name(target.leader)}) is "
                f"durable on {len(holders)} of {len(target.voters)} voters"
            )

    def _holds(self, log: LogMirror, target: DurableTarget) -> bool:
        if target.index <= log.snap_index:
            return True
        return log.chain_at(target.index) == target.chain

    def on_restart(self, node: str, synced: LogMirror, synced_hs: HardState, restored: LogMirror,
                   restored_hs: HardState) -> None:  # fmt: skip
        """A restart recovered the synced term and vote, and every synced entry up to the synced commit."""
        same_term = restored_hs.term == synced_hs.term
        if restored_hs.term < synced_hs.term or (same_term and synced_hs.vote not in ("", restored_hs.vote)):
            self.fail(
                f"restart lost synced state: {self._name(node)} synced term {synced_hs.term} vote "
                f"{synced_hs.vote[-6:]!r}, recovered term {restored_hs.term} vote {restored_hs.vote[-6:]!r}"
            )
        top = min(synced_hs.commit, synced.last_index)
        if top <= synced.snap_index:
            lost = restored.snap_index < synced.snap_index
        else:
            lost = top > restored.snap_index and restored.chain_at(top) != synced.chain_at(top)
        if lost:
            self.fail(f"restart lost synced state: {self._name(node)} recovered no entry {top} it had synced")


def _disagreeing(seen: dict[Any, tuple[Any, str]], key: Any, value: Any, node: str) -> tuple[Any, str] | None:
    """Record that ``node`` has ``value`` at ``key``; the earlier ``(value, node)`` if it was different."""
    first = seen.setdefault(key, (value, node))
    return first if first[0] != value else None
