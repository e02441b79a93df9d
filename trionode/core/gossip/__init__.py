"""Failure detection by gossip (DESIGN §6): a pure detector core and its ping/pong messages."""

from trionode.core.gossip.detector import Detector, GossipConfig, GossipStatistics, Health, Rng
from trionode.core.gossip.messages import GossipWireError, Ping, Pong, from_wire

__all__ = [
    "Detector", "GossipConfig", "GossipStatistics", "GossipWireError", "Health", "Ping", "Pong", "Rng", "from_wire",
]  # fmt: skip
