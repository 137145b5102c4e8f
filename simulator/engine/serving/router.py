"""Routers: which replica of a pool a request goes to. Strategies are objects.

A router sees the replicas' loads at the moment it decides: for each replica of the pool,
the requests routed to it and not yet finished or handed off (queued, running, or with
their KV cache on the way). Ties go to the lowest index, so routing is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from simulator.profiles.inference import Router as RouterKind


class Router(Protocol):
    def choose(self, loads: Sequence[int]) -> int:
        """Index of the replica the next request goes to, given each replica's load."""
        ...


class RoundRobin:
    """Each replica in turn, whatever its load."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, loads: Sequence[int]) -> int:
        i = self._next % len(loads)
        self._next = i + 1
        return i


class LeastLoaded:
    """The replica with the fewest outstanding requests (join the shortest queue)."""

    def choose(self, loads: Sequence[int]) -> int:
        return loads.index(min(loads))  # the first of the least loaded


def make_router(kind: RouterKind) -> Router:
    """A fresh router (routers keep state, so each pool gets its own)."""
    return RoundRobin() if kind is RouterKind.ROUND_ROBIN else LeastLoaded()
