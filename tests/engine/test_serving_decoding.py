"""The decoding set keeps blocks, contexts and ends in O(1) per change: checked against a
plain count over the sequences' context arrays."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.engine.serving.decoding import Decoding
from simulator.engine.serving.kv_cache import ceil_div


def blocks_in_use(contexts: np.ndarray, block: int) -> int:
    """The oracle: blocks held by sequences of the given contexts, ``ceil(c / block)`` each
    (counted as a float division would, which is exact at these sizes)."""
    return int(np.ceil(contexts / block).sum())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 64), st.lists(st.tuples(st.integers(1, 5000), st.integers(1, 300)),
                                    min_size=1, max_size=30), st.integers(0, 1000))
def test_the_decoding_set_counts_blocks_contexts_and_ends_as_the_arrays_do(block, seqs, now):
    dec = Decoding(block)
    for r, (context, remaining) in enumerate(seqs):
        dec.join(r, context - now, now + remaining, r)
    contexts = np.array([c for c, _ in seqs], dtype=np.int64)
    ends = [now + n for _, n in seqs]
    assert dec.next_end() == min(ends)
    for i in range(0, min(ends) - now, 7):
        assert dec.blocks_at(now + i) == blocks_in_use(contexts + i, block)
        assert dec.context(now + i) == int(contexts.sum()) + len(seqs) * i
    b = dec.blocks_at(now)
    for i in range(1, min(ends) - now):  # the replica's per-iteration increments
        b += dec.residues[-(now + i) % block]
        assert b == blocks_in_use(contexts + i, block)
    last = min(ends)
    finishing = sorted(r for r, e in enumerate(ends) if e == last)
    assert dec.finishing(last) == finishing
    staying = [r for r in range(len(seqs)) if r not in finishing]
    assert dec.blocks_at(last) == blocks_in_use(contexts[staying] + (last - now), block)


@settings(max_examples=200, deadline=None)
@given(st.integers(-10**12, 10**12), st.integers(1, 10**6))
def test_ceil_div_is_the_ceiling_of_the_quotient(a, b):
    q = ceil_div(a, b)
    assert (q - 1) * b < a <= q * b
    np.testing.assert_array_equal(ceil_div(np.array([a, a + 1]), b),
                                  [q, ceil_div(a + 1, b)])
