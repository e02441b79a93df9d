"""Key to hash slot, exactly as Redis Cluster computes it.

A key's slot is CRC16/XMODEM of the key, mod 16384. If the key holds a hash tag
(the first ``{``, then the first ``}`` after it, with at least one byte between),
only the tag is hashed, so ``{user1}.a`` and ``{user1}.b`` share a slot.
``binascii.crc_hqx(data, 0)`` is CRC16/XMODEM, computed in C.
"""

from binascii import crc_hqx

from trionode import limits

SLOTS_MASK = limits.slots_count - 1

assert limits.slots_count & SLOTS_MASK == 0, "slot count must be a power of two for the mask"


def key_slot(key: bytes) -> int:
    """The cluster slot (0..16383) that ``key`` belongs to."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        # An empty tag ("{}") does not count: Redis then hashes the whole key.
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) & SLOTS_MASK
