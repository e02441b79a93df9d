"""Configuration: the documented file matches the code, and every mistake is named."""

import tomllib
from pathlib import Path

import pytest

from trionode import config

CONF_DIR = Path(__file__).parent.parent / "conf"


def test_single_toml_documents_every_key_with_its_default() -> None:
    documented = tomllib.loads((CONF_DIR / "single.toml").read_text())
    assert documented == {name: key.default for name, key in config.KEYS.items()}


def test_no_file_gives_the_embedded_default() -> None:
    cfg = config.load(None)
    assert (cfg.bind, cfg.port, cfg.effective_bus_port, cfg.data_dir) == ("127.0.0.1", 7000, 17000, "./trionode-data")


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('port = 7100\ndata_dir = "/var/lib/x"\n')
    cfg = config.load(path).with_overrides(port=7200, bind=None, data_dir=None, bus_port=None)
    assert (cfg.port, cfg.data_dir, cfg.effective_bus_port) == (7200, "/var/lib/x", 17200)


def test_the_announced_bus_port_defaults_to_the_bus_port(tmp_path: Path) -> None:
    assert config.load(None).effective_bus_announce_port == 17000
    path = tmp_path / "n.toml"
    path.write_text("port = 7100\nbus_port = 7200\nbus_announce_port = 7300\n")
    cfg = config.load(path)
    assert (cfg.effective_bus_port, cfg.effective_bus_announce_port) == (7200, 7300)


TLS_FILES = 'tls_cert_file = "c.pem"\ntls_key_file = "k.pem"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot = 7000\n", "unknown configuration key 'prot'"),
        ('port = "7000"\n', "configuration key 'port' in {path} must be int, got str"),
        ("port = true\n", "configuration key 'port' in {path} must be int, got bool"),
        ("port = 0\n", "configuration key 'port' in {path} must be between 1 and 65535, got 0"),
        ('log_level = "loud"\n', "configuration key 'log_level' in {path} must be one of"),
        ("port = 60000\n", "bus port 70000 (port + 10000) is out of range"),
        ("port = [\n", "is not valid TOML"),
        ("port = 7100\nbus_announce_port = 7100\n", "'port' and 'bus_announce_port' must differ"),
        ("bus_announce_port = 65536\n", "'bus_announce_port' in {path} must be between 0 and 65535"),
        ('requirepass = "two words"\n', "'requirepass' must be printable ASCII without spaces"),
        ('cluster_secret = "short"\n', "'cluster_secret' must be at least 32 printable ASCII characters"),
        ("wal_batch_bytes_max = 1048576\nwal_pending_bytes_max = 65536\n", "must not exceed"),
        ("tls_port = 7443\n", "'tls_port' needs 'tls_cert_file' and 'tls_key_file'"),
        ('tls_port = 7443\ntls_cert_file = "c.pem"\n', "'tls_port' needs 'tls_cert_file' and 'tls_key_file'"),
        (f"tls_port = 7443\n{TLS_FILES}", "'tls_auth_clients' is 'yes' but 'tls_ca_cert_file' is empty"),
        (f'tls_port = 7443\n{TLS_FILES}tls_auth_clients = "optional"\n', "'tls_ca_cert_file' is empty"),
        (f'tls_port = 7443\n{TLS_FILES}tls_auth_clients = "always"\n', "must be one of yes, optional, no"),
        (TLS_FILES, "'tls_cert_file' is set but 'tls_port' is 0 (TLS is off)"),
        ('tls_ca_cert_file = "ca.pem"\n', "'tls_ca_cert_file' is set but 'tls_port' is 0"),
        (f'port = 7100\ntls_port = 7100\n{TLS_FILES}tls_auth_clients = "no"\n', "'tls_port' must differ"),
        (f'port = 7100\ntls_port = 17100\n{TLS_FILES}tls_auth_clients = "no"\n', "'tls_port' must differ"),
        ("tls_port = 65536\n", "'tls_port' in {path} must be between 0 and 65535"),
        ("tls_handshake_timeout_ms = 10\n", "'tls_handshake_timeout_ms' in {path} must be between 100 and"),
    ],
)
def test_bad_files_are_refused_with_one_line_naming_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert message.format(path=path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match=r"cannot read configuration file .*nope\.toml"):
        config.load(tmp_path / "nope.toml")


def test_bad_flag_is_refused() -> None:
    with pytest.raises(config.ConfigError, match=r"'port' in command line must be between 1 and 65535"):
        config.load(None).with_overrides(port=70000)


def test_a_wildcard_bind_is_never_advertised(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('bind = "0.0.0.0"\n')
    cfg = config.load(path)
    assert cfg.effective_announce_ip == "127.0.0.1" and "announce_ip" in (cfg.announce_warning() or "")
    path.write_text('bind = "0.0.0.0"\nannounce_ip = "10.1.2.3"\nannounce_port = 6379\n')
    cfg = config.load(path)
    assert (cfg.effective_announce_ip, cfg.effective_announce_port, cfg.announce_warning()) == ("10.1.2.3", 6379, None)
    assert config.load(None).effective_announce_ip == "127.0.0.1" and config.load(None).effective_announce_port == 7000


def test_with_tls_on_the_tls_port_is_advertised_unless_announce_port_says_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text(f'port = 7100\ntls_port = 7443\n{TLS_FILES}tls_ca_cert_file = "ca.pem"\n')
    assert config.load(path).effective_announce_port == 7443
    path.write_text(f'port = 7100\ntls_port = 7443\nannounce_port = 6379\n{TLS_FILES}tls_auth_clients = "no"\n')
    assert config.load(path).effective_announce_port == 6379
