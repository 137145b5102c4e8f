"""Cache-aware routing: send a request to the replica that holds the longest prefix of its
prompt in its prefix cache (SGLang's cache-aware router, NVIDIA Dynamo's KV-aware router).

A request whose prefix one replica holds is prefilled there from where the cache ends; on
another replica it would be prefilled whole and its prefix cached twice. So a session's
turns stay on the replica that served the first (its conversation is cached there), and a
shared system prompt is not recomputed wherever the request lands once every replica holds
it.

Always preferring the warmest cache can pile the load on one replica (every request shares
the system prompt, which the first replica caches first). As SGLang's router does, when the
most and least loaded replicas differ by more than ``balance`` outstanding requests the
request goes to the least loaded instead (``workload.router_balance_requests``; SGLang's
``balance_abs_threshold``). Ties go to the less loaded replica, then the lower index.

Idealised: the router sees the replicas' caches as they are. SGLang's router keeps an
approximate tree of what it routed where; Dynamo's hears the caches' events.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulator.engine.serving.prefix_cache import PrefixCache
from simulator.engine.serving.requests import Requests


class CacheAware:
    """The replica with the longest cached prefix of the request, within a load bound."""

    def __init__(self, *, caches: Sequence[PrefixCache], requests: Requests, balance: int):
        self.caches = list(caches)
        self.requests = requests
        self.balance = balance

    def choose(self, loads: Sequence[int]) -> int:
        """Without a request to look up: the least loaded (the first of them)."""
        return min(range(len(loads)), key=loads.__getitem__)

    def choose_request(self, r: int, loads: Sequence[int]) -> int:
        """Request ``r``'s replica: the longest cached prefix, then the lower load, then the
        lower index; the least loaded when the loads are too far apart."""
        least = self.choose(loads)
        if max(loads) - loads[least] > self.balance:
            return least
        target = self.requests.target[r]
        best, best_found = least, -1
        for k, cache in enumerate(self.caches):
            found = cache.match(r, target)[0]
            if found > best_found or (found == best_found and loads[k] < loads[best]):
                best, best_found = k, found
        return best

    def lowered(self, k: int, load: int) -> None:
        """(Loads are read when a request is routed.)"""
