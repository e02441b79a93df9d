"""The faults of the failover simulation (failover_plane.py).

Theory of operation
-------------------
Every step the nemesis restarts down nodes now and then, heals the network
now and then, runs the actions scheduled for this tick, and with
``nemesis_probability`` starts one fault, drawn uniformly from :data:`KINDS`:

- ``kill``: the committed primary crashes;
- ``crash``: a replica crashes;
- ``isolate_with_client`` / ``isolate_without_client``: the primary is cut off
  from every other data node and from ``L``; the clients ``K`` are on its side
  (and keep writing to it while its lease lasts) or on the majority's;
- ``isolate_from_replicas``: the primary is cut off from the other data nodes
  only; it still reaches ``L``, so it keeps its lease while gossip calls it
  failed: the case where waiting for the lease is what keeps one writer;
- ``asymmetric``: one direction only, the primary's messages out or in;
- ``flap``: a node (the primary more often than not) is cut off and let back
  in, or crashed and restarted, several times a few ticks apart;
- ``double``: the primary and one replica crash together;
- ``manual``: ``CLUSTER FAILOVER`` to an in-sync replica: ``L`` stops granting
  the primary, waits until its lease has drained, then promotes;
- ``member``: a replica-set change (attach, detach or replace via the cluster
  ops, at the epoch the controller knows; refusals count), and half of the
  time a primary kill or isolation right after it, so a failover lands in the
  middle of the change.

- ``double_failover``: the primary dies, and its successor dies a few ticks
  after the failover that promoted it commits;
- ``wall_step``: a node's wall clock steps back or forward by up to 5 s; only
  expiry deadlines read it (kv_workload.py), leases and timers do not;
- ``full_sync_crash``: a replica crashes, falls behind while down, and is
  armed to crash again right after one step of its next sync (marker set,
  cut, chunk held, snapshot installed, history saved, marker cleared:
  replica_driver.py's order); a cut and a saved history also end steps of a
  partial sync, which the crash point catches as well.

Besides, when ``L`` starts a fencing round, with ``MID_ROUND_PROBABILITY``
(from its own Random) the control plane elects a new leader a few ticks later,
most often before the round's failover or reinstatement commits: the new ``L``
knows of the fence only what the nodes say in gossip.

Scheduled actions are kept as (tick, sequence, action), so their order is a
pure function of the seed.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

from trionode.core.cluster import Shard, command
from trionode.core.replication.replica_driver import (
    InstallSnapshot,
    LoadChunk,
    ReplicaAction,
    SaveHistory,
    SetLoadingMarker,
    Truncate,
)
from trionode.sim.data_config import SHARD_ID

if TYPE_CHECKING:
    from trionode.sim.failover_plane import FailoverPlane

LEADER = f"{0xC0000:040x}"  # the control plane's leader ("L"), an endpoint of the data network and a gossip member
CLIENT = "K"  # the clients
KINDS = ("kill", "crash", "isolate_with_client", "isolate_without_client", "isolate_from_replicas",
         "asymmetric", "flap", "double", "member", "manual", "double_failover", "wall_step",
         "full_sync_crash")  # fmt: skip
SECOND_KILL_TICKS_MAX = 40  # double_failover: the promoted primary dies within this many ticks
WALL_STEP_MS_MAX = 5000
MID_ROUND_PROBABILITY = 0.2
MID_ROUND_TICKS_MAX = 12  # the new leader comes within this many ticks of the fence
SYNC_CRASH_WINDOW_TICKS = 1500  # full_sync_crash: how long the crash point stays armed
# The steps of a sync (replica_driver.py), by the action that ends each: a crash point. A cut and
# a saved history end steps of a partial sync too.
SYNC_STEPS: tuple[tuple[str, Callable[[ReplicaAction], bool]], ...] = (
    ("marker set", lambda a: isinstance(a, SetLoadingMarker) and a.on),
    ("cut", lambda a: isinstance(a, Truncate)),
    ("chunk held", lambda a: isinstance(a, LoadChunk)),
    ("snapshot installed", lambda a: isinstance(a, InstallSnapshot)),
    ("history saved", lambda a: isinstance(a, SaveHistory)),
    ("marker cleared", lambda a: isinstance(a, SetLoadingMarker) and not a.on),
)


class FailoverNemesis:
    def __init__(self, plane: "FailoverPlane") -> None:
        self.plane = plane
        self.rng = plane.rng
        self.schedule: list[tuple[int, int, Callable[[], None]]] = []
        self.sequence = 0
        self.shard_id = SHARD_ID  # the shard the fault being started aims at
        self.second_kill_after: tuple[str, int] | None = None  # double_failover: (shard, epoch) whose successor dies
        self.sync_crash: dict[str, tuple[int, int]] = {}  # node -> (SYNC_STEPS index, armed until tick)
        self.mid_round_rng = plane.rng_for("failover-mid-round")  # draws apart: the other faults are unmoved

    def at(self, ticks: int, action: Callable[[], None]) -> None:
        self.sequence += 1
        self.schedule.append((self.plane.now_ticks + ticks, self.sequence, action))
        self.schedule.sort(key=lambda item: item[:2])

    def step(self) -> None:
        p, f, rng = self.plane, self.plane.faults, self.rng
        self.sync_crash_points()
        for node in p.nodes.values():
            if not node.up and rng.random() < f.restart_probability:
                p.restart(node.id)
        if self.second_kill_after is not None and p.config.shard_of(self.second_kill_after[0]).epoch > \
                self.second_kill_after[1]:  # fmt: skip
            shard_id, self.second_kill_after = self.second_kill_after[0], None
            self.at(rng.randint(1, SECOND_KILL_TICKS_MAX), lambda: self.second_kill(shard_id))
        if p.network.blocked_links() and rng.random() < f.heal_probability:
            p.network.heal()
            p.note("network healed")
        while self.schedule and self.schedule[0][0] <= p.now_ticks:
            self.schedule.pop(0)[2]()
        if rng.random() < f.leader_change_probability:
            self.new_leader()
        if rng.random() < f.nemesis_probability:
            kind = rng.choice(KINDS)
            self.aim()
            getattr(self, kind)()

    def new_leader(self, *, mid_round: bool = False) -> None:
        p = self.plane
        p.leader = p.new_leader()
        p.coverage.leader_changes += not mid_round
        p.coverage.leader_changes_mid_round += mid_round
        p.note(f"the control plane elects a new leader{' in the middle of a fencing round' if mid_round else ''}")

    def on_round(self) -> None:
        """``L`` sent a fencing round's fences."""
        if self.mid_round_rng.random() < MID_ROUND_PROBABILITY:
            self.at(self.mid_round_rng.randint(1, MID_ROUND_TICKS_MAX), lambda: self.new_leader(mid_round=True))

    def aim(self) -> None:
        """Choose the shard the next fault hits (one shard: always it)."""
        shard_ids = self.plane.shard_ids
        self.shard_id = shard_ids[0] if len(shard_ids) == 1 else self.rng.choice(shard_ids)

    # --- the kinds -------------------------------------------------------------------------------

    @property
    def shard(self) -> Shard:
        return self.plane.config.shard_of(self.shard_id)

    def primary(self) -> str:
        return self.shard.primary_id

    def others(self, node_id: str) -> list[str]:
        return [n for n in self.plane.nodes if n != node_id]

    def kill(self) -> None:
        node = self.plane.nodes[self.primary()]
        if node.up:
            self.plane.coverage.primary_kills += 1
            self.plane.crash(node.id)

    def crash(self) -> None:
        up = [n for n in self.shard.replica_ids if self.plane.nodes[n].up]
        if up:
            self.plane.coverage.replica_crashes += 1
            self.plane.crash(self.rng.choice(up))

    def isolate_with_client(self) -> None:
        self._isolate(client_side=True)

    def isolate_without_client(self) -> None:
        self._isolate(client_side=False)

    def _isolate(self, *, client_side: bool) -> None:
        p, primary = self.plane, self.primary()

        mine, theirs = [primary], [*self.others(primary), LEADER]
        (mine if client_side else theirs).append(CLIENT)
        p.network.partition(mine, theirs, symmetric=True)
        if client_side:
            p.coverage.isolations_with_client += 1
        else:
            p.coverage.isolations_without_client += 1
        p.note(f"{p.name(primary)} isolated, clients on {'its' if client_side else 'the other'} side")

    def isolate_from_replicas(self) -> None:
        p, primary = self.plane, self.primary()
        p.network.partition([primary], self.others(primary), symmetric=True)
        p.coverage.isolations_from_replicas += 1
        p.note(f"{p.name(primary)} cut off from the other data nodes, still reaches L")

    def asymmetric(self) -> None:
        p, primary = self.plane, self.primary()

        others = [*self.others(primary), LEADER]
        outbound = self.rng.random() < 0.5
        p.network.partition([primary] if outbound else others, others if outbound else [primary],
                            symmetric=False)  # fmt: skip
        p.coverage.asymmetric_cuts += 1
        p.note(f"{p.name(primary)} {'->X' if outbound else 'X<-'} everyone")

    def flap(self) -> None:
        p = self.plane
        node_id = self.primary() if self.rng.random() < 0.6 else self.rng.choice(list(p.nodes))
        by_crash = self.rng.random() < 0.4
        p.coverage.flaps += 1
        p.note(f"{p.name(node_id)} starts flapping ({'crashes' if by_crash else 'partitions'})")
        tick = 0
        for _ in range(self.rng.randint(2, 5)):
            tick += self.rng.randint(1, 30)
            down_for = self.rng.randint(1, 40)
            if by_crash:
                self.at(tick, lambda: self._crash(node_id))
                self.at(tick + down_for, lambda: self._restart(node_id))
            else:
                self.at(tick, lambda: self._cut(node_id))
                self.at(tick + down_for, lambda: self._uncut(node_id))
            tick += down_for

    def _crash(self, node_id: str) -> None:
        if self.plane.nodes[node_id].up:
            self.plane.crash(node_id)

    def _restart(self, node_id: str) -> None:
        if not self.plane.nodes[node_id].up:
            self.plane.restart(node_id)

    def _cut(self, node_id: str) -> None:

        self.plane.network.partition([node_id], [*self.others(node_id), LEADER], symmetric=True)

    def _uncut(self, node_id: str) -> None:

        self.plane.network.unblock([node_id], [*self.others(node_id), LEADER])

    def double(self) -> None:
        p = self.plane
        replicas = [n for n in self.shard.replica_ids if p.nodes[n].up]
        if p.nodes[self.primary()].up and replicas:
            p.coverage.double_failures += 1
            p.crash(self.primary())
            p.crash(self.rng.choice(replicas))

    def member(self) -> None:
        p, shard = self.plane, self.shard
        spare = [n.id for n in p.group(shard.id) if n.id != shard.primary_id and n.id not in shard.replica_ids]
        op = self.rng.choice(("replica_attach", "replica_detach", "replica_replace"))
        args: dict[str, object] = {"shard_id": shard.id, "epoch": shard.epoch}
        if op == "replica_attach" and spare:
            args["node_id"] = self.rng.choice(spare)
        elif op == "replica_detach" and shard.replica_ids:
            args["node_id"] = self.rng.choice(shard.replica_ids)
        elif op == "replica_replace" and spare and shard.replica_ids:
            args["old_id"], args["new_id"] = self.rng.choice(shard.replica_ids), self.rng.choice(spare)
        else:
            return
        p.config.propose(command(op, **args), p.now_ms)
        p.member_change_at = p.now_ms
        p.note(f"L proposes {op} {' '.join(p.name(str(v)) for k, v in args.items() if k != 'shard_id')}")
        if self.rng.random() < 0.5:
            self.at(self.rng.randint(0, 10), self.rng.choice((self.kill, self.isolate_without_client)))

    def manual(self) -> None:
        p, shard = self.plane, self.shard
        isr = [n for n in shard.isr_ids if n != shard.primary_id]
        if isr and not p.leader.requested:
            wanted = self.rng.choice(isr)
            p.leader.request_failover(shard.id, wanted)
            p.coverage.manual_failovers += 1
            p.note(f"CLUSTER FAILOVER to {p.name(wanted)} requested")

    def double_failover(self) -> None:
        """The primary dies, and its successor dies soon after its promotion."""
        if self.plane.nodes[self.primary()].up and self.second_kill_after is None:
            self.second_kill_after = (self.shard_id, self.shard.epoch)
            self.kill()

    def second_kill(self, shard_id: str) -> None:
        p = self.plane
        primary = p.config.shard_of(shard_id).primary_id
        if p.nodes[primary].up:
            p.coverage.double_failovers += 1
            p.note(f"{p.name(primary)}, just promoted, dies too")
            p.crash(primary)

    def wall_step(self) -> None:
        """A node's wall clock steps back or forward: expiry deadlines move for it, nothing else."""
        p = self.plane
        node_id = self.rng.choice(list(p.nodes))
        delta_ms = self.rng.choice((-1, 1)) * self.rng.randint(1, WALL_STEP_MS_MAX)
        p.kvs[p.nodes[node_id].shard_id].step_wall(node_id, delta_ms)
        p.coverage.wall_steps += 1
        p.note(f"{p.name(node_id)}'s wall clock steps {delta_ms:+d} ms")

    def full_sync_crash(self) -> None:
        """A replica crashes now, and again at one step of its next sync (likely full: it falls behind meanwhile)."""
        p = self.plane
        up = [n for n in self.shard.replica_ids if p.nodes[n].up]
        if up:
            node_id = self.rng.choice(up)
            step = self.rng.randrange(len(SYNC_STEPS))
            self.sync_crash[node_id] = (step, p.now_ticks + SYNC_CRASH_WINDOW_TICKS)
            p.crash(node_id)
            p.note(f"{p.name(node_id)} crashes; armed to crash at '{SYNC_STEPS[step][0]}' of its next sync")

    def sync_crash_points(self) -> None:
        """Crash the replicas that reached their crash point; arm the shells of the others."""
        p = self.plane
        for node_id, (step, until) in list(self.sync_crash.items()):
            node = p.nodes[node_id]
            shell = node.replica if node.up else None
            if shell is not None and shell.crashed:
                del self.sync_crash[node_id]
                p.coverage.full_sync_crashes += 1
                p.note(f"{p.name(node_id)} crashes at '{SYNC_STEPS[step][0]}' of a sync")
                p.crash(node_id)
            elif p.now_ticks > until:
                del self.sync_crash[node_id]
            elif shell is not None and shell.crash_after is None:
                shell.crash_after = SYNC_STEPS[step][1]
