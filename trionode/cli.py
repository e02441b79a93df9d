"""The ``trionode`` command line: parse, validate, then hand over to trio.

Every failure an operator can cause (bad configuration, port in use, locked or
unwritable data directory, damaged files) ends the process with one line on
stderr that names the problem and a non-zero exit status, never a traceback.
"""

import functools
import json
import logging
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import click
import trio

from trionode import config as config_mod
from trionode.client import Client, ClosedByServer, ReplyError, parse_addr, speaks_tls
from trionode.io import fatal, logs
from trionode.io.fatal import EXIT_CORRUPTION, EXIT_STARTUP
from trionode.io.tls import TLSFileError, client_context

if TYPE_CHECKING:
    from trionode.core.cluster.planner import SlotMove


def _fail(message: str, code: int = EXIT_STARTUP) -> NoReturn:
    click.echo(f"trionode: error: {message}", err=True)
    sys.exit(code)


# --- how commands reach nodes ----------------------------------------------------------
class Dialing(NamedTuple):
    """How the running command connects to nodes, from its options (kept in click's context)."""

    tls: ssl.SSLContext | None
    client_cert: bool  # --cert given


_DIALING = "trionode.dialing"
_DIAL_OPTIONS = (
    click.option("--tls", is_flag=True,
                 help="Connect to nodes over TLS: give their tls_port (nodes with TLS advertise it)."),
    click.option("--cacert", default="", metavar="FILE",
                 help="CA certificates (PEM) the nodes' certificates must chain to (default: the system's)."),
    click.option("--cert", default="", metavar="FILE",
                 help="Client certificate (PEM), for nodes with tls_auth_clients; needs --key."),
    click.option("--key", default="", metavar="FILE", help="The private key (PEM, unencrypted) of --cert."),
)  # fmt: skip


def _dial_options(command: Callable[..., None]) -> Callable[..., None]:
    """--tls, --cacert, --cert and --key for a command that talks to nodes: with --tls every connection it
    makes is TLS, to the addresses given and to those the cluster advertises. The innermost decorator."""

    @functools.wraps(command)
    def run(*args: Any, tls: bool, cacert: str, cert: str, key: str, **kwargs: Any) -> None:
        click.get_current_context().meta[_DIALING] = Dialing(_tls_context(tls, cacert, cert, key), bool(cert))
        command(*args, **kwargs)

    for option in reversed(_DIAL_OPTIONS):
        run = option(run)
    return run


def _tls_context(tls: bool, cacert: str, cert: str, key: str) -> ssl.SSLContext | None:
    given = [name for name, value in (("--cacert", cacert), ("--cert", cert), ("--key", key)) if value]
    if not tls:
        if given:
            _fail(f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} --tls")
        return None
    try:
        return client_context(cacert, cert, key)
    except TLSFileError as e:
        _fail(str(e))


def _dialing() -> Dialing:
    return click.get_current_context().meta.get(_DIALING, Dialing(None, False))


def _client(addr: str, timeout_s: float = 5.0) -> Client:
    """A connection to ADDR as the command's options say; ValueError for a bad address."""
    host, port = parse_addr(addr)
    return Client(host, port, timeout_s=timeout_s, tls=_dialing().tls)


def _why(addr: str, e: Exception) -> str:
    """``e`` as the reason ADDR could not be asked, with what to do when TLS is the cause: plain RESP sent
    to a port that speaks TLS (an address a TLS cluster advertises), or a TLS connection closed without a
    word, as a node that requires a client certificate closes it when none is given."""
    reason = (e.strerror if isinstance(e, OSError) else None) or str(e) or type(e).__name__
    if not isinstance(e, ClosedByServer | ConnectionResetError):
        return reason
    dialing = _dialing()
    if dialing.tls is None and speaks_tls(*parse_addr(addr)):
        return f"{reason}: it speaks TLS there (a node with tls_port advertises its TLS port); add --tls"
    if dialing.tls is not None and not dialing.client_cert:
        return f"{reason} (if it requires a client certificate: --cert and --key)"
    return reason


@click.group()
@click.version_option(package_name="trionode")
def main() -> None:
    """trionode: a durable, sharded key-value store that speaks the Redis protocol."""


@main.command()
@click.option("--conf", "conf_file", type=click.Path(dir_okay=False), help="TOML configuration file.")
@click.option("--bind", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Client port (default 7000).")
@click.option("--bus-port", type=int, help="Cluster bus port (default port + 10000).")
@click.option("--data-dir", help="Data directory (default ./trionode-data).")
@click.option("--no-bootstrap", is_flag=True,
              help="Do not form a one-node cluster; wait for 'trionode cluster create' or 'add-node' "
                   "(bootstrap = false).")  # fmt: skip
def start(conf_file: str | None, no_bootstrap: bool, **flags: Any) -> None:
    """Start a node. With no options: a single-node cluster on 127.0.0.1:7000."""
    from trionode.io import node

    try:
        cfg = config_mod.load(conf_file).with_overrides(bootstrap=False if no_bootstrap else None, **flags)
    except config_mod.ConfigError as e:
        _fail(str(e))
    logs.setup(cfg.log_level)
    try:
        trio.run(node.run, cfg, conf_file or "")
    except KeyboardInterrupt:
        pass
    except (Exception, BaseExceptionGroup) as exc:  # the process's boundary: every cause ends in one line
        _stopped(exc)


def _stopped(exc: BaseException) -> NoReturn:
    """End the process with one line naming why it stopped (exit statuses: trionode/io/fatal.py)."""
    diagnosis = fatal.diagnose(exc)
    if diagnosis is None:  # nothing but cancellations: a bug, so keep the whole story
        raise exc
    if diagnosis.exit_code in (EXIT_STARTUP, EXIT_CORRUPTION):
        _fail(diagnosis.message, diagnosis.exit_code)
    log = logging.getLogger("trionode.node")
    log.debug("the cause in full", exc_info=diagnosis.cause)
    log.critical("fatal: %s (exit %d)", diagnosis.message, diagnosis.exit_code)
    sys.exit(diagnosis.exit_code)


@main.command()
@click.argument("addr", default="127.0.0.1:7000", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_dial_options
def status(addr: str, as_json: bool) -> None:
    """Show a node's state. Exits 1 if it is unreachable or unhealthy."""
    try:
        with _client(addr) as client:
            report = _status_report(client)
    except ValueError as e:
        _fail(str(e))
    except (OSError, ReplyError) as e:
        _fail(f"cannot get status from {addr}: {_why(addr, e)}")
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        click.echo(_status_text(report))
    sys.exit(0 if report["healthy"] else 1)


def _info_fields(text: bytes | str) -> dict[str, str]:
    text = text.decode() if isinstance(text, bytes) else str(text)
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[key] = value
    return fields


def _status_report(client: Client) -> dict[str, Any]:
    return json.loads(client.call("CLUSTER", "STATUS"))


def _status_text(report: dict[str, Any]) -> str:
    leader = (report["leader_id"] or "none")[:12]
    lines = [
        f"cluster {report['cluster_id'] or '(not formed)'}: {'healthy' if report['healthy'] else 'UNHEALTHY'}",
        f"raft: leader {leader}, term {report['term']}, commit {report['commit_index']}, "
        f"applied {report.get('applied_index', '?')}",
    ]
    for problem in report.get("problems", []):
        lines.append(f"  problem: {problem}")
    for n in report["nodes"]:
        lines.append(
            f"node {n['id'][:12]} {n['addr']:<21} raft={n['raft_role']:<9} {n['role']:<8} "
            f"shard={(n['shard_id'] or '-')[:12]} offset={n['offset']} isr={'yes' if n['in_isr'] else 'no'} "
            f"{n['health']}"
        )
    for sh in report["shards"]:
        slots = _ranges_text(sh["slots"]) or "none"
        lines.append(f"shard {sh['id'][:12]} epoch {sh['epoch']} primary {sh['primary_id'][:12]} slots {slots}")
    for job in report.get("migration_jobs", []):
        lines.append(f"migration {job['name'][:12]} {job['operation']} slots {job['slot_ranges']}: "
                     f"{_progress_text(job)}")  # fmt: skip
    for key, value in sorted(report.get("local", {}).items()):
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def _progress_text(job: dict[str, Any]) -> str:
    text = (f"{job['state']}, {job['keys_copied']} keys, {job['bytes_copied']} bytes copied, lag {job['lag']}, "
            f"longest write pause {job['write_pause_ms']} ms")  # fmt: skip
    return text + (f" ({job['message']})" if job["message"] else "")


@main.group()
def wal() -> None:
    """Inspect write-ahead logs and snapshots."""


@wal.command("check")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def wal_check(directory: str) -> None:
    """Verify a data directory offline. Exit 0 clean, 1 torn tail, 2 corruption."""
    from trionode.io import wal_files

    code, lines = wal_files.check(directory)
    for line in lines:
        click.echo(line)
    sys.exit(code)


# --- cluster administration ------------------------------------------------------
CLUSTER_SETTLE_TIMEOUT_S = 60.0


def _connect(addr: str) -> Client:
    try:
        return _client(addr, timeout_s=15.0)
    except ValueError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot connect to {addr}: {_why(addr, e)}")


def _call(addr: str, *args: str | int, refusal: str = "") -> Any:
    """The node's reply; a refusal (``refusal``, or "ADDR refused COMMAND") or a lost connection ends the
    command with one line."""
    with _connect(addr) as client:
        try:
            return client.call(*args)
        except ReplyError as e:
            _fail(f"{refusal or f'{addr} refused ' + ' '.join(str(a) for a in args[:2])}: {e}")
        except OSError as e:
            _fail(f"{addr} failed during {' '.join(str(a) for a in args[:2])}: {_why(addr, e)}")


def _cluster_id(addr: str) -> str:
    return _info_fields(_call(addr, "INFO", "cluster")).get("cluster_id", "")


def _wait_for(what: str, check: Any, timeout_s: float = CLUSTER_SETTLE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            _fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)


@main.group()
def cluster() -> None:
    """Form and change a cluster of running nodes."""


@cluster.command("create")
@click.argument("addrs", nargs=-1, required=True)
@click.option("--replicas", type=click.IntRange(0, 15), default=0, help="Replicas per primary.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_dial_options
def cluster_create(addrs: tuple[str, ...], replicas: int, yes: bool) -> None:
    """Form a cluster from running nodes started with --no-bootstrap (or alone and never written to)."""
    ids = {addr: _call(addr, "CLUSTER", "MYID").decode() for addr in addrs}
    infos = {addr: _info_fields(_call(addr, "INFO", "cluster")) for addr in addrs}
    for addr, info in infos.items():
        _leave_lone_cluster(addr, info.get("cluster_id", ""))
    slots, attach = _create_plan(addrs, ids, {a: int(info["cluster_bus_port"]) for a, info in infos.items()}, replicas)
    primaries = [primary for primary, _ in slots]
    plan = [f"primary {p} ({ids[p][:12]}): slots {_ranges_text(r)}" for p, r in slots]
    plan += [f"replica {r} ({ids[r][:12]}) of {p}" for r, p in attach]
    click.echo("\n".join(plan))
    if not yes and sys.stdin.isatty() and not click.confirm("Create this cluster?"):
        _fail("aborted")
    seed = addrs[0]
    _call(seed, "CLUSTER", "BOOTSTRAP")
    for addr in addrs[1:]:
        _call(seed, "CLUSTER", "MEET", *_meet_addr(addr))
    cluster_id = _cluster_id(seed)
    _wait_for("every node to join", lambda: all(_knows(a, ids.values()) for a in addrs))
    for addr, ranges in slots:
        _call(addr, "CLUSTER", "ADDSLOTSRANGE", *(bound for pair in ranges for bound in pair))
    # Before REPLICATE: a replica judges it from its own applied view, which may lag its primary's new shard.
    _wait_for("every node to see all slots served", lambda: all(_covered(a) for a in addrs))
    for replica, primary in attach:
        _call(replica, "CLUSTER", "REPLICATE", ids[primary])
    click.echo(f"cluster {cluster_id} created: {len(primaries)} shards, {len(addrs)} nodes")


def _ranges_text(ranges: list[list[int]]) -> str:  # [[0, 5460], ...] -> '0-5460 ...'
    return " ".join(f"{a}-{b}" for a, b in ranges)


def _create_plan(
    addrs: tuple[str, ...], ids: dict[str, str], bus_ports: dict[str, int], replicas: int
) -> tuple[list[tuple[str, list[list[int]]]], list[tuple[str, str]]]:
    """The planner's plan (core/cluster/planner.py) as steps per address: (primary, its slot ranges)
    and (replica, its primary). Nodes run those steps themselves (ADDSLOTSRANGE, REPLICATE)."""
    from trionode.core.cluster.planner import NodeAddress, plan_create

    nodes = [NodeAddress(ids[a], *parse_addr(a), bus_ports[a]) for a in addrs]
    try:
        plan = plan_create(nodes, replicas, known_ids=set(ids.values()))
    except ValueError as e:
        _fail(str(e))
    addr_of = {ids[a]: a for a in addrs}
    primary_of = {c["shard_id"]: addr_of[c["primary_id"]] for c in plan if c["op"] == "shard_create"}
    slots = [(primary_of[c["shard_id"]], c["slots"]) for c in plan if c["op"] == "slots_assign"]
    attach = [(addr_of[c["node_id"]], primary_of[c["shard_id"]]) for c in plan if c["op"] == "replica_attach"]
    return slots, attach


def _leave_lone_cluster(addr: str, cluster_id: str) -> None:
    """A node that formed a cluster alone (a plain ``trionode start``) leaves it, if it never had
    another member or data (CLUSTER RESET); anything else stops here with the node's reason."""
    if not cluster_id:
        return
    _call(addr, "CLUSTER", "RESET", refusal=f"{addr} already belongs to cluster {cluster_id} and cannot leave it")
    click.echo(f"{addr} left the one-node cluster {cluster_id} it formed alone")


def _meet_addr(addr: str) -> tuple[str, int]:
    """Where a node of the cluster dials ADDR's node for CLUSTER MEET. Nodes speak plain RESP to each
    other, so with --tls (ADDR a TLS port) it is that node's plain port, which INFO reports as tcp_port."""
    host, port = parse_addr(addr)
    if _dialing().tls is None:
        return host, port
    return host, int(_info_fields(_call(addr, "INFO", "server"))["tcp_port"])


def _knows(addr: str, node_ids: Any) -> bool:
    """``addr`` has applied the membership of every node in ``node_ids``."""
    listed = {line.split(" ", 1)[0] for line in _call(addr, "CLUSTER", "NODES").decode().splitlines()}
    return set(node_ids) <= listed and bool(_cluster_id(addr))


def _covered(addr: str) -> bool:
    return sum(r[1] - r[0] + 1 for r in _call(addr, "CLUSTER", "SLOTS")) == 16384


@cluster.command("add-node")
@click.argument("new_addr")
@click.argument("existing_addr")
@click.option("--primary", is_flag=True, help="Make it the primary of a new, empty shard (then migrate slots to it).")
@click.option("--replica-of", "primary_id", help="Attach it as a replica of the primary with this node id.")
@_dial_options
def cluster_add_node(new_addr: str, existing_addr: str, primary: bool, primary_id: str | None) -> None:
    """Add a running node to the cluster EXISTING_ADDR belongs to.

    The node was started with --no-bootstrap, or formed a cluster alone and never held data."""
    if primary and primary_id:
        _fail("--primary and --replica-of exclude each other")
    _leave_lone_cluster(new_addr, _cluster_id(new_addr))
    _call(existing_addr, "CLUSTER", "MEET", *_meet_addr(new_addr))
    cluster_id = _cluster_id(existing_addr)
    new_id = _call(new_addr, "CLUSTER", "MYID").decode()
    existing_id = _call(existing_addr, "CLUSTER", "MYID").decode()
    # Both ids: a node not yet in the configuration it applied lists only itself.
    members = [new_id, existing_id]
    _wait_for(f"{new_addr} to join", lambda: _cluster_id(new_addr) == cluster_id and _knows(new_addr, members))
    click.echo(f"{new_addr} joined cluster {cluster_id}")
    if primary:
        _call(new_addr, "CLUSTER", "ADDSHARD")
        click.echo(f"{new_addr} is the primary of a new, empty shard; move slots to it with "
                   f"'trionode cluster migrate ADDR --slots A-B --to {new_id}'")  # fmt: skip
    elif primary_id:
        _call(new_addr, "CLUSTER", "REPLICATE", primary_id)
        click.echo(f"{new_addr} is a replica of {primary_id}")


@cluster.command("migrate")
@click.argument("addr")
@click.option("--slots", "slots_text", required=True, help="Slot ranges A-B[,C-D...] owned by ADDR's shard.")
@click.option("--to", "target_id", required=True, help="Node id of the target shard's primary.")
@_dial_options
def cluster_migrate(addr: str, slots_text: str, target_id: str) -> None:
    """Move slots from ADDR (their shard's primary) to another shard, showing progress until the job ends.

    Exits 0 once the slots have moved, 1 if the migration aborted (it says why; the source keeps its data)."""
    name = _start_migration(addr, _parse_slot_ranges(slots_text), target_id)
    shown = ""
    while (job := _job(addr, name))["state"] not in _JOB_ENDS:
        shown = _show(_job_text(job, target_id), shown)
        time.sleep(_POLL_S)
    _show(_job_text(job, target_id), shown)
    sys.exit(0 if job["state"] == "success" else 1)


_JOB_ENDS = ("success", "failed", "cancelled")
_POLL_S = 0.5  # how often a running job's progress is read


def _start_migration(addr: str, ranges: Sequence[Sequence[int]], target_id: str) -> str:
    """Start a migration of ``ranges`` on ADDR (their primary) to ``target_id``; its job's name."""
    before = {job["name"] for job in _migrations(addr)}
    _call(addr, "CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", *(bound for pair in ranges for bound in pair), "NODE",
          target_id)  # fmt: skip
    job = next((j for j in _migrations(addr) if j["name"] not in before and j["operation"] == "EXPORT"), None)
    if job is None:
        _fail(f"{addr} accepted the migration but does not list it")
    return job["name"]


def _job(addr: str, name: str) -> dict[str, Any]:
    job = next((j for j in _migrations(addr) if j["name"] == name), None)
    if job is None:
        _fail(f"{addr} no longer lists migration {name[:12]}")
    return job


def _job_text(job: dict[str, Any], target_id: str) -> str:
    return f"{job['name'][:12]} slots {job['slot_ranges']} -> {target_id[:12]}: {_progress_text(job)}"


def _show(line: str, shown: str) -> str:
    """Print ``line`` unless it is what was shown last; what is shown now."""
    if line != shown:
        click.echo(line)
    return line


@cluster.command("rebalance")
@click.argument("addr")
@click.option("--weight", "weight_texts", multiple=True, metavar="NODE_ID=W",
              help="The shard whose primary is NODE_ID (or a unique prefix) holds W shares of the slots "
                   "(default 1; 0 empties it). Repeat for each shard.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Print the plan and move nothing.")
@_dial_options
def cluster_rebalance(addr: str, weight_texts: tuple[str, ...], dry_run: bool) -> None:
    """Move slots until every shard holds its weight's share (to within one slot), moving the fewest slots;
    migrations between distinct shards run at once.

    Exits 0 once balanced, 1 if a migration aborted (it says why; the slots moved before it stay moved)."""
    from trionode.core.cluster.planner import apply_moves, plan_rebalance

    report = json.loads(_call(addr, "CLUSTER", "STATUS"))
    if report.get("migrations"):
        _fail("a slot migration is in flight; let it end (or cancel it) and rebalance again")
    owned = {shard["id"]: [tuple(r) for r in shard["slots"]] for shard in report["shards"]}
    weights = _parse_weights(weight_texts, {shard["primary_id"]: shard["id"] for shard in report["shards"]})
    try:
        moves = plan_rebalance(owned, weights)
    except ValueError as e:
        _fail(str(e))
    after = apply_moves(owned, moves)
    for shard_id in sorted(owned):
        held, ends = _slot_count(owned[shard_id]), _slot_count(after[shard_id])
        click.echo(f"shard {shard_id[:12]} ({_primary_text(report, shard_id)}): weight {weights[shard_id]}, "
                   f"{held} -> {ends} slots")  # fmt: skip
    total = sum(_slot_count(m.slots) for m in moves)
    for i, move in enumerate(moves, 1):
        click.echo(f"move {i}/{len(moves)}: slots {_ranges_text(move.slots)} from shard {move.source_shard_id[:12]} "
                   f"to shard {move.target_shard_id[:12]}")  # fmt: skip
    if not moves:
        click.echo("the cluster is balanced: every shard holds its share to within one slot")
        return
    click.echo(f"{total} slots to move in {len(moves)} migrations")
    if not dry_run:
        _run_moves(addr, moves, total)


def _parse_weights(texts: tuple[str, ...], shard_of_primary: dict[str, str]) -> dict[str, int]:
    """``--weight NODE_ID=W`` options as shard id -> weight; every other shard weighs 1."""
    weights = dict.fromkeys(shard_of_primary.values(), 1)
    for text in texts:
        node, sep, value = text.partition("=")
        matches = [p for p in shard_of_primary if node and p.startswith(node)]
        if not sep or not value.isdigit():
            _fail(f"bad --weight {text!r}: expected NODE_ID=W, W a whole number")
        if len(matches) != 1:
            _fail(f"--weight {text!r}: {'no' if not matches else 'more than one'} shard primary has that id")
        weights[shard_of_primary[matches[0]]] = int(value)
    return weights


def _slot_count(ranges: Sequence[Sequence[int]]) -> int:
    from trionode.core.cluster.state import slots_of

    return len(slots_of((start, end) for start, end in ranges))


def _primary_text(report: dict[str, Any], shard_id: str) -> str:
    primary_id = next(s["primary_id"] for s in report["shards"] if s["id"] == shard_id)
    addr = next((n["addr"] for n in report["nodes"] if n["id"] == primary_id), "?")
    return f"primary {primary_id[:12]} at {addr}"


def _run_moves(addr: str, moves: "list[SlotMove]", total: int) -> None:
    """Run the plan's migrations, those on distinct shards at once (``moves_to_start``), each from its
    source shard's primary of the moment; one progress line per change, after the plan's counters.

    Once one fails, no other starts; those running are followed to their end, then the exit is 1."""
    from trionode.core.cluster.planner import moves_to_start
    from trionode.core.cluster.state import migrations_max

    pending, running = list(range(len(moves))), {}  # running: move index -> (source addr, job name, target id)
    shown: dict[int, str] = {}
    started = done = 0
    failures: list[str] = []
    while running or (pending and not failures):
        for i in [] if failures else moves_to_start(moves, pending, running, migrations_max):
            pending.remove(i)
            started += 1
            running[i] = _start_move(addr, moves[i])
        for i, (source_addr, name, target_id) in list(running.items()):
            job = _job(source_addr, name)
            prefix = f"[{started}/{len(moves)} migrations, {done}/{total} slots moved] "
            shown[i] = _show(prefix + _job_text(job, target_id), shown.get(i, ""))
            if job["state"] not in _JOB_ENDS:
                continue
            del running[i]
            if job["state"] == "success":
                done += _slot_count(moves[i].slots)
            else:
                failures.append(f"migration {i + 1}/{len(moves)} (slots {_ranges_text(moves[i].slots)}) ended "
                                f"{job['state']}: {job['message'] or 'no reason given'}")  # fmt: skip
        if running:
            time.sleep(_POLL_S)
    if failures:
        _fail(f"{'; '.join(failures)}; {done} of {total} slots were moved", 1)
    click.echo(f"[{len(moves)}/{len(moves)} migrations, {total}/{total} slots moved] the cluster is balanced")


def _start_move(addr: str, move: "SlotMove") -> tuple[str, str, str]:
    """Start ``move`` on its source shard's primary of the moment: (that primary's addr, job name, target id)."""
    report = json.loads(_call(addr, "CLUSTER", "STATUS"))
    primaries = {shard["id"]: shard["primary_id"] for shard in report["shards"]}
    source_addr = next(n["addr"] for n in report["nodes"] if n["id"] == primaries[move.source_shard_id])
    target_id = primaries[move.target_shard_id]
    return source_addr, _start_migration(source_addr, move.slots, target_id), target_id


def _parse_slot_ranges(text: str) -> list[tuple[int, int]]:
    ranges = []
    for part in text.split(","):
        start, _, end = part.strip().partition("-")
        try:
            ranges.append((int(start), int(end or start)))
        except ValueError:
            _fail(f"bad slot range {part!r}: expected A-B")
    return ranges


def _migrations(addr: str) -> list[dict[str, Any]]:
    return json.loads(_call(addr, "CLUSTER", "STATUS")).get("migration_jobs", [])


@cluster.command("del-node")
@click.argument("existing_addr")
@click.argument("node_id")
@_dial_options
def cluster_del_node(existing_addr: str, node_id: str) -> None:
    """Remove node NODE_ID (it must hold no slots and no shard role) from the cluster."""
    _call(existing_addr, "CLUSTER", "FORGET", node_id)
    click.echo(f"node {node_id} removed")


@main.command()
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of one run.")
@click.option("--seeds", help="A seed range A..B (inclusive): one line per seed, then totals.")
@click.option("--steps", type=click.IntRange(min=0), default=2000, show_default=True, help="Steps (ticks) per run.")
@click.option("--nodes", type=click.IntRange(1, 5), default=3, show_default=True, help="Target Raft voters.")
@click.option("--data-plane", is_flag=True, help="Also simulate one shard's replication (primary + 2 replicas).")
@click.option("--failover", is_flag=True, help="With --data-plane: leases, failover, replica-set changes.")
@click.option("--migration", is_flag=True, help="Two shards moving slots under faults (with --data-plane "
              "--failover: over the real replication and failover drivers).")  # fmt: skip
def sim(seed: int, seeds: str | None, steps: int, nodes: int, data_plane: bool, failover: bool,
        migration: bool) -> None:  # fmt: skip
    """Deterministic simulation of the Raft control plane (and the data plane); every failure prints its seed."""
    from trionode.sim import command

    if failover and not data_plane:
        _fail("--failover requires --data-plane")
    if migration and data_plane != failover:
        _fail("--migration runs alone, or with both --data-plane and --failover")
    try:
        code = command.main(seed, seeds, steps, nodes, click.echo, lambda line: click.echo(line, err=True),
                            data_plane=data_plane, failover=failover, migration=migration)  # fmt: skip
    except ValueError as exc:
        _fail(str(exc))
    sys.exit(code)


@cluster.command("replicate")
@click.argument("node_addr")
@click.argument("primary_id")
@_dial_options
def cluster_replicate(node_addr: str, primary_id: str) -> None:
    """Attach NODE_ADDR as a replica of PRIMARY_ID. It joins the ISR only once caught up."""
    _call(node_addr, "CLUSTER", "REPLICATE", primary_id)
    click.echo(f"{node_addr} replicates {primary_id}; it enters the in-sync set once it has caught up")


@cluster.command("failover")
@click.argument("replica_addr")
@click.option("--force", is_flag=True, help="Do not wait for the old primary (every ISR rule still holds).")
@_dial_options
def cluster_failover(replica_addr: str, force: bool) -> None:
    """Make the in-sync replica at REPLICA_ADDR the primary of its shard."""
    _call(replica_addr, "CLUSTER", "FAILOVER", *(["FORCE"] if force else []))
    click.echo(f"{replica_addr} is now the primary of its shard")


@cluster.command("detach")
@click.argument("existing_addr")
@click.argument("replica_id")
@_dial_options
def cluster_detach(existing_addr: str, replica_id: str) -> None:
    """Remove replica REPLICA_ID from its shard (refused if it is the last one in sync)."""
    _call(existing_addr, "CLUSTER", "DETACH", replica_id)
    click.echo(f"replica {replica_id} detached")


@cluster.command("replace")
@click.argument("existing_addr")
@click.argument("old_id")
@click.argument("new_id")
@_dial_options
def cluster_replace(existing_addr: str, old_id: str, new_id: str) -> None:
    """Replace replica OLD_ID by member NEW_ID, which joins the ISR only once caught up."""
    _call(existing_addr, "CLUSTER", "REPLACE", old_id, new_id)
    click.echo(f"replica {old_id} replaced by {new_id}")


@cluster.command("check")
@click.argument("addr")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_dial_options
def cluster_check(addr: str, as_json: bool) -> None:
    """Check the whole cluster from ADDR: every slot has one owner, every shard a live primary
    and ISR, all members reachable and agreeing, no migration stuck. Exits 0 if so, 1 otherwise."""
    from trionode.core.cluster.check import check_cluster

    with _connect(addr) as client:
        try:
            entry = _status_report(client)
        except (OSError, ReplyError) as e:
            _fail(f"cannot get status from {addr}: {_why(addr, e)}")
    others: dict[str, dict[str, Any] | str] = {}
    for node in entry["nodes"]:
        if node["id"] != entry["node_id"]:
            others[node["addr"]] = _status_or_reason(node["addr"])
    result = check_cluster(entry, others)
    if as_json:
        click.echo(json.dumps({"ok": result.ok, "errors": result.errors, "warnings": result.warnings}, indent=2))
    else:
        click.echo(f"{len(entry['nodes'])} nodes, {len(entry['shards'])} shards, "
                   f"configuration version {entry['config_version']}")  # fmt: skip
        for line in [*(f"[ERR] {e}" for e in result.errors), *(f"[WARN] {w}" for w in result.warnings)]:
            click.echo(line)
        click.echo("[OK] the cluster is whole" if result.ok else f"[ERR] {len(result.errors)} errors")
    sys.exit(0 if result.ok else 1)


def _status_or_reason(addr: str) -> dict[str, Any] | str:
    try:
        with _client(addr) as client:
            return _status_report(client)
    except (OSError, ReplyError, ValueError) as e:
        return _why(addr, e)
