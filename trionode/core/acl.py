"""ACL users: their rules, as Valkey spells them, and what those rules allow.

Theory of operation. A :class:`User` is a plain frozen value: on/off, its
password digests (or ``nopass``), its key patterns and its command rules. It
is built by applying ``ACL SETUSER`` rules in order (:func:`apply_rules`) and
written back as the canonical rule list ACL LIST shows (:func:`describe`);
``apply_rules(new_user(name), describe(user)) == user``, which is how users
travel in the Raft state (``core/cluster/commands.py``: ``acl_setuser``).

Command rules are kept as an ordered list (``+@read``, ``-flushall``,
``+cluster|slots``) and the last rule that names a command, or a category it
belongs to, decides; no rule means denied. ``+@all``/``-@all`` override
everything before them, so they reset the list and it stays short.

Categories are those COMMAND reports (``command_docs.acl_categories``): the
``admin`` flag gives ``@admin`` and ``@dangerous``, so CLUSTER's changing
subcommands, SHUTDOWN, CONFIG and ACL (but WHOAMI) are outside ``@read`` and
``@write``, as is FLUSHALL's ``@dangerous``. A subcommand trionode has but
does not list in ``server_specs.SUBCOMMANDS`` (CLUSTER BOOTSTRAP, CONFIG SET)
counts as ``@admin @dangerous``: unknown means privileged.

Passwords enter the state only as SHA-256 digests: the shell turns ``>pw``
into ``#digest`` before proposing (:func:`hash_passwords`), and the state
machine refuses cleartext.
"""

import hashlib
import hmac
from dataclasses import dataclass, replace
from typing import Any

from trionode.core import errors
from trionode.core.command_docs import acl_categories
from trionode.core.command_spec import CommandSpec
from trionode.core.errors import CommandError
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.keyspace.pattern import glob_match
from trionode.core.server_specs import SERVER_COMMANDS, SUBCOMMANDS

ALL_COMMANDS = "+@all"
ALL_KEYS = b"*"
CATEGORIES = ("keyspace", "read", "write", "set", "list", "hash", "string", "admin", "fast", "slow", "blocking",
              "dangerous", "connection")  # fmt: skip
_PRIVILEGED = frozenset({"admin", "dangerous", "slow"})
_TABLE: dict[str, CommandSpec] = {**KEYSPACE_COMMANDS, **SERVER_COMMANDS}
_KNOWN_NAMES = frozenset(_TABLE) | frozenset(name for subs in SUBCOMMANDS.values() for name in subs)
rules_max = 256        # rules of each kind one user may hold: command rules, key patterns, passwords
user_name_bytes_max = 128


def password_hash(password: bytes) -> str:
    """The stored form of a password: its SHA-256 digest in hex, as Redis's ACL keeps it.

    Unsalted SHA-256 is what Redis uses and what ``ACL SETUSER #<hash>`` exchanges;
    a slow, salted hash would make every AUTH (redis-py authenticates each new
    connection) cost milliseconds of the single event loop. Passwords are meant to
    be long random tokens, for which a fast hash is not the weak point.
    """
    return hashlib.sha256(password).hexdigest()


@dataclass(frozen=True, slots=True)
class User:
    name: str
    enabled: bool = False
    nopass: bool = False
    passwords: frozenset[str] = frozenset()  # SHA-256 hex digests
    key_patterns: tuple[bytes, ...] = ()
    command_rules: tuple[str, ...] = ()  # "+@read", "-flushall", ... in order; the last match wins

    @property
    def unrestricted(self) -> bool:
        return self.enabled and ALL_KEYS in self.key_patterns and self.command_rules == (ALL_COMMANDS,)

    def accepts(self, password: bytes) -> bool:
        if not self.enabled:
            return False
        if self.nopass:
            return True
        digest = password_hash(password)
        # Every stored digest is compared, so the time taken does not tell which one matched.
        return any([hmac.compare_digest(digest, stored) for stored in self.passwords])


def new_user(name: str) -> User:
    """A user ACL SETUSER has just created: off, no password, no keys, no commands (as Valkey)."""
    return User(name)


# --- rules ----------------------------------------------------------------------


def _rule_error(rule: str, why: str = "Syntax error") -> CommandError:
    return CommandError(f"ERR Error in ACL SETUSER modifier '{rule[:128]}': {why}")


def _is_digest(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _command_rule(user: User, rule: str) -> User:
    target = rule[1:].lower()
    if target.startswith("@"):
        if target != "@all" and target[1:] not in CATEGORIES:
            raise _rule_error(rule, "Unknown command or category name in ACL")
    elif target not in _KNOWN_NAMES:
        raise _rule_error(rule, "Unknown command or category name in ACL")
    if target == "@all":  # overrides every earlier rule; "-@all" is the empty list (nothing allowed)
        return replace(user, command_rules=(ALL_COMMANDS,) if rule[0] == "+" else ())
    rules = tuple(r for r in user.command_rules if r[1:] != target)
    if len(rules) >= rules_max:
        raise _rule_error(rule, f"a user holds at most {rules_max} command rules")
    return replace(user, command_rules=(*rules, rule[0] + target))


def _password_rule(user: User, rule: str) -> User:
    op, value = rule[0], rule[1:]
    if op in "><":
        raise _rule_error(rule, "passwords must be hashed before they are stored")  # see hash_passwords
    if not _is_digest(value):
        raise _rule_error(rule, "The password hash must be exactly 64 characters and contain only lowercase "
                                "hexadecimal characters")  # fmt: skip
    if op == "#" and value not in user.passwords and len(user.passwords) >= rules_max:
        raise _rule_error(rule, f"a user holds at most {rules_max} passwords")
    passwords = user.passwords | {value} if op == "#" else user.passwords - {value}
    return replace(user, passwords=passwords, nopass=user.nopass and op != "#")


def _key_rule(user: User, rule: str) -> User:
    pattern = rule[1:].encode()
    if pattern in user.key_patterns:
        return user
    if len(user.key_patterns) >= rules_max:
        raise _rule_error(rule, f"a user holds at most {rules_max} key patterns")
    return replace(user, key_patterns=(*user.key_patterns, pattern))


_FLAGS = {
    "on": {"enabled": True},
    "off": {"enabled": False},
    "nopass": {"nopass": True, "passwords": frozenset()},
    "resetpass": {"nopass": False, "passwords": frozenset()},
    "allkeys": {"key_patterns": (ALL_KEYS,)},
    "resetkeys": {"key_patterns": ()},
    "allcommands": {"command_rules": (ALL_COMMANDS,)},
    "nocommands": {"command_rules": ()},
    "reset": {"enabled": False, "nopass": False, "passwords": frozenset(), "key_patterns": (), "command_rules": ()},
}


def apply_rule(user: User, rule: str) -> User:
    """``user`` after one ACL SETUSER rule (passwords already hashed); CommandError if it is not one."""
    flag = _FLAGS.get(rule.lower())
    if flag is not None:
        return replace(user, **flag)
    if rule[:1] in ("+", "-") and len(rule) > 1:
        return _command_rule(user, rule)
    if rule[:1] in ("#", "!", ">", "<"):
        return _password_rule(user, rule)
    if rule[:1] == "~" and len(rule) > 1:
        return _key_rule(user, rule)
    raise _rule_error(rule)


def apply_rules(user: User, rules: list[str] | tuple[str, ...]) -> User:
    for rule in rules:
        user = apply_rule(user, rule)
    return user


def hash_passwords(rules: list[bytes]) -> list[str]:
    """The rules as text, with ``>pw``/``<pw`` turned into ``#digest``/``!digest``: cleartext never leaves the node."""
    out = []
    for rule in rules:
        if rule[:1] in (b">", b"<"):
            out.append(("#" if rule[:1] == b">" else "!") + password_hash(rule[1:]))
        else:
            out.append(rule.decode("utf-8", "replace"))
    return out


def describe(user: User) -> tuple[str, ...]:
    """The canonical rules that rebuild ``user`` from :func:`new_user` (what ACL LIST shows)."""
    keys = ("allkeys",) if user.key_patterns == (ALL_KEYS,) else tuple("~" + p.decode() for p in user.key_patterns)
    return (
        "on" if user.enabled else "off",
        *(("nopass",) if user.nopass else ()),
        *sorted("#" + digest for digest in user.passwords),
        *(keys or ("resetkeys",)),
        *(user.command_rules or ("-@all",)),
    )


def valid_user_name(name: Any) -> bool:
    return (isinstance(name, str) and 0 < len(name.encode()) <= user_name_bytes_max
            and all(33 <= ord(c) <= 126 for c in name))  # fmt: skip


# --- permission -------------------------------------------------------------------


def _command_identity(spec: CommandSpec, argv: list[bytes]) -> tuple[str, str, frozenset[str]]:
    """The command's name, its full name (``cluster|slots`` for a subcommand) and its categories."""
    subs = SUBCOMMANDS.get(spec.name)
    if subs is None or len(argv) < 2:
        return spec.name, spec.name, acl_categories(spec)
    full = f"{spec.name}|{argv[1].decode('utf-8', 'replace').lower()}"
    sub = subs.get(full)
    return spec.name, full, acl_categories(sub) if sub is not None else _PRIVILEGED


def command_allowed(user: User, spec: CommandSpec, argv: list[bytes]) -> bool:
    name, full, categories = _command_identity(spec, argv)
    allowed = False
    for rule in user.command_rules:
        target = rule[1:]
        if target in (name, full, "@all") or (target[:1] == "@" and target[1:] in categories):
            allowed = rule[0] == "+"
    return allowed


def refusal(user: User, spec: CommandSpec, argv: list[bytes]) -> str | None:
    """NOPERM when ``user`` may not run ``argv`` (the command, or one of its keys); None when it may."""
    if not command_allowed(user, spec, argv):
        return errors.noperm_command(user.name, _command_identity(spec, argv)[1])
    patterns = user.key_patterns
    if ALL_KEYS not in patterns:
        for i in spec.key_positions(len(argv)):
            if not any(glob_match(p, argv[i]) for p in patterns):
                return errors.NOPERM_KEY
    return None


def commands_in(category: str) -> list[str]:
    """ACL CAT <category>: the commands (and listed subcommands) in it."""
    if category not in CATEGORIES:
        raise CommandError(f"ERR Unknown category '{category[:128]}'")
    specs = [*_TABLE.values(), *(spec for subs in SUBCOMMANDS.values() for spec in subs.values())]
    return sorted(spec.name for spec in specs if category in acl_categories(spec))
