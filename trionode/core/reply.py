"""Reply values, independent of the wire protocol version.

Command handlers return plain Python values and the RESP serializer picks the
RESP2 or RESP3 form for the connection:

    bytes          bulk string            None        null (RESP2: $-1)
    Simple (str)   +simple string         NULL_ARRAY  null array (RESP2: *-1)
    ErrorReply     -error                 int / bool  :integer
    float          RESP3 double, RESP2 bulk string
    list / tuple   array                  dict        RESP3 map, RESP2 flat array
    set/frozenset  RESP3 set, RESP2 array Verbatim    RESP3 =txt:, RESP2 bulk

Handlers report errors by raising ``CommandError``; ``ErrorReply`` exists for
errors that are values (inside an array, or built by the dispatcher).
"""


class Simple(str):
    """A RESP simple string (``+OK``). Must not contain CR or LF."""

    __slots__ = ()


class ErrorReply(str):
    """A RESP error (``-ERR ...``); the text includes its prefix."""

    __slots__ = ()


class Verbatim(str):
    """Text that RESP3 sends as a verbatim string (``=len\\r\\ntxt:...``), like INFO."""

    __slots__ = ()


class Action:
    """Not a reply but a request to the shell (SHUTDOWN, WAIT, QUIT), with its arguments."""

    __slots__ = ("args", "kind")

    def __init__(self, kind: str, *args: object) -> None:
        self.kind = kind
        self.args = args

    def __repr__(self) -> str:
        return f"Action({self.kind!r}, {self.args!r})"


class _NullArray:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL_ARRAY"


NULL_ARRAY = _NullArray()
OK = Simple("OK")
PONG = Simple("PONG")
QUEUED = Simple("QUEUED")
