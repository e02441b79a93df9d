"""A minimal blocking RESP client for the command line (status, cluster tools).

The CLI talks to nodes with the same RESP code the server uses, so it needs no
third-party client. Error replies raise :class:`ReplyError`.

A node with ``requirepass`` needs a password: the CLI takes it from the
``TRIONODE_PASSWORD`` environment variable (as redis-cli takes REDISCLI_AUTH),
so it never shows in the process list. ``TRIONODE_USER`` names the ACL user it
is for (``AUTH user password``); without it, the password is the ``default`` user's.

With a TLS context (``trionode ... --tls``) every connection is TLS, the node's
certificate verified against the context's CAs and the address dialled. Nodes
advertise their TLS port once ``tls_port`` is set, so a command run without
``--tls`` may be sent to one: :func:`speaks_tls` tells it why that failed.
"""

import os
import socket
import ssl
from typing import Any

from trionode.core.reply import ErrorReply
from trionode.core.resp import NEED_DATA, ReplyParser

_READ_BYTES = 64 * 1024
PASSWORD_ENV = "TRIONODE_PASSWORD"
USER_ENV = "TRIONODE_USER"


class ReplyError(Exception):
    """The server answered with an error reply."""


class ClosedByServer(ConnectionError):
    """The node closed the connection before it answered."""


def parse_addr(addr: str, default_port: int = 7000) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad address {addr!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class Client:
    def __init__(self, host: str, port: int, timeout_s: float = 5.0, password: str | None = None,
                 tls: ssl.SSLContext | None = None) -> None:  # fmt: skip
        self.sock = _connect(host, port, timeout_s, tls)
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
                raise ClosedByServer("connection closed by the server")
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


def _connect(host: str, port: int, timeout_s: float, tls: ssl.SSLContext | None) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout_s)
    if tls is None:
        return sock
    try:
        return tls.wrap_socket(sock, server_hostname=host)  # the handshake, under the same timeout
    except ssl.SSLError as e:
        raise ConnectionError(f"TLS handshake failed: {_handshake_failure(e)}") from None
    finally:
        sock.close()  # wrap_socket took its descriptor if it succeeded; closing the husk is harmless


_NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def _handshake_failure(e: ssl.SSLError) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        hint = "" if e.verify_code in _NAME_MISMATCH else " (--cacert names the CA to trust)"
        return f"the node's certificate is not trusted: {e.verify_message}{hint}"
    if e.reason == "WRONG_VERSION_NUMBER":  # a plain RESP port answered
        return "the node does not speak TLS on this port (with --tls, give its tls_port)"
    return e.reason or str(e)


def speaks_tls(host: str, port: int, timeout_s: float = 5.0) -> bool:
    """Whether ``host:port`` answers a TLS handshake. Nothing is verified, nor sent after it: it only tells
    a TLS port from a plain one, to explain why plain RESP failed there."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock, probe.wrap_socket(sock):
            return True
    except ssl.SSLError as e:
        return "ALERT" in (e.reason or "")  # the node answered in TLS, if only to refuse this client
    except OSError:
        return False
