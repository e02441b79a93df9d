"""The command line over TLS: `trionode cluster create --tls` and `add-node --tls` form a cluster of nodes
that require client certificates, reached only at their TLS ports; `cluster check --tls` and `status --tls`
follow the TLS addresses the cluster advertises; without --tls, a TLS cluster is named as such."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.process.harness import NodeProcess, free_port, run_cli, wait_for

CERTS = Path(__file__).parent.parent / "tls"  # made by tests/tls/make-certs.sh
TLS_OPTIONS = ["--tls", "--cacert", str(CERTS / "ca.crt"), "--cert", str(CERTS / "client.crt"),
               "--key", str(CERTS / "client.key")]  # fmt: skip
CLI_TIMEOUT_S = 120.0  # create waits up to 60 s for the cluster to settle; a loaded machine is slow


class TLSNode(NodeProcess):
    def __init__(self, data_dir: Path) -> None:
        port = free_port()
        while (tls_port := free_port()) in (port, port + 10000):  # free_port may hand out a port twice
            pass
        self.tls_port = tls_port
        conf = data_dir.parent / f"{data_dir.name}.toml"
        conf.write_text(f'bootstrap = false\ntls_port = {self.tls_port}\ntls_cert_file = "{CERTS / "server.crt"}"\n'
                        f'tls_key_file = "{CERTS / "server.key"}"\ntls_ca_cert_file = "{CERTS / "ca.crt"}"\n'
                        'tls_auth_clients = "yes"\n')  # fmt: skip
        super().__init__(data_dir, port, extra=["--conf", str(conf)])

    @property
    def tls_addr(self) -> str:
        return f"127.0.0.1:{self.tls_port}"


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory) -> Iterator[list[TLSNode]]:
    """Three TLS nodes made one cluster by `trionode cluster create --tls` given only their TLS ports, a
    fourth added by `add-node --tls` as the primary of a new shard, and `rebalance --tls` moving slots to it."""
    tmp = tmp_path_factory.mktemp("tls-cluster")
    nodes: list[TLSNode] = []
    try:
        for i in range(4):  # each started before the next picks its ports, which are then taken
            nodes.append(TLSNode(tmp / f"n{i}"))
            nodes[-1].start()
        out = run_cli("cluster", "create", *TLS_OPTIONS, *[n.tls_addr for n in nodes[:3]], "--yes",
                      timeout_s=CLI_TIMEOUT_S)  # fmt: skip
        assert out.returncode == 0, out.stderr + out.stdout
        assert "created: 3 shards, 3 nodes" in out.stdout
        out = run_cli("cluster", "add-node", *TLS_OPTIONS, nodes[3].tls_addr, nodes[0].tls_addr, "--primary",
                      timeout_s=CLI_TIMEOUT_S)  # fmt: skip
        assert out.returncode == 0, out.stderr + out.stdout
        wait_for(lambda: len(_status(nodes[0])["shards"]) == 4, "the new shard to be seen where rebalance asks")
        # Each migration is started on its source's primary, at the TLS address the cluster advertises.
        out = run_cli("cluster", "rebalance", *TLS_OPTIONS, nodes[0].tls_addr, timeout_s=CLI_TIMEOUT_S)
        assert out.returncode == 0, out.stderr + out.stdout
        assert "[3/3 migrations, 4096/4096 slots moved] the cluster is balanced" in out.stdout, out.stdout
        yield nodes
    finally:
        for node in nodes:
            node.kill9()


def _status(node: TLSNode) -> dict:
    """`trionode status --tls --json` at the node's TLS port."""
    out = run_cli("status", *TLS_OPTIONS, node.tls_addr, "--json", timeout_s=CLI_TIMEOUT_S)
    assert out.stdout, out.stderr
    return json.loads(out.stdout)


def _check(*args: str) -> tuple[int, str]:
    out = run_cli("cluster", "check", *args, timeout_s=CLI_TIMEOUT_S)
    return out.returncode, out.stdout + out.stderr


def _check_passes(*args: str) -> str:
    code, output = _check(*args)
    return output if code == 0 else ""


def test_cluster_check_with_tls_reaches_every_member_at_its_advertised_tls_port(tls_cluster) -> None:
    # Members settle after create (each applies the others' slots); the check is whole once they agree.
    output = wait_for(lambda: _check_passes(*TLS_OPTIONS, tls_cluster[0].tls_addr), "cluster check --tls to pass",
                      timeout_s=60)  # fmt: skip
    assert "4 nodes, 4 shards" in output and "[OK] the cluster is whole" in output, output


def test_status_with_tls_shows_the_cluster_and_the_tls_addresses(tls_cluster) -> None:
    report = _status(tls_cluster[1])
    assert sorted(n["addr"] for n in report["nodes"]) == sorted(n.tls_addr for n in tls_cluster)
    assert len(report["shards"]) == 4


def test_without_tls_the_check_says_the_members_speak_tls(tls_cluster) -> None:
    code, output = _check(f"127.0.0.1:{tls_cluster[0].port}")  # the plain port answers; the others advertise TLS
    assert code == 1
    for node in tls_cluster[1:]:
        assert (f"node at {node.tls_addr} is unreachable: connection closed by the server: it speaks TLS there "
                "(a node with tls_port advertises its TLS port); add --tls") in output, output  # fmt: skip


def test_tls_without_a_client_certificate_names_the_missing_certificate(tls_cluster) -> None:
    out = run_cli("status", "--tls", "--cacert", str(CERTS / "ca.crt"), tls_cluster[0].tls_addr)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.strip().endswith("(if it requires a client certificate: --cert and --key)"), out.stderr


@pytest.mark.parametrize(
    ("options", "addr_of", "message"),
    [
        (["--tls"], lambda n: n.tls_addr,  # the system's CAs do not hold the test CA
         "TLS handshake failed: the node's certificate is not trusted: self-signed certificate in certificate chain"),
        (TLS_OPTIONS, lambda n: f"127.0.0.1:{n.port}",
         "TLS handshake failed: the node does not speak TLS on this port (with --tls, give its tls_port)"),
    ],
)  # fmt: skip
def test_a_failed_handshake_says_why(tls_cluster, options: list[str], addr_of, message: str) -> None:
    out = run_cli("status", *options, addr_of(tls_cluster[0]))
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert message in out.stderr
