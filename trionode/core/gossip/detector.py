"""The failure detector: which members are online, suspected or failed (DESIGN §6, "Gossip").

Theory of operation
-------------------
The detector is a pure state machine: the shell passes the time (``now_ms``, a
monotonic clock in milliseconds that never goes back) and a seeded
``random.Random``; the detector sends nothing itself, it returns the messages
to send. One :class:`Detector` per node::

    det = Detector(my_id, GossipConfig(), random.Random(seed), incarnation=start_counter)
    det.set_members(members, voters)          # on every applied Raft configuration
    det.set_info({"offset": 17, "role": "replica"})   # rides on every ping and pong I send
    for peer, ping in det.tick(now_ms):       # call at least every ping_interval_ms; more often is harmless
        send(peer, ping.to_wire())
    # a ping arrives from peer ``frm``:   send(frm, det.on_ping(frm, Ping.from_wire(raw), now_ms).to_wire())
    # a pong arrives from peer ``frm``:   det.on_pong(frm, Pong.from_wire(raw), now_ms)
    det.health(node_id, now_ms); det.healths(now_ms); det.failed(now_ms); det.info(node_id)
    for line in det.changes(): log(line)      # drains the transitions logged since the last call

Rules
-----
1. **Rounds.** ``tick`` starts a round at most once per ``ping_interval_ms``. A
   round pings every peer I have not heard from within ``ping_interval_ms``,
   plus ``fanout`` other peers picked at random: at most one ping per peer.
2. **Hearing.** Any ping or pong from a member (the bus's ``frm`` must equal the
   message's ``sender``) proves it alive now: my suspicion of it ends at once.
   Every ping is answered by a pong, and both carry my suspicion list, so my
   peers learn of the change within a round.
3. **Suspicion** (my own view). I suspect a peer when I have heard nothing
   from it for ``node_timeout_ms``. A peer is never suspected within
   ``node_timeout_ms`` of being added (grace): being added counts as hearing.
   ``set_members`` has no clock, so the grace starts at the next ``tick``,
   ``on_ping`` or ``on_pong``.
4. **Reports.** The latest suspicion list of each *voter* is kept, stamped with
   when it arrived; it counts for ``report_ttl_ms``. Lists from non-voters are
   not kept. A message whose ordering key (incarnation, seq) is not above the
   last accepted one from its sender is a reordered or duplicated one: it still
   proves the sender alive, but its list and info are dropped. After
   ``report_ttl_ms`` without an accepted message any key is accepted again, so
   a restarted sender whose incarnation did not grow is heard again in time.
5. **Failure.** A node is failed when a strict majority of the current voters
   suspect it: fresh reports from other voters, plus my own view if I am a
   voter. Suspicion is never relayed (a list names only what its sender
   observed itself), so a node that a majority of voters can hear is not
   failed, whatever a minority or a one-way link reports.
6. **Health.** ``failed`` if rule 5 holds, else ``suspect`` if I suspect it,
   else ``online``. I am always online to myself; ids that are not members are
   ``online`` (no evidence against them).
7. **Changes.** Each change of a member's health, as seen by ``tick``,
   ``on_ping`` and ``on_pong``, is logged: ``node X suspected``, ``node X
   failed (suspected by a, b, c)``, ``node X recovered``.

Bounds: members <= ``members_max``; one report per voter; one ping per peer
per round; the change log keeps the last ``changes_max`` lines.

Left to the shell: the clock, the seed, the incarnation (anything that grows
across process starts, e.g. the wall clock at start in ms), sending, framing,
and what to do about a failed node (failover is the Raft leader's business).
"""

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from trionode.core.cluster.state import is_id, nodes_max
from trionode.core.gossip.messages import Info, Ping, Pong, valid_info

Health = Literal["online", "suspect", "failed"]
_T = TypeVar("_T")


class Rng(Protocol):
    """What the detector needs of its seeded ``random.Random`` (the core may not import ``random``)."""

    def sample(self, population: Sequence[_T], k: int) -> list[_T]: ...


members_max = nodes_max
changes_max = 256


@dataclass(frozen=True, slots=True)
class GossipConfig:
    node_timeout_ms: int = 5000
    ping_interval_ms: int = 1000
    fanout: int = 3  # random peers pinged per round, besides the overdue ones
    report_ttl_ms: int | None = None  # None: 2 * node_timeout_ms

    def __post_init__(self) -> None:
        if self.report_ttl_ms is None:
            object.__setattr__(self, "report_ttl_ms", 2 * self.node_timeout_ms)
        assert self.report_ttl_ms is not None
        if not 0 < self.ping_interval_ms < self.node_timeout_ms:
            raise ValueError("gossip: need 0 < ping_interval_ms < node_timeout_ms")
        if self.fanout < 0:
            raise ValueError("gossip: fanout must be >= 0")
        if self.report_ttl_ms <= self.ping_interval_ms:
            raise ValueError("gossip: report_ttl_ms must exceed ping_interval_ms, or reports lapse between rounds")

    @classmethod
    def for_node_timeout(cls, node_timeout_ms: int) -> "GossipConfig":
        """A node's detector (io/gossip_driver.py, and the simulator's): five rounds per timeout, at most 1 s apart."""
        return cls(node_timeout_ms=node_timeout_ms, ping_interval_ms=max(1, min(1000, node_timeout_ms // 5)))


@dataclass(frozen=True, slots=True)
class GossipStatistics:
    members: int
    voters: int
    suspected: int  # by me
    failed: int
    pings_sent: int
    pongs_sent: int
    msgs_accepted: int
    msgs_stale: int  # reordered or duplicated: proved liveness only
    msgs_ignored: int  # from a non-member, or ``frm`` and ``sender`` disagree
    changes_dropped: int  # log lines pushed out of the bounded log before changes() drained them


@dataclass(slots=True)
class _Peer:
    added_ms: int | None = None  # None until a call with a clock stamps it (rule 3)
    heard_ms: int | None = None  # Invariant: None or >= added_ms.
    key: tuple[int, int] | None = None  # ordering key of the last accepted message
    key_ms: int = 0  # when that message was accepted
    info: Info | None = None
    shown: Health = "online"  # the health the change log last announced


@dataclass(frozen=True, slots=True)
class _Report:
    suspects: frozenset[str]  # Invariant: members only, never the reporter nor me.
    received_ms: int


class Detector:
    def __init__(self, my_id: str, config: GossipConfig, rng: Rng, *, incarnation: int = 0) -> None:
        assert is_id(my_id), my_id
        assert 0 <= incarnation < 2**63
        self.my_id = my_id
        self.config = config
        self._ttl_ms: int = config.report_ttl_ms or 0
        self._rng = rng
        self._incarnation = incarnation
        self._seq = 0
        self._peers: dict[str, _Peer] = {}  # Invariant: sorted by id, my_id not in it, len < members_max.
        self._unstamped: list[str] = []  # peers whose added_ms waits for a clock
        self._am_member = False
        self._voters: frozenset[str] = frozenset()  # Invariant: subset of the members.
        self._reports: dict[str, _Report] = {}  # Invariant: keys are voters, not me.
        self._info: Info | None = None
        self._now_ms: int | None = None  # Invariant: never decreases.
        self._next_round_ms: int | None = None
        self._changes: deque[str] = deque(maxlen=changes_max)
        self._counts = dict.fromkeys(("pings", "pongs", "accepted", "stale", "ignored", "dropped"), 0)

    # --- configuration ------------------------------------------------------------------------

    def set_members(self, member_ids: Iterable[str], voter_ids: Iterable[str]) -> None:
        """Adopt the applied Raft configuration. Removed nodes are forgotten; added ones start in grace."""
        members = sorted(set(member_ids))
        voters = frozenset(voter_ids)
        assert len(members) <= members_max and all(is_id(m) for m in members)
        assert voters <= set(members), "every voter is a member"
        old = self._peers
        self._peers = {m: old.get(m) or _Peer() for m in members if m != self.my_id}
        self._unstamped = [m for m, p in self._peers.items() if p.added_ms is None]
        self._am_member = self.my_id in members
        self._voters = voters
        self._reports = {
            v: _Report(r.suspects.intersection(self._peers), r.received_ms)
            for v, r in self._reports.items()
            if v in voters and v in self._peers
        }
        assert all(p.added_ms is None or m in old for m, p in self._peers.items())

    def set_info(self, info: Info | None) -> None:
        """My node info, sent on every ping and pong from now on."""
        assert info is None or valid_info(info), info
        self._info = None if info is None else dict(info)

    # --- inputs -------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[tuple[str, Ping]]:
        """Log health changes; if a round is due, return its pings (rule 1), else []."""
        self._advance(now_ms, self._peers)
        if self._next_round_ms is not None and now_ms < self._next_round_ms:
            return []
        self._next_round_ms = now_ms + self.config.ping_interval_ms
        interval = self.config.ping_interval_ms
        overdue = [m for m, p in self._peers.items() if p.heard_ms is None or now_ms - p.heard_ms >= interval]
        skipped = set(overdue)
        others = [m for m in self._peers if m not in skipped]
        targets = overdue + self._rng.sample(others, min(self.config.fanout, len(others)))
        assert len(targets) == len(set(targets)) <= len(self._peers)
        suspects = self._my_suspects(now_ms)
        self._counts["pings"] += len(targets)
        return [(m, Ping(self.my_id, self._incarnation, self._next_seq(), suspects, self._info)) for m in targets]

    def on_ping(self, frm: str, ping: Ping, now_ms: int) -> Pong:
        """Take a ping from ``frm`` (rules 2 and 4); the answer carries my suspicion list and info."""
        self._receive(frm, ping, now_ms)
        self._counts["pongs"] += 1
        return Pong(self.my_id, self._incarnation, self._next_seq(), self._my_suspects(now_ms), self._info)

    def on_pong(self, frm: str, pong: Pong, now_ms: int) -> None:
        """Take a pong from ``frm``: it is alive (a recovery if it was suspected), and merge its report."""
        self._receive(frm, pong, now_ms)

    # --- queries (pure: they change nothing) --------------------------------------------------

    def health(self, node_id: str, now_ms: int) -> Health:
        self._check_clock(now_ms)
        peer = self._peers.get(node_id)
        if peer is None:
            return "online"
        if len(self._suspecters(node_id, now_ms)) >= self._quorum():
            return "failed"
        return "suspect" if self._suspected_by_me(peer, now_ms) else "online"

    def healths(self, now_ms: int) -> dict[str, Health]:
        """The health of every member, myself included (always online) if I am one."""
        out: dict[str, Health] = {self.my_id: "online"} if self._am_member else {}
        out.update((m, self.health(m, now_ms)) for m in self._peers)
        return out

    def failed(self, now_ms: int) -> set[str]:
        """Members a strict majority of the voters suspect (rule 5)."""
        return {m for m in self._peers if self.health(m, now_ms) == "failed"}

    def suspecters(self, node_id: str, now_ms: int) -> list[str]:
        """The voters whose suspicion of ``node_id`` counts now, sorted (me included if I am one)."""
        self._check_clock(now_ms)
        return self._suspecters(node_id, now_ms) if node_id in self._peers else []

    def info(self, node_id: str) -> Info | None:
        """The latest node info ``node_id`` sent (mine for my id), or None."""
        if node_id == self.my_id:
            return None if self._info is None else dict(self._info)
        peer = self._peers.get(node_id)
        return None if peer is None or peer.info is None else dict(peer.info)

    def changes(self) -> list[str]:
        """Drain the change log: the lines logged since the last call, oldest first."""
        lines = list(self._changes)
        self._changes.clear()
        return lines

    def statistics(self, now_ms: int) -> GossipStatistics:
        self._check_clock(now_ms)
        c = self._counts
        return GossipStatistics(
            members=len(self._peers) + self._am_member, voters=len(self._voters),
            suspected=len(self._my_suspects(now_ms)), failed=len(self.failed(now_ms)),
            pings_sent=c["pings"], pongs_sent=c["pongs"], msgs_accepted=c["accepted"], msgs_stale=c["stale"],
            msgs_ignored=c["ignored"], changes_dropped=c["dropped"],
        )  # fmt: skip

    # --- internals ----------------------------------------------------------------------------

    def _receive(self, frm: str, msg: Ping | Pong, now_ms: int) -> None:
        self._stamp(now_ms)
        peer = self._peers.get(frm)
        if peer is None or frm != msg.sender:
            self._counts["ignored"] += 1
            return
        assert peer.added_ms is not None and peer.added_ms <= now_ms
        peer.heard_ms = now_ms  # even a stale message was sent by a live process
        if peer.key is not None and msg.key <= peer.key and now_ms - peer.key_ms < self._ttl_ms:
            self._counts["stale"] += 1
            self._advance(now_ms, (frm,))
            return
        self._counts["accepted"] += 1
        peer.key, peer.key_ms = msg.key, now_ms
        if msg.info is not None:
            peer.info = dict(msg.info)
        touched = {frm}
        if frm in self._voters:
            old = self._reports.get(frm)
            suspects = frozenset(s for s in msg.suspects if s in self._peers)
            touched |= suspects | (old.suspects if old else frozenset())
            self._reports[frm] = _Report(suspects, now_ms)
        self._advance(now_ms, sorted(touched))

    def _advance(self, now_ms: int, ids: Iterable[str]) -> None:
        """Stamp the clock, then log every health change among ``ids`` (rule 7)."""
        self._stamp(now_ms)
        for node_id in ids:
            peer = self._peers[node_id]
            health = self.health(node_id, now_ms)
            if health != peer.shown:
                self._log(self._change_line(node_id, peer.shown, health, now_ms))
                peer.shown = health

    def _change_line(self, node_id: str, was: Health, now: Health, now_ms: int) -> str:
        assert was != now
        if now == "failed":
            return f"node {node_id} failed (suspected by {', '.join(self._suspecters(node_id, now_ms))})"
        if now == "suspect":
            return f"node {node_id} suspected" + (" (no longer failed)" if was == "failed" else "")
        return f"node {node_id} recovered"

    def _log(self, line: str) -> None:
        if len(self._changes) == self._changes.maxlen:
            self._counts["dropped"] += 1
        self._changes.append(line)

    def _stamp(self, now_ms: int) -> None:
        """Advance my clock; peers added since the last stamp start their grace now (rule 3)."""
        self._check_clock(now_ms)
        self._now_ms = now_ms
        for node_id in self._unstamped:
            peer = self._peers[node_id]
            assert peer.added_ms is None and peer.heard_ms is None
            peer.added_ms = now_ms
        self._unstamped.clear()

    def _check_clock(self, now_ms: int) -> None:
        assert isinstance(now_ms, int), now_ms
        assert self._now_ms is None or now_ms >= self._now_ms, f"the clock went back: {now_ms} < {self._now_ms}"

    def _suspected_by_me(self, peer: _Peer, now_ms: int) -> bool:
        if peer.added_ms is None:
            return False  # added, and no clock seen since: in grace
        since_ms = peer.added_ms if peer.heard_ms is None else peer.heard_ms
        return now_ms - since_ms >= self.config.node_timeout_ms

    def _my_suspects(self, now_ms: int) -> tuple[str, ...]:
        return tuple(m for m, p in self._peers.items() if self._suspected_by_me(p, now_ms))

    def _suspecters(self, node_id: str, now_ms: int) -> list[str]:
        out = []
        if self.my_id in self._voters and self._suspected_by_me(self._peers[node_id], now_ms):
            out.append(self.my_id)
        for voter, report in self._reports.items():
            if now_ms - report.received_ms < self._ttl_ms and node_id in report.suspects:
                out.append(voter)
        assert len(out) <= len(self._voters)
        return sorted(out)

    def _quorum(self) -> int:
        """A strict majority of the voters; with no voters known, nothing can fail."""
        return len(self._voters) // 2 + 1 if self._voters else members_max + 1

    def _next_seq(self) -> int:
        self._seq += 1
        assert self._seq < 2**63
        return self._seq
