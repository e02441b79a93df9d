"""Cluster-bus authentication: both ends of a connection prove they hold the cluster secret.

Theory of operation. Every cluster has a secret, made when it is formed and
handed to each node that joins (see :func:`secret_refusal`). A bus connection
opens with three frames, before any other is read:

1. dialer -> acceptor: its hello (who it is, whom it dials, ``nonce`` Nd);
2. acceptor -> dialer: its hello, its ``nonce`` Na and ``proof`` = MAC("acceptor");
3. dialer -> acceptor: ``proof`` = MAC("dialer").

MAC(role) is HMAC-SHA256 under the secret over the role, both node ids and
both nonces. The secret never travels. Each side's proof covers a nonce the
other side just drew, so a recorded proof cannot be replayed; the role in the
MAC means an acceptor's proof is no use as a dialer's (no reflection), and the
node ids mean a proof for one identity cannot be used to claim another. Proofs
are compared in constant time.

What it does not do: authenticate the frames that follow. A process on the
path of an established connection could still inject into it; that needs TLS.
It does stop what was seen in practice: a local process that dials a node,
says hello under any node id and gets its frames accepted.

The shell draws the nonces (os.urandom) and moves the frames; this module only
computes and checks.
"""

import hashlib
import hmac
from typing import Any

from trionode.core import errors

NONCE_BYTES = 16
SECRET_CHARS_MIN = 32
_DOMAIN = b"trionode-bus-auth-v1"
DIALER, ACCEPTOR = b"dialer", b"acceptor"


def proof(secret: bytes, role: bytes, dialer_id: str, acceptor_id: str, dialer_nonce: bytes,
          acceptor_nonce: bytes) -> bytes:
    """MAC(role): the value a side sends to show it holds ``secret`` for this very handshake."""
    assert len(dialer_nonce) == NONCE_BYTES and len(acceptor_nonce) == NONCE_BYTES
    # Node ids are hex and the nonces fixed-length, so the NUL-joined message is unambiguous.
    message = b"\0".join([_DOMAIN, role, dialer_id.encode(), acceptor_id.encode(), dialer_nonce, acceptor_nonce])
    return hmac.new(secret, message, hashlib.sha256).digest()


def valid_nonce(value: Any) -> bool:
    return isinstance(value, bytes) and len(value) == NONCE_BYTES


def proof_ok(expected: bytes, frame: Any) -> bool:
    """True when ``frame`` is a map whose ``proof`` equals ``expected`` (compared in constant time)."""
    got = frame.get("proof") if isinstance(frame, dict) else None
    return isinstance(got, bytes) and hmac.compare_digest(expected, got)


def valid_secret(secret: str) -> bool:
    return len(secret) >= SECRET_CHARS_MIN and all(33 <= ord(c) <= 126 for c in secret)


def secret_refusal(in_a_cluster: bool, from_config: bool, current: str, offered: str) -> str | None:
    """Why a node must not take ``offered`` as its cluster secret (CLUSTER SETSECRET); None if it may.

    Being offered the secret it has is fine (a repeated MEET). Otherwise only a
    node that belongs to no cluster yet takes one: a member's secret is its
    cluster's, and replacing it would cut it off (or hand it to whoever asked).
    A secret fixed in the configuration (``from_config``) is never overridden.
    """
    if not valid_secret(offered):
        return errors.BAD_CLUSTER_SECRET
    if hmac.compare_digest(offered.encode(), current.encode()):
        return None
    if in_a_cluster:
        return errors.SECRET_IN_CLUSTER
    if from_config:
        return errors.SECRET_CONFLICT
    return None
