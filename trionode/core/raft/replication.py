"""The leader's side of log replication: append, send, acknowledge, commit.

Theory of operation. The leader appends proposals to its own log, counts
itself as holding them (they are handed out for persisting in the same
Ready that exposes any commit they enable), and streams them to each member
according to its :class:`Progress` state: one probe at a time, a pipelined
window in replicate, or a SNAP when the entries were compacted away.

An entry commits when a majority of voters' ``match`` reaches it *and* it is
from the current term (Raft §5.4.2; the term's NOOP makes that prompt). A new
commit index is pushed out with the next APP (or an empty one), and
heartbeats carry ``min(match, commit)`` so a follower never learns a commit
index past the part of its log known to match ours.

The leader also runs check-quorum and leadership transfer from its tick.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trionode.core.raft.config import TransferRefused
from trionode.core.raft.messages import Entry, EntryKind, Message, MsgType
from trionode.core.raft.progress import ProgressState
from trionode.core.raft.role import Role

if TYPE_CHECKING:
    from trionode.core.raft.progress import Progress
    from trionode.core.raft.raft import Raft


def append_entries(r: "Raft", items: Sequence[tuple[EntryKind, Any]]) -> int:
    """Append new entries of the current term to the leader's log; returns the last index."""
    assert r.role is Role.LEADER and items
    base = r.log.last_index() + 1
    r.log.append([Entry(base + i, r.term, kind, data) for i, (kind, data) in enumerate(items)])
    r.tracker.progress[r.id].maybe_update(r.log.last_index())
    maybe_commit(r)
    assert r.log.last_index() == base + len(items) - 1
    return r.log.last_index()


def maybe_commit(r: "Raft") -> bool:
    index = r.tracker.committed()
    # Only count replicas for an entry of our own term: an older term's entry on a
    # majority can still be overwritten (Raft figure 8).
    if index > r.log.commit and r.log.term(index) == r.term:
        r.log.commit_to(index)
        return True
    return False


def _send_one(r: "Raft", to: str, pr: "Progress", send_if_empty: bool) -> bool:
    if pr.is_paused():
        return False
    prev = pr.next - 1
    prev_term = r.log.term(prev)
    if prev_term is None:
        _send_snapshot(r, to, pr)
        return True
    assert prev <= r.log.last_index(), f"next {pr.next} for {to} is past our log"
    last = min(r.log.last_index(), prev + r.cfg.entries_per_msg_max)
    entries = tuple(r.log.slice(prev + 1, last)) if last > prev else ()
    if not entries and not send_if_empty:
        return False
    r.send(Message(MsgType.APP, r.id, to, r.term, log_term=prev_term, index=prev, entries=entries, commit=r.log.commit))
    pr.sent_entries(last, len(entries))
    return True


def _send_snapshot(r: "Raft", to: str, pr: "Progress") -> None:
    snap = r.log.snapshot
    assert snap.index > 0, "entries are only missing after a compaction"
    pr.become_snapshot(snap.index)
    r.send(Message(MsgType.SNAP, r.id, to, r.term, snapshot=snap))


def send_append(r: "Raft", to: str, *, send_if_empty: bool = False) -> None:
    """Send ``to`` what it lacks, as far as its progress state allows (a full window at most)."""
    pr = r.tracker.progress[to]
    sent = _send_one(r, to, pr, send_if_empty)
    while sent and pr.state is ProgressState.REPLICATE and pr.next <= r.log.last_index():
        sent = _send_one(r, to, pr, False)


def bcast_append(r: "Raft", *, send_if_empty: bool = True) -> None:
    for node_id in r.tracker.progress:
        if node_id != r.id:
            send_append(r, node_id, send_if_empty=send_if_empty)


def bcast_heartbeat(r: "Raft") -> None:
    for node_id, pr in r.tracker.progress.items():
        if node_id != r.id:
            commit = min(pr.match, r.log.commit)
            r.send(Message(MsgType.HEARTBEAT, r.id, node_id, r.term, commit=commit))


def tick_leader(r: "Raft") -> None:
    assert r.role is Role.LEADER
    r.heartbeat_elapsed += 1
    r.election_elapsed += 1
    if r.election_elapsed >= r.cfg.election_ticks:
        r.election_elapsed = 0
        if r.cfg.check_quorum and not _check_quorum(r):
            r.become_follower(r.term, "")
            return
        r.lead_transferee = ""  # a transfer that took an election timeout has failed
    if r.heartbeat_elapsed >= r.cfg.heartbeat_ticks:
        r.heartbeat_elapsed = 0
        _tick_snapshot_waits(r)
        bcast_heartbeat(r)


def _check_quorum(r: "Raft") -> bool:
    """Did a quorum of voters talk to us during the last election timeout? Starts a new round."""
    active = r.tracker.quorum_active()
    for node_id, pr in r.tracker.progress.items():
        pr.recent_active = node_id == r.id
    return active


def _tick_snapshot_waits(r: "Raft") -> None:
    # A SNAP lost in the network would leave the follower waiting forever: retry by probing.
    for pr in r.tracker.progress.values():
        if pr.state is ProgressState.SNAPSHOT:
            pr.snapshot_wait_ticks += r.cfg.heartbeat_ticks
            if pr.snapshot_wait_ticks >= r.cfg.election_ticks:
                pr.become_probe()


def step_leader(r: "Raft", m: Message) -> None:
    pr = r.tracker.progress.get(m.frm)
    if pr is None:
        return  # not (or no longer) a member
    if m.type is MsgType.APP_RESP:
        pr.recent_active = True
        if m.reject:
            _handle_reject(r, m, pr)
        elif m.index <= r.log.last_index():  # a larger index cannot come from our term; ignore it
            _handle_ack(r, m, pr)
    elif m.type is MsgType.HEARTBEAT_RESP:
        pr.recent_active = True
        pr.probe_sent = False
        if pr.state is ProgressState.REPLICATE and pr.inflights.full():
            pr.inflights.free_first_one()  # an ACK may have been lost; let the stream move
        if pr.match < r.log.last_index():
            # Even with nothing new to send: an empty APP lets a follower that lost
            # pipelined messages reject it, which sends us back to probing.
            send_append(r, m.frm, send_if_empty=True)


def _handle_reject(r: "Raft", m: Message, pr: "Progress") -> None:
    if pr.maybe_decrease_to(m.index, m.reject_hint):
        if pr.state is ProgressState.REPLICATE:
            pr.become_probe()
        send_append(r, m.frm)


def _handle_ack(r: "Raft", m: Message, pr: "Progress") -> None:
    was_paused = pr.is_paused()
    if not pr.maybe_update(m.index):
        return
    if pr.state is ProgressState.PROBE:
        pr.become_replicate()
    elif pr.state is ProgressState.SNAPSHOT and pr.match + 1 >= r.log.first_index():
        pr.become_replicate()  # the follower can continue from our log
    elif pr.state is ProgressState.REPLICATE:
        pr.inflights.free_le(m.index)
    if maybe_commit(r):
        bcast_append(r)
    else:
        # A follower that was paused may have missed a commit index we sent others meanwhile.
        send_append(r, m.frm, send_if_empty=was_paused)
    if m.frm == r.lead_transferee and pr.match == r.log.last_index():
        r.send(Message(MsgType.TIMEOUT_NOW, r.id, m.frm, r.term))


def transfer_leadership(r: "Raft", to: str) -> None:
    assert r.role is Role.LEADER
    if to == r.id or to == r.lead_transferee:
        return
    if not r.tracker.is_voter(to):
        raise TransferRefused(f"node {to} is not a voter")
    r.lead_transferee = to
    r.election_elapsed = 0  # the transfer is abandoned after one election timeout
    pr = r.tracker.progress[to]
    if pr.match == r.log.last_index():
        r.send(Message(MsgType.TIMEOUT_NOW, r.id, to, r.term))
    else:
        send_append(r, to, send_if_empty=True)  # even an empty APP makes a stalled stream probe again
