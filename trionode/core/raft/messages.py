"""The values that cross the Raft core's boundary: entries, messages, state, Ready.

Theory of operation. The Raft core (``rawnode.RawNode``) is a pure state
machine in the style of etcd-io/raft: the shell feeds it ticks, messages and
proposals, and collects a :class:`Ready` that says what to persist, what to
send and what to apply. The shell must handle a Ready in this order:

1. persist ``hard_state``, ``snapshot`` and ``entries`` (truncating the log
   from ``entries[0].index`` first: a conflicting suffix is replaced), and
   fsync when ``must_sync``;
2. send ``messages`` (only now: a vote or an ACK may depend on step 1);
3. apply ``committed`` entries to the state machine (and ``snapshot``);
4. call ``RawNode.advance(ready)``.

All types here are plain frozen dataclasses of ints, strings, tuples and
CBOR-friendly payloads, so they can be encoded for the bus and the WAL and
compared in tests. Node ids are the nodes' 40-hex-digit ids.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EntryKind(StrEnum):
    NOOP = "noop"          # appended by every new leader (commits earlier terms' entries)
    NORMAL = "normal"      # a cluster state machine command; ``data`` is its payload
    CONF = "conf"          # a membership change; ``data`` is a ConfChange


class ConfChangeKind(StrEnum):
    ADD_LEARNER = "add_learner"
    PROMOTE = "promote"            # learner -> voter
    DEMOTE = "demote"              # voter -> learner
    REMOVE = "remove"              # remove from the group entirely


@dataclass(frozen=True, slots=True)
class ConfChange:
    kind: ConfChangeKind
    node_id: str


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    kind: EntryKind = EntryKind.NORMAL
    data: Any = None


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: tuple[str, ...] = ()       # sorted
    learners: tuple[str, ...] = ()     # sorted; Invariant: disjoint from voters


@dataclass(frozen=True, slots=True)
class Snapshot:
    index: int = 0                 # last log index the snapshot covers
    term: int = 0                  # term of that entry
    conf: ConfState = field(default_factory=ConfState)
    data: Any = None               # the state machine's state at ``index`` (opaque to Raft)


@dataclass(frozen=True, slots=True)
class HardState:
    term: int = 0
    vote: str = ""                 # "" = voted for nobody in ``term``
    commit: int = 0


class MsgType(StrEnum):
    VOTE = "vote"
    VOTE_RESP = "vote_resp"
    PRE_VOTE = "pre_vote"
    PRE_VOTE_RESP = "pre_vote_resp"
    APP = "app"                    # AppendEntries (also carries commit)
    APP_RESP = "app_resp"
    HEARTBEAT = "heartbeat"
    HEARTBEAT_RESP = "heartbeat_resp"
    SNAP = "snap"                  # InstallSnapshot (whole snapshot in one message)
    TIMEOUT_NOW = "timeout_now"    # leadership transfer: campaign now, skipping pre-vote


@dataclass(frozen=True, slots=True)
class Message:
    type: MsgType
    frm: str
    to: str
    term: int
    log_term: int = 0              # APP: term of entry ``index``; VOTE: candidate's last log term
    index: int = 0                 # APP: index preceding ``entries``; VOTE: candidate's last index;
                                   # APP_RESP: highest index known to match (prevIndex + n)
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0           # APP_RESP reject: the follower's last index (for fast backoff)
    snapshot: Snapshot | None = None
    context: str = ""              # "transfer" on a VOTE sent because of TIMEOUT_NOW


@dataclass(frozen=True, slots=True)
class SoftState:
    leader: str                    # "" when unknown
    role: str                      # "leader" | "follower" | "candidate" | "pre_candidate" | "learner"


@dataclass(frozen=True, slots=True)
class Ready:
    soft_state: SoftState | None               # set when it changed since the last Ready
    hard_state: HardState | None               # set when it must be persisted
    entries: tuple[Entry, ...]                 # to persist; the log is cut at entries[0].index first
    snapshot: Snapshot | None                  # to persist and apply (a received InstallSnapshot)
    messages: tuple[Message, ...]              # to send after persisting
    committed: tuple[Entry, ...]               # to apply, in order, after persisting
    must_sync: bool                            # True when hard state or entries changed
