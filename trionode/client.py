"""A minimal blocking RESP client for the command line (status, cluster tools).

The CLI talks to nodes with the same RESP code the server uses, so it needs no
third-party client. Error replies raise :class:`ReplyError`.

A node with ``requirepass`` needs a password: the CLI takes it from the
``TRIONODE_PASSWORD`` environment variable (as redis-cli takes REDISCLI_AUTH),
so it never shows in the process list. ``TRIONODE_USER`` names the ACL user it
is for (``AUTH user password``); without it, the password is the ``default`` user's.
"""

import os
import socket
from typing import Any

from trionode.core.reply import ErrorReply
from trionode.core.resp import NEED_DATA, ReplyParser

_READ_BYTES = 64 * 1024
PASSWORD_ENV = "TRIONODE_PASSWORD"
USER_ENV = "TRIONODE_USER"


class ReplyError(Exception):
    """The server answered with an error reply."""


def parse_addr(addr: str, default_port: int = 7000) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad address {addr!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class Client:
    def __init__(self, host: str, port: int, timeout_s: float = 5.0, password: str | None = None) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.parser = ReplyParser()
        password = os.environ.get(PASSWORD_ENV, "") if password is None else password
        user = os.environ.get(USER_ENV, "")
        if password:
            try:
                self.call("AUTH", *([user] if user else []), password)
            except BaseException:
                self.sock.close()
                raise

    def call(self, *args: str | bytes | int) -> Any:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        req = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(req)
        while True:
            reply = self.parser.next_reply()
            if reply is not NEED_DATA:
                break
            data = self.sock.recv(_READ_BYTES)
            if not data:
                raise ConnectionError("connection closed by the server")
            self.parser.feed(data)
        if isinstance(reply, ErrorReply):
            raise ReplyError(str(reply))
        return reply

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
