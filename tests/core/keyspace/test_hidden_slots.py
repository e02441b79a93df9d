"""Hidden slots (a migration's staged keys and leftovers): kept, but not served, counted or expired."""

import random

from trionode.core import routing
from trionode.core.data_state import DataState
from trionode.core.slots import key_slot

from ..test_session import make_session
from .helpers import START_MS, Client

# Two keys in different slots; the first one's slot is hidden.
HIDDEN_KEY, SHOWN_KEY = b"{a}staged", b"{b}owned"
HIDDEN_SLOT = key_slot(HIDDEN_KEY)


def _client() -> Client:
    c = Client()
    c("SET", HIDDEN_KEY, "1")
    c("SET", SHOWN_KEY, "2")
    c.ks.hidden = frozenset({HIDDEN_SLOT})
    return c


def test_dbsize_keys_and_scan_leave_hidden_slots_out() -> None:
    c = _client()
    assert c("DBSIZE") == 1
    assert c("KEYS", "*") == [SHOWN_KEY]
    assert c("KEYS", "{*") == [SHOWN_KEY]
    cursor, seen = b"0", []
    while True:
        cursor, keys = c("SCAN", cursor, "COUNT", 1000)
        seen += keys
        if cursor == b"0":
            break
    assert seen == [SHOWN_KEY]
    c.ks.hidden = frozenset()
    assert c("DBSIZE") == 2 and sorted(c("KEYS", "*")) == sorted([HIDDEN_KEY, SHOWN_KEY])


def test_slot_queries_see_an_empty_hidden_slot() -> None:
    c = _client()
    session = make_session(routing.serve_everything("s1"))
    session.node.data.keyspace = c.ks
    assert session.execute([b"CLUSTER", b"COUNTKEYSINSLOT", b"%d" % HIDDEN_SLOT])[0] == 0
    assert session.execute([b"CLUSTER", b"GETKEYSINSLOT", b"%d" % HIDDEN_SLOT, b"10"])[0] == []
    assert c.ks.count_in_slot(HIDDEN_SLOT) == 1  # what cleanup and the copy go by
    shown = b"%d" % key_slot(SHOWN_KEY)
    assert session.execute([b"CLUSTER", b"COUNTKEYSINSLOT", shown])[0] == 1
    assert session.execute([b"CLUSTER", b"GETKEYSINSLOT", shown, b"10"])[0] == [SHOWN_KEY]


def test_active_expiry_never_deletes_a_hidden_key() -> None:
    c = _client()
    c("PEXPIREAT", HIDDEN_KEY, START_MS + 10)
    c("PEXPIREAT", SHOWN_KEY, START_MS + 10)
    ks = c.ks
    ks.effects.clear()
    rng = random.Random(1)
    deleted = sum(ks.active_expire(START_MS + 1000, rng, sample_keys=20, rounds_max=4) for _ in range(50))
    assert deleted == 1 and ks.effects == [[b"DEL", SHOWN_KEY]]
    assert HIDDEN_KEY in ks.data  # the source's DEL arrives in the migration stream


def test_a_full_resync_keeps_the_hidden_slots() -> None:
    data = DataState()
    data.keyspace.hidden = frozenset({HIDDEN_SLOT})
    data.replace_with(DataState(), 0)
    assert data.keyspace.hidden == frozenset({HIDDEN_SLOT})
