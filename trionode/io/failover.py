"""Leases and automatic failover: the executor of ``core/failover``'s controller.

Every decision (who gets a lease, when a primary is failed over, whom to fence
and whom to promote) is the controller's. This task feeds it what the node
knows (the applied configuration, the Raft term and leader, the failure
detector's health, the leader's authority), ticks it on the monotonic clock,
and carries its actions out over the cluster bus. It also tells the gossip
what fence of its shard this node knows of, and the controller what every
node told (core/failover/fences.py), so a leader sees a fence that an earlier
leader made. The actions:

* ``RequestLease`` / ``GrantLease``: ``lease`` messages between a primary and
  the Raft leader;
* ``SendFence``: a ``fence`` message; the replica's driver fences its
  replication state durably (io/replication.py) and then answers ``fenced``
  with its durable offset and the round's term;
* ``Propose``: the failover entry, submitted through the control plane; its
  outcome goes back to the controller.

The lease the controller holds is published to the session, which refuses
commands on a primary whose lease has run out.
"""

import logging
from typing import TYPE_CHECKING, Any

import trio

from trionode import limits
from trionode.core import failover as core
from trionode.core.replication.replica_driver import AnswerFence
from trionode.io.control import monotonic_ms

if TYPE_CHECKING:
    from trionode.io.node import NodeRuntime

log = logging.getLogger("trionode.failover")

TICKS_PER_RENEWAL = 2  # the controller renews every quarter lease; ticking more often speeds up fencing rounds


class FailoverDriver:
    def __init__(self, runtime: "NodeRuntime") -> None:
        self.runtime = runtime
        self.control = runtime.control
        timeout_ms = runtime.config.node_timeout_ms
        election_max_ms = 2 * limits.raft_election_ticks * limits.raft_tick_ms
        config = core.FailoverConfig.for_node(runtime.node_id, timeout_ms, handover_ms=election_max_ms)
        self.controller = core.FailoverController(config)
        self.lease_ms = config.lease_ms
        if self.lease_ms <= election_max_ms:
            # Leases are renewed through the Raft leader: one that dies takes up to an election
            # to replace, and a shorter lease runs out meanwhile on every primary (a drill
            # at node_timeout_ms 2000 measured writes pausing on every shard at each leader loss).
            log.warning("node_timeout_ms %d gives primaries %d ms leases, no longer than a Raft election "
                        "(up to %d ms): losing the Raft leader will pause writes on every shard; "
                        "use node_timeout_ms > %d to ride through it", timeout_ms, self.lease_ms,
                        election_max_ms, 2 * election_max_ms)  # fmt: skip
        self._nursery: trio.Nursery | None = None
        runtime.replication.on_fence_answer = self._answer_fence
        handlers = {"lease": self._on_lease, "failover_req": self._on_failover_request, "fence": self._on_fence,
                    "fenced": self._on_fenced}  # fmt: skip
        self.control.bus_handlers.update(handlers)

    # --- inputs ---------------------------------------------------------------------------
    def _feed(self, now_ms: int) -> None:
        """Tell the controller what the node knows now."""
        c, control = self.controller, self.control
        c.on_config(control.state)
        me = self.runtime.node_id
        leading = control.rawnode is not None and control.rawnode.is_leader
        # A node that stepped down may still name itself leader until Raft's soft state is
        # handled: it must not keep leading (rounds, grants) on that stale name.
        leader = me if leading else ("" if control.leader == me else control.leader)
        c.on_leadership(control.term, leader, now_ms)
        c.on_health(self.runtime.cluster_health())
        gossip = self.runtime.gossip
        gossip.detector.set_info(core.fence_info(control.state, me, **self.runtime.replication.fence_facts()) or None)
        c.on_gossip_info(gossip.infos(control.state.nodes))
        c.on_authority(control.authority_until_ms())

    def _on_lease(self, peer: str, payload: dict) -> None:
        req = payload.get("req")
        if not isinstance(req, int) or isinstance(req, bool):
            return
        now = monotonic_ms()
        self._feed(now)
        if payload.get("ok"):
            self.controller.on_lease_granted(req)
            self._publish_lease()
        else:
            self._execute(self.controller.on_lease_request(peer, req, now))

    def _on_failover_request(self, peer: str, payload: dict) -> None:
        shard_id, node_id = payload.get("shard"), payload.get("node")
        if isinstance(shard_id, str) and node_id == peer and self.controller.request_failover(shard_id, peer):
            log.info("manual failover of shard %s to %s requested", shard_id[:12], peer[:12])

    def _on_fence(self, peer: str, payload: dict) -> None:
        shard_id, epoch, term = (payload.get(k) for k in ("shard", "epoch", "term"))
        if peer == self.control.leader and isinstance(shard_id, str) and _ints(epoch, term):  # only the leader fences
            self.runtime.replication.fence(peer, shard_id, epoch, term)  # answered by _answer_fence

    def _answer_fence(self, shard_id: str, answer: AnswerFence) -> None:
        """The replica's driver fenced durably: answer the leader (perhaps this node itself)."""
        log.info("fenced shard %s at epoch %d for a failover: durable offset %d", shard_id[:12], answer.epoch,
                 answer.offset)  # fmt: skip
        reply = {"k": "fenced", "shard": shard_id, "epoch": answer.epoch, "term": answer.term,
                 "offset": answer.offset, "health": answer.health}  # fmt: skip
        if answer.to == self.runtime.node_id:
            self._on_fenced(answer.to, reply)
        else:
            self.control.bus.send(answer.to, reply)

    def _on_fenced(self, peer: str, payload: dict) -> None:
        shard_id, epoch, term, offset, health = (payload.get(k) for k in ("shard", "epoch", "term", "offset", "health"))
        if isinstance(shard_id, str) and _ints(epoch, term, offset) and isinstance(health, str):
            self.controller.on_fence_reply(peer, shard_id, epoch, term, offset, health)
            self._tick()  # the last answer settles the round: propose now, not a tick later

    # --- actions ------------------------------------------------------------------------------
    def _execute(self, actions: list[core.Action]) -> None:
        for action in actions:
            if isinstance(action, core.RequestLease):
                self.control.bus.send(action.to, {"k": "lease", "req": action.req})
            elif isinstance(action, core.GrantLease):
                self.control.bus.send(action.to, {"k": "lease", "req": action.req, "ok": True})
            elif isinstance(action, core.SendFence) and action.to == self.runtime.node_id:
                self.runtime.replication.fence(action.to, action.shard_id, action.epoch, action.term)
            elif isinstance(action, core.SendFence):
                fence = {"k": "fence", "shard": action.shard_id, "epoch": action.epoch, "term": action.term}
                self.control.bus.send(action.to, fence)
            elif isinstance(action, core.Propose):
                self._nursery.start_soon(self._propose, action)
            elif isinstance(action, core.Report):
                log.warning("%s", action.line)
        self._publish_lease()

    async def _propose(self, action: core.Propose) -> None:
        from trionode.io.control import ProposalError

        epoch = action.command["epoch"]
        try:
            await self.control.submit(action.command)
            log.warning("failover of shard %s committed: %s is primary at epoch %d", action.shard_id[:12],
                        action.successor[:12], epoch + 1)  # fmt: skip
        except ProposalError as e:
            log.warning("failover of shard %s not applied: %s", action.shard_id[:12], e)
        finally:
            self.controller.on_proposal_done(action.shard_id, epoch)

    def _publish_lease(self) -> None:
        self.runtime.node.lease_until_ms = self.controller.lease_until_ms

    # --- manual failover ---------------------------------------------------------------
    async def request(self, shard_id: str, node_id: str) -> None:
        """Ask the leader to hand ``shard_id`` to ``node_id``; return once this node sees it done."""
        from trionode.io.control import ProposalError

        if self.controller.request_failover(shard_id, node_id):
            log.info("manual failover of shard %s to %s requested", shard_id[:12], node_id[:12])
        elif self.control.leader:
            self.control.bus.send(self.control.leader, {"k": "failover_req", "shard": shard_id, "node": node_id})
        else:
            raise ProposalError("CLUSTERDOWN no Raft leader is known; retry shortly")
        with trio.move_on_after(limits.raft_proposal_timeout_ms * 3 / 1000):
            while not self._is_primary(shard_id, node_id):
                await trio.sleep(0.05)
            return
        raise ProposalError("TRYAGAIN the failover did not complete in time; check `trionode status`")

    def _is_primary(self, shard_id: str, node_id: str) -> bool:
        shard = self.control.state.shards.get(shard_id)
        return shard is not None and shard.primary_id == node_id

    # --- the task --------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._tick()
            task_status.started()
            while True:
                await trio.sleep(self.lease_ms / 4 / TICKS_PER_RENEWAL / 1000)
                self._tick()

    def _tick(self) -> None:
        now = monotonic_ms()
        self._feed(now)
        self._execute(self.controller.tick(now))


def _ints(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)
