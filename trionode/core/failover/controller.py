"""The failover controller: leases, failure decisions, fencing, successors (DESIGN §5.5, §6).

Theory of operation
-------------------
One :class:`FailoverController` per node, in the Ready style of core/raft:
inputs in, a list of actions out. Two executors drive it: io/failover.py over
the cluster bus and sim/failover_plane.py over simulated links and clocks.
Every decision below lives here and nowhere else.

*Inputs.* ``on_config`` (the applied cluster state), ``on_leadership`` (the
Raft term and leader), ``on_health`` (the failure detector's verdicts, with
``loading`` from replication), ``on_gossip_info`` (the members' gossip info,
for the fences they report, fences.py), ``on_authority`` (until when this node
surely leads, authority.py), lease requests and grants, fence replies, the
outcome of a failover proposal, manual failover requests, and ``tick(now_ms)``
with a monotonic clock.

*Leases* (lease.py). Every primary renews its lease every quarter lease: the
leader grants its own locally; others get ``RequestLease`` to the leader. The
leader grants (``GrantLease``) only to a primary of its applied configuration,
only while its authority is fresh, never to a node the detector reports
failed, and never while a failover of that shard is fencing, proposing or
draining a manual handover: a grant then could let the old primary serve
after the new one starts (S2); nor to a primary while a lease it granted
another node of that shard may still run. A new term means a new granter: it trusts no
grant before it (a predecessor may have granted until it stepped down), even
when this node lost and regained leadership between two inputs.

*Failover* (leader only). For a shard whose primary is failed (or that a
manual request wants handed over), once the granter knows the old lease has
run out: (1) ``SendFence`` at epoch + 1 to the shard's other ISR members; a
fenced member stops accepting the old primary's stream, makes that durable,
and answers with its durable offset and health; (2) once every member answered, or
``fence_timeout_ms`` passed, choose among those that answered by that durable
offset (successor.py); (3) ``Propose`` the failover entry, whose apply checks
the epoch and the ISR again. With no eligible member the shard stays down, the
round starts again later, and a manual request is dropped (the old primary is
granted again). Once a member has answered, the round goes on even if the
primary looks alive again: the fenced members refuse its stream, so only the
failover lets them follow a primary again. If no member is eligible but the
old primary is online again, it is *reinstated*: the failover entry names it
its own successor, which only moves the shard to epoch + 1. That is safe, as a
primary streams only what is durable on its own disk, so it holds everything
any member does and every acknowledged write; and it is the only way out, as
the fenced members refuse the old epoch for good (a shard that never took a
write has no member at an offset above 0, and stayed down for ever). A
proposal whose outcome never arrives is given up after ``retry_ms``; a
duplicate commits nothing, as its epoch is stale.

A round belongs to the term that started it, but the fences it made outlive
it: a member (or the primary it deposed) reports in gossip that the shard is
fenced above its configured epoch, and a later leader treats that shard as
fenced by itself: it withholds the primary's lease, fences the ISR again and
promotes or reinstates (fences.py says why that cannot flap); without it, a
Raft leader change between the fence and the commit left the shard down for
ever. Losing leadership, or leading again in a later term, drops every round,
and a fence and its answer carry the round's term: an answer to a round of an
earlier term (late on the network, or queued on a replica) is never counted in
a round of a later one, even at the same epoch, so only what a member said to
this leadership can choose a successor.

Invariants: at most one round and one proposal per shard; a granter exists
exactly while this node leads, and was made in the current term; every round
was started in that term.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trionode.core.cluster.commands import command
from trionode.core.cluster.state import ClusterState, Shard
from trionode.core.failover.fences import reported_fence
from trionode.core.failover.lease import LeaseGranter, LeaseHolder
from trionode.core.failover.successor import Candidate, choose_successor
from trionode.core.gossip.messages import Info


@dataclass(frozen=True, slots=True)
class FailoverConfig:
    node_id: str
    lease_ms: int
    drift_ms: int  # clock-drift margin a failover waits beyond a lease
    handover_ms: int  # how long a deposed leader may still grant (its check-quorum step-down time)
    fence_timeout_ms: int  # how long a fencing round waits for every ISR member to answer
    retry_ms: int  # a failover proposal with no known outcome is given up after this

    def __post_init__(self) -> None:
        assert self.lease_ms > 0 and self.drift_ms >= 0 and self.handover_ms >= 0
        assert 0 < self.fence_timeout_ms < self.retry_ms

    @classmethod
    def for_node(cls, node_id: str, node_timeout_ms: int, handover_ms: int) -> "FailoverConfig":
        """The lease a primary gets from ``node_timeout_ms``: half of it, with a fifth of that for drift."""
        lease_ms = max(100, node_timeout_ms // 2)
        return cls(node_id, lease_ms, max(50, lease_ms // 5), handover_ms, fence_timeout_ms=lease_ms,
                   retry_ms=4 * lease_ms)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RequestLease:
    to: str  # the Raft leader
    req: int


@dataclass(frozen=True, slots=True)
class GrantLease:
    to: str
    req: int


@dataclass(frozen=True, slots=True)
class SendFence:
    to: str
    shard_id: str
    epoch: int  # the epoch the failover will make: refuse every stream below it
    term: int  # the round's term: the answer must echo it


@dataclass(frozen=True, slots=True)
class Propose:
    shard_id: str
    command: dict[str, Any]
    successor: str


@dataclass(frozen=True, slots=True)
class Report:
    line: str  # a decision worth a log line, with its reason


Action = RequestLease | GrantLease | SendFence | Propose | Report


@dataclass(slots=True)
class _Round:
    """A fencing round for one shard: who was asked, and what those who answered said."""

    epoch: int  # shard epoch + 1
    term: int  # the leadership that started it; Invariant: the controller's current term
    started_ms: int
    members: tuple[str, ...]
    replies: dict[str, Candidate] = field(default_factory=dict)

    def settled(self, now_ms: int, timeout_ms: int) -> bool:
        return len(self.replies) == len(self.members) or now_ms - self.started_ms >= timeout_ms


class FailoverController:
    def __init__(self, config: FailoverConfig) -> None:
        self.cfg = config
        self.holder = LeaseHolder(config.lease_ms)
        self.state = ClusterState()
        self.leader_id = ""
        self.granter: LeaseGranter | None = None  # Invariant: not None exactly while this node leads
        self._granter_term = -1
        self._health: Mapping[str, str] = {}
        self._infos: Mapping[str, Info | None] = {}  # node -> its latest gossip info
        self._authority_until_ms = -1
        self._next_renew_ms: int | None = None
        self.requested: dict[str, str] = {}  # manual failovers asked of this leader: shard -> replica
        self._rounds: dict[str, _Round] = {}
        self._fenced: dict[str, int] = {}  # shard -> epoch some member refuses below, in this leadership
        self._in_flight: dict[str, tuple[int, int]] = {}  # shard -> (epoch, ms) of a failover proposal
        self._down_reported: set[str] = set()

    # --- inputs ------------------------------------------------------------------------------------
    def on_config(self, state: ClusterState) -> None:
        self.state = state

    def on_leadership(self, term: int, leader_id: str, now_ms: int) -> None:
        self.leader_id = leader_id
        if leader_id != self.cfg.node_id:
            self.granter = None
            self._granter_term = -1
            self.requested.clear()  # requests were made to this node as leader
            self._rounds.clear()
            self._fenced.clear()
            self._in_flight.clear()
        elif self.granter is None or term != self._granter_term:
            # A new term is a new leadership, even if this node led before it: a leader of the
            # term in between may have granted leases this node never heard of (issue 10, 2.10).
            self.granter = LeaseGranter(self.cfg.lease_ms, self.cfg.drift_ms, now_ms, self.cfg.handover_ms)
            self._granter_term = term
            self._rounds.clear()
            self._fenced.clear()

    def on_health(self, health: Mapping[str, str]) -> None:
        self._health = health

    def on_gossip_info(self, infos: Mapping[str, Info | None]) -> None:
        """The latest gossip info of each node (this one's own included), checked at the gossip boundary."""
        self._infos = infos

    def on_authority(self, until_ms: int) -> None:
        self._authority_until_ms = until_ms

    def on_lease_request(self, peer: str, req: int, now_ms: int) -> list[Action]:
        if not self._may_grant(peer, now_ms):
            return []
        self.granter.grant(peer, now_ms, self.state.nodes[peer].shard_id or "")
        return [GrantLease(peer, req)]

    def on_lease_granted(self, req: int) -> None:
        if self._am_primary():
            self.holder.on_grant(req)

    def on_fence_reply(self, peer: str, shard_id: str, epoch: int, term: int, offset: int, health: str) -> None:
        """``peer`` refuses every stream below ``epoch`` now (durably); ``offset`` is durable on its disk.

        It counts only in the round that asked: same epoch, same term, one of its members.
        """
        round_ = self._rounds.get(shard_id)
        if round_ is None or (round_.epoch, round_.term) != (epoch, term) or peer not in round_.members:
            return
        assert self.granter is not None and round_.term == self._granter_term
        round_.replies[peer] = Candidate(peer, health, offset)
        self._fenced[shard_id] = epoch

    def on_proposal_done(self, shard_id: str, epoch: int) -> None:
        """The failover proposed at ``epoch`` committed or failed: the shard may be looked at again."""
        if self._in_flight.get(shard_id, (None,))[0] == epoch:
            del self._in_flight[shard_id]

    def request_failover(self, shard_id: str, node_id: str) -> bool:
        """CLUSTER FAILOVER: hand ``shard_id`` to ``node_id``; False when this node does not lead."""
        if self.granter is None:
            return False
        self.requested[shard_id] = node_id
        return True

    # --- outputs -----------------------------------------------------------------------------------
    @property
    def lease_until_ms(self) -> int:
        """Until when (monotonic ms) this node may serve as primary; -1 if it may not."""
        return self.holder.valid_until_ms

    def tick(self, now_ms: int) -> list[Action]:
        actions: list[Action] = list(self._renew(now_ms))
        if self.granter is not None:
            for shard in list(self.state.shards.values()):
                actions += self._check_shard(shard, now_ms)
        return actions

    # --- leases ------------------------------------------------------------------------------------
    def _am_primary(self) -> bool:
        me = self.state.nodes.get(self.cfg.node_id)
        return me is not None and me.role == "primary"

    def _renew(self, now_ms: int) -> list[Action]:
        if not self._am_primary():
            self.holder.revoke()
            self._next_renew_ms = None
            return []
        if self._next_renew_ms is not None and now_ms < self._next_renew_ms:
            return []
        self._next_renew_ms = now_ms + self.cfg.lease_ms // 4
        req = self.holder.request(now_ms)
        if self._may_grant(self.cfg.node_id, now_ms):
            self.granter.grant(self.cfg.node_id, now_ms, self.state.nodes[self.cfg.node_id].shard_id or "")
            self.holder.on_grant(req)
            return []
        return [RequestLease(self.leader_id, req)] if self.leader_id else []

    def _may_grant(self, node_id: str, now_ms: int) -> bool:
        """Grant only as a leader no other can have replaced, to a primary no failover is replacing."""
        node = self.state.nodes.get(node_id)
        if self.granter is None or node is None or node.role != "primary" or self._draining(node.shard_id):
            return False
        if self._health.get(node_id) == "failed":
            return False  # its successor may be chosen at any moment: never extend its lease now
        if self.granter.another_may_serve(node.shard_id or "", node_id, now_ms):
            return False  # a failover committed while the old primary's lease from us still runs
        return self._authority_until_ms > now_ms

    def _draining(self, shard_id: str | None) -> bool:
        """A failover of this shard is under way, or its members are fenced (then one must follow):
        its primary's lease must run out, not be renewed."""
        if shard_id in self.requested or shard_id in self._rounds or shard_id in self._in_flight:
            return True
        shard = self.state.shards.get(shard_id or "")
        return shard is not None and self._fenced_some(shard)

    # --- failover ----------------------------------------------------------------------------------
    def _check_shard(self, shard: Shard, now_ms: int) -> list[Action]:
        wanted = self.requested.get(shard.id)
        if wanted is not None and shard.primary_id == wanted:
            del self.requested[shard.id]
            wanted = None
        failed = self._health.get(shard.primary_id) == "failed" and bool(shard.slots)
        if not (failed or wanted or self._fenced_some(shard)):
            self._rounds.pop(shard.id, None)
            return []
        in_flight = self._in_flight.get(shard.id)
        if in_flight is not None:
            if in_flight[0] == shard.epoch and now_ms - in_flight[1] < self.cfg.retry_ms:
                return []
            del self._in_flight[shard.id]
        if not self.granter.expired(shard.primary_id, now_ms):
            return []  # its lease may still be running: promoting now could make two writers
        round_ = self._rounds.get(shard.id)
        if round_ is None or round_.epoch != shard.epoch + 1:
            return self._start_round(shard, wanted, now_ms)
        if not round_.settled(now_ms, self.cfg.fence_timeout_ms):
            return []
        del self._rounds[shard.id]
        successor = choose_successor(shard.primary_id, shard.isr_ids, round_.replies)
        if successor is None and wanted is None and self._fenced_some(shard) and self._health.get(
                shard.primary_id, "online") == "online":  # fmt: skip
            successor = shard.primary_id  # reinstated at epoch + 1 (see the theory of operation)
        if successor is None:
            return self._no_successor(shard, wanted, round_)
        self._in_flight[shard.id] = (shard.epoch, now_ms)
        self._down_reported.discard(shard.id)
        op = "reinstate" if successor == shard.primary_id else "failover"
        cmd = command(op, shard_id=shard.id, epoch=shard.epoch, node_id=successor)
        why = "manual failover" if wanted else f"primary {shard.primary_id[:12]} failed"
        if not (wanted or failed):
            why = "its members are fenced"
        if op == "reinstate":
            why = "no member is eligible and the fenced primary is back: reinstating it"
        report = Report(f"failover of shard {shard.id[:12]} at epoch {shard.epoch} ({why}): promoting "
                        f"{successor[:12]} (answered {_answers(round_)})")  # fmt: skip
        return [report, Propose(shard.id, cmd, successor)]

    def _fenced_some(self, shard: Shard) -> bool:
        """Members answered a round of this shard, or report a fence of an earlier leadership: they
        refuse the old primary's stream from now on, so the failover goes ahead (or the primary is
        reinstated) even if it looks alive again."""
        fenced = self._fenced.get(shard.id)
        if fenced is not None and fenced <= shard.epoch:
            del self._fenced[shard.id]  # a failover or reinstatement moved the shard past it
            fenced = None
        return fenced == shard.epoch + 1 or reported_fence(shard, self._infos) is not None

    def _start_round(self, shard: Shard, wanted: str | None, now_ms: int) -> list[Action]:
        members = tuple(n for n in shard.isr_ids if n != shard.primary_id and wanted in (None, n))
        round_ = _Round(shard.epoch + 1, self._granter_term, now_ms, members)
        self._rounds[shard.id] = round_
        return [SendFence(n, shard.id, round_.epoch, round_.term) for n in members]

    def _no_successor(self, shard: Shard, wanted: str | None, round_: _Round) -> list[Action]:
        if wanted is not None:
            # Never leave a live primary without a lease for a failover that cannot happen.
            del self.requested[shard.id]
            return [Report(f"manual failover of shard {shard.id[:12]} to {wanted[:12]} refused: it is not an "
                           "online, in-sync replica with data")]  # fmt: skip
        if shard.id in self._down_reported:
            return []
        self._down_reported.add(shard.id)
        isr = [n[:12] for n in shard.isr_ids]
        return [Report(f"shard {shard.id[:12]} is down: primary {shard.primary_id[:12]} failed and no ISR member "
                       f"is eligible (ISR {isr}, answered {_answers(round_)})")]  # fmt: skip


def _answers(round_: _Round) -> list[str]:
    """The fence replies, for the log: member=health@durable offset."""
    return sorted(f"{n[:12]}={c.health}@{c.offset}" for n, c in round_.replies.items())
