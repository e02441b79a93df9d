"""The INFO command's text, section by section, in Redis's ``key:value`` format.

Theory of operation. Each section is a function of the session's node that
returns ordered fields; sections only the shell can fill (persistence, stats,
clients) come from ``Node.shell_info()``. ``INFO`` with no argument means
"default", which like Redis is every section here; unknown section names are
ignored, as Redis does. Lines end with CRLF because clients split on it.
Only the keyspace section (key counts) describes data: a reply that holds it
waits for what was applied, like any read; the others answer at once
(:func:`describes_keyspace`).
"""

from typing import TYPE_CHECKING, Any

from trionode.core.reply import Verbatim

if TYPE_CHECKING:
    from trionode.core.session import Session

REDIS_COMPAT_VERSION = "7.2.4"  # the Redis version clients see; trionode's own is trionode_version
SECTIONS = ("server", "clients", "persistence", "stats", "replication", "cluster", "keyspace")


def render_info(session: "Session", wanted: list[str]) -> Verbatim:
    chosen = _chosen_sections(wanted)
    shell = session.node.shell_info()
    parts = []
    for name in SECTIONS:
        if name not in chosen:
            continue
        fields = {**(_BUILTIN[name](session) if name in _BUILTIN else {}), **shell.get(name, {})}
        lines = [f"# {name.capitalize()}"] + [f"{k}:{_text(v)}" for k, v in fields.items()]
        parts.append("\r\n".join(lines) + "\r\n")
    return Verbatim("\r\n".join(parts))


def describes_keyspace(wanted: list[str]) -> bool:
    """Whether INFO's reply for ``wanted`` holds the keyspace section, the only one that reveals data."""
    return "keyspace" in _chosen_sections(wanted)


def _chosen_sections(wanted: list[str]) -> set[str]:
    if not wanted or any(w in ("all", "default", "everything") for w in wanted):
        return set(SECTIONS)
    return set(wanted)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _server(session: "Session") -> dict[str, Any]:
    facts = session.node.facts
    uptime_s = max(0, (session.now_ms - facts.started_ms) // 1000)
    return {
        "redis_version": REDIS_COMPAT_VERSION,
        "trionode_version": facts.version,
        "server_name": "trionode",
        "redis_mode": "cluster",
        "process_id": facts.process_id,
        "run_id": facts.node_id,
        "tcp_port": facts.port,
        "uptime_in_seconds": uptime_s,
        "uptime_in_days": uptime_s // 86400,
        "config_file": facts.config_file,
    }


def _replication(session: "Session") -> dict[str, Any]:
    # The shell's replication section (role, replicas, offsets) is merged over these.
    return {"role": "master", "master_replid": session.node.facts.node_id}


def _cluster(session: "Session") -> dict[str, Any]:
    return {"cluster_enabled": 1}


def _keyspace(session: "Session") -> dict[str, Any]:
    ks = session.node.data.keyspace
    keys = ks.visible_count()
    if not keys:
        return {}
    return {"db0": f"keys={keys},expires={len(ks.expires)},avg_ttl=0"}


_BUILTIN = {"server": _server, "replication": _replication, "cluster": _cluster, "keyspace": _keyspace}
