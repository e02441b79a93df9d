"""The ``trionode`` command line: parse, validate, then hand over to trio.

Every failure an operator can cause (bad configuration, port in use, locked or
unwritable data directory, damaged files) ends the process with one line on
stderr that names the problem and a non-zero exit status, never a traceback.
"""

import json
import sys
from typing import Any, NoReturn

import click
import trio

from trionode import config as config_mod
from trionode.client import Client, ReplyError, parse_addr
from trionode.core.wal.codec import WalCorruption
from trionode.io import logs
from trionode.io.datadir import DataDirError

EXIT_STARTUP = 1
EXIT_CORRUPTION = 2


def _fail(message: str, code: int = EXIT_STARTUP) -> NoReturn:
    click.echo(f"trionode: error: {message}", err=True)
    sys.exit(code)


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
def start(conf_file: str | None, **flags: Any) -> None:
    """Start a node. With no options: a single-node cluster on 127.0.0.1:7000."""
    from trionode.io import node

    try:
        cfg = config_mod.load(conf_file).with_overrides(**flags)
    except config_mod.ConfigError as e:
        _fail(str(e))
    logs.setup(cfg.log_level)
    try:
        trio.run(node.run, cfg, conf_file or "")
    except (config_mod.ConfigError, DataDirError, node.StartupError) as e:
        _fail(str(e))
    except WalCorruption as e:
        _fail(f"{e} (refusing to start; run 'trionode wal check' on the data directory)", EXIT_CORRUPTION)
    except KeyboardInterrupt:
        pass


@main.command()
@click.argument("addr", default="127.0.0.1:7000", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(addr: str, as_json: bool) -> None:
    """Show a node's state. Exits 1 if it is unreachable or unhealthy."""
    try:
        host, port = parse_addr(addr)
        with Client(host, port) as client:
            report = _status_report(client)
    except ValueError as e:
        _fail(str(e))
    except (OSError, ReplyError) as e:
        _fail(f"cannot get status from {addr}: {e}")
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
    info = _info_fields(client.call("INFO"))
    node_id = client.call("CLUSTER", "MYID").decode()
    slot_ranges = [[r[0], r[1]] for r in client.call("CLUSTER", "SLOTS")]
    covered = sum(end - start + 1 for start, end in slot_ranges)
    addr = f"{client.sock.getpeername()[0]}:{info.get('tcp_port')}"
    node = {
        "id": node_id,
        "addr": addr,
        "bus_addr": None,
        "raft_role": None,
        "shard_id": node_id,
        "role": "primary",
        "offset": int(info.get("master_repl_offset", 0)),
        "in_isr": True,
        "health": "online",
        "slots": slot_ranges,
        "keys": int(client.call("DBSIZE")),
        "persistence": {k: v for k, v in info.items() if k.startswith(("wal_", "snapshot_", "fsync_"))},
    }
    return {
        "cluster_id": None,
        "node_id": node_id,
        "leader_id": None,
        "term": 0,
        "commit_index": 0,
        "healthy": covered == 16384,
        "nodes": [node],
        "shards": [
            {"id": node_id, "epoch": 0, "primary_id": node_id, "replica_ids": [], "isr_ids": [node_id],
             "slots": slot_ranges}
        ],
        "migrations": [],
    }


def _status_text(report: dict[str, Any]) -> str:
    lines = [f"cluster healthy: {'yes' if report['healthy'] else 'NO'}"]
    for n in report["nodes"]:
        slots = " ".join(f"{a}-{b}" for a, b in n["slots"]) or "none"
        lines.append(f"node {n['id']} {n['addr']} {n['role']} {n['health']} offset={n['offset']} keys={n['keys']}")
        lines.append(f"  slots: {slots}")
        for key, value in sorted(n["persistence"].items()):
            lines.append(f"  {key}: {value}")
    return "\n".join(lines)


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
