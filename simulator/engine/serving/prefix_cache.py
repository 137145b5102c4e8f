"""The prefix cache of one replica: computed KV blocks kept by content, evicted least
recently used first (vLLM's automatic prefix caching; SGLang's radix cache behaves alike).

A block is named by its content key (:mod:`~simulator.engine.serving.prefixes`). It is

- **referenced** while running requests use it (``refs``: key -> how many). A block
  referenced by several requests is held once: that is the memory sharing saves;
- **free** once no running request uses it: it stays cached, in least-recently-used order
  (``free``), until the scheduler needs its memory. Free blocks take no admission room:
  they are evicted, oldest first, as the blocks in use grow (:meth:`evict_to`).

The scheduler keeps counting every running sequence's blocks as if it held them alone
(``ceil(context / block)``). The blocks a request *borrows* from the cache are counted
there too, so the blocks really in use are that count plus :attr:`PrefixCache.adjustment`,
the referenced blocks held once minus the borrowed ones counted per request.

A request borrows the blocks of its prompt found in the cache when it is admitted
(:meth:`lookup`, then :meth:`take` with the keys found; :meth:`acquire` does both), and its
other full prompt blocks when its prefill ends (:meth:`publish`: from then on later
requests find them). When it finishes, is preempted or handed off (:meth:`retire`), its
blocks become free: the full blocks of its context, in reverse order, so that a chain's
tail is evicted before its head (vLLM frees a request's blocks tail first for the same
reason).

At least one prompt token is always computed (the first output token needs its logits), so
a lookup covers the full blocks of the first ``target - 1`` tokens.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from simulator.engine.serving.prefixes import BlockKeys
from simulator.results.inference import PrefixCacheMetrics


class PrefixMatch(NamedTuple):
    """A prompt's leading blocks found in a prefix cache: their keys, in order, and how
    many of the first are referenced by running requests."""

    keys: list[int]
    referenced: int


class PrefixCache:
    """Cached KV blocks of one replica of ``block`` tokens each, and the hit counters."""

    __slots__ = ("block", "borrowed", "cached_tokens", "evictions", "free", "held", "hits",
                 "keys", "lookups", "queried_tokens", "refs")

    def __init__(self, *, keys: BlockKeys, block: int):
        self.keys = keys
        self.block = block
        self.refs: dict[int, int] = {}
        self.free: OrderedDict[int, None] = OrderedDict()
        self.held: dict[int, list[int]] = {}  # request -> the keys it borrows, in order
        self.borrowed = 0  # sum of len(held[r])
        self.lookups = self.hits = self.cached_tokens = self.evictions = 0
        self.queried_tokens = 0  # prompt tokens of the prefills that looked the cache up

    @property
    def adjustment(self) -> int:
        """Blocks really in use minus the scheduler's per-request count (<= 0)."""
        return len(self.refs) - self.borrowed

    def _leading(self, keys: Iterable[int]) -> tuple[int, int]:
        """The walk: how many of ``keys`` lead in the cache, and how many of those are
        referenced (held already, they cost no memory)."""
        refs, free = self.refs, self.free
        found = referenced = 0
        for k in keys:
            if k in refs:
                if found == referenced:
                    referenced += 1
            elif k not in free:
                break
            found += 1
        return found, referenced

    def match(self, r: int, target: int) -> tuple[int, int]:
        """Of ``r``'s first ``(target - 1) // block`` blocks, how many lead its prompt in the
        cache, and how many of those are referenced (a router's question: nothing kept)."""
        return self._leading(self.keys(r, 0, (target - 1) // self.block))

    def lookup(self, r: int, target: int) -> PrefixMatch:
        """:meth:`match`, keeping the keys found: an admission carries them to :meth:`take`,
        so a prompt is walked once an attempt."""
        keys = list(self.keys(r, 0, (target - 1) // self.block))  # (ranges: one C call)
        found, referenced = self._leading(keys)
        del keys[found:]
        return PrefixMatch(keys, referenced)

    def acquire(self, r: int, target: int, found: int) -> int:
        """:meth:`take` by a count: ``r`` takes its ``found`` leading blocks, rebuilt from
        its prompt's keys; returns the tokens it need not compute. The scheduler calls
        :meth:`lookup` then :meth:`take`, which carry the keys instead of rebuilding them."""
        return self.take(r, target, list(self.keys(r, 0, found)))

    def take(self, r: int, target: int, keys: list[int]) -> int:
        """``r`` is admitted to prefill ``target`` tokens and takes the leading blocks
        ``keys`` (a :meth:`lookup`'s, no eviction since) from the cache; returns the tokens
        it need not compute."""
        refs, free = self.refs, self.free
        for k in keys:
            if k in refs:
                refs[k] += 1
            else:
                del free[k]
                refs[k] = 1
        found = len(keys)
        self.held[r] = keys
        self.borrowed += found
        self.lookups += (target - 1) // self.block
        self.queried_tokens += target
        self.hits += found
        cached = found * self.block
        self.cached_tokens += cached
        return cached

    def publish(self, r: int, tokens: int) -> None:
        """``r``'s first ``tokens`` tokens are computed: its full blocks join the cache,
        referenced by ``r`` (a block another request computed meanwhile is shared, and ``r``'s
        copy freed)."""
        refs, free = self.refs, self.free
        keys = self.held.setdefault(r, [])
        start = len(keys)
        for k in self.keys(r, start, tokens // self.block):
            if k in refs:
                refs[k] += 1
            else:
                if k in free:
                    del free[k]
                refs[k] = 1
            keys.append(k)
        self.borrowed += len(keys) - start

    def retire(self, r: int, tokens: int) -> None:
        """``r`` leaves the batch with ``tokens`` tokens of context computed: its full blocks
        become free (most recently used), tail first; those it borrowed are released."""
        refs, free = self.refs, self.free
        keys = self.held.pop(r, [])
        own = list(self.keys(r, len(keys), tokens // self.block))  # never shared with it
        for k in reversed(own):
            if k not in refs and k not in free:
                free[k] = None
        for k in reversed(keys):
            n = refs[k] - 1
            if n:
                refs[k] = n
            else:
                del refs[k]
                free[k] = None
        self.borrowed -= len(keys)

    def evict_to(self, room: int) -> None:
        """Evict free blocks, least recently used first, until at most ``room`` are left."""
        free = self.free
        over = len(free) - max(room, 0)
        if over > 0:
            self.evictions += over
            for _ in range(over):
                free.popitem(last=False)


def merged(caches: Sequence[PrefixCache]) -> PrefixCacheMetrics:
    """The hit rates and counts of several replicas' caches together."""
    lookups = sum(c.lookups for c in caches)
    hits = sum(c.hits for c in caches)
    cached = sum(c.cached_tokens for c in caches)
    queried = sum(c.queried_tokens for c in caches)
    return PrefixCacheMetrics(hit_rate=hits / lookups if lookups else 0.0,
                              token_hit_rate=cached / queried if queried else 0.0,
                              cached_tokens=cached, prompt_tokens=queried,
                              lookup_blocks=lookups, hit_blocks=hits,
                              evicted_blocks=sum(c.evictions for c in caches))
