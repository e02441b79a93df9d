"""Node configuration: the TOML keys, their defaults, and their validation.

Every key an operator may set is declared once in ``KEYS`` with its type, range
and a one-line description; ``conf/single.toml`` documents the same keys and a
test keeps the two in step. Loading is strict: an unknown key, a wrong type or
a value out of range raises :class:`ConfigError` with one line naming the key,
because a typo in a datastore's configuration must never be silently ignored.
Command-line flags override the file.
"""

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from trionode import limits
from trionode.core.bus_auth import valid_secret

WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})
LOOPBACK = "127.0.0.1"


class ConfigError(Exception):
    """Bad configuration; the message is one line that names the problem."""


@dataclass(frozen=True, slots=True)
class Key:
    type: type
    default: Any
    doc: str
    min: int | None = None
    max: int | None = None
    choices: tuple[str, ...] = ()


KEYS: dict[str, Key] = {
    "bind": Key(str, "127.0.0.1", "address the client port and the cluster bus listen on"),
    "port": Key(int, 7000, "client (RESP) port", 1, 65535),
    "announce_ip": Key(
        str, "", "address other nodes and clients are told (CLUSTER SLOTS/NODES); empty: the bind address"
    ),
    "announce_port": Key(
        int, 0, "client port clients are told (CLUSTER SLOTS/NODES, MOVED); 0 means tls_port if set, else port",
        0, 65535,
    ),
    "bus_port": Key(int, 0, "cluster bus port; 0 means port + 10000", 0, 65535),
    "bus_announce_port": Key(
        int, 0, "bus port other nodes are told to dial (behind NAT or a proxy); 0 means the bus port", 0, 65535
    ),
    "tls_port": Key(int, 0, "client port speaking TLS (redis-cli --tls); 0: off", 0, 65535),
    "tls_cert_file": Key(str, "", "the node's TLS certificate (PEM, with any intermediates); needed by tls_port"),
    "tls_key_file": Key(str, "", "the private key of tls_cert_file (PEM, not encrypted)"),
    "tls_ca_cert_file": Key(str, "", "CA certificates (PEM) that client certificates must chain to"),
    "tls_auth_clients": Key(
        str, "yes", "ask TLS clients for a certificate: yes (required), optional (checked if sent), no",
        choices=("yes", "optional", "no"),
    ),
    "tls_handshake_timeout_ms": Key(
        int, 10_000, "a TLS client that has not finished its handshake this long after connecting is dropped",
        100, 600_000,
    ),
    "requirepass": Key(str, "", "password of the 'default' user (AUTH password); empty: no password"),
    "protected_mode": Key(
        bool, True, "bound to a non-loopback address with no password: serve loopback clients only"
    ),
    "cluster_secret": Key(
        str, "", "secret every bus connection proves; empty: made at bootstrap or given by CLUSTER MEET"
    ),
    "data_dir": Key(str, "./trionode-data", "data directory (WAL, snapshots, node id, lock)"),
    "bootstrap": Key(
        bool, True, "on first start, form a one-node cluster owning every slot; false: wait to be joined"
    ),
    "log_level": Key(str, "info", "log verbosity", choices=("debug", "info", "warning", "error")),
    "clients_max": Key(int, limits.clients_max, "client connections served at once", 1, 1_000_000),
    "resp_bulk_bytes_max": Key(
        int, limits.resp_bulk_bytes_max, "largest bulk string a client may send", 1024, limits.resp_bulk_bytes_max
    ),
    "resp_args_max": Key(int, limits.resp_args_max, "most arguments in one command", 16, limits.resp_args_max),
    "resp_inline_bytes_max": Key(
        int, limits.resp_inline_bytes_max, "longest inline command or header line", 256, 1024 * 1024
    ),
    "node_timeout_ms": Key(
        int, 5000, "a node silent this long is suspected; failed once a majority of voters suspect it", 500, 600_000
    ),
    "min_insync_replicas": Key(
        int, 1, "writes are refused (NOREPLICAS) while a shard's in-sync set is smaller than this", 1, 16
    ),
    "wal_batch_records_max": Key(
        int, limits.wal_batch_records_max, "records written and fsynced together, at most", 1, 1_000_000
    ),
    "wal_batch_bytes_max": Key(
        int, limits.wal_batch_bytes_max, "bytes written and fsynced together, at most", 4096, 1 << 30
    ),
    "wal_pending_bytes_max": Key(
        int, limits.wal_pending_bytes_max, "bytes queued for the WAL before writers wait", 4096, 1 << 32
    ),
    "compact_wal_bytes_min": Key(
        int, limits.compact_wal_bytes_min, "compact into a snapshot once the WAL holds this many bytes", 4096, 1 << 40
    ),
    "compact_wal_records_min": Key(
        int, limits.compact_wal_records_min, "...or once it holds this many records", 1, 1 << 40
    ),
    "compact_wal_percent": Key(
        int, limits.compact_wal_percent,
        "...and only once the WAL has grown by this percentage of the snapshot (bytes, and records per key; "
        "0: the two minimums alone decide)", 0, 10_000,
    ),
}


@dataclass(frozen=True, slots=True)
class Config:
    bind: str = KEYS["bind"].default
    port: int = KEYS["port"].default
    announce_ip: str = KEYS["announce_ip"].default
    announce_port: int = KEYS["announce_port"].default
    bus_port: int = KEYS["bus_port"].default
    bus_announce_port: int = KEYS["bus_announce_port"].default
    tls_port: int = KEYS["tls_port"].default
    tls_cert_file: str = KEYS["tls_cert_file"].default
    tls_key_file: str = KEYS["tls_key_file"].default
    tls_ca_cert_file: str = KEYS["tls_ca_cert_file"].default
    tls_auth_clients: str = KEYS["tls_auth_clients"].default
    tls_handshake_timeout_ms: int = KEYS["tls_handshake_timeout_ms"].default
    requirepass: str = KEYS["requirepass"].default
    protected_mode: bool = KEYS["protected_mode"].default
    cluster_secret: str = KEYS["cluster_secret"].default
    data_dir: str = KEYS["data_dir"].default
    bootstrap: bool = KEYS["bootstrap"].default
    log_level: str = KEYS["log_level"].default
    clients_max: int = KEYS["clients_max"].default
    resp_bulk_bytes_max: int = KEYS["resp_bulk_bytes_max"].default
    resp_args_max: int = KEYS["resp_args_max"].default
    resp_inline_bytes_max: int = KEYS["resp_inline_bytes_max"].default
    node_timeout_ms: int = KEYS["node_timeout_ms"].default
    min_insync_replicas: int = KEYS["min_insync_replicas"].default
    wal_batch_records_max: int = KEYS["wal_batch_records_max"].default
    wal_batch_bytes_max: int = KEYS["wal_batch_bytes_max"].default
    wal_pending_bytes_max: int = KEYS["wal_pending_bytes_max"].default
    compact_wal_bytes_min: int = KEYS["compact_wal_bytes_min"].default
    compact_wal_records_min: int = KEYS["compact_wal_records_min"].default
    compact_wal_percent: int = KEYS["compact_wal_percent"].default

    @property
    def effective_announce_ip(self) -> str:
        """The address this node advertises: never a wildcard, which no peer could dial.

        Bound to every interface with no ``announce_ip``, the node has no address
        it could honestly claim; it advertises loopback, which is right for a
        one-host cluster, and the node logs a warning at start (see ``announce_warning``).
        """
        if self.announce_ip:
            return self.announce_ip
        return LOOPBACK if self.bind in WILDCARD_ADDRESSES else self.bind

    @property
    def effective_announce_port(self) -> int:
        """The client port this node advertises: with TLS on, the TLS port (as Redis with ``tls-cluster yes``),
        so cluster clients that connect with TLS are sent where TLS is spoken."""
        return self.announce_port or self.tls_port or self.port

    def announce_warning(self) -> str | None:
        if self.bind in WILDCARD_ADDRESSES and not self.announce_ip:
            return (f"bound to {self.bind} without 'announce_ip': advertising {LOOPBACK}, which other hosts "
                    "cannot reach; set 'announce_ip'")
        return None

    @property
    def effective_bus_port(self) -> int:
        return self.bus_port or self.port + 10000

    @property
    def effective_bus_announce_port(self) -> int:
        """The bus port this node gives others (the cluster config, bus hellos, INFO); it listens on the other."""
        return self.bus_announce_port or self.effective_bus_port

    def with_overrides(self, **overrides: Any) -> "Config":
        """Apply command-line flags (None means "not given") after validating them."""
        given = {k: v for k, v in overrides.items() if v is not None}
        for name, value in given.items():
            _check(name, value, "command line")
        return _cross_check(replace(self, **given))


assert {f.name for f in fields(Config)} == set(KEYS), "Config fields and KEYS must match"


def _check(name: str, value: Any, where: str) -> None:
    key = KEYS.get(name)
    if key is None:
        raise ConfigError(f"unknown configuration key '{name}' in {where}")
    # bool is an int in Python, but `port = true` is a mistake, not 1.
    if not isinstance(value, key.type) or (isinstance(value, bool) and key.type is not bool):
        raise ConfigError(
            f"configuration key '{name}' in {where} must be {key.type.__name__}, got {type(value).__name__}"
        )
    if key.min is not None and not key.min <= value <= key.max:
        raise ConfigError(f"configuration key '{name}' in {where} must be between {key.min} and {key.max}, got {value}")
    if key.choices and value not in key.choices:
        choices = ", ".join(key.choices)
        raise ConfigError(f"configuration key '{name}' in {where} must be one of {choices}, got {value!r}")


def _cross_check(config: Config) -> Config:
    if config.cluster_secret and not valid_secret(config.cluster_secret):
        raise ConfigError("configuration key 'cluster_secret' must be at least 32 printable ASCII characters "
                          "without spaces")
    if not all(33 <= ord(c) <= 126 for c in config.requirepass):
        raise ConfigError("configuration key 'requirepass' must be printable ASCII without spaces")
    if config.wal_batch_bytes_max > config.wal_pending_bytes_max:
        raise ConfigError("configuration key 'wal_batch_bytes_max' must not exceed 'wal_pending_bytes_max'")
    if config.effective_bus_port > 65535:
        raise ConfigError(f"bus port {config.effective_bus_port} (port + 10000) is out of range; set 'bus_port'")
    if config.effective_bus_port == config.port:
        raise ConfigError("configuration keys 'port' and 'bus_port' must differ")
    if config.bus_announce_port == config.port:
        raise ConfigError("configuration keys 'port' and 'bus_announce_port' must differ")
    _cross_check_tls(config)
    return config


def _cross_check_tls(config: Config) -> None:
    files = ("tls_cert_file", "tls_key_file", "tls_ca_cert_file")
    if not config.tls_port:
        if given := [name for name in files if getattr(config, name)]:
            raise ConfigError(f"configuration key '{given[0]}' is set but 'tls_port' is 0 (TLS is off)")
        return
    if config.tls_port in (config.port, config.effective_bus_port):
        raise ConfigError("configuration key 'tls_port' must differ from 'port' and the bus port")
    if not (config.tls_cert_file and config.tls_key_file):
        raise ConfigError("configuration key 'tls_port' needs 'tls_cert_file' and 'tls_key_file'")
    if config.tls_auth_clients != "no" and not config.tls_ca_cert_file:
        raise ConfigError(f"configuration key 'tls_auth_clients' is {config.tls_auth_clients!r} but "
                          "'tls_ca_cert_file' is empty: set it, or tls_auth_clients = \"no\"")


def load(path: str | Path | None) -> Config:
    """The configuration from a TOML file, or the embedded default when ``path`` is None."""
    if path is None:
        return Config()
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read configuration file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"configuration file {path} is not valid TOML: {e}") from None
    for name, value in raw.items():
        _check(name, value, str(path))
    return _cross_check(Config(**raw))
