"""The ACL command: WHOAMI, LIST, CAT answered here; SETUSER and DELUSER become Raft proposals.

Theory of operation. Users live in the cluster state (``acl_users``), so a
change goes through Raft like CLUSTER MEET: the session validates it against
the user as this node knows it, hashes any cleartext password
(``acl.hash_passwords``), and hands the shell an ``Action`` that submits
``acl_setuser``/``acl_deluser`` (forwarded to the leader) and replies once the
entry is applied here. A change of ``default`` carries the user requirepass
made (``acl_setuser_from``), which the state starts from if it holds no
``default`` yet. The state machine applies the same rules again, so two
concurrent SETUSERs compose in log order rather than overwrite each other.
"""

from typing import TYPE_CHECKING, Any

from trionode.core import acl, errors
from trionode.core.auth import DEFAULT_USER, Users
from trionode.core.cluster.commands import command
from trionode.core.errors import CommandError
from trionode.core.reply import Action

if TYPE_CHECKING:
    from trionode.core.session import Session

_ARITY = {b"whoami": 2, b"list": 2, b"cat": -2, b"setuser": -3, b"deluser": -3}


def run(session: "Session", argv: list[bytes]) -> Any:
    sub = argv[1].lower()
    arity = _ARITY.get(sub)
    if arity is None:
        raise CommandError(errors.unknown_subcommand(argv[1].decode("utf-8", "replace"), "acl"))
    if not (len(argv) == arity if arity > 0 else len(argv) >= -arity) or (sub == b"cat" and len(argv) > 3):
        raise CommandError(errors.wrong_arity(f"acl|{sub.decode()}"))
    users = session.node.users.by_name
    if sub == b"whoami":
        return (session.user or DEFAULT_USER).encode()
    if sub == b"list":
        return [" ".join(("user", name, *acl.describe(users[name]))).encode() for name in sorted(users)]
    if sub == b"cat":
        names = acl.commands_in(argv[2].decode("utf-8", "replace").lower()) if len(argv) == 3 else acl.CATEGORIES
        return [name.encode() for name in names]
    if sub == b"setuser":
        return _setuser(session.node.users, argv[2], argv[3:])
    if any(name == DEFAULT_USER.encode() for name in argv[2:]):
        raise CommandError(errors.DEFAULT_USER_UNDELETABLE)
    return Action("cluster", [b"acl-deluser", *argv[2:]])


def _setuser(users: Users, name_arg: bytes, rule_args: list[bytes]) -> Action:
    name = name_arg.decode("utf-8", "replace")
    if not acl.valid_user_name(name):
        raise CommandError("ERR Usernames can't contain spaces or null characters")
    rules = acl.hash_passwords(rule_args)
    # Refuses a bad rule before anything is proposed.
    acl.apply_rules(users.by_name.get(name) or acl.new_user(name), rules)
    base = users.setuser_base(name)  # the default user requirepass made, if the state holds none yet
    args = [b"acl-setuser", name.encode(), b"%d" % len(base), *(rule.encode() for rule in (*base, *rules))]
    return Action("cluster", args)


def setuser_command(args: list[bytes]) -> dict:
    """The cluster command for an ACL SETUSER action's arguments (``user n base... rules...``)."""
    user, base_rules = args[0].decode(), int(args[1])
    base, rules = [a.decode() for a in args[2 : 2 + base_rules]], [a.decode() for a in args[2 + base_rules :]]
    if base:
        return command("acl_setuser_from", user=user, base=base, rules=rules)
    return command("acl_setuser", user=user, rules=rules)
