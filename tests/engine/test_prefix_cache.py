"""The prefix cache of one replica (``prefix_cache.PrefixCache``) and the scheduler's use of
it, on hand-built requests: what a lookup finds, what sharing saves, the LRU order."""

from __future__ import annotations

import numpy as np

from simulator.engine.serving.arrivals import Workload
from simulator.engine.serving.kv_cache import KVCapacity
from simulator.engine.serving.prefix_cache import PrefixCache, merged
from simulator.engine.serving.prefixes import PromptPrefixes
from simulator.engine.serving.requests import Requests
from simulator.engine.serving.scheduler import Scheduler
from simulator.profiles.inference import Batching

BLOCK = 16


def own_chains(n: int) -> PromptPrefixes:
    """``n`` requests that share nothing."""
    return PromptPrefixes(system=np.zeros(n, dtype=np.int64), chain=np.arange(n))


def cache_of(prefixes: PromptPrefixes) -> PrefixCache:
    return PrefixCache(keys=prefixes.keys(BLOCK), block=BLOCK)


def test_a_lookup_covers_the_full_blocks_before_the_last_prompt_token():
    """A 64-token prompt: its last token is always computed, so (64 - 1) // 16 = 3 blocks
    are looked up, not 4; a 65-token prompt looks up 4."""
    p = PromptPrefixes(system=np.array([64, 64, 65]), chain=np.arange(3))
    cache = cache_of(p)
    cache.acquire(0, 64, 0)
    cache.publish(0, 64)  # its 4 full blocks are now cached
    assert cache.match(1, 64) == (3, 3)
    assert cache.match(2, 65) == (4, 4)
    cache.retire(0, 64)
    assert cache.match(1, 64) == (3, 0)  # still cached, no longer held by anyone


def test_blocks_shared_by_running_requests_are_held_once():
    """Two requests share a 48-token system prompt (3 blocks): the scheduler counts 3 + 3
    blocks of it, the cache holds 3: adjustment -3."""
    p = PromptPrefixes(system=np.array([48, 48]), chain=np.arange(2))
    cache = cache_of(p)
    cache.acquire(0, 100, 0)
    cache.publish(0, 100)  # 100 // 16 = 6 full blocks, the first 3 the system prompt's
    found, held = cache.match(1, 100)
    assert (found, held) == (3, 3)
    assert cache.acquire(1, 100, found) == 48
    assert cache.borrowed == 6 + 3 and len(cache.refs) == 6
    assert cache.adjustment == -3


def test_lru_evicts_the_least_recently_used_tail_first():
    """Three requests of 3 blocks each retire in order A, B, C; each frees tail first, so
    the free list is a2 a1 a0 b2 b1 b0 c2 c1 c0 (least recent first). Room for 7 evicts
    a2 and a1: A keeps one block at its head; B and C keep all three."""
    cache = cache_of(own_chains(3))
    for r in range(3):
        cache.acquire(r, 49, 0)
        cache.publish(r, 48)
    for r in range(3):
        cache.retire(r, 48)
    keys = [list(cache.keys(r, 0, 3)) for r in range(3)]
    assert list(cache.free) == [keys[r][i] for r in range(3) for i in (2, 1, 0)]
    cache.evict_to(7)
    assert cache.evictions == 2
    assert [cache.match(r, 49)[0] for r in range(3)] == [1, 3, 3]


def test_a_hit_makes_blocks_recent_again():
    """A's blocks are used again (acquired, then retired) after B's retired: now B's are
    the least recently used and go first."""
    cache = cache_of(own_chains(2))
    for r in range(2):
        cache.acquire(r, 33, 0)
        cache.publish(r, 32)
    cache.retire(0, 32)
    cache.retire(1, 32)
    found, _ = cache.match(0, 33)
    cache.acquire(0, 33, found)
    cache.retire(0, 32)
    cache.evict_to(2)
    assert (cache.match(0, 33)[0], cache.match(1, 33)[0]) == (2, 0)


def test_merged_hit_rates_are_ratios_of_the_sums():
    a, b = cache_of(own_chains(1)), cache_of(own_chains(1))
    a.lookups, a.hits, a.cached_tokens, a.queried_tokens = 10, 5, 80, 200
    b.lookups, b.hits, b.cached_tokens, b.queried_tokens = 30, 0, 0, 600
    m = merged([a, b])
    assert (m.hit_rate, m.token_hit_rate) == (5 / 40, 80 / 800)


def _scheduler(prompts: list[int], prefixes: PromptPrefixes, blocks: int = 1000) -> Scheduler:
    n = len(prompts)
    requests = Requests(Workload(np.zeros(n), np.array(prompts), np.full(n, 10)))
    return Scheduler(requests=requests, capacity=KVCapacity(blocks, BLOCK, 1.0),
                     batching=Batching(max_tokens_per_step=8192), prefix=cache_of(prefixes))


def test_the_prefill_skips_cached_tokens_and_its_attention_reads_them():
    """Request 1 shares request 0's 1,024-token system prompt and adds 200 tokens. Once 0's
    prefill is done, 1 is admitted with 64 blocks cached: it prefills q = 200 new tokens,
    its attention covers q·c + q(q+1)/2 = 200·1024 + 200·201/2 pairs over c = 1,024 cached
    tokens, and it takes ceil(1224/16) - 64 = 13 new blocks."""
    p = PromptPrefixes(system=np.array([1024, 1024]), chain=np.arange(2))
    sched = _scheduler([1224, 1224], p)
    sched.waiting.append(0)
    first = sched.plan(0.0)
    assert first.chunks == [(0, 1224)] and first.prompt_cached == 0
    sched.commit(first, 1.0)
    in_use = sched.blocks_in_use()
    assert in_use == 77  # ceil(1224 / 16) + 1 block for its first output token (1225)
    sched.waiting.append(1)
    second = sched.plan(1.0)
    assert second.chunks == [(1, 200)]
    assert second.prompt_tokens == 200 + 0 and second.prompt_cached == 1024
    assert second.prompt_pairs == 200 * 1024 + 200 * 201 // 2
    assert second.blocks == in_use + 13
    assert sched.requests.cached_tokens.tolist() == [0, 1024]
    # the prompt is served whole when its last chunk runs, its cached 1,024 tokens included
    # (what the steady window counts as prompt tokens produced)
    assert first.prompt_produced == 1224 and second.prompt_produced == 1224


def _counting_walks(sched: Scheduler) -> list[int]:
    """Wrap the scheduler's cache's block keys: the returned list gets the request of every
    walk over a prompt's keys (a lookup, or a take that regenerates them)."""
    assert sched.prefix is not None
    keys, walks = sched.prefix.keys, []

    def counted(r: int, start: int, stop: int):
        walks.append(r)
        return keys(r, start, stop)
    sched.prefix.keys = counted
    return walks


def test_an_admission_walks_a_prompt_s_cached_prefix_once():
    """Request 1 finds request 0's 64 system-prompt blocks cached: its admission looks its
    prompt up once and takes those blocks with the keys the lookup found (no second walk);
    what it takes is what the lookup found (64 blocks, 64 x 16 = 1,024 tokens)."""
    p = PromptPrefixes(system=np.array([1024, 1024]), chain=np.arange(2))
    sched = _scheduler([1224, 1224], p)
    sched.waiting.append(0)
    sched.commit(sched.plan(0.0), 1.0)
    walks = _counting_walks(sched)
    sched.waiting.append(1)
    plan = sched.plan(1.0)
    assert plan.chunks == [(1, 200)] and plan.prompt_cached == 1024
    assert walks == [1]
    assert sched.prefix is not None and len(sched.prefix.held[1]) == 64


def test_a_blocked_admission_attempt_walks_once_and_takes_nothing():
    """A cache of 80 blocks: request 0 (77 blocks with its first output token's) runs, so
    request 1 (13 new blocks past the 64 it shares) does not fit: one walk per attempt,
    one attempt per iteration planned, and nothing taken from the cache."""
    p = PromptPrefixes(system=np.array([1024, 1024]), chain=np.arange(2))
    sched = _scheduler([1224, 1224], p, blocks=80)
    sched.waiting.append(0)
    sched.commit(sched.plan(0.0), 1.0)
    walks = _counting_walks(sched)
    sched.waiting.append(1)
    for t in (1.0, 2.0):
        assert sched.plan(t).chunks == []
    assert walks == [1, 1]
    assert sched.prefix is not None and 1 not in sched.prefix.held


def test_take_is_acquire_with_the_keys_a_lookup_found():
    """The carried walk and the old path (match, then acquire by count) leave two caches
    with the same state: request 1 shares request 0's 3 system blocks (48 of its 64
    tokens; (64 - 1) // 16 = 3 blocks looked up)."""
    p = PromptPrefixes(system=np.array([48, 48]), chain=np.arange(2))
    a, b = cache_of(p), cache_of(p)
    for cache in (a, b):
        cache.acquire(0, 64, 0)
        cache.publish(0, 64)
        cache.retire(0, 64)
    found = a.lookup(1, 64)
    assert (len(found.keys), found.referenced) == b.match(1, 64) == (3, 0)
    assert a.take(1, 64, found.keys) == b.acquire(1, 64, 3) == 48
    assert (a.refs, list(a.free), a.held, a.borrowed) == (b.refs, list(b.free), b.held,
                                                          b.borrowed)
    assert (a.lookups, a.hits, a.cached_tokens) == (b.lookups, b.hits, b.cached_tokens) \
        == (3 + 3, 3, 48)  # request 0's admission looked its 3 blocks up too
