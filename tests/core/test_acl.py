"""ACL users: rules in, permissions out; users travel through the Raft state with hashed passwords."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.test_auth import run
from tests.core.test_session import make_session
from trionode.core import acl, acl_commands, errors, routing
from trionode.core.auth import Users
from trionode.core.cluster.commands import apply, command
from trionode.core.cluster.snapshot import from_snapshot, to_snapshot
from trionode.core.cluster.state import ClusterState
from trionode.core.errors import CommandError
from trionode.core.reply import OK, Action, ErrorReply
from trionode.core.session import Session

CLUSTER_ID, NODE = "c" * 40, "a" * 40


def session_as(name: str, *rules: str, password: str = "pw") -> Session:
    base = make_session(routing.serve_everything("s1"))
    user = acl.apply_rules(acl.new_user(name), ["on", f"#{acl.password_hash(password.encode())}", *rules])
    base.node.users = Users.build("admin-pw", {name: acl.describe(user)})
    session = Session(base.node, 2, "127.0.0.1:2")
    assert run(session, "AUTH", name, password) == OK
    return session


def test_a_read_only_user_reads_its_keys_only() -> None:
    session = session_as("reader", "~cache:*", "+@read")
    assert run(session, "GET", "cache:1") is None
    assert run(session, "GET", "secret") == ErrorReply(errors.NOPERM_KEY)
    assert run(session, "SET", "cache:1", "v") == ErrorReply(errors.noperm_command("reader", "set"))
    assert run(session, "ACL", "WHOAMI") == ErrorReply(errors.noperm_command("reader", "acl|whoami"))


@pytest.mark.parametrize("argv", [
    ("CLUSTER", "MEET", "127.0.0.1", "7001"), ("CLUSTER", "BOOTSTRAP"), ("CLUSTER", "SETSECRET", "x" * 40),
    ("SHUTDOWN",), ("FLUSHALL",), ("ACL", "SETUSER", "x"), ("ACL", "LIST"), ("CONFIG", "GET", "save"),
    ("CONFIG", "SET", "a", "b"),
])
def test_admin_commands_are_outside_all_but_dangerous(argv: tuple[str, ...]) -> None:
    session = session_as("app", "allkeys", "+@all", "-@dangerous")
    reply = run(session, *argv)
    assert isinstance(reply, ErrorReply) and reply.startswith("NOPERM User app has no permissions"), reply


def test_a_non_admin_user_can_still_use_a_cluster_client() -> None:
    session = session_as("app", "allkeys", "+@all", "-@dangerous")
    for argv in (("CLUSTER", "MYID"), ("CLUSTER", "KEYSLOT", "k"), ("SET", "k", "v"), ("ACL", "WHOAMI"), ("PING",)):
        assert not isinstance(run(session, *argv), ErrorReply), argv
    users, spec = session.node.users, session.node.table[b"cluster"]
    for sub in (b"SLOTS", b"NODES", b"SHARDS", b"INFO"):
        assert users.refusal("app", spec, [b"CLUSTER", sub]) is None
    assert run(session, "ACL", "WHOAMI") == b"app"


def test_a_disabled_user_cannot_authenticate_and_a_rule_names_single_commands() -> None:
    session = session_as("ops", "allkeys", "+@all", "-flushall", "+cluster|slots")
    assert run(session, "FLUSHALL") == ErrorReply(errors.noperm_command("ops", "flushall"))
    users = Users.build("", {"off": ("off", f"#{acl.password_hash(b'pw')}", "allkeys", "+@all")})
    with pytest.raises(Exception, match="WRONGPASS"):
        users.authenticate(b"off", b"pw")


def test_setuser_hands_the_shell_hashed_passwords_only() -> None:
    session = session_as("root", "allkeys", "+@all")
    action = run(session, "ACL", "SETUSER", "bob", "on", ">hunter2", "~k*", "+get")
    assert isinstance(action, Action)
    assert b"hunter2" not in b"".join(action.args[0])
    assert action.args[0][:2] == [b"acl-setuser", b"bob"]
    assert f"#{acl.password_hash(b'hunter2')}".encode() in action.args[0]
    assert run(session, "ACL", "SETUSER", "bob", "+nosuchcommand").startswith("ERR Error in ACL SETUSER modifier")
    assert run(session, "ACL", "DELUSER", "default") == ErrorReply(errors.DEFAULT_USER_UNDELETABLE)


def _state() -> ClusterState:
    state = ClusterState()
    apply(state, 1, command("bootstrap", cluster_id=CLUSTER_ID, node_id=NODE, host="h", port=1, bus_port=2))
    return state


def test_users_are_applied_in_log_order_and_survive_a_snapshot() -> None:
    state = _state()
    digest = acl.password_hash(b"pw")
    assert apply(state, 2, command("acl_setuser", user="bob", rules=["on", f"#{digest}", "~a*"])).ok
    assert apply(state, 3, command("acl_setuser", user="bob", rules=["+@read"])).ok  # composes with the first
    assert state.acl_users["bob"] == ("on", f"#{digest}", "~a*", "+@read")
    assert not apply(state, 4, command("acl_setuser", user="eve", rules=[">cleartext"])).ok
    assert "eve" not in state.acl_users
    assert from_snapshot(to_snapshot(state)).acl_users == state.acl_users
    assert apply(state, 5, command("acl_deluser", user="bob")).ok and state.acl_users == {}


_RULES = st.sampled_from(["on", "off", "nopass", "resetpass", "allkeys", "resetkeys", "~a*", "~b?", "+@read",
                          "-@write", "+get", "-set", "+@all", "-@all", "+cluster|slots", "reset",
                          f"#{acl.password_hash(b'x')}", f"!{acl.password_hash(b'x')}"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_RULES, max_size=12))
def test_describe_rebuilds_the_same_user(rules: list[str]) -> None:
    user = acl.apply_rules(acl.new_user("u"), rules)
    assert acl.apply_rules(acl.new_user("u"), acl.describe(user)) == user


def _committed(state: ClusterState, action: Action) -> None:
    """Apply an ACL SETUSER the session handed the shell, as the shell submits it (io/cluster_admin.py)."""
    assert isinstance(action, Action) and action.args[0][0] == b"acl-setuser", action
    result = apply(state, state.applied_index + 1, acl_commands.setuser_command(action.args[0][1:]))
    assert result.ok, result


def test_changing_the_default_user_keeps_what_requirepass_gave_it() -> None:
    # Valkey's default user is "on ~* +@all" with requirepass as its password; ACL SETUSER changes
    # that user. Applied to a fresh one instead, ">new-pw" left default off and allowed nothing:
    # nobody could log in as default any more, with the old password or the new.
    state = _state()
    _committed(state, run(_default_session(Users.build("s3cret")), "ACL", "SETUSER", "default", ">new-pw"))
    users = Users.build("s3cret", state.acl_users)
    assert "default" in users.unrestricted
    assert users.authenticate(b"default", b"new-pw") == users.authenticate(b"default", b"s3cret") == "default"
    _committed(state, run(_default_session(users), "ACL", "SETUSER", "default", "<s3cret", "-flushall"))
    # A node that has not applied those changes yet proposes the next from its requirepass view:
    # the state's default is changed, not replaced, so the removed password stays removed.
    _committed(state, run(_default_session(Users.build("s3cret")), "ACL", "SETUSER", "default", "-keys"))
    default = Users.build("s3cret", state.acl_users).by_name["default"]
    assert default.enabled and default.passwords == {acl.password_hash(b"new-pw")}
    assert default.command_rules == ("+@all", "-flushall", "-keys")


def _default_session(users: Users) -> Session:
    session = Session(make_session(routing.serve_everything("s1")).node, 2, "127.0.0.1:2")
    session.node.users = users
    assert run(session, "AUTH", "s3cret") == OK
    return session


def test_a_deleted_users_connections_do_not_pass_to_a_new_user_of_that_name() -> None:
    session = session_as("bob", "~bob:*", "+get")
    node, admin = session.node, Users.build("admin-pw")
    node.set_users(admin)  # bob deleted
    assert run(session, "GET", "bob:1") == ErrorReply(errors.NOAUTH)
    new_bob = acl.apply_rules(acl.new_user("bob"), ["on", f"#{acl.password_hash(b'other')}", "allkeys", "+@all"])
    node.set_users(Users.build("admin-pw", {"bob": acl.describe(new_bob)}))
    assert run(session, "FLUSHALL") == ErrorReply(errors.NOAUTH)  # logged out, not the new bob
    assert run(session, "AUTH", "bob", "other") == OK and run(session, "ACL", "WHOAMI") == b"bob"


@pytest.mark.parametrize("rule", ["~k{}", "#{}"])
def test_a_user_holds_a_bounded_number_of_rules_of_every_kind(rule: str) -> None:
    # Only command rules were bounded: repeated SETUSERs grew a user's key patterns or passwords
    # without end, and every keyed command of that user matched its key against each pattern.
    def made(i: int) -> str:
        return rule.format(acl.password_hash(str(i).encode()) if rule[0] == "#" else i)
    rules = [made(i) for i in range(acl.rules_max + 1)]
    with pytest.raises(CommandError, match="at most"):
        acl.apply_rules(acl.new_user("u"), rules)


def test_a_user_deleted_and_made_again_before_the_node_looks_does_not_inherit_the_old_ones_connections() -> None:
    # A node rebuilds its user table once per batch of applied entries, or from a snapshot: it may
    # never see the table without bob between ACL DELUSER bob and a new ACL SETUSER bob. Comparing
    # names only, a connection that logged in as the old bob became the new one, with its rights.
    state, node = _state(), make_session(routing.serve_everything("s1")).node
    bob = ["on", f"#{acl.password_hash(b'pw')}", "~bob:*", "+get"]
    assert apply(state, 2, command("acl_setuser", user="bob", rules=bob)).ok
    node.set_users(Users.build("admin-pw", state.acl_users, state.acl_users_created))
    session, kept = Session(node, 2, "127.0.0.1:2"), Session(node, 3, "127.0.0.1:3")
    assert run(session, "AUTH", "bob", "pw") == OK and run(kept, "AUTH", "bob", "pw") == OK
    assert apply(state, 3, command("acl_setuser", user="bob", rules=["+set"])).ok  # changed, still the same bob
    node.set_users(Users.build("admin-pw", state.acl_users, state.acl_users_created))
    assert run(kept, "SET", "bob:1", "v") == OK
    assert apply(state, 4, command("acl_deluser", user="bob")).ok
    assert apply(state, 5, command("acl_setuser", user="bob", rules=["on", "nopass", "allkeys", "+@all"])).ok
    restored = from_snapshot(to_snapshot(state))  # as a node that installs a snapshot finds it
    assert restored.acl_users_created == state.acl_users_created
    node.set_users(Users.build("admin-pw", restored.acl_users, restored.acl_users_created))
    assert run(session, "FLUSHALL") == ErrorReply(errors.NOAUTH) == run(kept, "GET", "bob:1")
