"""Replication core: epoch histories, divergence, the stream's messages, ISR rules (DESIGN §5.2-5.3).

Pure and synchronous, like every core (DESIGN §2). Modules:

- ``history``: :class:`EpochHistory` (Kafka's leader-epoch cache) and
  :func:`divergence`, the offset a rejoining replica keeps;
- ``messages``: the frozen message types and their validated wire form;
- ``primary``: :class:`PrimaryTracker`, the primary's view of its replicas,
  the high watermark (the acknowledged offset) and ISR proposals;
- ``replica``: :class:`ReplicaState`, a replica's sync/stream/ack state machine;
- ``primary_driver`` and ``replica_driver``: :class:`PrimaryDriver` and
  :class:`ReplicaDriver`, every decision of each side as a list of actions,
  run by the node's shell (``io/replication.py``) and the simulator's
  (``sim/data_shells.py``) alike. Each driver owns its side's acknowledged
  offset: shells publish it only from their ``AckUpTo`` actions.

Flow: replica ``sync_request()`` -> primary ``on_sync_request()`` -> replica
``on_sync_reply()`` -> primary streams ``Records`` (after ``SnapshotChunk``s
for a full sync) -> replica ``on_records()`` -> shell fsyncs -> replica
``ack()`` -> primary ``on_ack()`` -> ``high_watermark()`` acknowledges writes;
``isr_changes()`` yields commands the shell proposes to Raft, and the applied
configuration comes back through ``set_config()``.
"""

from trionode.core.replication.history import EpochHistory, HistoryError, HistoryFull, divergence
from trionode.core.replication.messages import (
    Ack,
    Records,
    ReplMessage,
    ReplWireError,
    SnapshotChunk,
    SyncRefused,
    SyncReply,
    SyncRequest,
    from_wire,
    to_wire,
)
from trionode.core.replication.primary import PrimaryTracker
from trionode.core.replication.replica import ReplicaState, Step

__all__ = [
    "Ack",
    "EpochHistory",
    "HistoryError",
    "HistoryFull",
    "PrimaryTracker",
    "Records",
    "ReplMessage",
    "ReplWireError",
    "ReplicaState",
    "SnapshotChunk",
    "Step",
    "SyncRefused",
    "SyncReply",
    "SyncRequest",
    "divergence",
    "from_wire",
    "to_wire",
]
