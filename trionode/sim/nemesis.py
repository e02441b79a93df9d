"""The nemesis: faults and workload, one seeded decision per kind per step.

Theory of operation
-------------------
Each step the nemesis rolls, independently, for each kind of event:

* **crash** an up node (never more than ``down_max`` members down at once);
* **restart** a down node (its disk is re-read; see node.py);
* **corrupt** a down node's WAL (rare; the restart must detect it and the node
  stops for good, after which membership replaces it);
* **partition** -- a symmetric split into two groups, a one-way cut between two
  nodes, or the leader cut off -- and **heal**;
* **propose** a client command at the leader (workload.py);
* **membership** -- one change at a time, through the leader: add a fresh node
  as a learner, promote it once the leader says it caught up, remove a voter
  beyond the target (preferring a dead or down one), and now and then rotate a
  healthy voter out so a new one joins; a member removed from the leader's
  configuration is retired (stopped, its disk kept for the durability check);
* **transfer** leadership to another voter;
* **drift** -- a node's clock skips a tick or ticks twice.

Refusals (NotLeader, ConfChangeRefused, a busy transfer) are expected and
ignored: the nemesis only asks, the Raft core decides.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trionode.core.raft.messages import ConfChange, ConfChangeKind
from trionode.sim.node import RECORD_BYTES_MAX, WAL

if TYPE_CHECKING:
    from trionode.sim.node import SimNode
    from trionode.sim.runner import Simulation

CORRUPT_VOTERS_MIN = 3  # a disk is corrupted only where the others can replace its node


@dataclass(frozen=True, slots=True)
class NemesisConfig:
    crash_probability: float = 0.006
    restart_probability: float = 0.06
    corrupt_probability: float = 0.05  # per crash: the down node's WAL gets a flipped byte
    partition_probability: float = 0.006
    heal_probability: float = 0.03
    propose_probability: float = 0.3
    membership_probability: float = 0.04
    rotate_probability: float = 0.1  # per membership roll with a full voter set
    transfer_probability: float = 0.003
    drift_probability: float = 0.01  # per node per step


class Nemesis:
    def __init__(self, sim: "Simulation", config: NemesisConfig) -> None:
        self.sim = sim
        self.config = config
        self.rng = sim.rng_for("nemesis")

    def roll(self, probability: float) -> bool:
        return self.rng.random() < probability

    def act(self) -> None:
        c = self.config
        if self.roll(c.crash_probability):
            self.crash()
        if self.roll(c.restart_probability):
            self.restart()
        if self.roll(c.partition_probability):
            self.partition()
        if self.roll(c.heal_probability):
            self.sim.heal()
        if self.roll(c.propose_probability):
            self.sim.propose_command()
        if self.roll(c.membership_probability):
            self.membership()
        if self.roll(c.transfer_probability):
            self.transfer()

    def ticks_for(self, node: "SimNode") -> int:
        """How many ticks a node's clock gives this step: usually 1, sometimes 0 or 2."""
        if self.roll(self.config.drift_probability):
            return self.rng.choice((0, 2))
        return 1

    def crash(self) -> None:
        candidates = self.sim.up_nodes()
        if not candidates or not self.sim.may_crash():
            return
        node = self.rng.choice(candidates)
        replaceable = len(node.raw.conf.voters) >= CORRUPT_VOTERS_MIN
        self.sim.crash(node, "nemesis")
        if (
            replaceable
            and self.roll(self.config.corrupt_probability)
            and node.disk.corrupt(WAL, self.rng, record_bytes_max=RECORD_BYTES_MAX)
        ):
            self.sim.recorder.note(f"{node.name}: nemesis flips a byte in its WAL")

    def restart(self) -> None:
        down = self.sim.down_nodes()
        if down:
            self.sim.restart(self.rng.choice(down))

    def partition(self) -> None:
        live = [n.id for n in self.sim.live_nodes()]
        if len(live) < 2:
            return
        kind = self.rng.choice(("split", "one_way", "leader"))
        if kind == "split":
            self.rng.shuffle(live)
            cut = self.rng.randint(1, len(live) - 1)
            self.sim.partition(live[:cut], live[cut:], symmetric=True)
        elif kind == "one_way":
            a, b = self.rng.sample(live, 2)
            self.sim.partition([a], [b], symmetric=False)
        else:
            leader = self.sim.leader()
            if leader is not None:
                others = [n for n in live if n != leader.id]
                self.sim.partition([leader.id], others, symmetric=self.roll(0.5))

    def transfer(self) -> None:
        leader = self.sim.leader()
        if leader is None:
            return
        voters = [v for v in leader.raw.conf.voters if v != leader.id]
        if voters:
            self.sim.transfer(leader, self.rng.choice(voters))

    def membership(self) -> None:
        """One membership step through the leader, chosen from its applied configuration."""
        sim, leader = self.sim, self.sim.leader()
        if leader is None:
            return
        conf = leader.raw.conf
        voters = [v for v in conf.voters if v != leader.id]
        unhealthy = [v for v in voters if not sim.nodes[v].up]
        victim = unhealthy[0] if unhealthy else (self.rng.choice(voters) if voters else "")
        if conf.learners:
            learner = conf.learners[0]
            if sim.nodes[learner].dead:
                sim.propose_conf(leader, ConfChange(ConfChangeKind.REMOVE, learner))
            elif len(conf.voters) >= sim.config.voters_max and victim:
                sim.propose_conf(leader, ConfChange(ConfChangeKind.REMOVE, victim))
            elif leader.raw.caught_up(learner):
                sim.propose_conf(leader, ConfChange(ConfChangeKind.PROMOTE, learner))
            return
        if len(conf.voters) > sim.config.nodes and victim:
            sim.propose_conf(leader, ConfChange(ConfChangeKind.REMOVE, victim))
        elif len(conf.voters) < sim.config.nodes or unhealthy or self.roll(self.config.rotate_probability):
            joiner = sim.joiner(conf)
            if joiner is not None:
                sim.propose_conf(leader, ConfChange(ConfChangeKind.ADD_LEARNER, joiner.id))
