"""The command line's TLS options: a combination that cannot work, or a file that cannot be used, stops the
command with one line and exit 1 before it dials any node."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from trionode import cli

CERTS = Path(__file__).parent / "tls"
CA, CRT, KEY = str(CERTS / "ca.crt"), str(CERTS / "client.crt"), str(CERTS / "client.key")
UNREACHABLE = "127.0.0.1:1"  # never dialled: the options are refused first


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cacert", CA], "--cacert needs --tls"),
        (["--cert", CRT, "--key", KEY], "--cert and --key need --tls"),
        (["--tls", "--cert", CRT], "--cert and --key go together: give both, or neither"),
        (["--tls", "--key", KEY], "--cert and --key go together: give both, or neither"),
        (["--tls", "--cacert", "missing-ca.crt"], "cannot read --cacert 'missing-ca.crt': No such file or directory"),
        (["--tls", "--cacert", str(CERTS)], f"cannot read --cacert '{CERTS}': Is a directory"),
        (["--tls", "--cacert", KEY], "not PEM, or not what it should hold"),
        (["--tls", "--cert", CRT, "--key", str(CERTS / "server.key")], "the key does not match the certificate"),
        (["--tls", "--cert", CRT, "--key", str(CERTS / "server-encrypted.key")], "is encrypted: use an unencrypted"),
    ],
)
@pytest.mark.parametrize("command", [["status"], ["cluster", "check"], ["cluster", "create"]])
def test_bad_tls_options_stop_the_command_with_one_line(command: list[str], options: list[str], message: str) -> None:
    out = CliRunner().invoke(cli.main, [*command, *options, UNREACHABLE])
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), out.output
    assert out.stderr.startswith("trionode: error: ") and out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr and not out.stdout


def test_every_command_that_dials_nodes_takes_the_tls_options() -> None:
    dialling = [cli.status, *(command for name, command in cli.cluster.commands.items())]
    for command in dialling:
        assert {"tls", "cacert", "cert", "key"} <= {p.name for p in command.params}, command.name
