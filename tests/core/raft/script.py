"""The data-driven Raft script runner (after etcd-io/raft's interaction tests).

A script is a sequence of blocks::

    # comments are kept
    command arg key=(v1,v2)
    ----
    expected output

Commands drive an :class:`Env`; their output is compared with the expected
block, or written back when rewriting. Node ids in scripts are short strings
("1", "2"); the core treats ids as opaque.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from tests.core.raft.harness import Env
from trionode.core.raft import ConfChangeRefused, NotLeader, ProposalRefused, TransferRefused
from trionode.core.raft.messages import ConfChange, ConfChangeKind, ConfState, Entry, EntryKind, Message, MsgType, Ready

STABILIZE_ROUNDS_MAX = 200


@dataclass
class Block:
    preamble: list[str]  # comment and blank lines before the command
    command: str
    expected: list[str]


def parse(text: str) -> tuple[list[Block], list[str]]:
    blocks, pre, lines, i = [], [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            pre.append(line)
            i += 1
            continue
        assert lines[i + 1] == "----", f"line {i + 2}: expected ---- after a command"
        j = i + 2
        while j < len(lines) and lines[j].strip():
            j += 1
        blocks.append(Block(pre, line, lines[i + 2 : j]))
        pre, i = [], j
    return blocks, pre


def render(blocks: list[Block], tail: list[str], outputs: list[list[str]]) -> str:
    out = []
    for b, got in zip(blocks, outputs, strict=True):
        out += [*b.preamble, b.command, "----", *got]
    return "\n".join(out + tail) + "\n"


# --- formatting ---------------------------------------------------------------------------------


def fmt_entry(e: Entry) -> str:
    if e.kind is EntryKind.NORMAL:
        return f'{e.term}/{e.index} normal "{e.data}"'
    if e.kind is EntryKind.CONF:
        return f"{e.term}/{e.index} conf {e.data.kind.value} {e.data.node_id}"
    return f"{e.term}/{e.index} noop"


def fmt_conf(c: ConfState) -> str:
    return f"voters=({','.join(c.voters)}) learners=({','.join(c.learners)})"


def fmt_msg(m: Message) -> str:
    head = f"{m.frm}->{m.to} {m.type.value} term={m.term}"
    t = m.type
    if t is MsgType.APP:
        ents = f" [{', '.join(fmt_entry(e) for e in m.entries)}]" if m.entries else ""
        return f"{head} log={m.log_term}/{m.index} commit={m.commit}{ents}"
    if t is MsgType.APP_RESP:
        return f"{head} rejected index={m.index} hint={m.reject_hint}" if m.reject else f"{head} index={m.index}"
    if t in (MsgType.VOTE, MsgType.PRE_VOTE):
        return f"{head} log={m.log_term}/{m.index}" + (f" context={m.context}" if m.context else "")
    if t in (MsgType.VOTE_RESP, MsgType.PRE_VOTE_RESP):
        return f"{head} {'rejected' if m.reject else 'granted'}"
    if t is MsgType.HEARTBEAT:
        return f"{head} commit={m.commit}"
    if t is MsgType.SNAP:
        s = m.snapshot
        return f"{head} snapshot={s.term}/{s.index} {fmt_conf(s.conf)}"
    return head


def fmt_ready(rd: Ready) -> list[str]:
    out = [f"Ready must_sync={rd.must_sync}:"]
    if rd.soft_state:
        out.append(f"soft: leader={rd.soft_state.leader or '-'} role={rd.soft_state.role}")
    if rd.hard_state:
        hs = rd.hard_state
        out.append(f"hard: term={hs.term} vote={hs.vote or '-'} commit={hs.commit}")
    if rd.snapshot:
        out.append(f"snapshot: {rd.snapshot.term}/{rd.snapshot.index} {fmt_conf(rd.snapshot.conf)}")
    out += ["entries:", *(f"  {fmt_entry(e)}" for e in rd.entries)] if rd.entries else []
    out += ["committed:", *(f"  {fmt_entry(e)}" for e in rd.committed)] if rd.committed else []
    out += ["messages:", *(f"  {fmt_msg(m)}" for m in rd.messages)] if rd.messages else []
    return out


# --- commands -----------------------------------------------------------------------------------


class Runner:
    def __init__(self, seed: int = 0) -> None:
        self.env = Env(seed)
        self.handlers: dict[str, Callable[[list[str], dict[str, str]], list[str]]] = {
            "add-nodes": self.add_nodes, "campaign": self.campaign, "tick": self.tick,
            "tick-election": self.tick_election, "tick-heartbeat": self.tick_heartbeat,
            "process-ready": self.process_ready, "deliver-msgs": self.deliver_msgs, "stabilize": self.stabilize,
            "partition": self.partition, "heal": self.heal, "propose": self.propose,
            "propose-conf-change": self.propose_conf_change, "transfer-leadership": self.transfer,
            "compact": self.compact, "crash": self.crash, "restart": self.restart, "status": self.status,
            "log": self.log, "raft-state": self.raft_state,
        }  # fmt: skip

    def run(self, command: str) -> list[str]:
        words = command.split()
        args = [w for w in words[1:] if "=" not in w]
        kwargs = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        out = self.handlers[words[0]](args, kwargs)
        return out or ["ok"]

    def add_nodes(self, args: list[str], kw: dict[str, str]) -> list[str]:
        conf = ConfState(tuple(sorted(_ids(kw.get("voters", "")))), tuple(sorted(_ids(kw.get("learners", "")))))
        cfg = {
            "group": kw.get("group", ""),
            "pre_vote": kw.get("prevote", "true") == "true",
            "check_quorum": kw.get("checkquorum", "true") == "true",
        }
        for _ in range(int(args[0])):
            self.env.add_node(str(len(self.env.nodes) + 1), conf, index=int(kw.get("index", "0")), **cfg)
        return []

    def campaign(self, args: list[str], kw: dict[str, str]) -> list[str]:
        self.env.node(args[0]).campaign()
        return []

    def tick(self, args: list[str], kw: dict[str, str]) -> list[str]:
        for _ in range(int(kw.get("n", "1"))):
            for n in args:
                self.env.node(n).tick()
        return []

    def tick_election(self, args: list[str], kw: dict[str, str]) -> list[str]:
        """Tick each node until its election timer fires (or a leader's check-quorum round ends)."""
        for n in args:
            node = self.env.node(n)
            for _ in range(2 * node.raft.cfg.election_ticks):
                node.tick()
                if node.raft.election_elapsed == 0:
                    break
        return []

    def tick_heartbeat(self, args: list[str], kw: dict[str, str]) -> list[str]:
        for n in args:
            for _ in range(self.env.node(n).raft.cfg.heartbeat_ticks):
                self.env.node(n).tick()
        return []

    def process_ready(self, args: list[str], kw: dict[str, str]) -> list[str]:
        out = []
        for n in args:
            if self.env.node(n).has_ready():
                rd = self.env.process_ready(n, crash_at=kw.get("crash", ""))
                out += [f"> {n} handling Ready", *(f"  {x}" for x in fmt_ready(rd))]
                out += [f"> {n} crashed ({kw['crash']})"] if "crash" in kw else []
        return out

    def deliver_msgs(self, args: list[str], kw: dict[str, str]) -> list[str]:
        out = []
        for n in _ids(kw.get("drop", "")):
            out += [f"dropped: {fmt_msg(m)}" for m in self.env.inbox[n]]
            self.env.inbox[n] = []
        for n in args:
            out += [f"{fmt_msg(m)}" for m in self.env.deliver(n)]
        return out

    def stabilize(self, args: list[str], kw: dict[str, str]) -> list[str]:
        ids, out = args or self.env.live(), []
        for _ in range(STABILIZE_ROUNDS_MAX):
            busy = False
            for n in ids:
                if self.env.nodes[n] is not None and self.env.node(n).has_ready():
                    out += self.process_ready([n], {})
                    busy = True
            for n in ids:
                if self.env.nodes[n] is not None and self.env.inbox[n]:
                    out += [f"> {n} receiving messages", *(f"  {fmt_msg(m)}" for m in self.env.deliver(n))]
                    busy = True
            if not busy:
                self.env.check_log_matching()
                return out
        raise AssertionError("stabilize did not converge")

    def partition(self, args: list[str], kw: dict[str, str]) -> list[str]:
        self.env.groups = [set(g.split()) for g in " ".join(args).split("|")]
        return []

    def heal(self, args: list[str], kw: dict[str, str]) -> list[str]:
        self.env.groups = None
        return []

    def propose(self, args: list[str], kw: dict[str, str]) -> list[str]:
        return _refusal(lambda: f"index {self.env.node(args[0]).propose(args[1])}")

    def propose_conf_change(self, args: list[str], kw: dict[str, str]) -> list[str]:
        cc = ConfChange(ConfChangeKind(args[1].replace("-", "_")), args[2])
        return _refusal(lambda: f"index {self.env.node(args[0]).propose_conf_change(cc)}")

    def transfer(self, args: list[str], kw: dict[str, str]) -> list[str]:
        return _refusal(lambda: self.env.node(args[0]).transfer_leadership(args[1]))

    def compact(self, args: list[str], kw: dict[str, str]) -> list[str]:
        snap = self.env.compact(args[0], int(args[1]))
        return [f"snapshot {snap.term}/{snap.index} {fmt_conf(snap.conf)}"]

    def crash(self, args: list[str], kw: dict[str, str]) -> list[str]:
        for n in args:
            self.env.crash(n)
        return []

    def restart(self, args: list[str], kw: dict[str, str]) -> list[str]:
        for n in args:
            self.env.start(n)
        return self.raft_state(args, {})

    def status(self, args: list[str], kw: dict[str, str]) -> list[str]:
        st = self.env.node(args[0]).status()
        out = [
            f"{st.id} {st.role} term={st.term} vote={st.vote or '-'} leader={st.leader or '-'} "
            f"commit={st.commit} applied={st.applied} first={st.first_index} last={st.last_index}",
            fmt_conf(st.conf),
        ]
        for k, p in sorted(st.progress.items()):
            out.append(f"{k}: {p.state} match={p.match} next={p.next}" + (" active" if p.recent_active else ""))
        return out

    def log(self, args: list[str], kw: dict[str, str]) -> list[str]:
        log = self.env.node(args[0]).raft.log
        head = [f"snapshot {log.snapshot.term}/{log.snapshot.index}"] if log.snapshot.index else []
        return head + [fmt_entry(e) for e in log.entries] or ["(empty)"]

    def raft_state(self, args: list[str], kw: dict[str, str]) -> list[str]:
        out = []
        for n in args or sorted(self.env.nodes):
            node = self.env.nodes[n]
            if node is None:
                out.append(f"{n}: crashed")
                continue
            st = node.status()
            out.append(
                f"{n}: {st.role} term={st.term} leader={st.leader or '-'} commit={st.commit} last={st.last_index}"
            )
        return out


def _ids(spec: str) -> list[str]:
    return [x for x in re.split(r"[(),\s]+", spec) if x]


def _refusal(call: Callable[[], object]) -> list[str]:
    try:
        result = call()
    except (NotLeader, ConfChangeRefused, ProposalRefused, TransferRefused) as e:
        return [f"refused ({type(e).__name__}): {e}"]
    return [str(result)] if result is not None else []
