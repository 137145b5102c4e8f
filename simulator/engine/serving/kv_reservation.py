"""KV blocks reserved for whole sequences at admission (TensorRT-LLM's GUARANTEED_NO_EVICT).

A scheduler that allocates KV blocks as contexts grow (vLLM) admits a request when its
prompt fits and preempts someone when the running contexts outgrow the cache. TensorRT-LLM's
default capacity policy instead admits a request only when the blocks of its whole sequence
(prompt plus its maximum output) fit beside those already promised to the running requests,
and so never evicts: fewer sequences run at once while they are young, and none is
recomputed. The scheduler keeps the promise here: the blocks held per admitted request, and
their sum.
"""

from __future__ import annotations

from collections.abc import Iterable

from simulator.engine.serving.kv_cache import ceil_div
from simulator.engine.serving.requests import Requests


class Reservations:
    """Blocks promised to the admitted requests of one replica, until each leaves.

    Not ``enabled`` (blocks allocated as contexts grow) it promises nothing and admits
    anything. On a ``prefill`` replica a request is promised its prompt only: it leaves with
    its first token.
    """

    __slots__ = ("_held", "block", "capacity", "enabled", "prefill", "requests", "total")

    def __init__(self, *, requests: Requests, block_tokens: int, capacity: int,
                 enabled: bool, prefill: bool = False) -> None:
        self.requests = requests
        self.block = block_tokens
        self.capacity = capacity
        self.enabled = enabled
        self.prefill = prefill
        self._held: dict[int, int] = {}
        self.total = 0

    def whole_blocks(self, r: int) -> int:
        """Blocks of ``r``'s whole sequence: its prompt plus its maximum output (a
        benchmark's fixed output length is the ``max_tokens`` the engine reserves for)."""
        reqs = self.requests
        if self.prefill:
            return ceil_div(int(reqs.target[r] or reqs.prompt_len[r] + reqs.generated[r]),
                            self.block)
        return ceil_div(int(reqs.prompt_len[r] + reqs.output_len[r]), self.block)

    def admits(self, r: int) -> bool:
        """Whether ``r``'s whole sequence can be promised beside the running ones'. An empty
        replica admits anything (a sequence longer than the cache then runs with blocks
        allocated as it grows, rather than never)."""
        return (not self.enabled or self.total == 0
                or self.total + self.whole_blocks(r) <= self.capacity)

    def hold(self, r: int) -> None:
        """``r`` is admitted: promise it its whole sequence (again, if readmitted)."""
        if not self.enabled:
            return
        self.release((r,))
        blocks = self.whole_blocks(r)
        self._held[r] = blocks
        self.total += blocks

    def release(self, leaving: Iterable[int]) -> None:
        """These requests have left (finished, handed off or preempted): their promises
        are void."""
        if self._held:
            for r in leaving:
                self.total -= self._held.pop(r, 0)
