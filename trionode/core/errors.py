"""Every error string trionode sends to a client, in one place.

The strings match Redis/Valkey byte for byte, because clients parse them
(redis-py maps prefixes like MOVED, ASK, WRONGTYPE and NOSCRIPT to exception
classes). Each constant is the reply without the leading ``-`` and trailing CRLF.
"""


class CommandError(Exception):
    """A command failed in a way the client should see as an error reply.

    ``str(err)`` is the full error line, prefix included (``"ERR syntax error"``).
    Raising it never changes the keyspace: handlers validate before they mutate.
    """


WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
OVERFLOW = "ERR increment or decrement would overflow"
HASH_NOT_INTEGER = "ERR hash value is not an integer"
NO_SUCH_KEY = "ERR no such key"
INDEX_OUT_OF_RANGE = "ERR index out of range"
NOT_POSITIVE = "ERR value is out of range, must be positive"
STRING_TOO_LONG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
INVALID_CURSOR = "ERR invalid cursor"
CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot"
NOPROTO = "NOPROTO unsupported protocol version"
BUSY_WAL = "BUSY the write-ahead log is full; retry shortly"
# Redis answers MISCONF when it cannot persist; here only a full disk does this (reads still work).
DISK_FULL = "MISCONF Errors writing to the WAL: No space left on device; writes are refused until space is freed"
SHUTTING_DOWN = "ERR the server is shutting down"
MAX_CLIENTS = "ERR max number of clients reached"
# The Raft leader was asked to remove itself: it handed leadership over first; the caller retries.
LEADERSHIP_MOVED = "TRYAGAIN leadership moved to another node before this change; retry"

# --- cluster routing: who may run a command here (core/routing.py, core/session.py) ---
CLUSTERDOWN_UNBOUND = "CLUSTERDOWN Hash slot not served"
CLUSTERDOWN_NOT_MEMBER = "CLUSTERDOWN The cluster is down"
NOREPLICAS = "NOREPLICAS Not enough good replicas to write."
LEASE_EXPIRED = "CLUSTERDOWN this primary's lease has expired; the slot may have a new primary"
# A keyless write on a replica: Valkey's line, byte for byte (redis-py raises ReadOnlyError).
READONLY_REPLICA = "READONLY You can't write against a read only replica."
# A keyless read on a replica that is loading, catching up or outside the ISR: Valkey's line
# for a replica that does not serve stale data.
MASTERDOWN = "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
# A keyless read on a replica over a connection that did not opt into (possibly stale)
# replica reads; a keyed one would be redirected to the primary, but there is no slot to name.
REPLICA_NEEDS_READONLY = "ERR this node is a replica: send READONLY first to read its data, or ask the primary"
NO_SHARD = "CLUSTERDOWN this node serves no shard"

# --- authentication ------------------------------------------------------------
NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
AUTH_NOT_CONFIGURED = (
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?"
)
DENIED = (
    "DENIED trionode is running in protected mode because protected mode is enabled and no password is "
    "set for the default user. In this mode connections are only accepted from the loopback interface. "
    "If you want to connect from external computers to trionode you may adopt one of the following "
    "solutions: 1) Set 'requirepass' (or give the default user a password with ACL SETUSER from the "
    "loopback interface). 2) Disable protected mode by setting 'protected_mode = false' in the "
    "configuration file and restarting the node, however MAKE SURE it is not publicly accessible from "
    "the internet if you do so. NOTE: You only need to do one of the above things in order for the "
    "node to start accepting connections from the outside."
)
BAD_CLUSTER_SECRET = "ERR a cluster secret is at least 32 printable ASCII characters without spaces"
SECRET_IN_CLUSTER = "ERR this node already belongs to a cluster, which has a different secret"
SECRET_CONFLICT = "ERR this node's configuration sets a different cluster_secret"
NO_CLUSTER_SECRET = "ERR this node has no cluster secret: it is not part of a cluster yet"
NOPERM_KEY = "NOPERM No permissions to access a key"
DEFAULT_USER_UNDELETABLE = "ERR The 'default' user cannot be removed"


def noperm_command(user: str, command: str) -> str:
    return f"NOPERM User {user} has no permissions to run the '{command}' command"


HELLO_NOAUTH = (
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
    "select the RESP protocol version at the same time"
)


def wrong_arity(name: str) -> str:
    return f"ERR wrong number of arguments for '{name}' command"


def invalid_expire(name: str) -> str:
    return f"ERR invalid expire time in '{name}' command"


def unknown_command(name: str, args: list[bytes]) -> str:
    shown = "".join(f"'{a[:128].decode('utf-8', 'replace')}' " for a in args[:8])
    return f"ERR unknown command '{name[:128]}', with args beginning with: {shown}"


def unknown_subcommand(sub: str, cmd: str) -> str:
    return f"ERR unknown subcommand '{sub[:128]}'. Try {cmd.upper()} HELP."


def protocol_error(detail: str) -> str:
    return f"ERR Protocol error: {detail}"


# --- RESP protocol errors (the connection is closed after sending one) ----------
PROTO_INVALID_MULTIBULK_LEN = "ERR Protocol error: invalid multibulk length"
PROTO_INVALID_BULK_LEN = "ERR Protocol error: invalid bulk length"
PROTO_BIG_INLINE = "ERR Protocol error: too big inline request"
PROTO_BIG_MBULK_COUNT = "ERR Protocol error: too big mbulk count string"
PROTO_BIG_BULK_COUNT = "ERR Protocol error: too big bulk count string"
PROTO_UNBALANCED_QUOTES = "ERR Protocol error: unbalanced quotes in request"
PROTO_UNAUTH_MULTIBULK_LEN = "ERR Protocol error: unauthenticated multibulk length"
PROTO_UNAUTH_BULK_LEN = "ERR Protocol error: unauthenticated bulk length"


def proto_expected_dollar(got: str) -> str:
    return f"ERR Protocol error: expected '$', got '{got}'"


# Client side (our ReplyParser): a server sent something that is not RESP.
PROTO_REPLY_BAD_LINE = "ERR Protocol error: invalid reply line"
PROTO_REPLY_BAD_LENGTH = "ERR Protocol error: invalid reply length"
PROTO_REPLY_TOO_BIG = "ERR Protocol error: too big reply line"
PROTO_REPLY_TOO_DEEP = "ERR Protocol error: reply nested too deeply"


def proto_reply_bad_type(got: str) -> str:
    return f"ERR Protocol error: invalid reply type '{got}'"


# --- keyspace commands (appended by the keyspace core) ---------------------------
DECR_OVERFLOW = "ERR decrement would overflow"
EXPIRE_NX_CONFLICT = "ERR NX and XX, GT or LT options at the same time are not compatible"
EXPIRE_GT_LT_CONFLICT = "ERR GT and LT options at the same time are not compatible"


def unsupported_option(option: str) -> str:
    return f"ERR Unsupported option {option}"


# COMMAND GETKEYS, in the order Valkey checks them.
GETKEYS_INVALID_COMMAND = "ERR Invalid command specified"
GETKEYS_NO_KEYS = "ERR The command has no key arguments"
GETKEYS_INVALID_ARGC = "ERR Invalid number of arguments specified for command"
GETKEYS_INVALID_ARGS = "ERR Invalid arguments specified for command"


# --- slot migration (Valkey 9's CLUSTER MIGRATESLOTS / CANCELSLOTMIGRATIONS strings) ----
MIGRATE_NOT_PRIMARY = "ERR Slot migration can only be used on primary nodes."
MIGRATE_NO_END_SLOT = "ERR No end slot for final slot range"
MIGRATE_NO_RANGES = "ERR No slot ranges specified"
MIGRATE_SPANS_SHARDS = "ERR Requested slots span multiple shards"
MIGRATE_NOT_SERVED_HERE = "ERR Slots are not served by this node."
MIGRATE_JOBS_OVERLAP = "ERR Slot ranges in migrations overlap"
MIGRATE_TARGET_IS_SELF = "ERR Target node can not be this node."
MIGRATE_TARGET_NOT_PRIMARY = "ERR Target node is not a primary"  # Valkey's target says it; we check up front
MIGRATE_NONE_ONGOING = "ERR No migrations ongoing"
INVALID_SLOT = "ERR Invalid or out of range slot"
FLUSHALL_MIGRATING = "ERR FLUSHALL is refused while a slot migration involves this shard; cancel it or wait"
PAUSED_TOO_LONG = "TRYAGAIN the slot is in a migration's handover for longer than expected; retry"
MIGRATE_TOO_MANY = "ERR Too many slot migrations in flight; wait for some to finish"  # trionode's bound


def migrate_start_after_end(start: int, end: int) -> str:
    return f"ERR Start slot number {start} is greater than end slot number {end}."


def migrate_slot_unserved(slot: int) -> str:
    return f"ERR Slot {slot} has no node served."


def migrate_ranges_overlap(start: int, end: int, prev_start: int, prev_end: int) -> str:
    return f"ERR Slot range {start}-{end} overlaps with previous range {prev_start}-{prev_end}."


def migrate_already_migrating(slot: int) -> str:
    return f"ERR I am already migrating slot {slot}."


def invalid_node_name(name: str) -> str:
    return f"ERR Invalid node name: {name[:128]}"


def unknown_node_name(name: str) -> str:
    return f"ERR Unknown node name: {name[:128]}"
