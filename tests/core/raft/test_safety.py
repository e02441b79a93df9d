"""Randomized safety: 3-5 nodes under drops, duplicates, reordering, partitions, crashes and restarts.

Every Ready is checked by the harness (one leader per term, one vote per voter
and term, applied entries agree everywhere, a new leader holds every applied
entry); log matching is checked between live nodes as the run goes. Crashes
happen at every point of the Ready contract (mid-persist with a torn batch,
after persisting, after sending, after applying), and lose exactly what was
not persisted. A run ends healed and must make progress again (liveness).
Every failure names its seed.
"""

import random

import pytest

from tests.core.raft.harness import CRASH_POINTS, Env, SafetyViolation
from trionode.core.raft import ConfChangeRefused, NotLeader, ProposalRefused, TransferRefused
from trionode.core.raft.messages import ConfChange, ConfChangeKind, ConfState, Message, MsgType

SEEDS_COUNT = 400
STEPS = 4000
SETTLE_ROUNDS_MAX = 400


class Run:
    def __init__(self, seed: int, crash_prob: float) -> None:
        self.rng = random.Random(seed)
        self.env = Env(seed)
        self.crash_prob = crash_prob
        self.proposed = 0
        count = self.rng.choice([3, 4, 5])
        self.ids = [str(i) for i in range(1, count + 1)]
        voters = tuple(self.ids[: max(3, count - 1)])  # with 4-5 nodes, the last starts as a learner
        conf = ConfState(voters=voters, learners=tuple(i for i in self.ids if i not in voters))
        for i in self.ids:
            self.env.add_node(i, conf, election_ticks=5, inflight_msgs_max=4, entries_per_msg_max=3)

    def step(self) -> None:
        x, env = self.rng.random(), self.env
        live = env.live()
        if x < 0.08 and live:
            env.node(self.rng.choice(live)).tick()
        elif x < 0.48 and live:
            n = self.rng.choice(live)
            if env.node(n).has_ready():
                crash = self.rng.choice(CRASH_POINTS) if self.rng.random() < self.crash_prob else ""
                env.process_ready(n, crash_at=crash)
        elif x < 0.90 and live:
            self.deliver(self.rng.choice(live))
        elif x < 0.97:
            self.propose()
        else:
            self.nemesis()

    def deliver(self, n: str) -> None:
        inbox = self.env.inbox[n]
        kept = [m for m in inbox if self.rng.random() > 0.1]
        if self.rng.random() < 0.1:
            self.rng.shuffle(kept)
        if kept and self.rng.random() < 0.05:
            kept.append(self.rng.choice(kept))  # a duplicate
        self.env.inbox[n] = kept
        self.env.deliver(n)

    def propose(self) -> None:
        leaders = [n for n in self.env.live() if self.env.node(n).is_leader]
        if not leaders:
            return
        node = self.env.node(self.rng.choice(leaders))
        try:
            if self.rng.random() < 0.1:
                self.conf_change(node)
            else:
                node.propose(f"v{self.proposed}")
                self.proposed += 1
        except (NotLeader, ProposalRefused, ConfChangeRefused, TransferRefused):
            pass

    def conf_change(self, node) -> None:  # type: ignore[no-untyped-def]
        kind = self.rng.choice([ConfChangeKind.PROMOTE, ConfChangeKind.DEMOTE, ConfChangeKind.ADD_LEARNER])
        target = self.rng.choice(self.ids)
        if self.rng.random() < 0.3:
            node.transfer_leadership(target)
        elif kind is not ConfChangeKind.DEMOTE or target != node.raft.id:
            node.propose_conf_change(ConfChange(kind, target))

    def nemesis(self) -> None:
        x, env = self.rng.random(), self.env
        crashed = [n for n in self.ids if env.nodes[n] is None]
        if x < 0.3 and crashed:
            env.start(self.rng.choice(crashed))
        elif x < 0.45 and env.live() and len(crashed) < len(self.ids) // 2:
            env.crash(self.rng.choice(env.live()))
        elif x < 0.65:
            shuffled = self.ids[:]
            self.rng.shuffle(shuffled)
            cut = self.rng.randrange(1, len(shuffled))
            env.groups = [set(shuffled[:cut]), set(shuffled[cut:])]
        elif x < 0.85:
            env.groups = None
        else:
            self.compact()

    def compact(self) -> None:
        if not self.env.live():
            return
        n = self.rng.choice(self.env.live())
        node = self.env.node(n)
        if not node.has_ready() and node.raft.log.applied > node.snapshot.index:
            self.env.compact(n, node.raft.log.applied)

    def settle(self) -> None:
        """Heal everything; the cluster must elect a leader and commit a new entry everywhere."""
        env = self.env
        env.groups = None
        for n in self.ids:
            if env.nodes[n] is None:
                env.start(n)
        for _ in range(SETTLE_ROUNDS_MAX):
            for n in self.ids:
                env.node(n).tick()
                while env.node(n).has_ready():
                    env.process_ready(n)
            for n in self.ids:
                env.deliver(n)
            for n in self.ids:
                node = env.node(n)
                # A "final" proposed by an earlier leader may have been lost with its term: propose again.
                if node.is_leader and not node.raft.lead_transferee and not _holds_final(node):
                    node.propose("final")
            if all(any(v[2] == "final" for v in env.sm[n].values()) for n in self.ids):
                return
        raise AssertionError("the healed cluster did not commit a new entry everywhere")


def _holds_final(node) -> bool:  # type: ignore[no-untyped-def]
    return any(e.data == "final" for e in node.raft.log.entries)


def run(seed: int, crash_prob: float) -> Run:
    r = Run(seed, crash_prob)
    try:
        for i in range(STEPS):
            r.step()
            if i % 10 == 0:
                r.env.check_log_matching()
        r.settle()
        r.env.check_log_matching()
    except AssertionError as e:
        raise AssertionError(f"seed {seed}: {e}") from e
    return r


@pytest.mark.parametrize("chunk", range(4))
def test_random_safety(chunk: int) -> None:
    committed = 0
    for seed in range(chunk * SEEDS_COUNT // 4, (chunk + 1) * SEEDS_COUNT // 4):
        r = run(seed, crash_prob=0.02)
        committed += len(r.env.applied)
    assert committed > 10 * SEEDS_COUNT // 4, "runs made almost no progress: the test would check nothing"


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_crash_points(crash_at: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Crash often, always at one point of the Ready contract: no double vote, no lost commit."""
    monkeypatch.setattr("tests.core.raft.test_safety.CRASH_POINTS", (crash_at,))
    for seed in range(1000, 1050):
        run(seed, crash_prob=0.15)


def test_the_checks_catch_a_double_vote() -> None:
    env = Env()
    env.check_message(Message(MsgType.VOTE_RESP, "2", "1", 5))
    with pytest.raises(SafetyViolation, match="voted twice"):
        env.check_message(Message(MsgType.VOTE_RESP, "2", "3", 5))


def test_the_checks_catch_diverging_logs() -> None:
    env = Env()
    for i in ("1", "2"):
        env.add_node(i, ConfState(voters=("1", "2")))
    from trionode.core.raft.messages import Entry

    env.node("1").raft.log.entries = [Entry(1, 1, data="a"), Entry(2, 2, data="b")]
    env.node("2").raft.log.entries = [Entry(1, 1, data="x"), Entry(2, 2, data="b")]
    with pytest.raises(SafetyViolation, match="differ"):
        env.check_log_matching()
