"""Leases, the leader's authority and the failover controller (DESIGN §5.5, §6).

``controller.py`` holds the decisions and its theory of operation; the other
modules are its parts.
"""

from trionode.core.failover.authority import LeaderAuthority
from trionode.core.failover.controller import (
    Action,
    FailoverConfig,
    FailoverController,
    GrantLease,
    Propose,
    Report,
    RequestLease,
    SendFence,
)
from trionode.core.failover.fences import fence_info
from trionode.core.failover.lease import LeaseGranter, LeaseHolder
from trionode.core.failover.successor import Candidate, choose_successor

__all__ = [
    "Action", "Candidate", "FailoverConfig", "FailoverController", "GrantLease", "LeaderAuthority", "LeaseGranter",
    "LeaseHolder", "Propose", "Report", "RequestLease", "SendFence", "choose_successor", "fence_info",
]
