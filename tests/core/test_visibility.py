"""Visibility: a reply never depends on a write that is not acknowledged (DESIGN §5.4)."""

from hypothesis import given
from hypothesis import strategies as st

from trionode.core.visibility import Visibility


def test_reply_waits_for_the_keys_last_write_only() -> None:
    v = Visibility()
    v.wrote(b"a", 1)
    v.wrote(b"b", 2)
    v.wrote(b"a", 3)
    assert (v.required(b"a"), v.required(b"b"), v.required(b"c")) == (3, 2, 0)
    v.advance(2)
    assert (v.required(b"a"), v.required(b"b")) == (3, 0)
    v.advance(3)
    assert len(v) == 0


def test_keyspace_wide_write_is_a_barrier_for_every_key() -> None:
    v = Visibility()
    v.wrote(b"a", 1)
    v.wrote_everything(2)
    assert v.required(b"zzz") == 2 and v.required(b"a") == 2
    v.wrote(b"a", 3)
    assert v.required(b"a") == 3


@given(st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c"]), st.booleans()), max_size=60))
def test_required_is_never_below_an_unacknowledged_write(ops: list[tuple[bytes, bool]]) -> None:
    v = Visibility()
    last: dict[bytes, int] = {}
    for offset, (key, ack) in enumerate(ops, start=1):
        v.wrote(key, offset)
        last[key] = offset
        if ack:
            v.advance(offset - 1)
        for k, off in last.items():
            if off > v.acked:
                assert v.required(k) >= off
