"""The pure Raft core (etcd-io/raft style): see ``rawnode`` for the entry point.

Modules, each named after what it holds: ``messages`` (boundary types),
``config`` (bounds and errors), ``log`` (entries and cursors), ``inflights``
and ``progress`` (the leader's view of a follower), ``quorum`` (majorities),
``tracker`` (membership and progress), ``membership`` (single-server
changes), ``raft`` (roles and terms), ``election``, ``replication``,
``rawnode`` (Ready/advance) and ``durable`` (WAL records and recovery).
"""

from trionode.core.raft.config import (
    ConfChangeRefused,
    NotLeader,
    ProposalRefused,
    RaftConfig,
    TransferInProgress,
    TransferRefused,
)
from trionode.core.raft.progress import ProgressStatus
from trionode.core.raft.rawnode import RaftStatus, RawNode

__all__ = [
    "ConfChangeRefused",
    "NotLeader",
    "ProgressStatus",
    "ProposalRefused",
    "RaftConfig",
    "RaftStatus",
    "RawNode",
    "TransferInProgress",
    "TransferRefused",
]
