"""TLS for client connections: the server context, the command line's context, and a handshake that
cannot hold a connection forever.

The node serves RESP over TLS on ``tls_port`` beside the plain port, with the
standard ``ssl`` module under ``trio.SSLStream``. The context is built once at
start, so a missing file, an unreadable key or a key that does not match the
certificate stops the node with one line (exit 1) instead of failing each client.

Each accepted connection finishes its handshake within ``tls_handshake_timeout_ms``
or is closed: a client that connects and says nothing, or speaks plain RESP to the
TLS port, costs one connection for a bounded time and never the listener.

The command line (``trionode status``, ``trionode cluster ...`` with ``--tls``) loads
its certificate, key and CA through the same checks, so a bad file is one line there too.
"""

import logging
import ssl

import trio

from trionode.config import Config
from trionode.io.fatal import StartupError

log = logging.getLogger("trionode.tls")

_VERIFY_MODES = {"yes": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "no": ssl.CERT_NONE}


def server_context(config: Config) -> ssl.SSLContext:
    """The context every TLS client connection uses; StartupError names what cannot be loaded."""
    assert config.tls_port and config.tls_cert_file and config.tls_key_file, "checked by config._cross_check"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # TLS 1.2 at least, no compression
    try:
        load_files(context, ("tls_cert_file", config.tls_cert_file), ("tls_key_file", config.tls_key_file),
                   ("tls_ca_cert_file", config.tls_ca_cert_file))  # fmt: skip
    except TLSFileError as e:
        raise StartupError(str(e)) from None
    context.verify_mode = _VERIFY_MODES[config.tls_auth_clients]
    return context


def client_context(cacert: str, cert: str, key: str) -> ssl.SSLContext:
    """A context for the command line's connections to nodes: the node's certificate must chain to
    ``cacert`` (the system's CAs without it) and name the address dialled (IP or DNS); ``cert`` and
    ``key``, if given, are presented to nodes that ask for a client certificate."""
    if bool(cert) != bool(key):
        raise TLSFileError("--cert and --key go together: give both, or neither")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
    load_files(context, ("--cert", cert), ("--key", key), ("--cacert", cacert))
    if not cacert:
        context.load_default_certs()
    return context


class TLSFileError(Exception):
    """A certificate, key or CA file cannot be used; the message is one line naming it."""


def load_files(context: ssl.SSLContext, cert: tuple[str, str], key: tuple[str, str], ca: tuple[str, str]) -> None:
    """Load the certificate and key (if given) and the CA certificates (if given) into ``context``;
    each is (how it was named to the user, its path). TLSFileError names what cannot be loaded."""
    for name, path in (cert, key, ca):
        _check_readable(name, path)
    if cert[1]:
        try:
            context.load_cert_chain(cert[1], key[1], password=_no_pass_phrase)
        except _KeyEncrypted:
            raise TLSFileError(f"the TLS key '{key[1]}' is encrypted: use an unencrypted key (PEM), readable "
                               "only by its user") from None  # fmt: skip
        except OSError as e:  # ssl.SSLError is one
            raise TLSFileError(f"cannot use the TLS certificate '{cert[1]}' with the key '{key[1]}': "
                               f"{_reason(e)}") from None  # fmt: skip
    if ca[1]:
        try:
            context.load_verify_locations(cafile=ca[1])
        except OSError as e:
            raise TLSFileError(f"cannot use the TLS CA certificates '{ca[1]}': {_reason(e)}") from None


class _KeyEncrypted(Exception):
    pass


def _no_pass_phrase() -> bytes:
    """Asked for when the key is encrypted: refuse, where OpenSSL would prompt on the terminal and hang."""
    raise _KeyEncrypted


def _check_readable(name: str, path: str) -> None:
    """ssl names no file when one is missing; this names it, and the key that gave it."""
    if not path:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise TLSFileError(f"cannot read {name} '{path}': {e.strerror or e}") from None


def _reason(e: OSError) -> str:
    """Why a certificate or key did not load; anything but an SSLError must still stop the start as exit 1
    (fatal.py reads a bare OSError as a storage failure)."""
    if not isinstance(e, ssl.SSLError):
        return e.strerror or str(e)
    if e.reason == "KEY_VALUES_MISMATCH":
        return "the key does not match the certificate"
    if e.reason in (None, "PEM lib", "NO_CERTIFICATE_OR_CRL_FOUND"):
        return f"not PEM, or not what it should hold ({e.reason or e})"
    return e.reason


async def handshake(stream: trio.SocketStream, context: ssl.SSLContext, timeout_ms: int) -> trio.SSLStream | None:
    """``stream`` wrapped in TLS once the client finished its handshake; None (the stream closed) if it
    failed or took longer than ``timeout_ms``."""
    tls = trio.SSLStream(stream, context, server_side=True)
    with trio.move_on_after(timeout_ms / 1000) as waited:
        try:
            await tls.do_handshake()
            return tls
        except trio.BrokenResourceError as e:  # plain text, a certificate refused, or the client left
            log.debug("TLS handshake with %s failed: %s", _peer(stream), e.__cause__ or e)
    if waited.cancelled_caught:
        log.debug("TLS client %s did not finish its handshake in %d ms; closing it", _peer(stream), timeout_ms)
    await trio.aclose_forcefully(stream)
    return None


def socket_of(stream: trio.SocketStream | trio.SSLStream) -> trio.socket.SocketType:
    """The TCP socket under a client connection, with or without TLS."""
    return stream.transport_stream.socket if isinstance(stream, trio.SSLStream) else stream.socket


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "a client"
    return f"{host}:{port}"
