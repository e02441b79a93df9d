"""Gossip messages: a ping, its pong, and their plain wire form (DESIGN §6).

Theory of operation
-------------------
Each round a node pings some of its peers (see :mod:`.detector`), and a node
answers every ping with a pong. Both carry the same payload:

- ``sender``: the sending node's id;
- ``incarnation`` and ``seq``: the message's ordering key. ``seq`` counts the
  messages one process has sent; ``incarnation`` is chosen by the shell at
  process start and should grow across restarts. The key holds no clock
  reading, so receivers never compare clocks; it only lets a receiver drop a
  reordered older message instead of letting its stale suspicion list win;
- ``suspects``: the ids the sender suspects right now from its own direct
  observation (never hearsay), sorted, never the sender itself;
- ``info``: optional node info riding on the ping (e.g. ``{"offset": 17,
  "role": "replica"}``): a small flat dict that the detector stores and never
  reads. Keys this project reads have a schema, checked here with the rest:
  ``fence_shard`` (a shard id) and ``fence_epoch`` (an epoch >= 1) come
  together, the shard's fence above its configured epoch that the sender
  knows of (core/failover/fences.py).

``to_wire`` turns a message into a dict of strings, ints and lists;
``from_wire`` rebuilds it and refuses anything else with
:class:`GossipWireError`: a peer's bytes are untrusted, and the detector
asserts on well-formed input. This module bounds every count (suspects, info
keys, string lengths); the shell bounds the frame.
"""

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from trionode.core.cluster.state import is_id, nodes_max
from trionode.core.shown import shown

# fmt: off
suspects_max = nodes_max       # a node suspects only members, and there are at most this many
info_keys_max = 16             # keys in one node-info dict
info_key_chars_max = 64
info_str_chars_max = 256       # one string value in node info
counter_max = 2**63 - 1        # incarnation and seq
FENCE_SHARD, FENCE_EPOCH = "fence_shard", "fence_epoch"  # info keys read by core/failover/fences.py
# fmt: on

InfoValue = int | str | bool | None
Info = dict[str, InfoValue]
Kind = Literal["ping", "pong"]


class GossipWireError(ValueError):
    """A bus payload is not a well-formed gossip message."""


@dataclass(frozen=True, slots=True)
class _Gossip:
    KIND: ClassVar[Kind]

    sender: str  # Invariant: is_id(sender).
    incarnation: int  # Invariant: 0 <= incarnation <= counter_max.
    seq: int  # Invariant: 0 <= seq <= counter_max; grows by one per message within an incarnation.
    suspects: tuple[str, ...]  # Invariant: sorted, unique, ids, sender not among them, len <= suspects_max.
    info: Info | None = None  # Invariant: None or valid_info(info). Not copied: treat as read-only.

    def __post_init__(self) -> None:
        assert is_id(self.sender), self.sender
        assert list(self.suspects) == sorted(set(self.suspects)) and self.sender not in self.suspects
        assert len(self.suspects) <= suspects_max and 0 <= self.seq <= counter_max

    @property
    def key(self) -> tuple[int, int]:
        """The ordering key: a larger key is a later message from the same sender."""
        return (self.incarnation, self.seq)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.KIND, "sender": self.sender, "incarnation": self.incarnation,
                               "seq": self.seq, "suspects": list(self.suspects)}  # fmt: skip
        if self.info is not None:
            out["info"] = dict(self.info)
        return out

    @classmethod
    def from_wire(cls, raw: Any) -> "Ping | Pong":
        msg = from_wire(raw)
        if msg.KIND != cls.KIND:
            raise GossipWireError(f"expected a gossip {cls.KIND}, got a {msg.KIND}")
        return msg


@dataclass(frozen=True, slots=True)
class Ping(_Gossip):
    """A -> B: I am alive, here is whom I suspect and my info. B answers with a :class:`Pong`."""

    KIND: ClassVar[Kind] = "ping"


@dataclass(frozen=True, slots=True)
class Pong(_Gossip):
    """B -> A, the answer to a ping: the same payload, from B."""

    KIND: ClassVar[Kind] = "pong"


_KINDS: dict[str, type[Ping] | type[Pong]] = {"ping": Ping, "pong": Pong}
_REQUIRED = ("type", "sender", "incarnation", "seq", "suspects")
_OPTIONAL = ("info",)


def from_wire(raw: Any) -> Ping | Pong:
    """Rebuild a ping or a pong from its wire dict; anything else raises :class:`GossipWireError`."""
    if not isinstance(raw, dict):
        raise GossipWireError(f"a gossip message is a map, not {type(raw).__name__}")
    missing = [k for k in _REQUIRED if k not in raw]
    extra = sorted(shown(k) for k in raw if k not in _REQUIRED and k not in _OPTIONAL)
    if missing or extra:
        raise GossipWireError(f"gossip message: missing fields {missing}, unexpected {extra[:4]}")
    kind = _KINDS.get(raw["type"]) if isinstance(raw["type"], str) else None
    if kind is None:
        raise GossipWireError(f"unknown gossip message type {shown(raw['type'], 40)}")
    sender = _id(raw["sender"], "sender")
    suspects = _suspects(raw["suspects"], sender)
    info = _info(raw["info"]) if "info" in raw else None
    return kind(sender, _counter(raw["incarnation"], "incarnation"), _counter(raw["seq"], "seq"), suspects, info)


def valid_info(info: Any) -> bool:
    """Is ``info`` a node-info dict this module would accept from the wire?"""
    try:
        _info(info)
    except GossipWireError:
        return False
    return True


def _id(value: Any, name: str) -> str:
    if not is_id(value):
        raise GossipWireError(f"{name} must be 40 lower-case hex characters, not {shown(value, 60)}")
    return value


def _counter(value: Any, name: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= counter_max):
        raise GossipWireError(f"{name} must be an integer in [0, 2**63), not {shown(value, 40)}")
    return value


def _suspects(value: Any, sender: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > suspects_max:
        raise GossipWireError(f"suspects must be a list of at most {suspects_max} node ids")
    ids = tuple(sorted({_id(v, "a suspect") for v in value}))
    if len(ids) != len(value) or sender in ids:
        raise GossipWireError("suspects must not repeat an id nor name the sender")
    return ids


def _info(value: Any) -> Info:
    if not isinstance(value, dict) or len(value) > info_keys_max:
        raise GossipWireError(f"info must be a map of at most {info_keys_max} entries")
    for k, v in value.items():
        if not (isinstance(k, str) and 0 < len(k) <= info_key_chars_max):
            raise GossipWireError(f"an info key is a string of 1..{info_key_chars_max} characters, not {shown(k, 40)}")
        if isinstance(v, int) and not isinstance(v, bool):
            ok = -(2**63) <= v < 2**64
        elif isinstance(v, str):
            ok = len(v) <= info_str_chars_max
        else:
            ok = v is None or isinstance(v, bool)
        if not ok:
            raise GossipWireError(f"info[{shown(k)}] must be a 64-bit int, a short string, a bool or nil")
    _fence(value)
    return dict(value)


def _fence(info: dict[str, Any]) -> None:
    """A fence report names a shard and an epoch, both or neither: the leader acts on it."""
    if FENCE_SHARD not in info and FENCE_EPOCH not in info:
        return
    if FENCE_SHARD not in info or FENCE_EPOCH not in info:
        raise GossipWireError(f"info holds {FENCE_SHARD} and {FENCE_EPOCH} together or neither")
    _id(info[FENCE_SHARD], FENCE_SHARD)
    if _counter(info[FENCE_EPOCH], FENCE_EPOCH) < 1:
        raise GossipWireError(f"{FENCE_EPOCH} must be at least 1")
