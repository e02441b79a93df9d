"""The keyspace: values, deadlines, a per-slot key index, and the effects log.

Theory of operation
-------------------
``Keyspace`` is a plain synchronous object that command handlers mutate. It
holds four structures that move together:

* ``data``: key -> value. A value is ``bytes`` (string), ``deque`` (list),
  ``dict`` (hash) or ``set`` (set). Invariant: no aggregate is ever empty;
  a handler that empties one deletes the key, as Redis does.
* ``expires``: key -> absolute deadline in unix ms. Invariant: every key in
  ``expires`` is in ``data``. A key is expired once ``now_ms > deadline``.
* ``slot_keys``: one insertion-ordered dict per cluster slot, holding exactly
  the keys of ``data`` in that slot. Only inserts and deletes touch it, so
  overwriting an existing key costs nothing here.
* ``_ttl_keys`` / ``_ttl_pos``: the keys of ``expires`` as a list plus each
  key's index, so active expiry can pick a uniform random sample in O(1)
  per pick and drop a key by swap-remove.

Hidden slots. ``hidden`` holds the slots whose keys this node keeps but does
not serve (``core/migration/staging.py``'s SlotRoles: keys staged for an
import, or leftovers of a finished or aborted migration). The shell sets it
from the applied configuration. Their keys are left out of DBSIZE, KEYS,
SCAN and the slot queries, and active expiry never deletes them: a staged
key's expiry arrives from the source as a DEL. Keyed commands never reach
them, since routing sends their clients elsewhere.

Big values that leave the keyspace (DEL, UNLINK, overwrite, expiry, FLUSHALL)
go to ``garbage`` instead of being freed in the command: the shell frees them
in bounded steps between commands (``lazyfree.py``).

Time and replay. The caller sets ``now_ms`` before each command. ``None``
means replay (WAL recovery or a replica applying its primary's stream): no
expiry decision is made at all and relative times are a programmer error.
Only a primary expires keys; it writes each expiry into the effects as an
explicit ``DEL``, so replicas never expire on their own (DESIGN 5.1). A
replica serving reads sets ``now_ms`` and ``expire_deletes = False``: expired
keys then read as absent but stay until the primary's DEL arrives. The caller
sets ``expire_deletes`` from the node's role before every command
(``DataState.execute``), never leaving it to a default.

Effects. Every mutation appends to ``effects`` a canonical write command that
reproduces it exactly when re-executed with ``now_ms = None``: relative
deadlines become absolute, non-deterministic results become plain SETs, and
commands that change nothing append nothing. The caller drains ``effects``
after every command, failed ones included (a lazy-expiry DEL may precede the
error), and writes them to the WAL. Offsets, fsync and replication are the
caller's business, as is checking arity and cluster routing.
"""

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from trionode import limits
from trionode.core.errors import WRONGTYPE, CommandError
from trionode.core.keyspace.lazyfree import Garbage
from trionode.core.slots import key_slot

Value = bytes | deque | dict | set
Effect = list[bytes]

# What TYPE replies and what snapshot chunks carry, per Python container type.
TYPE_NAMES: dict[type, str] = {bytes: "string", deque: "list", dict: "hash", set: "set"}


class RandomSource(Protocol):
    """The one method active expiry needs from a seeded ``random.Random``."""

    def randrange(self, stop: int) -> int: ...


class Keyspace:
    __slots__ = (
        "_ttl_keys",
        "_ttl_pos",
        "data",
        "effects",
        "expire_deletes",
        "expires",
        "garbage",
        "hidden",
        "now_ms",
        "slot_keys",
    )

    def __init__(self) -> None:
        self.data: dict[bytes, Value] = {}
        self.expires: dict[bytes, int] = {}
        self.slot_keys: list[dict[bytes, None]] = [{} for _ in range(limits.slots_count)]
        self.now_ms: int | None = None
        self.expire_deletes: bool = True
        self.hidden: frozenset[int] = frozenset()  # slots whose keys are kept but not served (see above)
        self.effects: list[Effect] = []
        # Invariant: _ttl_keys[_ttl_pos[k]] == k, and set(_ttl_keys) == set(expires).
        self._ttl_keys: list[bytes] = []
        self._ttl_pos: dict[bytes, int] = {}
        self.garbage = Garbage()  # big values dropped but not yet freed (lazyfree.py)

    def __len__(self) -> int:
        return len(self.data)

    def visible_count(self) -> int:
        """DBSIZE: the keys of served slots only."""
        hidden = sum(len(self.slot_keys[slot]) for slot in self.hidden)
        assert 0 <= hidden <= len(self.data)
        return len(self.data) - hidden

    def visible_keys(self) -> Iterable[bytes]:
        """Every key of a served slot (KEYS): in insertion order unless some slot is hidden."""
        if not self.hidden:
            return self.data
        hidden, slot_keys = self.hidden, self.slot_keys
        return (key for slot in range(limits.slots_count) if slot not in hidden for key in slot_keys[slot])

    # --- lookups -------------------------------------------------------------

    def lookup(self, key: bytes) -> Value | None:
        """The live value of ``key``, expiring it lazily if its deadline passed."""
        value = self.data.get(key)
        if value is not None and key in self.expires and self.expire_if_due(key):
            return None
        return value

    def lookup_typed(self, key: bytes, kind: type) -> Any:
        """Like :meth:`lookup`, but a value of another type is WRONGTYPE."""
        value = self.lookup(key)
        if value is not None and value.__class__ is not kind:
            raise CommandError(WRONGTYPE)
        return value

    def is_live(self, key: bytes) -> bool:
        """Present and not past its deadline; never mutates (KEYS, SCAN, DEL)."""
        if key not in self.data:
            return False
        deadline = self.expires.get(key)
        return deadline is None or self.now_ms is None or deadline >= self.now_ms

    def expire_if_due(self, key: bytes) -> bool:
        """True if ``key`` (which has a deadline) is logically expired.

        On a primary the key is deleted and a ``DEL`` effect written; in replay
        nothing is ever due; in a replica read view nothing is deleted.
        """
        now = self.now_ms
        if now is None or self.expires[key] >= now:
            return False
        if self.expire_deletes:
            self.delete(key)
            self.effects.append([b"DEL", key])
        return True

    def clock(self) -> int:
        """``now_ms`` for commands that need it; replay never runs them."""
        now = self.now_ms
        assert now is not None, "a relative-time command reached the keyspace in replay mode"
        return now

    # --- mutations (no effects: handlers write those) -------------------------

    def add(self, key: bytes, value: Value) -> None:
        """Insert a key that is not present."""
        assert key not in self.data, key
        self.data[key] = value
        self.slot_keys[key_slot(key)][key] = None

    def put_string(self, key: bytes, value: bytes, keep_ttl: bool = False) -> None:
        """SET's store step: overwrite or insert, dropping the deadline unless kept."""
        data = self.data
        if key in data:
            self.garbage.discard(data[key])
            data[key] = value
            if not keep_ttl and key in self.expires:
                self.persist(key)
        else:
            self.add(key, value)

    def delete(self, key: bytes) -> bool:
        """Remove ``key`` with its deadline and index entry; False if absent."""
        value = self.data.pop(key, None)
        if value is None:
            return False
        del self.slot_keys[key_slot(key)][key]
        if key in self.expires:
            self.persist(key)
        self.garbage.discard(value)
        return True

    def shrank(self, key: bytes, container: Value, effect: list[bytes] | None) -> None:
        """Members left the aggregate at ``key``: drop it if empty (Redis keeps no empty
        aggregate, and replay must agree), then log ``effect`` if anything changed."""
        if not container:
            self.delete(key)
        if effect is not None:
            self.effects.append(effect)

    def set_deadline(self, key: bytes, at_ms: int) -> None:
        """Give a present key an absolute deadline."""
        assert key in self.data, key
        if key not in self.expires:
            self._ttl_pos[key] = len(self._ttl_keys)
            self._ttl_keys.append(key)
        self.expires[key] = at_ms

    def persist(self, key: bytes) -> bool:
        """Drop the deadline of ``key``; False if it had none."""
        if self.expires.pop(key, None) is None:
            return False
        # Swap-remove keeps the sampling list dense without shifting.
        pos = self._ttl_pos.pop(key)
        last = self._ttl_keys.pop()
        if last != key:
            self._ttl_keys[pos] = last
            self._ttl_pos[last] = pos
        return True

    def flush(self) -> None:
        """Empty the keyspace at once; its memory is freed later, in steps."""
        self.garbage.discard_dict(self.data)
        self.garbage.discard_dict(self.expires)
        self.garbage.discard_dict(self._ttl_pos)
        self.data, self.expires, self._ttl_pos, self._ttl_keys = {}, {}, {}, []
        slot_keys = self.slot_keys
        for slot, keys in enumerate(slot_keys):
            if keys:
                self.garbage.discard_dict(keys)
                slot_keys[slot] = {}

    # --- active expiry ----------------------------------------------------------

    def active_expire(self, now_ms: int, rng: RandomSource, sample_keys: int, rounds_max: int) -> int:
        """Redis's active expiry cycle; returns how many keys it deleted.

        Each round samples ``sample_keys`` keys with deadlines (with
        replacement) and deletes the expired ones; another round follows only
        while more than a quarter of a sample was expired. One ``DEL`` effect
        carries every key deleted.
        """
        assert self.expire_deletes, "only a primary expires keys"
        assert sample_keys >= 1 and rounds_max >= 1
        expired: list[bytes] = []
        for _ in range(rounds_max):
            picks = min(sample_keys, len(self._ttl_keys))
            hits = 0
            for _ in range(picks):
                if not self._ttl_keys:
                    break
                key = self._ttl_keys[rng.randrange(len(self._ttl_keys))]
                if self.expires[key] < now_ms and not (self.hidden and key_slot(key) in self.hidden):
                    self.delete(key)
                    expired.append(key)
                    hits += 1
            if picks == 0 or hits * 4 <= picks:
                break
        if expired:
            self.effects.append([b"DEL", *expired])
        return len(expired)

    # --- slots --------------------------------------------------------------------

    def count_in_slot(self, slot: int) -> int:
        """Every key held in ``slot``, hidden or not (cleanup and migration decisions)."""
        return len(self.slot_keys[slot])

    def visible_in_slot(self, slot: int) -> int:
        """CLUSTER COUNTKEYSINSLOT: 0 for a hidden slot."""
        return 0 if slot in self.hidden else len(self.slot_keys[slot])

    def keys_in_slot(self, slot: int, count: int) -> list[bytes]:
        """Up to ``count`` keys of ``slot``, hidden or not, in insertion order."""
        keys = self.slot_keys[slot]
        if count >= len(keys):
            return list(keys)
        return [key for key, _ in zip(keys, range(count), strict=False)]

    def dump_keys(self, keys: Iterable[bytes]) -> list[list[Any]]:
        """The listed keys that exist, as :meth:`dump` entries (a migration's copy chunk)."""
        data, expires = self.data, self.expires
        entries = []
        for key in keys:
            value = data.get(key)
            if value is None:
                continue
            # Strings (most keys) inline :func:`_entry`: this runs for every key a migration copies.
            entries.append([key, "string", value, expires.get(key)] if value.__class__ is bytes
                           else _entry(key, _frozen(value), expires.get(key)))  # fmt: skip
        return entries

    # --- snapshots -------------------------------------------------------------------

    def dump(self, chunk_keys_max: int) -> Iterator[list[list[Any]]]:
        """The whole keyspace as of this call, as chunks of ``[key, type, value, deadline_ms|None]``.

        The cut is taken here, before the first chunk is asked for: a list of
        the keys in insertion order (within a slot that is ``slot_keys``'s
        order, so loading the dump rebuilds the same index), their values, and
        the deadlines. Strings are
        immutable ``bytes`` and are shared; aggregates are mutated in place by
        commands, so each is copied now, once, into the shape its entry carries.
        The entries themselves are built one chunk at a time as the iterator is
        consumed, so commands may run between chunks and the consumer (a
        snapshot writer in a worker thread) holds only a chunk's entries at
        once, not a second copy of every string.
        """
        assert chunk_keys_max >= 1
        # The cut runs in the event loop, so it walks ``data`` in its own order (a dict
        # lookup per key in slot order took 20 times as long) with no call per string.
        keys = list(self.data)
        values = [value if value.__class__ is bytes else _frozen(value) for value in self.data.values()]
        return _dump_chunks(keys, values, dict(self.expires), chunk_keys_max)

    def load_chunk(self, chunk: list[list[Any]]) -> None:
        """Add the keys of one :meth:`dump` chunk; they must not be present."""
        for key, kind, plain, deadline in chunk:
            assert plain, "empty aggregates are never dumped"
            if kind == "string":
                value: Value = bytes(plain)
            elif kind == "list":
                value = deque(plain)
            elif kind == "hash":
                value = dict(plain)
            elif kind == "set":
                value = set(plain)
            else:
                raise AssertionError(f"unknown type tag {kind!r} in snapshot")
            self.add(bytes(key), value)
            if deadline is not None:
                self.set_deadline(bytes(key), deadline)

    # --- checking (tests, and the simulator's invariant checks) --------------------

    def check_invariants(self) -> None:
        """Assert every structural invariant; O(keys), not for the hot path."""
        indexed = 0
        for slot, keys in enumerate(self.slot_keys):
            for key in keys:
                assert key_slot(key) == slot and key in self.data, key
            indexed += len(keys)
        assert indexed == len(self.data)
        assert self.expires.keys() <= self.data.keys()
        assert len(self._ttl_keys) == len(self.expires) == len(self._ttl_pos)
        for pos, key in enumerate(self._ttl_keys):
            assert self._ttl_pos[key] == pos
        for key, value in self.data.items():
            assert value.__class__ in TYPE_NAMES, key
            assert value.__class__ is bytes or len(value) > 0, key


def _frozen(value: Value) -> bytes | tuple[str, Any]:
    """A value as a dump holds it: bytes shared (immutable), an aggregate as (type, copy in a CBOR-friendly shape)."""
    if value.__class__ is bytes:
        return value
    return TYPE_NAMES[value.__class__], dict(value) if value.__class__ is dict else list(value)


def _entry(key: bytes, frozen: bytes | tuple[str, Any], deadline: int | None) -> list[Any]:
    kind, plain = ("string", frozen) if frozen.__class__ is bytes else frozen
    return [key, kind, plain, deadline]


def _dump_chunks(
    keys: list[bytes], values: list[bytes | tuple[str, Any]], expires: dict[bytes, int], chunk_keys_max: int
) -> Iterator[list[list[Any]]]:
    """The entries of a cut taken by :meth:`Keyspace.dump`.

    A chunk ends at ``chunk_keys_max`` keys or once it holds
    ``limits.snapshot_chunk_bytes_max`` bytes of keys and values, so big values
    do not make one huge record (its encoding is held in memory whole).
    """
    chunk: list[list[Any]] = []
    chunk_bytes = 0
    for key, value in zip(keys, values, strict=True):
        chunk.append(_entry(key, value, expires.get(key)))
        chunk_bytes += len(key) + _frozen_bytes(value)
        if len(chunk) >= chunk_keys_max or chunk_bytes >= limits.snapshot_chunk_bytes_max:
            yield chunk
            chunk, chunk_bytes = [], 0
    if chunk:
        yield chunk


def _frozen_bytes(frozen: bytes | tuple[str, Any]) -> int:
    if frozen.__class__ is bytes:
        return len(frozen)
    kind, plain = frozen
    return sum(map(len, plain)) + (sum(map(len, plain.values())) if kind == "hash" else 0)
