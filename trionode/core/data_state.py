"""The node's data: the keyspace, its replication offset, and what must be logged.

Theory of operation. Every mutation of the keyspace becomes one *effect*: a
deterministic write command that reproduces it when replayed (the keyspace
handlers produce them). Each effect takes the next dense offset and goes to the
``outbox``; the shell moves the outbox into the data WAL before it awaits
anything, so WAL sequence numbers and offsets stay equal (asserted by the
shell). ``visibility`` remembers which keys have writes that are not yet
acknowledged, so the shell can hold replies that depend on them (DESIGN §5.4).

Replay (startup, and later the replication stream) executes effects with
``now_ms = None``: no expiry decisions, no new effects, offsets advance by one
per effect, and every replayed write stays invisible until the acknowledged
offset covers it: nothing replayed is known to be on the ISR. The primary's
clock is passed in per batch; this module never reads a clock, so it can run
inside the simulator.
"""

from typing import Any

from trionode import limits
from trionode.core.command_spec import CommandSpec
from trionode.core.keyspace import KEYSPACE_COMMANDS, Keyspace
from trionode.core.keyspace.store import RandomSource
from trionode.core.visibility import Visibility

# An effect as the outbox hands it to the shell (see DataState.outbox).
LoggedEffect = tuple[bytes, ...]

# Effects are keyed by their name as bytes, as they come off the wire or the WAL.
_REPLAY_TABLE: dict[bytes, CommandSpec] = {name.encode(): spec for name, spec in KEYSPACE_COMMANDS.items()}


class ReplayError(Exception):
    """A logged effect could not be re-executed: the log does not match this code."""


class DataState:
    def __init__(self, applied_offset: int = 0) -> None:
        self.keyspace = Keyspace()
        self.applied_offset = applied_offset
        # Logged effects are frozen into tuples. A tuple of bytes drops out of the
        # garbage collector's view once it survives a collection, so the millions
        # of effects the shell keeps (replication backlog) cost full collections
        # nothing; as lists they made every full collection walk them all
        # (pauses of 250 ms under redis-benchmark).
        self.outbox: list[tuple[int, LoggedEffect]] = []
        self.visibility = Visibility(applied_offset)

    # --- the primary path -----------------------------------------------------
    def execute(self, spec: CommandSpec, argv: list[bytes], now_ms: int, *, primary: bool) -> tuple[Any, int]:
        """Run a keyspace command; return its reply and the offset the reply must wait for.

        ``primary`` is this node's role: only a primary deletes a key past its deadline (and
        logs the DEL); a replica's read hides the key and waits for the primary's DEL (DESIGN
        §5.1), since a record logged at a replica's own offset would collide with its primary's.
        ``CommandError`` propagates to the caller; a failing command changes nothing.
        """
        ks = self.keyspace
        ks.now_ms = now_ms
        ks.expire_deletes = primary
        reply = spec.handler(ks, argv)
        if spec.last_key == 1:
            # The hot path: exactly one key, at argv[1] (GET, SET, INCR, LPUSH, ...).
            key = argv[1]
            effects = ks.effects
            if effects:
                offset = self._log_effects(effects)
                effects.clear()
                self.visibility.wrote(key, offset)
                # What visibility.required(key) now says: this write is the newest
                # (test_data_state checks the two agree).
                return reply, offset
            return reply, self.visibility.required(key)
        keys = spec.key_positions(len(argv))
        if ks.effects:
            offset = self._log_effects(ks.effects)
            ks.effects.clear()
            for i in keys:
                self.visibility.wrote(argv[i], offset)
            if not keys and spec.is_write:
                self.visibility.wrote_everything(offset)
        if not keys:
            # A keyless read (DBSIZE, KEYS, SCAN) sees the whole keyspace.
            return reply, self.applied_offset
        required = self.visibility.required
        return reply, max(required(argv[i]) for i in keys)

    def expire_some(self, now_ms: int, rng: RandomSource) -> int:
        """One active expiry cycle, run by a primary only; the deletions are logged like any write."""
        ks = self.keyspace
        ks.expire_deletes = True  # the last command may have been a read while this node was a replica
        expired = ks.active_expire(now_ms, rng, limits.expire_sample_keys, limits.expire_rounds_max)
        if ks.effects:
            for effect in ks.effects:
                offset = self._log_effects([effect])
                for key in effect[1:]:
                    self.visibility.wrote(key, offset)
            ks.effects.clear()
        return expired

    def _log_effects(self, effects: list[list[bytes]]) -> int:
        offset = self.applied_offset
        append = self.outbox.append
        for effect in effects:
            offset += 1
            append((offset, tuple(effect)))
        self.applied_offset = offset
        return offset

    def take_outbox(self) -> list[tuple[int, LoggedEffect]]:
        out, self.outbox = self.outbox, []
        return out

    # --- the replay path ------------------------------------------------------
    def replay(self, offset: int, effect: list[bytes]) -> None:
        """Re-execute one logged effect at ``offset`` (which must be the next one).

        A replayed effect is never taken as acknowledged: a replica's streamed effect is not
        until its primary says so, and a WAL record replayed at startup may never have reached
        the ISR before the crash. The keys it touches stay invisible until the acknowledged
        offset reaches ``offset`` (``visibility.advance``, DESIGN §5.4).
        """
        if offset != self.applied_offset + 1:
            raise ReplayError(f"effect at offset {offset} does not follow applied offset {self.applied_offset}")
        spec = _REPLAY_TABLE.get(bytes(effect[0]).lower()) if effect else None
        if spec is None:
            raise ReplayError(f"effect at offset {offset} is not a known write command")
        ks = self.keyspace
        ks.now_ms = None
        spec.handler(ks, effect)
        ks.effects.clear()
        self.applied_offset = offset
        keys = spec.key_positions(len(effect))
        for i in keys:
            self.visibility.wrote(effect[i], offset)
        if not keys:
            self.visibility.wrote_everything(offset)

    # --- the replica path -----------------------------------------------------
    def replace_with(self, other: "DataState", acked_offset: int) -> None:
        """Adopt ``other``'s keyspace and offset (a full resync), keeping this object's identity.

        Only ``acked_offset`` of it is acknowledged: a full sync's snapshot is cut at the
        primary's applied offset, which may be past its high watermark, and which keys
        changed after the watermark is not known, so every reply waits for the whole of it.
        """
        assert acked_offset <= other.applied_offset, (acked_offset, other.applied_offset)
        assert not self.outbox, "effects still waiting for the WAL would be lost"
        old = self.keyspace
        old.flush()  # its values are freed in steps, like FLUSHALL's
        other.keyspace.garbage = old.garbage
        other.keyspace.hidden = old.hidden  # set from the configuration, not from the primary's data
        self.keyspace = other.keyspace
        self.applied_offset = other.applied_offset
        self.visibility = Visibility(acked_offset)
        self.visibility.wrote_everything(other.applied_offset)

    def apply_replicated(self, offset: int, effect: list[bytes]) -> None:
        """Apply an effect streamed by the primary: like replay, but logged to this node's WAL too.

        The keys it touches stay invisible to READONLY reads until the primary's
        acknowledged offset reaches ``offset``.
        """
        self.replay(offset, effect)
        self.outbox.append((offset, tuple(effect)))
