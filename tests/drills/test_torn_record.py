"""The torn-tail drill's garbage is what a torn write looks like to recovery: torn, never corrupt.

If the drill appended something recovery must refuse (corruption), the drill would fail
for the wrong reason; if recovery called a real torn write corruption, nodes would refuse
to start after an ordinary crash. Every shape ``torn_record`` makes must read as torn.
"""

import random

import cbor2
import pytest

from scripts.drills.nemesis import torn_record
from trionode.core.wal import codec


@pytest.mark.timeout(30)
def test_every_torn_record_shape_is_recovered_as_a_torn_tail() -> None:
    good = codec.frame(cbor2.dumps(["SET", "k", "v"])) * 3
    for seed in range(300):
        rng = random.Random(seed)
        tail = torn_record(rng)
        result = codec.scan(good + tail, file_name="data-1.wal", record_bytes_max=1 << 20)
        assert len(result.records) == 3 and result.valid_end == len(good), seed
        assert result.damage is not None and result.damage.kind == "torn", (seed, result.damage)
