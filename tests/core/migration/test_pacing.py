"""A migration's chunks keep to their share of the event loop: slices, then rests in proportion."""

import pytest

from trionode.core.migration.pacing import LoopShare


def test_chunks_run_back_to_back_until_the_slice_is_used_up() -> None:
    share = LoopShare(share=0.5, slice_ms=2, rest_ms_max=50)
    assert share.rest_ms(0) is None
    assert share.rest_ms(1.9) is None


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.8])
def test_a_used_slice_rests_so_the_migration_keeps_to_its_share(fraction: float) -> None:
    share = LoopShare(share=fraction, slice_ms=2, rest_ms_max=1_000)
    for held_ms in (2.0, 3.5, 40.0):
        rest = share.rest_ms(held_ms)
        assert rest is not None
        assert held_ms / (held_ms + rest) == pytest.approx(fraction)


def test_a_whole_share_only_yields() -> None:
    assert LoopShare(share=1, slice_ms=2, rest_ms_max=50).rest_ms(10) == 0


def test_one_slow_chunk_does_not_stall_the_migration_for_long() -> None:
    assert LoopShare(share=0.5, slice_ms=2, rest_ms_max=50).rest_ms(900) == 50
