"""Leases and automatic failover: the shell around ``core/failover``.

* Every primary renews its lease with the Raft leader every quarter lease
  (the leader grants its own lease locally). Sessions refuse keyed commands
  on a primary whose lease has run out, so a partitioned or paused primary
  stops serving on its own.
* The Raft leader grants leases only to nodes that are primaries in its
  applied configuration, and runs failover: for a shard whose primary the
  failure detector reports failed, once that primary's lease has certainly
  expired, it proposes ``failover`` to the best eligible ISR member (the apply
  function checks the epoch and the ISR again). With no eligible member the
  shard stays down and the log says why.

Replicas learn the new configuration from Raft: they fence the old epoch and
re-sync with the new primary; the old primary, when it returns, finds itself a
replica outside the ISR and resyncs, which discards its unacknowledged suffix.
"""

import logging
from typing import TYPE_CHECKING, Any

import trio

from trionode import limits
from trionode.core.cluster.commands import command
from trionode.core.failover import Candidate, LeaseGranter, LeaseHolder, choose_successor
from trionode.io.control import monotonic_ms

if TYPE_CHECKING:
    from trionode.io.node import NodeRuntime

log = logging.getLogger("trionode.failover")




class FailoverDriver:
    def __init__(self, runtime: "NodeRuntime") -> None:
        self.runtime = runtime
        self.control = runtime.control
        timeout_ms = runtime.config.node_timeout_ms
        self.lease_ms = max(100, timeout_ms // 2)
        self.drift_ms = max(50, self.lease_ms // 5)
        self.holder = LeaseHolder(self.lease_ms)
        election_max_ms = 2 * limits.raft_election_ticks * limits.raft_tick_ms
        if self.lease_ms <= election_max_ms:
            # Leases are renewed through the Raft leader: one that dies takes up to an election
            # to replace, and a shorter lease runs out meanwhile on every primary (a drill
            # at node_timeout_ms 2000 measured writes pausing on every shard at each leader loss).
            log.warning("node_timeout_ms %d gives primaries %d ms leases, no longer than a Raft election "
                        "(up to %d ms): losing the Raft leader will pause writes on every shard; "
                        "use node_timeout_ms > %d to ride through it", timeout_ms, self.lease_ms,
                        election_max_ms, 2 * election_max_ms)  # fmt: skip
        self.granter: LeaseGranter | None = None
        self._in_flight: set[str] = set()     # shards with a failover proposal under way
        self._down_logged: set[str] = set()
        # Manual failovers asked of this node as leader: shard -> the replica to promote.
        self.requested: dict[str, str] = {}
        self.control.bus_handlers["lease"] = self._on_lease_message
        self.control.bus_handlers["failover_req"] = self._on_failover_request

    # --- leases -------------------------------------------------------------------
    def _on_lease_message(self, peer: str, payload: dict) -> None:
        request = payload.get("req")
        if not isinstance(request, int):
            return
        if payload.get("ok"):
            self.holder.on_grant(request)
            self._publish_lease()
        elif self._may_grant(peer):
            self.granter.grant(peer, monotonic_ms())
            self.control.bus.send(peer, {"k": "lease", "req": request, "ok": True})

    def _may_grant(self, node_id: str) -> bool:
        """Grant only while no other leader can exist (a leader woken from a pause must not)."""
        node = self.control.state.nodes.get(node_id)
        if node is None or node.shard_id in self.requested or node.shard_id in self._in_flight:
            return False  # a failover is draining this primary's lease, or replacing it
        if self.runtime.cluster_health().get(node_id) == "failed":
            return False  # its successor may be chosen at any moment: never extend its lease now
        fresh = self.control.authority_until_ms() > monotonic_ms()
        return fresh and self.granter is not None and node.role == "primary"

    def _renew(self) -> None:
        me = self.control.state.nodes.get(self.runtime.node_id)
        if me is None or me.role != "primary":
            self.holder.revoke()
            self._publish_lease()
            return
        now = monotonic_ms()
        request = self.holder.request(now)
        if self._may_grant(self.runtime.node_id):
            self.granter.grant(self.runtime.node_id, now)
            self.holder.on_grant(request)
            self._publish_lease()
        elif self.control.leader:
            self.control.bus.send(self.control.leader, {"k": "lease", "req": request})

    def _publish_lease(self) -> None:
        self.runtime.node.lease_until_ms = self.holder.valid_until_ms

    # --- failover -------------------------------------------------------------------
    def _track_leadership(self) -> None:
        leading = self.control.rawnode is not None and self.control.rawnode.is_leader
        if leading and self.granter is None:
            handover_ms = 2 * limits.raft_election_ticks * limits.raft_tick_ms
            self.granter = LeaseGranter(self.lease_ms, self.drift_ms, monotonic_ms(), handover_ms)
        elif not leading:
            self.granter = None

    # --- manual failover ---------------------------------------------------------------
    async def request(self, shard_id: str, node_id: str) -> None:
        """Ask the leader to hand ``shard_id`` to ``node_id``; return once this node sees it done."""
        from trionode.io.control import ProposalError

        if self.granter is not None:
            self.requested[shard_id] = node_id
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

    def _on_failover_request(self, peer: str, payload: dict) -> None:
        shard_id, node_id = payload.get("shard"), payload.get("node")
        if self.granter is not None and isinstance(shard_id, str) and node_id == peer:
            log.info("manual failover of shard %s to %s requested", str(shard_id)[:12], peer[:12])
            self.requested[shard_id] = peer

    def _check_shards(self, nursery: trio.Nursery) -> None:
        if self.granter is None:
            self.requested.clear()  # requests were made to this node as leader
            return
        health = self.runtime.cluster_health()
        for shard in self.control.state.shards.values():
            wanted = self.requested.get(shard.id)
            if wanted is not None and shard.primary_id == wanted:
                del self.requested[shard.id]
                continue
            failed = health.get(shard.primary_id) == "failed" and bool(shard.slots)
            if not (failed or wanted) or shard.id in self._in_flight:
                continue
            if not self.granter.expired(shard.primary_id, monotonic_ms()):
                continue  # its lease may still be running: promoting now could make two writers
            candidates = self._candidates(health)
            if wanted is not None:
                candidates = {wanted: candidates[wanted]} if wanted in candidates else {}
            successor = choose_successor(shard.primary_id, shard.isr_ids, candidates)
            if successor is None and wanted is not None:
                # Never leave a live primary without a lease for a failover that cannot happen.
                del self.requested[shard.id]
                log.warning("manual failover of shard %s to %s refused: it is not an online, in-sync replica "
                            "with data", shard.id[:12], wanted[:12])
                continue
            if successor is None:
                if shard.id not in self._down_logged:
                    self._down_logged.add(shard.id)
                    log.warning("shard %s is down: primary %s failed and no ISR member is eligible (ISR %s)",
                                shard.id[:12], shard.primary_id[:12], [n[:12] for n in shard.isr_ids])
                continue
            self._in_flight.add(shard.id)
            nursery.start_soon(self._fail_over, shard.id, shard.epoch, successor)

    def _candidates(self, health: dict[str, str]) -> dict[str, Candidate]:
        gossip = self.runtime.gossip.detector
        out = {}
        for node_id in self.control.state.nodes:
            info = gossip.info(node_id) or {}
            offset = info.get("offset", 0) if isinstance(info.get("offset"), int) else 0
            out[node_id] = Candidate(node_id, health.get(node_id, "online"), offset)
        return out

    async def _fail_over(self, shard_id: str, epoch: int, successor: str) -> None:
        from trionode.io.control import ProposalError

        try:
            log.warning("failover of shard %s at epoch %d: promoting %s", shard_id[:12], epoch, successor[:12])
            await self.control.submit(command("failover", shard_id=shard_id, epoch=epoch, node_id=successor))
            log.warning("failover of shard %s committed: %s is primary at epoch %d", shard_id[:12],
                        successor[:12], epoch + 1)
            self._down_logged.discard(shard_id)
        except ProposalError as e:
            log.warning("failover of shard %s not applied: %s", shard_id[:12], e)
        finally:
            self._in_flight.discard(shard_id)

    # --- the task --------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._track_leadership()
            self._renew()
            task_status.started()
            while True:
                await trio.sleep(self.lease_ms / 4 / 1000)
                self._track_leadership()
                self._renew()
                self.runtime.gossip.publish_info()
                self._check_shards(nursery)
