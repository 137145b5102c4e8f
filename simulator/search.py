"""The one integer search the engine and the studies share: the smallest integer at which
a monotone predicate turns true.

Kept in a room of its own that imports nothing of ours, so that the serving engine (the
break-even batch of speculative decoding) and the studies (the fewest replicas meeting an
SLO) call one bisection, not two copies that could drift apart.
"""

from __future__ import annotations

from collections.abc import Callable


def first_true(holds: Callable[[int], bool], lo: int, hi: int) -> int:
    """The smallest integer in ``(lo, hi]`` at which ``holds`` is true, given that it is
    false at ``lo`` (or ``lo`` is a sentinel below the range), true at ``hi``, and turns
    true only once (False...False True...True). Bisection: probes ``(lo + hi) // 2`` each
    time, about ``log2(hi - lo)`` calls, never ``lo`` or ``hi`` themselves."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if holds(mid):
            hi = mid
        else:
            lo = mid
    return hi
