"""The sequences a replica is decoding, kept so that a run of decode iterations costs O(1) to
plan.

Iterations are counted per replica (``Scheduler.iteration``). Each sequence is stored as
``base = context - iteration``, so its context at any later iteration ``i`` is ``base + i``
and nothing is updated per token. With speculative decoding an iteration yields ``rate``
tokens per sequence on average, and ``iteration`` is replaced by the token clock ``tokens(i)
= floor(i·rate)`` in all that follows (a sequence's end stays an iteration). What a run
needs is maintained as sequences join and leave:

- the total context: ``sum(base) + n·i``;
- when the next sequence finishes: a heap of end iterations (entries of sequences that left
  are skipped when they surface), each entry one integer ``end·2^40 + r`` (ordered as the
  pair ``(end, r)``; an integer compares faster than a tuple);
- the KV blocks in use at any iteration. A sequence of context ``c`` holds ``ceil(c / B)``
  blocks; with ``base - 1 = q·B + m`` (``0 <= m < B``) that is ``q + 1 + floor((m + i)/B)``
  at iteration ``i``. Keeping ``sum(q)`` and how many sequences have each residue ``m``
  (``residues``) gives the blocks at any iteration in O(B), and from iteration ``i - 1`` to
  ``i`` the blocks grow by ``residues[-i mod B]``: the sequences that cross a block boundary.
"""

from __future__ import annotations

from heapq import heappop, heappush

_SHIFT = 40  # heap entries are end << _SHIFT | request (fewer than 2^40 requests)
_MASK = (1 << _SHIFT) - 1


class Decoding:
    """The decoding sequences of one replica (request -> base, end iteration, admission)."""

    __slots__ = ("_ends", "_stale", "base_sum", "block", "members", "n", "q_sum", "rate",
                 "residues")

    def __init__(self, block: int, rate: float | None = None):
        self.block = block
        # speculative decoding: each sequence's context grows by ``rate`` tokens an iteration
        # on average, so contexts follow the token clock ``tokens(i)`` (None: one a step)
        self.rate = rate
        self.n = 0
        self.base_sum = 0
        self.q_sum = 0
        self.residues = [0] * block  # sequences by (base - 1) mod block
        self.members: dict[int, tuple[int, int, int]] = {}  # r -> (base, end, admission)
        self._ends: list[int] = []  # heap of end << _SHIFT | r; stale ones skipped
        # entries left by sequences that left before their end (preempted) and not yet
        # popped: while there are none, every entry is a member's, unchecked
        self._stale = 0

    def tokens(self, iteration: int) -> int:
        """The token clock: tokens each sequence has gained by ``iteration`` (the iteration
        itself without speculative decoding, else ``floor(iteration·rate)``)."""
        rate = self.rate
        return iteration if rate is None else int(iteration * rate)

    def join(self, r: int, base: int, end: int, admission: int) -> None:
        """Request ``r`` decodes from now on: context ``base + tokens(i)`` at iteration
        ``i``, its last token at iteration ``end``; ``admission`` orders it for
        preemption."""
        q, m = divmod(base - 1, self.block)
        self.members[r] = (base, end, admission)
        self.n += 1
        self.base_sum += base
        self.q_sum += q
        self.residues[m] += 1
        heappush(self._ends, end << _SHIFT | r)

    def leave(self, r: int) -> tuple[int, int, int]:
        """Remove ``r`` before its end (its heap entry goes stale); returns its (base, end,
        admission)."""
        self._stale += 1
        return self._remove(r)

    def _remove(self, r: int) -> tuple[int, int, int]:
        entry = self.members.pop(r)
        q, m = divmod(entry[0] - 1, self.block)
        self.n -= 1
        self.base_sum -= entry[0]
        self.q_sum -= q
        self.residues[m] -= 1
        return entry

    def context(self, iteration: int) -> int:
        """Total context of the sequences at ``iteration``."""
        return self.base_sum + self.n * (iteration if self.rate is None
                                         else int(iteration * self.rate))

    def blocks_at(self, iteration: int) -> int:
        """KV blocks the sequences hold at ``iteration``."""
        n = self.n
        if not n:
            return 0
        s, r = divmod(iteration if self.rate is None else int(iteration * self.rate),
                      self.block)
        return n + self.q_sum + n * s + (sum(self.residues[self.block - r:]) if r else 0)

    def next_end(self) -> int:
        """The earliest iteration at which a sequence finishes (there must be one)."""
        ends, members = self._ends, self.members
        if not self._stale:
            return ends[0] >> _SHIFT
        while True:
            key = ends[0]
            end = key >> _SHIFT
            entry = members.get(key & _MASK)
            if entry is not None and entry[1] == end:
                return end
            heappop(ends)
            self._stale -= 1

    def finishing(self, iteration: int) -> list[int]:
        """Remove and return (sorted) the sequences whose last iteration is ``iteration``."""
        ends, members = self._ends, self.members
        done: list[int] = []
        limit = (iteration + 1) << _SHIFT  # entries below it end at ``iteration`` or before
        if not ends or ends[0] >= limit:
            return done
        while ends and ends[0] < limit:
            key = heappop(ends)
            r = key & _MASK
            if self._stale:
                entry = members.get(r)
                # (a sequence preempted and back may end at the iteration its stale entry
                # names: the second entry of the pair is the stale one)
                if entry is None or entry[1] != key >> _SHIFT or r in done:
                    self._stale -= 1
                    continue
            done.append(r)
        for r in done:
            self._remove(r)
        if len(done) > 1:
            done.sort()
        return done

    def latest(self) -> tuple[int, int]:
        """(admission, request) of the most recently admitted sequence."""
        return max((a, r) for r, (_, _, a) in self.members.items())
