"""Who a client connection is, and whether it may run a command.

Theory of operation. A node holds one :class:`Users` table, built by the shell
from the configuration (``requirepass`` governs the ``default`` user) and,
once ACL users exist, from the cluster state. A session holds only the *name*
of the user it authenticated as (None until it has), and asks the table on
every command, so a change to a user reaches connections already open.

- A connection starts authenticated as ``default`` when that user needs no
  password (no ``requirepass``), as in Redis. Otherwise every command but the
  ones flagged ``no_auth`` (AUTH, HELLO, QUIT) gets NOAUTH until AUTH succeeds.
- Passwords are kept as SHA-256 digests, never in clear (see :func:`password_hash`).
  Checking compares digests in constant time.
- Protected mode (:func:`protected_refusal`): a node reachable from other hosts
  (bound to a non-loopback address) whose ``default`` user has no password
  serves loopback clients only, and tells the others why before closing.
- A user named ``default`` may appear in the ACL state too; the configuration's
  ``requirepass`` only shapes it until an ACL SETUSER default replaces it. That
  first change starts from the default user as ``requirepass`` made it, as in
  Valkey (``on``, the password, ``~*``, ``+@all``), never from an empty user
  (see :meth:`Users.setuser_base`).

Invariant: ``Users.unrestricted`` holds exactly the enabled users whose rules
allow every command on every key; the dispatcher skips the permission check
for them (the hot path), so it must never hold a user with any restriction.
"""

import ipaddress
from dataclasses import dataclass, field

from trionode.core import acl, errors
from trionode.core.acl import ALL_COMMANDS, ALL_KEYS, User, password_hash
from trionode.core.command_spec import CommandSpec
from trionode.core.errors import CommandError

DEFAULT_USER = "default"
NO_AUTH_FLAG = "no_auth"  # the Redis command flag: may run before authenticating


def default_user(requirepass: str) -> User:
    """The ``default`` user a node has before any ACL command: all commands, all keys."""
    passwords = frozenset({password_hash(requirepass.encode())}) if requirepass else frozenset()
    return User(DEFAULT_USER, enabled=True, nopass=not requirepass, passwords=passwords,
                key_patterns=(ALL_KEYS,), command_rules=(ALL_COMMANDS,))


@dataclass(frozen=True, slots=True)
class Users:
    """The users a node knows, by name (the shell rebuilds it when they change)."""

    by_name: dict[str, User]
    configured_default: User  # the ``default`` user requirepass makes, which the cluster state may replace
    # The configuration version that made each of the cluster state's users (0: one requirepass made).
    created: dict[str, int] = field(default_factory=dict)
    unrestricted: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        assert DEFAULT_USER in self.by_name, "the default user always exists"
        object.__setattr__(self, "unrestricted", frozenset(n for n, u in self.by_name.items() if u.unrestricted))

    @classmethod
    def build(cls, requirepass: str, acl_users: dict[str, tuple[str, ...]] | None = None,
              created: dict[str, int] | None = None) -> "Users":
        """The table from ``requirepass`` and the cluster state's users (name -> ``acl.describe`` rules,
        and name -> the version that made it; 0 if not given)."""
        users = {name: acl.apply_rules(acl.new_user(name), rules) for name, rules in (acl_users or {}).items()}
        assert (created or {}).keys() <= users.keys(), "creations of users that do not exist"
        configured = default_user(requirepass)
        return cls({DEFAULT_USER: configured, **users}, configured, dict(created or {}))

    def continues(self, before: "Users", name: str) -> bool:
        """Whether user ``name`` of table ``before`` is still one of these, not deleted and made anew since."""
        return name in self.by_name and self.created.get(name, 0) == before.created.get(name, 0)

    def setuser_base(self, name: str) -> list[str]:
        """The user an ACL SETUSER of ``name`` changes if the cluster state does not hold it yet, as rules.

        The state applies rules to the user it holds, or else to an empty one
        (off, no keys, no commands). The ``default`` user exists before the state
        holds it, shaped by requirepass; its first change must start from that
        (the state decides whether it is the first: ``acl_setuser_from``).
        Passwords travel as digests only.
        """
        return list(acl.describe(self.configured_default)) if name == DEFAULT_USER else []

    def initial_user(self) -> str | None:
        """Who a new connection is before AUTH: ``default`` if it needs no password, else nobody."""
        default = self.by_name[DEFAULT_USER]
        return DEFAULT_USER if default.enabled and default.nopass else None

    def authenticate(self, username: bytes, password: bytes) -> str:
        """The user ``username`` if ``password`` is theirs; else WRONGPASS (never says which part was wrong)."""
        user = self.by_name.get(username.decode("utf-8", "replace"))
        if user is None or not user.accepts(password):
            raise CommandError(errors.WRONGPASS)
        return user.name

    def refusal(self, username: str | None, spec: CommandSpec, argv: list[bytes]) -> str | None:
        """Why the connection authenticated as ``username`` may not run ``argv``; None if it may."""
        if username in self.unrestricted:
            return None
        if NO_AUTH_FLAG in spec.flags:
            return None
        user = self.by_name.get(username) if username is not None else None
        if user is None:
            return errors.NOAUTH  # never authenticated, or the user was deleted since
        return acl.refusal(user, spec, argv)


def auth_command(users: Users, argv: list[bytes]) -> str:
    """AUTH [username] password: the user it authenticates, or a CommandError."""
    if len(argv) == 2:
        if users.by_name[DEFAULT_USER].nopass:
            raise CommandError(errors.AUTH_NOT_CONFIGURED)
        return users.authenticate(DEFAULT_USER.encode(), argv[1])
    if len(argv) == 3:
        return users.authenticate(argv[1], argv[2])
    raise CommandError(errors.SYNTAX)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and their IPv4-mapped forms; False for anything unparsable."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def protected_refusal(users: Users, protected_mode: bool, bind: str, peer_host: str) -> str | None:
    """DENIED when protected mode shuts ``peer_host`` out; None when it may connect.

    It applies only while nothing else protects the node: bound to an address
    other hosts can reach, and the ``default`` user needs no password.
    """
    if not protected_mode or is_loopback(bind) or is_loopback(peer_host):
        return None
    default = users.by_name[DEFAULT_USER]
    return errors.DENIED if default.enabled and default.nopass else None
