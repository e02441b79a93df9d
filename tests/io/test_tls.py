"""TLS for clients: bad files stop the node with one line; a handshake ends, one way or another, in time."""

import ssl
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from trionode.config import Config
from trionode.io import resp_server
from trionode.io.fatal import StartupError
from trionode.io.tls import handshake, server_context

pytestmark = pytest.mark.timeout(60)

CERTS = Path(__file__).parent.parent / "tls"
TLS = Config(tls_port=7443, tls_cert_file=str(CERTS / "server.crt"), tls_key_file=str(CERTS / "server.key"),
             tls_ca_cert_file=str(CERTS / "ca.crt"), tls_auth_clients="no")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tls_cert_file": "missing.crt"}, "cannot read tls_cert_file 'missing.crt': No such file"),
        ({"tls_ca_cert_file": "missing-ca.crt"}, "cannot read tls_ca_cert_file 'missing-ca.crt': No such file"),
        ({"tls_key_file": str(CERTS / "client.key")}, "the key does not match the certificate"),
        ({"tls_key_file": str(CERTS / "make-certs.sh")}, "with the key '"),  # no PEM key in it
        ({"tls_ca_cert_file": str(CERTS / "server.key")}, "cannot use the TLS CA certificates"),
        ({"tls_key_file": str(CERTS / "server-encrypted.key")}, "is encrypted: use an unencrypted key"),
    ],
)
def test_files_that_cannot_serve_tls_stop_the_start_with_one_line(change: dict, message: str) -> None:
    with pytest.raises(StartupError) as err:
        server_context(replace(TLS, **change))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_client_certificate_demand_follows_tls_auth_clients() -> None:
    modes = {auth: server_context(replace(TLS, tls_auth_clients=auth)).verify_mode
             for auth in ("yes", "optional", "no")}
    assert modes == {"yes": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "no": ssl.CERT_NONE}


async def _handshake_with(client_does, timeout_ms: int = 200) -> trio.SSLStream | None:
    """Run ``handshake`` on a real loopback connection whose client side does ``client_does(stream)``."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        client = await trio.open_tcp_stream("127.0.0.1", port)
        nursery.start_soon(client_does, client)
        server = await listeners[0].accept()
        result = await handshake(server, server_context(TLS), timeout_ms)
        nursery.cancel_scope.cancel()
    await client.aclose()
    await listeners[0].aclose()
    return result


async def test_a_tls_client_is_served_after_its_handshake() -> None:
    async def tls_client(stream: trio.SocketStream) -> None:
        context = ssl.create_default_context(cafile=str(CERTS / "ca.crt"))
        await trio.SSLStream(stream, context, server_hostname="127.0.0.1").do_handshake()
        await trio.sleep_forever()

    assert isinstance(await _handshake_with(tls_client), trio.SSLStream)


async def test_plain_resp_on_the_tls_port_is_closed() -> None:
    async def plain_client(stream: trio.SocketStream) -> None:
        await stream.send_all(b"*1\r\n$4\r\nPING\r\n")
        await trio.sleep_forever()

    with trio.fail_after(30):  # the failure, not the timeout, ends it
        assert await _handshake_with(plain_client, timeout_ms=600_000) is None


async def test_a_silent_client_is_closed_once_its_handshake_time_is_up() -> None:
    start = trio.current_time()
    with trio.fail_after(30):
        assert await _handshake_with(lambda stream: trio.sleep_forever(), timeout_ms=200) is None
    assert trio.current_time() - start >= 0.2


async def test_a_handshake_holds_a_client_slot_so_silent_tls_connections_are_bounded_by_clients_max() -> None:
    # Handshakes in progress counted toward nothing: anyone could hold a socket and an SSL object
    # per connection for tls_handshake_timeout_ms, as many as connected, until the node ran out of
    # file descriptors (its WAL and bus included). A connection past clients_max is closed at once.
    runtime = SimpleNamespace(config=replace(TLS, clients_max=1, tls_handshake_timeout_ms=600_000),
                              stats=SimpleNamespace(connected=0))
    context = server_context(TLS)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            silent = await trio.open_tcp_stream("127.0.0.1", port)
            nursery.start_soon(resp_server._handle_tls, runtime, context, await listeners[0].accept())
            while runtime.stats.connected != 1:  # the silent connection's handshake holds the one slot
                await trio.sleep(0.01)
            second = await trio.open_tcp_stream("127.0.0.1", port)
            nursery.start_soon(resp_server._handle_tls, runtime, context, await listeners[0].accept())
            assert await second.receive_some(100) == b""  # closed, not left waiting for a handshake
            nursery.cancel_scope.cancel()
    assert runtime.stats.connected == 0
    for stream in (silent, second, listeners[0]):
        await stream.aclose()
