"""A deterministic simulator for the gossip detector: seeded clock, loss, delays, crashes and cut links.

Every node is a :class:`Detector` stepped in a plain loop; every message goes
through ``to_wire``/``from_wire``. Time moves in ``step_ms`` steps; each node
ticks every ``tick_ms`` at its own phase, as independent shells would.
"""

import heapq
import random
from dataclasses import dataclass, field

from trionode.core.gossip import Detector, GossipConfig, Health, Ping, Pong, from_wire

step_ms = 10
tick_ms = 100


def node_ids(n: int) -> list[str]:
    return [f"{i:x}" * 40 for i in range(1, n + 1)]


@dataclass
class Sim:
    n: int
    seed: int
    loss: float = 0.0
    config: GossipConfig = field(default_factory=GossipConfig)
    delay_ms_max: int = 30

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.ids = node_ids(self.n)
        self.now_ms = 0
        self.nodes: dict[str, Detector | None] = {}
        self.starts = dict.fromkeys(self.ids, 0)
        self.phase = {i: self.rng.randrange(0, tick_ms, step_ms) for i in self.ids}
        self.cut: set[tuple[str, str]] = set()  # directed links that drop everything
        self._queue: list[tuple[int, int, str, str, dict]] = []
        self._seq = 0
        for node_id in self.ids:
            self.start(node_id)

    # --- nemesis --------------------------------------------------------------------------------
    def start(self, node_id: str, *, incarnation: int | None = None) -> None:
        self.starts[node_id] += 1
        inc = self.starts[node_id] if incarnation is None else incarnation
        det = Detector(node_id, self.config, random.Random(self.rng.random()), incarnation=inc)
        det.set_members(self.ids, self.ids)
        det.set_info({"starts": self.starts[node_id]})
        self.nodes[node_id] = det

    def crash(self, node_id: str) -> None:
        self.nodes[node_id] = None

    def cut_link(self, frm: str, to: str) -> None:
        self.cut.add((frm, to))

    def isolate(self, node_id: str) -> None:
        for other in self.ids:
            if other != node_id:
                self.cut |= {(node_id, other), (other, node_id)}

    def heal(self) -> None:
        self.cut.clear()

    # --- running --------------------------------------------------------------------------------
    def live(self) -> list[str]:
        return [i for i in self.ids if self.nodes[i] is not None]

    def views(self) -> dict[str, dict[str, Health]]:
        """Each live node's view of every member."""
        return {i: det.healths(self.now_ms) for i, det in self.nodes.items() if det is not None}

    def run_until(self, end_ms: int, check=None) -> None:
        while self.now_ms < end_ms:
            self.now_ms += step_ms
            self._deliver()
            for node_id, det in self.nodes.items():
                if det is not None and (self.now_ms - self.phase[node_id]) % tick_ms == 0:
                    for peer, ping in det.tick(self.now_ms):
                        self._send(node_id, peer, ping)
            if check is not None:
                check(self)

    def _send(self, frm: str, to: str, msg: Ping | Pong) -> None:
        if (frm, to) in self.cut or self.rng.random() < self.loss:
            return
        self._seq += 1
        when = self.now_ms + self.rng.randint(1, self.delay_ms_max)
        heapq.heappush(self._queue, (when, self._seq, frm, to, msg.to_wire()))

    def _deliver(self) -> None:
        while self._queue and self._queue[0][0] <= self.now_ms:
            _, _, frm, to, wire = heapq.heappop(self._queue)
            det = self.nodes[to]
            if det is None:
                continue
            msg = from_wire(wire)
            if isinstance(msg, Ping):
                self._send(to, frm, det.on_ping(frm, msg, self.now_ms))
            else:
                det.on_pong(frm, msg, self.now_ms)
