"""Digests of log entries, and a per-node mirror of a Raft log as chain hashes.

Theory of operation
-------------------
The checker never trusts a node's own account of its log. It keeps a mirror,
fed from what the node persisted (Ready entries and snapshots) and from what a
restart replayed from the simulated disk.

Each entry is reduced to a digest of (kind, data), computed over canonical CBOR
(never ``hash()``: that depends on ``PYTHONHASHSEED``). The mirror stores, for
every index, the entry's term and a *chain hash*: the hash of the previous
entry's chain hash, the term and the digest. Two logs with the same chain hash
at index i hold identical prefixes up to i; so log matching, leader
completeness and "committed prefix equal" are O(1) comparisons.

Invariant: ``chains[k]`` is the chain hash of index ``snap_index + 1 + k``;
``snap_chain`` is the chain hash at ``snap_index`` (0 for the empty prefix).
"""

import dataclasses
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cbor2
import xxhash


def _canonical(value: Any) -> Any:
    """A CBOR-encodable, order-independent stand-in for entry data."""
    if isinstance(value, enum.Enum):
        return _canonical(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def data_digest(kind: Any, data: Any) -> int:
    """A 64-bit digest of an entry's kind and data, stable across processes."""
    return xxhash.xxh3_64_intdigest(cbor2.dumps([_canonical(kind), _canonical(data)], canonical=True))


def chain_hash(prev_chain: int, term: int, digest: int) -> int:
    return xxhash.xxh3_64_intdigest(b"%d:%d:%d" % (prev_chain, term, digest))


@dataclass(frozen=True, slots=True)
class MirrorEntry:
    index: int
    term: int
    digest: int


@dataclass(slots=True)
class LogMirror:
    snap_index: int = 0
    snap_term: int = 0
    snap_chain: int = 0
    terms: list[int] = field(default_factory=list)
    chains: list[int] = field(default_factory=list)

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.terms)

    def term_at(self, index: int) -> int | None:
        if index == self.snap_index:
            return self.snap_term
        if self.snap_index < index <= self.last_index:
            return self.terms[index - self.snap_index - 1]
        return None

    def chain_at(self, index: int) -> int | None:
        """The chain hash at ``index``; None if compacted away or beyond the end."""
        if index == self.snap_index:
            return self.snap_chain
        if self.snap_index < index <= self.last_index:
            return self.chains[index - self.snap_index - 1]
        return None

    def covers(self, index: int, chain: int, chain_of_snapshot: Callable[[int], int | None]) -> bool:
        """Does this log (or its snapshot) hold the entry at ``index`` whose chain hash is ``chain``?"""
        if index <= self.snap_index:
            # Compacted: the snapshot's prefix must be the committed prefix at the snapshot point.
            return chain_of_snapshot(self.snap_index) in (None, self.snap_chain)
        return self.chain_at(index) == chain

    def append(self, entries: Sequence[MirrorEntry]) -> list[tuple[int, int, int]]:
        """Cut the log at ``entries[0].index`` and append; return the new (index, term, chain) triples."""
        if not entries:
            return []
        first = entries[0].index
        assert self.snap_index < first <= self.last_index + 1, (first, self.snap_index, self.last_index)
        del self.terms[first - self.snap_index - 1 :]
        del self.chains[first - self.snap_index - 1 :]
        prev = self.chain_at(first - 1)
        assert prev is not None
        out = []
        for expected, entry in enumerate(entries, start=first):
            assert entry.index == expected, (entry.index, expected)
            prev = chain_hash(prev, entry.term, entry.digest)
            self.terms.append(entry.term)
            self.chains.append(prev)
            out.append((entry.index, entry.term, prev))
        return out

    def reset(self, snap_index: int, snap_term: int, snap_chain: int) -> None:
        """Replace the whole log with a snapshot (an installed or restored snapshot)."""
        self.snap_index, self.snap_term, self.snap_chain = snap_index, snap_term, snap_chain
        self.terms.clear()
        self.chains.clear()

    def compact(self, index: int) -> None:
        """Drop entries up to ``index`` (they are in a snapshot now)."""
        if index <= self.snap_index:
            return
        chain, term = self.chain_at(index), self.term_at(index)
        assert chain is not None and term is not None, (index, self.snap_index, self.last_index)
        del self.terms[: index - self.snap_index]
        del self.chains[: index - self.snap_index]
        self.snap_index, self.snap_term, self.snap_chain = index, term, chain

    def copy(self) -> "LogMirror":
        return LogMirror(self.snap_index, self.snap_term, self.snap_chain, list(self.terms), list(self.chains))
