"""Client authentication as a connection sees it: requirepass, AUTH, HELLO AUTH, NOAUTH."""

import pytest

from tests.core.test_session import make_session
from trionode.core import errors, routing
from trionode.core.auth import Users, password_hash, protected_refusal
from trionode.core.reply import OK, ErrorReply
from trionode.core.session import Session


def session_with(requirepass: str) -> Session:
    session = make_session(routing.serve_everything("s1"))
    session.node.users = Users.build(requirepass)
    return Session(session.node, 2, "127.0.0.1:2")


def run(session: Session, *argv: str | bytes) -> object:
    return session.execute([a.encode() if isinstance(a, str) else a for a in argv])[0]


def test_without_requirepass_a_connection_starts_authenticated() -> None:
    session = session_with("")
    assert run(session, "SET", "k", "v") is not None and not isinstance(run(session, "GET", "k"), ErrorReply)
    assert run(session, "AUTH", "x") == ErrorReply(errors.AUTH_NOT_CONFIGURED)
    assert run(session, "AUTH", "default", "anything") == OK  # nopass takes any password


def test_until_auth_every_command_but_auth_hello_quit_gets_noauth() -> None:
    session = session_with("s3cret")
    for argv in (("GET", "k"), ("PING",), ("CLUSTER", "SLOTS"), ("CLIENT", "ID"), ("COMMAND",)):
        assert run(session, *argv) == ErrorReply(errors.NOAUTH), argv
    assert run(session, "HELLO", "3") == ErrorReply(errors.HELLO_NOAUTH)
    assert session.proto == 2  # a refused HELLO changes nothing
    assert run(session, "AUTH", "wrong") == ErrorReply(errors.WRONGPASS)
    assert run(session, "AUTH", "nobody", "s3cret") == ErrorReply(errors.WRONGPASS)
    assert run(session, "GET", "k") == ErrorReply(errors.NOAUTH)
    assert run(session, "AUTH", "s3cret") == OK == run(session, "AUTH", "default", "s3cret")
    assert run(session, "GET", "k") is None


def test_hello_auth_authenticates_and_switches_protocol() -> None:
    session = session_with("s3cret")
    assert run(session, "HELLO", "3", "AUTH", "default", "bad") == ErrorReply(errors.WRONGPASS)
    assert session.proto == 2 and session.user is None
    reply = run(session, "HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "app")
    assert isinstance(reply, dict) and reply["proto"] == 3
    assert (session.proto, session.name, session.user) == (3, b"app", "default")


def test_passwords_are_stored_as_digests() -> None:
    users = Users.build("s3cret")
    assert users.by_name["default"].passwords == {password_hash(b"s3cret")}
    assert "s3cret" not in repr(users)


@pytest.mark.parametrize("argv", [("AUTH", "a", "b", "c"), ("HELLO", "3", "AUTH", "default")])
def test_malformed_auth_is_a_syntax_error(argv: tuple[str, ...]) -> None:
    reply = run(session_with("s3cret"), *argv)
    assert isinstance(reply, ErrorReply) and reply.startswith("ERR")


@pytest.mark.parametrize(
    ("protected", "bind", "requirepass", "peer", "denied"),
    [
        (True, "0.0.0.0", "", "10.0.0.9", True),
        (True, "192.168.1.5", "", "::ffff:10.0.0.9", True),
        (True, "0.0.0.0", "", "127.0.0.1", False),
        (True, "::", "", "::1", False),
        (True, "::", "", "::ffff:127.0.0.1", False),
        (True, "0.0.0.0", "pw", "10.0.0.9", False),
        (True, "127.0.0.1", "", "10.0.0.9", False),
        (False, "0.0.0.0", "", "10.0.0.9", False),
    ],
)
def test_protected_mode_serves_only_loopback_while_nothing_else_protects_the_node(
    protected: bool, bind: str, requirepass: str, peer: str, denied: bool
) -> None:
    refusal = protected_refusal(Users.build(requirepass), protected, bind, peer)
    assert refusal == (errors.DENIED if denied else None)
