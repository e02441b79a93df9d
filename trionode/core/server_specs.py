"""Command specs for the commands that do not touch the keyspace.

Theory of operation
-------------------
:data:`SERVER_COMMANDS` holds connection, server and cluster commands with the
arity, flags and key positions Valkey 8 reports for them (all keyless). The
handlers are left as ``None``: the server shell owns their behaviour, this module
only states the facts COMMAND, the dispatcher and arity checks need.

Container commands (CLIENT, CLUSTER, COMMAND, CONFIG) have subcommands, listed in
:data:`SUBCOMMANDS` under their full names (``"client|setname"``), because COMMAND
reports them and redis-py looks a subcommand's key positions up there. A
subcommand's arity counts the container name too, as Valkey's does. Only the
subcommands trionode implements are listed: COMMAND must not advertise more.
"""

from trionode.core.command_spec import CommandSpec

# Flag sets Valkey uses over and over, spelled as COMMAND spells them.
_CONN = ("noscript", "loading", "stale")
_STALE_LOADING = ("loading", "stale")
_CLUSTER_ADMIN = ("admin", "stale", "no_async_loading")


def _specs(*specs: CommandSpec) -> dict[str, CommandSpec]:
    table = {spec.name: spec for spec in specs}
    assert len(table) == len(specs), "duplicate command name"
    return table


SERVER_COMMANDS: dict[str, CommandSpec] = _specs(
    CommandSpec("ping", -1, ("fast",)),
    CommandSpec("echo", 2, ("loading", "stale", "fast")),
    CommandSpec("auth", -2, ("noscript", "loading", "stale", "fast", "no_auth", "allow_busy")),
    CommandSpec("hello", -1, ("noscript", "loading", "stale", "fast", "no_auth", "allow_busy")),
    CommandSpec("client", -2, ()),
    CommandSpec("command", -1, _STALE_LOADING),
    CommandSpec("info", -1, _STALE_LOADING),
    CommandSpec("role", 1, ("noscript", "loading", "stale", "fast")),
    CommandSpec("wait", 3, ("blocking",)),
    CommandSpec("shutdown", -1, ("admin", "noscript", "loading", "stale", "no_multi", "allow_busy")),
    CommandSpec("select", 2, ("loading", "stale", "fast")),
    CommandSpec("quit", -1, ("noscript", "loading", "stale", "fast", "no_auth", "allow_busy")),
    CommandSpec("cluster", -2, ()),
    CommandSpec("readonly", 1, ("loading", "stale", "fast")),
    CommandSpec("readwrite", 1, ("loading", "stale", "fast")),
    CommandSpec("asking", 1, ("fast",)),
    CommandSpec("config", -2, ()),
    CommandSpec("acl", -2, ()),
)

SUBCOMMANDS: dict[str, dict[str, CommandSpec]] = {
    "client": _specs(
        CommandSpec("client|setname", 3, _CONN),
        CommandSpec("client|getname", 2, _CONN),
        CommandSpec("client|id", 2, _CONN),
        CommandSpec("client|setinfo", 4, _CONN),
    ),
    "cluster": _specs(
        CommandSpec("cluster|slots", 2, _STALE_LOADING),
        CommandSpec("cluster|shards", 2, _STALE_LOADING),
        CommandSpec("cluster|nodes", 2, _STALE_LOADING),
        CommandSpec("cluster|info", 2, _STALE_LOADING),
        CommandSpec("cluster|myid", 2, _STALE_LOADING),
        CommandSpec("cluster|myshardid", 2, _STALE_LOADING),
        CommandSpec("cluster|keyslot", 3, ("stale",)),
        CommandSpec("cluster|countkeysinslot", 3, ("stale",)),
        CommandSpec("cluster|getkeysinslot", 4, ("stale",)),
        CommandSpec("cluster|meet", -4, _CLUSTER_ADMIN),
        CommandSpec("cluster|forget", 3, _CLUSTER_ADMIN),
        CommandSpec("cluster|addslots", -3, _CLUSTER_ADMIN),
        CommandSpec("cluster|addslotsrange", -4, _CLUSTER_ADMIN),
        CommandSpec("cluster|replicate", 3, _CLUSTER_ADMIN),
        CommandSpec("cluster|failover", -2, _CLUSTER_ADMIN),
        # Valkey 9 atomic slot migration: SLOTSRANGE start end [start end ...] NODE id.
        CommandSpec("cluster|migrateslots", -7, _CLUSTER_ADMIN),
        CommandSpec("cluster|getslotmigrations", 2, _STALE_LOADING),
        CommandSpec("cluster|cancelslotmigrations", 2, _CLUSTER_ADMIN),
    ),
    "command": _specs(
        CommandSpec("command|count", 2, _STALE_LOADING),
        CommandSpec("command|getkeys", -3, _STALE_LOADING),
        CommandSpec("command|info", -2, _STALE_LOADING),
        CommandSpec("command|list", -2, _STALE_LOADING),
        CommandSpec("command|docs", -2, _STALE_LOADING),
    ),
    "config": _specs(
        CommandSpec("config|get", -3, ("admin", "noscript", "loading", "stale")),
    ),
    "acl": _specs(
        CommandSpec("acl|whoami", 2, ("noscript", "loading", "stale")),
        CommandSpec("acl|list", 2, ("admin", "noscript", "loading", "stale")),
        CommandSpec("acl|cat", -2, ("noscript", "loading", "stale")),
        CommandSpec("acl|setuser", -3, ("admin", "noscript", "loading", "stale")),
        CommandSpec("acl|deluser", -3, ("admin", "noscript", "loading", "stale")),
    ),
}

assert set(SUBCOMMANDS) <= set(SERVER_COMMANDS), "subcommands of an unknown container"
assert all(spec.first_key == 0 for spec in SERVER_COMMANDS.values()), "server commands are keyless"
