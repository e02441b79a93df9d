"""What a connection that has not authenticated can make the node hold: a small request, as in Valkey."""

import pytest

from tests.io.test_resp_connection import _runtime, _Stream
from trionode.core import errors
from trionode.core.acl import hash_passwords
from trionode.core.auth import Users
from trionode.io import resp_server

pytestmark = pytest.mark.timeout(30)

BIG = b"x" * 20_000  # over the 16 KiB an unauthenticated bulk may be, far under the authenticated bound


def _bulks(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


async def _replies(*chunks: bytes) -> bytes:
    runtime = _runtime({"mono_ms": 0})
    runtime.node.users = Users.build("pw")
    stream = _Stream(b"")
    stream.inbox = list(chunks)
    await resp_server.Connection(runtime, stream, 1, "10.0.0.9:1").serve()  # type: ignore[arg-type]
    return bytes(stream.sent)


@pytest.mark.parametrize(("head", "error"), [
    (b"*1\r\n$20000\r\n", errors.PROTO_UNAUTH_BULK_LEN),
    (b"*11\r\n", errors.PROTO_UNAUTH_MULTIBULK_LEN),
])
async def test_before_auth_a_request_may_not_be_big(head: bytes, error: str) -> None:
    # Without these bounds anyone who could connect made the node buffer 512 MiB per connection
    # before saying a password (Valkey's fix of CVE-2021-32675). The connection is closed.
    assert await _replies(b"PING\r\n", head, b"x" * 1000) == f"-{errors.NOAUTH}\r\n-{error}\r\n".encode()


async def test_after_auth_the_configured_bounds_apply() -> None:
    sent = await _replies(_bulks(b"AUTH", b"pw") + _bulks(b"ECHO", BIG), _bulks(b"ECHO", *[b"a"] * 10))
    assert sent.startswith(b"+OK\r\n$20000\r\n" + BIG + b"\r\n"), sent[:80]
    assert sent.endswith(b"-ERR wrong number of arguments for 'echo' command\r\n")


async def test_a_connection_logged_out_by_deleting_its_user_is_held_to_the_small_bounds_again() -> None:
    # Deleting a user logs its connections out (NOAUTH until they authenticate again); such a
    # connection must not keep the authenticated bounds and buffer a big request without a password.
    runtime = _runtime({"mono_ms": 0})
    runtime.node.users = Users.build("pw", {"alice": tuple(hash_passwords([b"on", b">alice-pw", b"~*", b"+@all"]))})

    class Deleting(_Stream):
        async def receive_some(self, max_bytes: int) -> bytes:
            if len(self.inbox) == 1:  # alice logged in; the next read comes once she is deleted
                runtime.node.set_users(Users.build("pw"))
            return await super().receive_some(max_bytes)

    stream = Deleting(_bulks(b"AUTH", b"alice", b"alice-pw"))
    stream.inbox.append(_bulks(b"ECHO", BIG))
    await resp_server.Connection(runtime, stream, 1, "10.0.0.9:1").serve()  # type: ignore[arg-type]
    assert bytes(stream.sent) == f"+OK\r\n-{errors.PROTO_UNAUTH_BULK_LEN}\r\n".encode()
