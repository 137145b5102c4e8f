"""Routing policies: which replica of a pool a request goes to. Strategies are objects.

The scenario names one (``workload.router``, the :class:`~simulator.profiles.inference.Router`
enum); :func:`make_policy` builds the :class:`RoutingPolicy` object that applies it.

A router sees the replicas' loads at the moment it decides: for each replica of the pool,
the requests routed to it and not yet finished or handed off (queued, running, or with
their KV cache on the way). Ties go to the lowest index, so routing is deterministic.

On a mixed fleet (``workload.pools``) least_loaded and round_robin ignore the replicas'
speeds: a slow replica gets as many requests as a fast one, and its queue is longer in time.
``least_time`` (:class:`LeastTime`) weighs each replica by its pool's priced speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from heapq import heapify, heappop, heappush, heapreplace
from typing import Protocol

from simulator.profiles.inference import Router


class RoutingPolicy(Protocol):
    """What the serving system asks of a routing policy."""

    def choose(self, loads: Sequence[int]) -> int:
        """Index of the replica the next request goes to, given each replica's load."""
        ...

    def lowered(self, k: int, load: int) -> None:
        """Replica ``k``'s load has gone down to ``load`` (the caller raises loads only
        through the replica :meth:`choose` returned)."""
        ...


class RoundRobin:
    """Each replica in turn, whatever its load."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, loads: Sequence[int]) -> int:
        """The replica after the one chosen last."""
        i = self._next % len(loads)
        self._next = i + 1
        return i

    def lowered(self, k: int, load: int) -> None:
        """(Loads do not matter to a round robin.)"""


_SHIFT = 32  # heap entries are load << _SHIFT | replica
_MASK = (1 << _SHIFT) - 1


class LeastLoaded:
    """The replica with the fewest outstanding requests (join the shortest queue); the
    first of the least loaded, i.e. the least ``(load, replica)``.

    Kept as a heap of ``(load, replica)`` entries (one integer each, ordered as the pair),
    so that a choice costs O(log replicas) rather than a scan. Every replica has an entry
    whose load is at most its load now: a lowered load pushes an entry (:meth:`lowered`);
    a raised one is left stale and refreshed when its entry surfaces, and an entry whose
    load is above the replica's is dropped. The top entry, once it matches its replica's
    load, is then the least ``(load, replica)`` of all."""

    def __init__(self) -> None:
        self._heap: list[int] | None = None

    def choose(self, loads: Sequence[int]) -> int:
        """The least ``(load, replica)``."""
        heap = self._heap
        if heap is None or len(heap) > 4 * len(loads) + 64:  # start, or drop the stale
            heap = self._heap = [load << _SHIFT | i for i, load in enumerate(loads)]
            heapify(heap)
        while True:
            entry = heap[0]
            i = entry & _MASK
            load = loads[i]
            if load == entry >> _SHIFT:
                return i
            if load > entry >> _SHIFT:
                heapreplace(heap, load << _SHIFT | i)
            else:
                heappop(heap)

    def lowered(self, k: int, load: int) -> None:
        """Push an entry for ``k``'s lower load."""
        if self._heap is not None:
            heappush(self._heap, load << _SHIFT | k)


class LeastTime:
    """The replica with the least expected completion time for one more request: its
    outstanding requests plus this one, over its speed (requests per second, priced per
    pool: :func:`~simulator.engine.serving.pools.replica_speed`); ties go to the lowest
    index. On a fleet of equal replicas it chooses as :class:`LeastLoaded` does; on a mixed
    fleet a replica twice as fast holds twice the requests, where least_loaded would give
    both the same number and leave the slow one's queue longer in time.

    A heap of ``(expected time, replica, load)`` entries, kept as :class:`LeastLoaded`
    keeps its: an entry is current when its load is the replica's load now."""

    def __init__(self, speeds: Sequence[float]):
        if not speeds or min(speeds) <= 0:
            raise ValueError("least_time needs a positive speed for every replica")
        self._inverse = [1.0 / s for s in speeds]
        self._heap: list[tuple[float, int, int]] | None = None

    def choose(self, loads: Sequence[int]) -> int:
        """The least ``((load + 1) / speed, replica)``."""
        heap, inverse = self._heap, self._inverse
        if heap is None or len(heap) > 4 * len(loads) + 64:
            heap = self._heap = [((load + 1) * inverse[i], i, load)
                                 for i, load in enumerate(loads)]
            heapify(heap)
        while True:
            _, i, was = heap[0]
            load = loads[i]
            if load == was:
                return i
            if load > was:
                heapreplace(heap, ((load + 1) * inverse[i], i, load))
            else:
                heappop(heap)

    def lowered(self, k: int, load: int) -> None:
        """Push an entry for ``k``'s lower load."""
        if self._heap is not None:
            heappush(self._heap, ((load + 1) * self._inverse[k], k, load))


class SoleReplica:
    """A pool of one replica: every policy sends every request there, so nothing is kept
    or compared (a single-replica run spends no time routing)."""

    def choose(self, loads: Sequence[int]) -> int:
        """The only replica."""
        return 0

    def lowered(self, k: int, load: int) -> None:
        """(Nothing to choose between.)"""


def make_policy(kind: Router, replicas: int,
                speeds: Sequence[float] | None = None) -> RoutingPolicy:
    """A fresh policy of the scenario's ``kind`` for a pool of ``replicas`` (policies keep
    state, so each pool gets its own). ``least_time`` needs each replica's ``speeds``; on a
    fleet of equal replicas (or without speeds) it is least_loaded, the same choices."""
    if replicas == 1:
        return SoleReplica()
    if kind is Router.LEAST_TIME and speeds is not None and len(set(speeds)) > 1:
        return LeastTime(speeds)
    return RoundRobin() if kind is Router.ROUND_ROBIN else LeastLoaded()
