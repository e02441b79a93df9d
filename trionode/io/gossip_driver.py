"""The failure detector's shell: pings on the cluster bus, health for status and CLUSTER replies.

The core (``core/gossip``) decides who is suspect or failed; this task only
moves its pings and pongs over the bus, feeds it the membership from the
applied Raft configuration, and logs its verdicts. Every ``tick`` runs a small
fraction of a ping interval so rounds start on time; the core itself limits a
round to once per ``ping_interval_ms``.
"""

import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

import trio

from trionode.core.cluster.state import ClusterState
from trionode.core.gossip import Detector, GossipConfig, GossipWireError, Ping, Pong, from_wire
from trionode.core.gossip.messages import Info

log = logging.getLogger("trionode.gossip")

TICKS_PER_INTERVAL = 5


class GossipDriver:
    def __init__(self, node_id: str, node_timeout_ms: int, bus: Any, clock_ms: Callable[[], int],
                 rng: random.Random, incarnation: int) -> None:
        """``clock_ms`` is monotonic (a wall-clock step must not suspect or revive anyone);
        ``incarnation`` must grow across restarts (the wall clock at start), so peers accept
        this life's reports at once."""
        self.node_id = node_id
        self.bus = bus
        self.clock_ms = clock_ms
        self.config = GossipConfig.for_node_timeout(node_timeout_ms)
        self.detector = Detector(node_id, self.config, rng, incarnation=incarnation)

    def on_config(self, state: ClusterState, voters: tuple[str, ...]) -> None:
        members = set(state.nodes) | {self.node_id}
        self.detector.set_members(members, [v for v in voters if v in members])

    def healths(self) -> dict[str, str]:
        return self.detector.healths(self.clock_ms())

    def infos(self, node_ids: Iterable[str]) -> dict[str, Info | None]:
        """The latest info each node sent (this node's own for its id), checked when it arrived."""
        return {node_id: self.detector.info(node_id) for node_id in node_ids}

    def on_message(self, peer: str, payload: dict) -> None:
        try:
            msg = from_wire(payload.get("m"))
        except GossipWireError as e:
            log.debug("dropping a malformed gossip message from %s: %s", peer[:12], e)
            return
        now = self.clock_ms()
        if isinstance(msg, Ping):
            self.bus.send(peer, {"k": "gossip", "m": self.detector.on_ping(peer, msg, now).to_wire()})
        elif isinstance(msg, Pong):
            self.detector.on_pong(peer, msg, now)
        self._log_changes()

    def _log_changes(self) -> None:
        for line in self.detector.changes():
            log.info("failure detector: %s", line)

    async def run(self) -> None:
        while True:
            await trio.sleep(self.config.ping_interval_ms / TICKS_PER_INTERVAL / 1000)
            for peer, ping in self.detector.tick(self.clock_ms()):
                self.bus.send(peer, {"k": "gossip", "m": ping.to_wire()})
            self._log_changes()
