"""Routing policies: a pool of one replica routes nowhere, and gives what the scenario's
own policy would have given, bit for bit."""

from __future__ import annotations

import pytest

from simulator.engine.serving import run as serving_run
from simulator.engine.serving import run_serving
from simulator.engine.serving.router import LeastLoaded, RoundRobin, SoleReplica, make_policy
from simulator.profiles.inference import Router
from tests.engine.test_serving_engine import _records_equal, scenario


@pytest.mark.parametrize("kind", list(Router))
def test_a_pool_of_one_replica_gets_the_sole_replica_policy(kind):
    assert isinstance(make_policy(kind, 1), SoleReplica)
    assert isinstance(make_policy(kind, 2), RoundRobin if kind is Router.ROUND_ROBIN
                      else LeastLoaded)


@pytest.mark.parametrize("kind", ["least_loaded", "round_robin"])
def test_one_replica_runs_the_same_with_or_without_its_policy(kind, monkeypatch):
    s = scenario({"router": kind, "arrivals": {"process": "poisson", "rate_per_s": 30,
                                               "requests": 400}})
    fast = run_serving(s)
    general = {"least_loaded": LeastLoaded, "round_robin": RoundRobin}[kind]
    monkeypatch.setattr(serving_run, "make_policy", lambda _kind, _n, _speeds=None: general())
    slow = run_serving(s)
    assert fast.result == slow.result
    assert _records_equal(fast.requests, slow.requests) == []
    assert fast.events == slow.events
