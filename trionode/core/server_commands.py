"""Server and connection commands: PING, HELLO, CLIENT, INFO, ROLE, WAIT, ...

Theory of operation. These commands read the node's facts and the session's
state and never change the keyspace; only the few that describe it wait for
durability (``reads_keyspace``). The few that need the shell to act (WAIT, SHUTDOWN, QUIT) return an ``Action``. Every
handler validates all of its arguments before changing session state, so an
error reply always means "nothing happened".

CLUSTER and COMMAND answers are formatted by ``cluster_commands`` and
``command_docs``; this module only routes to them.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trionode.core import acl_commands, auth, cluster_commands, command_docs, errors
from trionode.core.command_spec import CommandSpec
from trionode.core.errors import CommandError
from trionode.core.info import REDIS_COMPAT_VERSION, describes_keyspace, render_info
from trionode.core.keyspace.values import parse_int
from trionode.core.reply import OK, PONG, Action

if TYPE_CHECKING:
    from trionode.core.session import Session

PROTOCOL_VERSION_MAX = 3

Handler = Callable[["Session", list[bytes]], Any]


def run(session: "Session", spec: CommandSpec, argv: list[bytes]) -> Any:
    return HANDLERS[spec.name](session, argv)


_KEYSPACE_SUBCOMMANDS = frozenset({b"countkeysinslot", b"getkeysinslot"})


def reads_slot_keys(spec: CommandSpec, argv: list[bytes]) -> bool:
    """CLUSTER COUNTKEYSINSLOT and GETKEYSINSLOT: keyless reads of the data, like DBSIZE and KEYS.

    They obey the same rules (DESIGN §5.1, §5.4): a replica answers them only to a READONLY
    connection while it streams, a primary only with its lease. Valkey answers them on any
    node, stale replicas included, which our rule against stale reads does not allow.
    INFO's key counts stay unrouted: every node answers INFO, as monitoring tools expect.
    """
    return spec.name == "cluster" and len(argv) > 1 and argv[1].lower() in _KEYSPACE_SUBCOMMANDS


def reads_keyspace(spec: CommandSpec, argv: list[bytes]) -> bool:
    """INFO's keyspace section (key counts) and CLUSTER COUNTKEYSINSLOT/GETKEYSINSLOT describe the keyspace.

    Their replies must wait until everything applied before them is acknowledged, like
    any read. The other server replies (PING, CLUSTER SLOTS, COMMAND, the other INFO
    sections, ...) reveal no data, so they never wait: on a replica whose primary just
    died, the acknowledged offset stalls until a failover, and clients refreshing the
    topology, or asking ``INFO replication`` or ``INFO cluster``, then would hang.
    """
    if spec.name == "info":
        return describes_keyspace(_info_sections(argv))
    return reads_slot_keys(spec, argv)


def _ping(session: "Session", argv: list[bytes]) -> Any:
    if len(argv) > 2:
        raise CommandError(errors.wrong_arity("ping"))
    return argv[1] if len(argv) == 2 else PONG


def _echo(session: "Session", argv: list[bytes]) -> Any:
    return argv[1]


def _auth(session: "Session", argv: list[bytes]) -> Any:
    session.user = auth.auth_command(session.node.users, argv)
    return OK


def _hello(session: "Session", argv: list[bytes]) -> Any:
    proto, name, credentials = _hello_options(session, argv)
    if credentials is not None:
        session.user = session.node.users.authenticate(*credentials)
    elif session.user is None:
        raise CommandError(errors.HELLO_NOAUTH)
    session.proto, session.name = proto, name
    facts = session.node.facts
    return {
        "server": "redis",
        "version": REDIS_COMPAT_VERSION,
        "proto": session.proto,
        "id": session.client_id,
        "mode": "cluster",
        "role": "master",
        "modules": [],
        "trionode_version": facts.version,
    }


def _hello_options(session: "Session", argv: list[bytes]) -> tuple[int, bytes, tuple[bytes, bytes] | None]:
    """HELLO's protocol, name and AUTH credentials, validated before anything changes."""
    proto = session.proto
    if len(argv) > 1:
        try:
            proto = int(argv[1])
        except ValueError:
            raise CommandError("ERR Protocol version is not an integer or out of range") from None
        if not 2 <= proto <= PROTOCOL_VERSION_MAX:
            raise CommandError(errors.NOPROTO)
    name, credentials, i = session.name, None, 2
    while i < len(argv):
        opt = argv[i].lower()
        if opt == b"setname" and i + 1 < len(argv):
            name, i = checked_client_name(argv[i + 1]), i + 2
        elif opt == b"auth" and i + 2 < len(argv):
            credentials, i = (argv[i + 1], argv[i + 2]), i + 3
        else:
            raise CommandError(f"ERR Syntax error in HELLO option '{argv[i].decode('utf-8', 'replace')}'")
    return proto, name, credentials


def checked_client_name(name: bytes) -> bytes:
    if any(c <= 32 or c > 126 for c in name):
        raise CommandError("ERR Client names cannot contain spaces, newlines or special characters.")
    return name


def _client(session: "Session", argv: list[bytes]) -> Any:
    sub = argv[1].lower()
    if sub == b"id" and len(argv) == 2:
        return session.client_id
    if sub == b"getname" and len(argv) == 2:
        return session.name or None
    if sub == b"setname" and len(argv) == 3:
        session.name = checked_client_name(argv[2])
        return OK
    if sub == b"setinfo" and len(argv) == 4:
        return _client_setinfo(session, argv[2].lower(), argv[3])
    if sub in (b"no-evict", b"no-touch") and len(argv) == 3:
        return OK
    if sub == b"info" and len(argv) == 2:
        return _client_line(session) + "\n"
    if sub in (b"id", b"getname", b"setname", b"setinfo", b"info", b"no-evict", b"no-touch"):
        raise CommandError(errors.wrong_arity(f"client|{sub.decode()}"))
    raise CommandError(errors.unknown_subcommand(argv[1].decode("utf-8", "replace"), "client"))


def _client_setinfo(session: "Session", attr: bytes, value: bytes) -> Any:
    if any(c < 33 or c > 126 for c in value):
        raise CommandError(f"ERR {attr.decode().upper()} cannot contain spaces, newlines or special characters.")
    if attr == b"lib-name":
        session.lib_name = value
    elif attr == b"lib-ver":
        session.lib_ver = value
    else:
        raise CommandError(f"ERR Unrecognized option '{attr.decode('utf-8', 'replace')}'")
    return OK


def _client_line(session: "Session") -> str:
    return (
        f"id={session.client_id} addr={session.addr} name={session.name.decode()} db=0 "
        f"resp={session.proto} lib-name={session.lib_name.decode()} lib-ver={session.lib_ver.decode()}"
    )


def _select(session: "Session", argv: list[bytes]) -> Any:
    if parse_int(argv[1]) != 0:
        raise CommandError("ERR SELECT is not allowed in cluster mode")
    return OK


def _info_sections(argv: list[bytes]) -> list[str]:
    return [a.decode("utf-8", "replace").lower() for a in argv[1:]]


def _info(session: "Session", argv: list[bytes]) -> Any:
    return render_info(session, _info_sections(argv))


def _role(session: "Session", argv: list[bytes]) -> Any:
    """ROLE, from the same facts as INFO replication."""
    info = session.node.shell_info().get("replication", {})
    if info.get("role") == "slave":
        link = {"up": "connected", "down": "connect"}[info["master_link_status"]]
        if info.get("master_sync_in_progress"):
            link = "sync"
        return [b"slave", str(info["master_host"]).encode(), info["master_port"], link.encode(),
                info["slave_repl_offset"]]
    replicas = []
    for key, value in sorted(info.items()):
        if key.startswith("slave") and key[5:].isdigit():
            fields = dict(part.split("=", 1) for part in value.split(","))
            replicas.append([fields["ip"].encode(), fields["port"].encode(), fields["offset"].encode()])
    return [b"master", session.node.data.applied_offset, replicas]


def _wait(session: "Session", argv: list[bytes]) -> Action:
    replicas = parse_int(argv[1])
    timeout_ms = parse_int(argv[2])
    if timeout_ms < 0:
        raise CommandError("ERR timeout is negative")
    return Action("wait", replicas, timeout_ms)


def _shutdown(session: "Session", argv: list[bytes]) -> Action:
    for opt in argv[1:]:
        if opt.lower() not in (b"save", b"nosave", b"now", b"force", b"abort"):
            raise CommandError(errors.SYNTAX)
    if any(opt.lower() == b"abort" for opt in argv[1:]):
        raise CommandError("ERR No shutdown in progress.")
    # trionode always compacts at shutdown: NOSAVE cannot skip durability, it only skips the snapshot
    # in Redis, and here every acknowledged write is already in the WAL either way.
    return Action("shutdown")


def _quit(session: "Session", argv: list[bytes]) -> Action:
    return Action("quit")


def _flag(attr: str, value: bool) -> Handler:
    def handler(session: "Session", argv: list[bytes]) -> Any:
        setattr(session, attr, value)
        return OK

    return handler


def _command(session: "Session", argv: list[bytes]) -> Any:
    table = {spec.name: spec for spec in session.node.table.values()}
    sub = argv[1].lower() if len(argv) > 1 else b""
    if not sub:
        return command_docs.command_reply(table)
    if sub == b"count" and len(argv) == 2:
        return command_docs.command_count(table)
    if sub == b"list" and len(argv) == 2:
        return command_docs.command_list(table)
    if sub == b"info":
        return command_docs.command_info(table, argv[2:]) if len(argv) > 2 else command_docs.command_reply(table)
    if sub == b"docs":
        return command_docs.command_docs(table, argv[2:])
    if sub == b"getkeys":
        return command_docs.command_getkeys(table, argv[2:])
    if sub in (b"count", b"list"):
        raise CommandError(errors.wrong_arity(f"command|{sub.decode()}"))
    raise CommandError(errors.unknown_subcommand(argv[1].decode("utf-8", "replace"), "command"))


def _config(session: "Session", argv: list[bytes]) -> Any:
    sub = argv[1].lower()
    if sub == b"get" and len(argv) >= 3:
        # Clients (redis-benchmark among them) probe a few settings; answer for the
        # ones trionode has an honest value for and return nothing for the rest.
        known = {b"appendonly": b"yes", b"appendfsync": b"always", b"save": b"", b"cluster-enabled": b"yes"}
        out: list[bytes] = []
        for name in argv[2:]:
            if name.lower() in known:
                out += [name.lower(), known[name.lower()]]
        return out
    if sub == b"set":
        raise CommandError("ERR CONFIG SET is not supported; edit the configuration file and restart the node")
    raise CommandError(errors.unknown_subcommand(argv[1].decode("utf-8", "replace"), "config"))


HANDLERS: dict[str, Handler] = {
    "ping": _ping,
    "echo": _echo,
    "auth": _auth,
    "hello": _hello,
    "client": _client,
    "select": _select,
    "info": _info,
    "role": _role,
    "wait": _wait,
    "shutdown": _shutdown,
    "quit": _quit,
    "readonly": _flag("readonly", True),
    "readwrite": _flag("readonly", False),
    "asking": _flag("asking", True),
    "command": _command,
    "config": _config,
    "cluster": cluster_commands.run,
    "acl": acl_commands.run,
}

