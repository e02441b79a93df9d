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
SHUTTING_DOWN = "ERR the server is shutting down"
MAX_CLIENTS = "ERR max number of clients reached"


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
