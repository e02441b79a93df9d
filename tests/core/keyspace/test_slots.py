from binascii import crc_hqx

from hypothesis import given
from hypothesis import strategies as st

from trionode.core.slots import key_slot


def test_crc_is_xmodem():
    assert crc_hqx(b"123456789", 0) == 0x31C3


def test_known_slots():
    # Values from the Redis Cluster specification and CLUSTER KEYSLOT.
    assert key_slot(b"foo") == 12182
    assert key_slot(b"bar") == 5061
    assert key_slot(b"") == 0
    assert key_slot(b"{user1000}.following") == key_slot(b"{user1000}.followers")
    assert key_slot(b"{user1000}.following") == key_slot(b"user1000")


def test_hash_tag_corner_cases():
    assert key_slot(b"foo{}{bar}") == crc_hqx(b"foo{}{bar}", 0) % 16384  # empty tag: whole key
    assert key_slot(b"foo{{bar}}zap") == key_slot(b"{bar")  # tag is "{bar"
    assert key_slot(b"foo{bar}{zap}") == key_slot(b"bar")  # first tag only
    assert key_slot(b"foo{bar") == crc_hqx(b"foo{bar", 0) % 16384  # unclosed
    assert key_slot(b"}foo{bar}") == key_slot(b"bar")


@given(st.binary(max_size=40), st.binary(min_size=1, max_size=10).filter(lambda t: b"}" not in t))
def test_tagged_keys_share_slot(prefix, tag):
    key = prefix.replace(b"{", b"") + b"{" + tag + b"}" + prefix
    assert key_slot(key) == crc_hqx(tag, 0) % 16384
    assert 0 <= key_slot(prefix) < 16384
